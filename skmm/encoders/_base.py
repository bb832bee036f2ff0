"""What every skmm encoder shares: the estimator API, column handling, the hooks a modality fills in.

A concrete encoder says how to load its model bundle once per process
(:meth:`~BaseEncoder._load_bundle`, shared through :func:`shared_bundle`), read
a row (:meth:`~BaseEncoder._read`, cheap, gives the bytes that identify it),
decode it (:meth:`~BaseEncoder._decode`, heavy, runs in worker threads while
the model computes the previous batch) and encode a batch
(:meth:`~BaseEncoder._encode_batch`). One call of ``transform`` is carried out
by a :class:`~skmm.encoders._encoding.ColumnEncoding`.
"""

import json
import os
import warnings
from numbers import Integral

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .._docs import DocLinkMixin
from .._sklearn import Interval, Options, StrOptions, _fit_context
from .._threads import resolve_n_threads
from ..exceptions import WeightsChangedError, WeightsChangedWarning
from ._bundle import shared_bundle, weights_fingerprint
from ._encoding import ColumnEncoding
from ._finetune import MODES as FINE_TUNE_MODES
from ._finetune import FineTuning, fine_tune, resolve_fine_tuning, transform_tuned

__all__ = ["FINE_TUNE_CONSTRAINT", "BaseEncoder", "shared_bundle", "weights_fingerprint"]


