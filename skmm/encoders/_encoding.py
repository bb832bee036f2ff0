"""One transform call of an encoder: read the rows, consult the cache, decode and encode the rest."""

import collections
import contextlib
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
from .._threads import submit_in_context, torch_threads
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


def _name(encoder):
    """The name messages and progress bars give an encoder (a view of one names what it encodes)."""
    return getattr(encoder, "display_name", type(encoder).__name__)


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
        output = np.full((len(self.values), self.encoder.n_features_out_), np.nan, dtype=np.float32)
        for key, vector in self.vectors().items():
            output[self.rows_of_key[key]] = vector
        return output

    def run_ragged(self):
        """Encode every row into a vector of its own length (``n_features_out_`` is None): a list, None where missing.

        For what has no fixed width, such as a text model's hidden states (one
        row of features per token), cached as the flat vector of each row.
        """
        output = [None] * len(self.values)
        for key, vector in self.vectors().items():
            for position in self.rows_of_key[key]:
                output[position] = vector
        return output

    def vectors(self):
        """``{key: vector}`` of every row that could be encoded, from the cache or computed."""
        identity = self.read_rows()
        store = resolve_cache(self.encoder.cache)
        if store is None:
            found, computed = {}, self.compute(list(self.rows_of_key))
        else:
            found, computed = self.cached_or_computed(store, identity)
        self.warn_failures()
        return {**found, **computed}

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
        """Decode and encode the rows of ``keys`` in batches; ``{key: vector}`` of those that worked.

        Batches are encoded by the encoder's workers (:meth:`BaseEncoder._encode_workers`),
        each under its own torch thread budget, while worker threads decode the rows of the
        batches that come next.
        """
        if not keys:
            return {}
        from .._progress import progress

        encoder = self.encoder
        raws = [self.raw_of_key[key] for key in keys]
        ordered = [keys[i] for i in encoder._batch_order(raws)]
        size = encoder.batch_size
        batches = [ordered[start : start + size] for start in range(0, len(ordered), size)]
        workers, threads = encoder._encode_workers(self.bundle, len(batches))
        decoders = min(4, os.cpu_count() or 1) if encoder._use_decode_threads(raws) else 0
        bar = progress(len(keys), desc=_name(encoder), unit="row", disable=not encoder.verbose)
        computed = {}
        with contextlib.ExitStack() as stack:
            stack.callback(bar.close)
            decode_pool = _pool(stack, decoders)
            encode_pool = _pool(stack, workers if workers > 1 else 0)
            pipeline = _Pipeline(self, batches, decode_pool, encode_pool, workers, threads)
            for batch, (decoded, vectors) in zip(batches, pipeline.results()):
                computed.update(self._collect(batch, decoded, vectors))
                bar.update(len(batch))
        return computed

    def fail(self, position, reason):
        """Raise :class:`~skmm.InputError` for the row at ``position``, or note it as missing."""
        where = f"row {position}"
        if self.labels is not None:
            where += f" (index {self.labels[position]!r})"
        message = f"{_name(self.encoder)}: {where}, {describe_value(self.values[position])}: {reason}"
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
            f"{_name(self.encoder)}: {len(self.failures)} of {len(self.values)} rows could "
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

    def _encode(self, decoded, threads):
        """The vectors of the decoded rows of one batch (those without a reason), or None."""
        items = [item for item, reason in decoded if reason is None]
        if not items:
            return None
        with torch_threads(threads):
            vectors = self.encoder._encode_batch(items, self.bundle)
        if self.encoder.n_features_out_ is None:  # ragged: a vector of its own length per row
            return [np.asarray(vector, dtype=np.float32).ravel() for vector in vectors]
        return np.asarray(vectors, dtype=np.float32)

    def _collect(self, batch, decoded, vectors):
        """``{key: vector}`` of one batch's rows with finite features; the others fail."""
        keys = []
        for key, (item, reason) in zip(batch, decoded):
            if reason is None:
                keys.append(key)
            else:
                self.fail(self.rows_of_key[key][0], reason)
        computed = {}
        for key, vector in zip(keys, () if vectors is None else vectors):
            if self.encoder._is_usable(vector):
                computed[key] = vector
            else:
                reason = "encoding gave NaN or infinite features (values out of range?)"
                self.fail(self.rows_of_key[key][0], reason)
        return computed


def _pool(stack, workers):
    """A thread pool of ``workers`` threads shut down (pending work cancelled) with ``stack``; None for 0."""
    if not workers:
        return None
    pool = ThreadPoolExecutor(workers)
    stack.callback(pool.shutdown, wait=True, cancel_futures=True)
    return pool


@dataclass
class _Pipeline:
    """Decoding and encoding of the batches of one ``compute``, overlapped; results in batch order.

    With a decode pool, the rows of the next batches decode while the current ones are
    encoded; with an encode pool, ``workers`` batches are encoded at once, each with
    ``threads`` torch threads (one batch at a time in the calling thread otherwise).
    """

    encoding: ColumnEncoding
    batches: list
    decode_pool: object
    encode_pool: object
    workers: int
    threads: object

    def results(self):
        """``(decoded, vectors)`` of every batch, in order (see :meth:`ColumnEncoding._encode`)."""
        decoding = {}
        in_flight = collections.deque()
        for number in range(len(self.batches)):
            for ahead in range(number, min(number + self.workers + 1, len(self.batches))):
                self._start_decoding(ahead, decoding)
            futures = decoding.pop(number, None)
            if self.encode_pool is None:
                yield self._job(number, futures)
                continue
            in_flight.append(submit_in_context(self.encode_pool, self._job, number, futures))
            if len(in_flight) >= self.workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()

    def _start_decoding(self, number, decoding):
        if self.decode_pool is not None and number not in decoding:
            decode = self.encoding._decode
            decoding[number] = [submit_in_context(self.decode_pool, decode, key) for key in self.batches[number]]

    def _job(self, number, futures):
        if futures is None:
            decoded = [self.encoding._decode(key) for key in self.batches[number]]
        else:
            decoded = [future.result() for future in futures]
        return decoded, self.encoding._encode(decoded, self.threads)
