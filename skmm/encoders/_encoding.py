"""One transform call of an encoder: read the rows, consult the cache, decode and encode the rest."""

import hashlib
import os
import sys
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..cache import resolve_cache, row_key
from ..exceptions import InputError, InputWarning
from .._utils import describe_value, is_missing

__all__ = ["ColumnEncoding"]

#: what reading or decoding a bad row raises; anything else is a bug and propagates
ROW_ERRORS = (ValueError, TypeError, OSError)

#: packages whose frames are not "the user's code" when a warning names where it came from
_LIBRARY_PACKAGES = frozenset(
    {"skmm", "sklearn", "skorch", "joblib", "numpy", "pandas", "contextlib", "functools", "runpy"}
)
#: encoder -> the call sites (file, line) it has already warned at
_WARNED_AT = weakref.WeakKeyDictionary()


def _user_call_site():
    """``(stacklevel, (file, line))`` of the innermost frame outside skmm and the libraries it runs in."""
    frame, level = sys._getframe(1), 1  # level 1: the function calling warnings.warn
    while frame.f_back is not None:
        package = str(frame.f_globals.get("__name__", "")).split(".")[0]
        if package not in _LIBRARY_PACKAGES:
            break
        frame, level = frame.f_back, level + 1
    return level, (frame.f_code.co_filename, frame.f_lineno)


