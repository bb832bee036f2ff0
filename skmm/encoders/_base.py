"""What every skmm encoder shares: column handling, missing rows, errors, cache, batching.

A concrete encoder says how to read a row (:meth:`_read`, cheap, gives the
bytes that identify it), decode it (:meth:`_decode`, heavy, runs in worker
threads while the model computes the previous batch), load its model once per
process (:meth:`_load_backend`) and encode a batch (:meth:`_encode_batch`).
"""

import hashlib
import json
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..cache import resolve_cache, row_key
from ..exceptions import InputError, InputWarning
from .._utils import describe_value, is_missing

__all__ = ["BaseEncoder", "shared_backend", "weights_fingerprint"]

_BACKENDS = {}
_BACKENDS_LOCK = threading.Lock()


def shared_backend(key, factory):
    """Load a model once per process and share it between clones and folds.

    A local model folder named in ``key`` is loaded again when its files change
    (names, sizes, modification times): a model saved again in place is never
    served from a stale copy, and the stale copy is released.
    """
    signature = _folder_signature(key)
    with _BACKENDS_LOCK:
        entry = _BACKENDS.get(key)
        if entry is None or entry[0] != signature:
            _BACKENDS.pop(key, None)  # release the stale model before loading the new one
            _BACKENDS[key] = entry = (signature, factory())
        return entry[1]


def _folder_signature(key):
    """Name, size and modification time of every file of the local folders in ``key``."""
    signature = []
    for part in key:
        if isinstance(part, str) and os.path.isdir(part):
            for path in sorted(Path(part).rglob("*")):
                if path.is_file():
                    stat = path.stat()
                    signature.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