class BaseEncoder(DocLinkMixin, TransformerMixin, BaseEstimator):
    """Base class of the skmm encoders; not meant to be used directly.

    An encoder takes one column: a pandas or polars Series, a one-column
    DataFrame (pandas or polars), a list, a 1-D array or an ``(n, 1)`` array.
    Fitted on a one-column DataFrame or a named Series (as inside a
    :class:`~skmm.MultimodalFusion`), it remembers the column's name
    (``feature_names_in_``) and refuses another column at transform. An encoder whose ``_matrix_rows`` names what a row
    of numbers is (``"waveform"`` for the audio encoders) also takes a 2-D
    numeric array, one item per row; its ``n_features_in_`` is then the
    array's width, as for any scikit-learn transformer.
    """

    _parameter_constraints = {
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "cache": [None, str, os.PathLike],
        "on_error": [StrOptions({"raise", "missing"})],
        "verbose": ["verbose"],
    }
    #: parameters that do not change the embedding, left out of the cache key
    _runtime_params = ("batch_size", "device", "cache", "on_error", "verbose", "n_threads")
    #: decode rows in worker threads while the model computes (worth it for files)
    _decode_in_threads = True
    _feature_prefix = "emb"
    #: the kind of column the encoder reads ("image", "text", "audio"): a name in the kind registry
    _kind = None
    #: what one row of a 2-D numeric array is (e.g. "waveform"); None: no such input
    _matrix_rows = None

    # ------------------------------------------------------------------ to implement

    def _load_bundle(self):
        """Return the loaded model bundle (shared through :func:`shared_bundle`)."""
        raise NotImplementedError

    def _bundle(self):
        """The bundle to compute with: the one a runtime gave the encoder (ONNX Runtime), else its model's.

        :class:`skmm.onnx.OnnxModel` gives each encoder a bundle of the same shape whose
        forward pass is an exported graph, in ``_runtime_bundle``; reading, decoding,
        batching and missing rows stay the encoder's own.
        """
        given = getattr(self, "_runtime_bundle", None)
        return self._load_bundle() if given is None else given

    def _model_identity(self, bundle):
        """A string identifying the model and its weights (part of every cache key)."""
        raise NotImplementedError

    def _output_dim(self, bundle):
        raise NotImplementedError

    def _read(self, value):
        """Return ``(content bytes, raw)`` for one non-missing row."""
        raise NotImplementedError

    def _decode(self, raw, bundle):
        """Turn ``raw`` into what :meth:`_encode_batch` takes (runs in worker threads)."""
        return raw

    def _encode_batch(self, items, bundle):
        """Return a float32 array ``(len(items), d)``."""
        raise NotImplementedError

    def _rows_of_matrix(self, X, bundle):
        """The rows of a 2-D numeric array as :meth:`_read` takes them (when ``_matrix_rows`` is set)."""
        raise NotImplementedError

    def _use_decode_threads(self, raws):
        """Whether decoding these rows in worker threads pays for the threads' overhead."""
        return self._decode_in_threads

    def _encode_workers(self, bundle, n_batches):
        """``(workers, threads)``: batches encoded at once, and the torch threads of each.

        An encoder with an ``n_threads`` parameter splits that budget (see
        :func:`encode_workers`); without one, or on CUDA, one batch at a time
        with torch's own thread setting.
        """
        if str(getattr(bundle, "device", "cpu")).startswith("cuda"):
            return 1, None
        return encode_workers(getattr(self, "n_threads", None), n_batches)

    def _batch_order(self, raws):
        """Order in which rows are batched (e.g. by length); results keep input order."""
        return range(len(raws))

    def _check_params(self):
        """Extra parameter checks of a subclass (beyond ``_parameter_constraints``)."""

    def _inspect_column(self, X):
        """Look at the column given to ``fit`` (e.g. to warn about it); nothing by default."""

    def _is_usable(self, vector):
        """Whether an encoded row may be kept: by default, when every feature is finite.

        An encoder whose output holds an optional block (the sound track of a
        video) accepts that block entirely NaN: absent, not broken.
        """
        return bool(np.isfinite(vector).all())

    # ------------------------------------------------------------------ estimator API

    def set_params(self, **params):
        """Set the encoder's parameters; ``fine_tune__blocks=...`` and the like also when ``fine_tune`` is a mode.

        ``fine_tune="top"`` stands for ``FineTuning("top")``: a nested
        parameter (what ``GridSearchCV`` sets for ``{"fine_tune__blocks": [1, 2]}``)
        makes it one, with that parameter changed.

        Parameters
        ----------
        **params : dict
            Encoder parameters, and ``fine_tune__<name>`` for those of :class:`~skmm.FineTuning`.

        Returns
        -------
        self : object
        """
        if "fine_tune" in self._get_param_names() and any(key.startswith("fine_tune__") for key in params):
            mode = params.get("fine_tune", getattr(self, "fine_tune", None))
            if mode is None:
                nested = sorted(key for key in params if key.startswith("fine_tune__"))
                raise ValueError(
                    f"{type(self).__name__}: {nested[0]} needs fine_tune set, but it is None (frozen); "
                    "set fine_tune='top', 'lora' or a FineTuning(...) too."
                )
            if isinstance(mode, str):
                params = {**params, "fine_tune": FineTuning(mode)}
        return super().set_params(**params)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters and the column, load the model, and fine-tune it when asked.

        A frozen encoder (``fine_tune=None``, the default) learns nothing from
        ``X``. With ``fine_tune`` set, the top of the backbone trains on the
        labels ``y`` (see :class:`~skmm.FineTuning`); an interrupted fit
        leaves the encoder as it was.

        Parameters
        ----------
        X : pandas Series, one-column DataFrame, list or 1-D array
            The column to encode.
        y : array-like of shape (n_samples,), default=None
            The labels; used only, and then required, when fine-tuning.

        Returns
        -------
        self : object
        """
        self._check_params()
        tuning = resolve_fine_tuning(getattr(self, "fine_tune", None))
        if tuning is not None and y is None:
            raise ValueError(
                f"{type(self).__name__}(fine_tune={self.fine_tune!r}) learns from the labels: "
                "call fit(X, y), or set fine_tune=None to encode with the frozen model."
            )
        X = self._validate_column(X, reset=True)
        self._inspect_column(X)
        bundle = self._bundle()
        n_features_out, model_identity = self._output_dim(bundle), self._model_identity(bundle)
        fitted = {}
        if tuning is not None:
            fitted = fine_tune(self, X, y, bundle, tuning)
        for name in ("fine_tuned_", "fine_tune_cut_", "fine_tune_history_"):  # a refit may go frozen
            self.__dict__.pop(name, None)
        self.n_features_out_, self.model_identity_ = n_features_out, model_identity
        self.__dict__.update(fitted)
        return self

    def transform(self, X):
        """Encode every row of ``X``; a missing or (with ``on_error="missing"``) bad row is NaN.

        Parameters
        ----------
        X : pandas Series, one-column DataFrame, list or 1-D array
            The same kind of column as in ``fit`` (a DataFrame's column must
            have the name seen in ``fit``).

        Returns
        -------
        ndarray of shape (n_samples, n_features_out_), dtype float32
        """
        check_is_fitted(self, "n_features_out_")
        X = self._validate_column(X, reset=False)
        bundle = self._bundle()
        self._check_weights(bundle)
        values, labels = self._rows(X, bundle)
        if hasattr(self, "fine_tuned_"):
            return transform_tuned(self, values, labels, bundle)
        return ColumnEncoding(self, values, labels, bundle).run()

    def _check_weights(self, bundle):
        """Refuse to encode with weights other than those ``fit`` saw (``model_identity_``).

        A model id or folder names weights that can change after ``fit`` (a
        new revision on the hub, a folder overwritten): the features, and every
        prediction made from them, would change silently. With
        ``skmm.load(path, weights_changed="warn")`` the encoder warns once instead.
        """
        recorded = getattr(self, "model_identity_", None)
        found = self._model_identity(bundle)
        if recorded is None or found == recorded:
            return
        message = (
            f"{type(self).__name__} was fitted with the model {recorded!r} and now loads {found!r}: "
            "the weights behind its name changed since it was fitted, and so would its features and "
            "every prediction. Fit the pipeline again with these weights, or give the encoder the "
            "weights it was fitted with; skmm.load(path, weights_changed='warn') uses the new ones anyway."
        )
        if getattr(self, "_weights_changed", "raise") != "warn":
            raise WeightsChangedError(message)
        if getattr(self, "_warned_weights", None) != found:
            self._warned_weights = found
            warnings.warn(message, WeightsChangedWarning, stacklevel=3)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features: ``"<prefix><i>"``."""
        check_is_fitted(self, "n_features_out_")
        return np.asarray(
            [f"{self._feature_prefix}{i}" for i in range(self.n_features_out_)], dtype=object
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = self._matrix_rows is not None
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = []  # the output is float32, whatever the input
        tags.requires_fit = True
        return tags

    # ------------------------------------------------------------------ machinery

    def _is_matrix(self, X):
        """Whether ``X`` is a 2-D numeric array of rows (for an encoder that takes one)."""
        if self._matrix_rows is None:
            return False
        return sp.issparse(X) or (
            isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind in "biufc"
        )

    def _validate_column(self, X, *, reset):
        """Check ``X`` against what ``fit`` saw (set it when ``reset``); return it as an array if array-like."""
        name = type(self).__name__
        X = _from_polars(X)
        if not isinstance(X, (pd.DataFrame, pd.Series, list, tuple, np.ndarray)) and hasattr(
            X, "__array__"
        ):
            X = np.asarray(X)
        if self._is_matrix(X):
            X = validate_data(self, X, reset=reset, accept_sparse=False, ensure_all_finite=False)
            return X
        if isinstance(X, pd.DataFrame) and X.shape[1] != 1:
            first = X.columns[0] if len(X.columns) else "col"
            raise ValueError(
                f"{name} encodes one column, got a DataFrame with {X.shape[1]} columns "
                f"{list(X.columns)}; select one, e.g. X['{first}'] "
                "or ('name', encoder, 'column') in MultimodalFusion."
            )
        if isinstance(X, np.ndarray):
            self._check_array_shape(X)
        elif not isinstance(X, (pd.DataFrame, pd.Series, list, tuple)):
            raise TypeError(
                f"{name} expects a column (pandas Series, one-column DataFrame, list or "
                f"1-D array), got {type(X).__name__}."
            )
        # names only; a named Series counts as its one-column frame, so an encoder fitted inside a
        # MultimodalFusion (which hands it a Series) knows its column as one fitted on df[[name]] does
        named = X.to_frame() if isinstance(X, pd.Series) and isinstance(X.name, str) else X
        validate_data(self, named, skip_check_array=True, ensure_2d=False, reset=reset)
        if reset:
            self.n_features_in_ = 1
        elif self.n_features_in_ != 1:
            raise ValueError(
                f"X is one column, but {name} was fitted on a 2-D array of "
                f"{self.n_features_in_} features ({self._matrix_rows}s of {self.n_features_in_} "
                "values); transform the same kind of input it was fitted on."
            )
        return X

    def _check_array_shape(self, X):
        """Refuse an array that is not a column (nor, for audio, a batch of waveforms)."""
        name = type(self).__name__
        matrix = (
            f", or a 2-D array of numbers with one {self._matrix_rows} per row"
            if self._matrix_rows else ""
        )
        if X.ndim == 2 and X.shape[1] != 1:
            raise ValueError(
                f"{name} encodes one column, got an array of shape {X.shape} and dtype "
                f"{X.dtype}; pass a 1-D array or an (n, 1) array{matrix}."
            )
        if self._matrix_rows and X.ndim == 1 and X.dtype.kind in "biuf" and not np.isnan(X).all():
            raise ValueError(
                f"{name} got a 1-D array of numbers: a single {self._matrix_rows}? "
                f"Reshape your data: X.reshape(1, -1) is a batch of one {self._matrix_rows}."
            )

    def _rows(self, X, bundle):
        """The rows of a validated ``X`` as a list, and their index labels (or None)."""
        if isinstance(X, pd.DataFrame):
            return X.iloc[:, 0].tolist(), X.index
        if isinstance(X, pd.Series):
            return X.tolist(), X.index
        if self._is_matrix(X):
            return self._rows_of_matrix(X, bundle), None
        if isinstance(X, np.ndarray) and X.ndim == 2:
            return list(X[:, 0]), None
        return list(X), None

    def _identity(self, bundle, **extra):
        """The encoder's part of every cache key: its class, model and output-changing parameters.

        ``fine_tune`` is not part of it: a fine-tuned encoder caches only the
        activations of its frozen blocks, with the cut point in ``extra``.
        """
        params = {
            key: value
            for key, value in self.get_params(deep=False).items()
            if key not in self._runtime_params and key != "fine_tune"
        }
        payload = {"encoder": type(self).__name__, "model": self._model_identity(bundle), **extra}
        payload["params"] = {key: repr(value) for key, value in sorted(params.items())}
        return json.dumps(payload, sort_keys=True).encode()


#: the constraint of an encoder's ``fine_tune`` parameter
FINE_TUNE_CONSTRAINT = [None, StrOptions(set(FINE_TUNE_MODES)), FineTuning]

#: the constraint of an encoder's ``n_threads`` parameter (as MultimodalClassifier's)
N_THREADS_CONSTRAINT = [None, Options(Integral, {-1}), Interval(Integral, 1, None, closed="left")]

#: most batches encoded at once: each holds a batch's activations in memory
MAX_ENCODE_WORKERS = 4


def encode_workers(n_threads, n_batches):
    """``(workers, threads per worker)`` for an encoder's ``n_threads`` parameter and ``n_batches`` to encode.

    The budget is spread over up to :data:`MAX_ENCODE_WORKERS` batches encoded at
    once, each with its own small torch thread count: a worker slowed down by
    another process on its core holds up only itself, where one forward pass on
    many threads waits for its slowest thread at every operation. -1 is every
    available CPU, but no more than torch may use in the calling thread (so a
    budget set around the call, e.g. by :func:`skmm._threads.torch_threads`,
    holds). None keeps torch's own setting and encodes one batch at a time.

    Examples
    --------
    >>> from skmm.encoders._base import encode_workers
    >>> encode_workers(1, n_batches=10), encode_workers(None, n_batches=10)
    ((1, 1), (1, None))

    On two CPUs, ``encode_workers(-1, n_batches=10)`` is ``(2, 1)``: two batches at once, one
    thread each; a single batch gets both threads: ``encode_workers(-1, n_batches=1)`` is ``(1, 2)``.
    """
    count = resolve_n_threads(n_threads)
    if count is None:
        return 1, None
    if n_threads == -1:  # every CPU the caller lets torch use (a server's or a fit's budget wins)
        import torch

        count = max(1, min(count, torch.get_num_threads()))
    workers = max(1, min(count, MAX_ENCODE_WORKERS, n_batches))
    return workers, count // workers


def _from_polars(X):
    """A polars Series or DataFrame as its pandas counterpart, names kept; anything else unchanged.

    Built from Python values (no pyarrow needed): a row's content, hence its
    cache key, is the same as from pandas.
    """
    if not type(X).__module__.startswith("polars"):
        return X
    if hasattr(X, "get_columns"):  # a DataFrame
        return pd.DataFrame({column: X[column].to_list() for column in X.columns})
    return pd.Series(X.to_list(), name=X.name)