@dataclass
class ColumnEncoding:
    """Everything one call of ``transform`` shares between its steps.

    Rows with the same content share one cache key and are encoded once. A
    row that cannot be read, decoded or encoded either raises
    :class:`~skmm.InputError` or, with ``on_error="missing"``, stays a row of
    NaN and is reported in one :class:`~skmm.InputWarning` at the end.

    Parameters
    ----------
    encoder : BaseEncoder
        The fitted encoder; its hooks (``_read``, ``_decode``, ``_encode_batch``)
        do the modality's work.
    values : list
        The rows, in input order.
    labels : pandas Index or None
        The index labels of the rows, named in error messages.
    bundle : object
        The encoder's loaded model bundle.
    """

    encoder: object
    values: list
    labels: object
    bundle: object
    #: messages of the rows that became missing (``on_error="missing"``)
    failures: list = field(default_factory=list)
    #: cache key -> positions of the rows with that content
    rows_of_key: dict = field(default_factory=dict)
    #: cache key -> what the encoder's ``_decode`` takes
    raw_of_key: dict = field(default_factory=dict)

    def run(self):
        """Encode every row: a float32 array ``(n_rows, n_features_out_)``, NaN where missing."""
        encoder = self.encoder
        output = np.full((len(self.values), encoder.n_features_out_), np.nan, dtype=np.float32)
        identity = self.read_rows()
        store = resolve_cache(encoder.cache)
        if store is None:
            found, computed = {}, self.compute(list(self.rows_of_key))
        else:
            found, computed = self.cached_or_computed(store, identity)
        for vectors in (found, computed):
            for key, vector in vectors.items():
                output[self.rows_of_key[key]] = vector
        self.warn_failures()
        return output

    def cached_or_computed(self, store, identity):
        """``(found, computed)``: the rows' vectors from the store, and those it lacked, encoded and stored.

        The rows the store lacks are encoded under the store's lock for this
        encoder setting: a worker process of a parallel search that needs the
        same rows waits, then finds them stored, so each row is encoded once
        across all the workers sharing the cache folder.
        """
        width = self.encoder.n_features_out_
        # the store drops entries of another width, dtype or with NaN
        usable = self.encoder._is_usable  # e.g. a video's sound block may be all NaN
        found = store.get_many(list(self.rows_of_key), width=width, usable=usable)
        missing = [key for key in self.rows_of_key if key not in found]
        if not missing:
            return found, {}
        with store.exclusive(hashlib.sha256(identity).hexdigest()[:32]):
            found.update(store.get_many(missing, width=width, usable=usable))  # stored meanwhile
            computed = self.compute([key for key in missing if key not in found])
            if computed:
                store.put_many(computed, usable=usable)
        return found, computed

    def read_rows(self):
        """Read every present row (cheap), group the rows by cache key; return the encoder's identity."""
        identity = self.encoder._identity(self.bundle)
        for position, value in enumerate(self.values):
            if is_missing(value):
                continue
            try:
                content, raw = self.encoder._read(value)
            except ROW_ERRORS as exc:
                self.fail(position, str(exc))
                continue
            key = row_key(identity, content)
            self.rows_of_key.setdefault(key, []).append(position)
            self.raw_of_key.setdefault(key, raw)
        return identity

    def compute(self, keys):
        """Decode and encode the rows of ``keys`` in batches; ``{key: vector}`` of those that worked."""
        if not keys:
            return {}
        from tqdm.auto import tqdm

        encoder = self.encoder
        raws = [self.raw_of_key[key] for key in keys]
        ordered = [keys[i] for i in encoder._batch_order(raws)]
        size = encoder.batch_size
        batches = [ordered[start : start + size] for start in range(0, len(ordered), size)]
        workers = min(4, os.cpu_count() or 1) if encoder._use_decode_threads(raws) else 0
        pool = ThreadPoolExecutor(workers) if workers else None
        progress = tqdm(
            total=len(keys), desc=type(encoder).__name__, unit="row",
            disable=not encoder.verbose, delay=1.0, leave=False,
        )
        computed = {}
        try:
            for batch, decoded in zip(batches, self._decoded_batches(batches, pool)):
                computed.update(self._encode(batch, decoded))
                progress.update(len(batch))
        finally:
            progress.close()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        return computed

    def fail(self, position, reason):
        """Raise :class:`~skmm.InputError` for the row at ``position``, or note it as missing."""
        where = f"row {position}"
        if self.labels is not None:
            where += f" (index {self.labels[position]!r})"
        message = f"{type(self.encoder).__name__}: {where}, {describe_value(self.values[position])}: {reason}"
        if self.encoder.on_error == "raise":
            raise InputError(
                message + ". Fix or drop the row, or pass on_error='missing' to encode "
                "unusable rows as missing (NaN)."
            )
        self.failures.append(message)

    def warn_failures(self):
        """One :class:`~skmm.InputWarning` listing the rows that became missing, if any.

        It points at the user's line (not into scikit-learn), and an encoder
        warns once per such line: a loop over batches does not repeat it.
        """
        if not self.failures:
            return
        stacklevel, site = _user_call_site()
        sites = _WARNED_AT.setdefault(self.encoder, set())
        if site in sites:
            return
        sites.add(site)
        shown = "\n  ".join(self.failures[:5])
        more = f"\n  ... and {len(self.failures) - 5} more" if len(self.failures) > 5 else ""
        warnings.warn(
            f"{type(self.encoder).__name__}: {len(self.failures)} of {len(self.values)} rows could "
            f"not be encoded and were set to missing (NaN):\n  {shown}{more}",
            InputWarning,
            stacklevel=stacklevel,
        )

    # ------------------------------------------------------------------ steps of compute

    def _decode(self, key):
        """``(decoded, None)``, or ``(None, reason)`` for a row that cannot be decoded (worker threads)."""
        try:
            return self.encoder._decode(self.raw_of_key[key], self.bundle), None
        except ROW_ERRORS as exc:
            return None, str(exc)

    def _decoded_batches(self, batches, pool):
        """Each batch's decoded rows; with a pool, the next batch decodes while this one is encoded."""
        if pool is None:
            for batch in batches:
                yield [self._decode(key) for key in batch]
            return
        pending = [pool.submit(self._decode, key) for key in batches[0]]
        for number in range(len(batches)):
            decoded = [future.result() for future in pending]
            if number + 1 < len(batches):
                pending = [pool.submit(self._decode, key) for key in batches[number + 1]]
            yield decoded

    def _encode(self, batch, decoded):
        """Encode one batch of decoded rows; ``{key: vector}`` of the rows with finite features."""
        keys, items = [], []
        for key, (item, reason) in zip(batch, decoded):
            if reason is None:
                keys.append(key)
                items.append(item)
            else:
                self.fail(self.rows_of_key[key][0], reason)
        if not items:
            return {}
        vectors = np.asarray(self.encoder._encode_batch(items, self.bundle), dtype=np.float32)
        computed = {}
        for key, vector in zip(keys, vectors):
            if self.encoder._is_usable(vector):
                computed[key] = vector
            else:
                reason = "encoding gave NaN or infinite features (values out of range?)"
                self.fail(self.rows_of_key[key][0], reason)
        return computed