def weights_fingerprint(module):
    """A SHA-256 of every parameter and buffer of a torch module."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class BaseEncoder(TransformerMixin, BaseEstimator):
    """Base class of the skmm encoders; not meant to be used directly."""

    _parameter_constraints = {
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "cache": [None, str, os.PathLike],
        "on_error": [StrOptions({"raise", "missing"})],
        "verbose": ["verbose"],
    }
    #: parameters that do not change the embedding, left out of the cache key
    _runtime_params = ("batch_size", "device", "cache", "on_error", "verbose")
    #: decode rows in worker threads while the model computes (worth it for files)
    _decode_in_threads = True
    _feature_prefix = "emb"
    #: the kind of column the encoder reads ("image", "text", "audio"): a name in the kind registry
    _kind = None

    # ------------------------------------------------------------------ to implement

    def _load_backend(self):
        """Return the loaded model bundle (shared through :func:`shared_backend`)."""
        raise NotImplementedError

    def _backend_identity(self, backend):
        """A string identifying the model and its weights."""
        raise NotImplementedError

    def _output_dim(self, backend):
        raise NotImplementedError

    def _read(self, value):
        """Return ``(content bytes, raw)`` for one non-missing row."""
        raise NotImplementedError

    def _decode(self, raw, backend):
        """Turn ``raw`` into what :meth:`_encode_batch` takes (runs in worker threads)."""
        return raw

    def _encode_batch(self, items, backend):
        """Return a float32 array ``(len(items), d)``."""
        raise NotImplementedError

    def _use_decode_threads(self, raws):
        """Whether decoding these rows in worker threads pays for the threads' overhead."""
        return self._decode_in_threads

    def _batch_order(self, raws):
        """Order in which rows are batched (e.g. by length); results keep input order."""
        return range(len(raws))

    # ------------------------------------------------------------------ estimator API

    def fit(self, X, y=None):
        """Check the parameters and the column, and load the model.

        Encoders are frozen: nothing is learned from ``X``.

        Parameters
        ----------
        X : pandas Series, one-column DataFrame, list or 1-D array
            The column to encode.
        y : ignored

        Returns
        -------
        self : object
        """
        self._validate_params()
        self._check_params()
        self._column(X, reset=True)
        backend = self._load_backend()
        self.n_features_out_ = self._output_dim(backend)
        return self

    def transform(self, X):
        """Encode every row of ``X``; a missing or (with ``on_error="missing"``) bad row is NaN.

        Parameters
        ----------
        X : pandas Series, one-column DataFrame, list or 1-D array

        Returns
        -------
        ndarray of shape (n_samples, n_features_out_), dtype float32
        """
        check_is_fitted(self, "n_features_out_")
        values, labels = self._column(X, reset=False)
        return self._encode_column(values, labels)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features: ``"<prefix><i>"``."""
        check_is_fitted(self, "n_features_out_")
        return np.asarray(
            [f"{self._feature_prefix}{i}" for i in range(self.n_features_out_)], dtype=object
        )

    def _check_params(self):
        """Extra parameter checks of a subclass (beyond ``_parameter_constraints``)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.requires_fit = True
        return tags

    # ------------------------------------------------------------------ machinery

    def _column(self, X, *, reset):
        name = type(self).__name__
        labels = None
        if isinstance(X, pd.DataFrame):
            if X.shape[1] != 1:
                raise ValueError(
                    f"{name} encodes one column, got a DataFrame with {X.shape[1]} columns "
                    f"{list(X.columns)}; select one, e.g. X['{X.columns[0] if len(X.columns) else 'col'}'] "
                    "or ('name', encoder, 'column') in MultimodalFusion."
                )
            if reset:
                self.feature_names_in_ = np.asarray(X.columns, dtype=object)
            labels = X.index
            values = X.iloc[:, 0].tolist()
        elif isinstance(X, pd.Series):
            labels = X.index
            values = X.tolist()
        elif isinstance(X, np.ndarray):
            if X.ndim == 2 and X.shape[1] == 1:
                values = list(X[:, 0])
            elif X.ndim == 1 or X.ndim >= 3:
                values = list(X)
            else:
                raise ValueError(
                    f"{name} encodes one column, got an array of shape {X.shape}; "
                    "pass a 1-D array or an (n, 1) array."
                )
        elif isinstance(X, (list, tuple)):
            values = list(X)
        else:
            raise TypeError(
                f"{name} expects a column (pandas Series, one-column DataFrame, list or "
                f"1-D array), got {type(X).__name__}."
            )
        if reset:
            self.n_features_in_ = 1
            if not isinstance(X, pd.DataFrame) and hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        return values, labels

    def _identity(self, backend):
        params = {
            key: value
            for key, value in self.get_params(deep=False).items()
            if key not in self._runtime_params
        }
        payload = {"encoder": type(self).__name__, "model": self._backend_identity(backend)}
        payload["params"] = {key: repr(value) for key, value in sorted(params.items())}
        return json.dumps(payload, sort_keys=True).encode()

    def _fail(self, position, labels, value, reason, failures):
        where = f"row {position}"
        if labels is not None:
            where += f" (index {labels[position]!r})"
        message = f"{type(self).__name__}: {where}, {describe_value(value)}: {reason}"
        if self.on_error == "raise":
            raise InputError(
                message + ". Fix or drop the row, or pass on_error='missing' to encode "
                "unusable rows as missing (NaN)."
            )
        failures.append(message)

    def _encode_column(self, values, labels):
        backend = self._load_backend()
        output = np.full((len(values), self.n_features_out_), np.nan, dtype=np.float32)
        identity = self._identity(backend)
        failures = []
        rows_of_key, raw_of_key = {}, {}
        for position, value in enumerate(values):
            if is_missing(value):
                continue
            try:
                content, raw = self._read(value)
            except (ValueError, TypeError, OSError) as exc:
                self._fail(position, labels, value, str(exc), failures)
                continue
            key = row_key(identity, content)
            rows_of_key.setdefault(key, []).append(position)
            raw_of_key.setdefault(key, raw)

        store = resolve_cache(self.cache)
        found = store.get_many(list(rows_of_key)) if store is not None else {}
        for key, vector in found.items():
            output[rows_of_key[key]] = vector

        todo = [key for key in rows_of_key if key not in found]
        if todo:
            computed = self._encode_keys(todo, raw_of_key, rows_of_key, values, labels, failures, backend)
            for key, vector in computed.items():
                output[rows_of_key[key]] = vector
            if store is not None:
                store.put_many(computed)
        if failures:
            shown = "\n  ".join(failures[:5])
            more = f"\n  ... and {len(failures) - 5} more" if len(failures) > 5 else ""
            warnings.warn(
                f"{type(self).__name__}: {len(failures)} of {len(values)} rows could not be "
                f"encoded and were set to missing (NaN):\n  {shown}{more}",
                InputWarning,
                stacklevel=3,
            )
        return output

    def _encode_keys(self, keys, raw_of_key, rows_of_key, values, labels, failures, backend):
        from tqdm.auto import tqdm

        raws = [raw_of_key[key] for key in keys]
        order = list(self._batch_order(raws))
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        computed = {}

        def safe_decode(raw):
            try:
                return self._decode(raw, backend), None
            except (ValueError, TypeError, OSError) as exc:
                return None, str(exc)

        workers = min(4, os.cpu_count() or 1) if self._use_decode_threads(raws) else 0
        pool = ThreadPoolExecutor(workers) if workers else None

        def submit(batch):
            if pool is None:
                return [safe_decode(raws[i]) for i in batch]
            return [pool.submit(safe_decode, raws[i]) for i in batch]

        progress = tqdm(
            total=len(order), desc=type(self).__name__, unit="row",
            disable=not self.verbose, delay=1.0, leave=False,
        )
        try:
            pending = submit(batches[0]) if batches else None
            for number, batch in enumerate(batches):
                decoded = [item if pool is None else item.result() for item in pending]
                if number + 1 < len(batches):
                    pending = submit(batches[number + 1])
                items, kept = [], []
                for index, (item, reason) in zip(batch, decoded):
                    if reason is not None:
                        position = rows_of_key[keys[index]][0]
                        self._fail(position, labels, values[position], reason, failures)
                        continue
                    items.append(item)
                    kept.append(keys[index])
                if items:
                    vectors = np.asarray(self._encode_batch(items, backend), dtype=np.float32)
                    for key, vector in zip(kept, vectors):
                        if np.isfinite(vector).all():
                            computed[key] = vector
                            continue
                        position = rows_of_key[key][0]
                        reason = "encoding gave NaN or infinite features (values out of range?)"
                        self._fail(position, labels, values[position], reason, failures)
                progress.update(len(batch))
        finally:
            progress.close()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        return computed
