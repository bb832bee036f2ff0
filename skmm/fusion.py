"""MultimodalFusion: a ColumnTransformer whose output keeps track of each column's modality."""

import threading
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.compose import ColumnTransformer
from sklearn.utils.validation import check_is_fitted

from ._docs import DocLinkMixin
from ._sklearn import _ERR_MSG_1DCOLUMN, _fit_context, _fit_transform_one, _get_container_adapter, _safe_indexing

__all__ = ["ModalityWarning", "MultimodalFusion", "check_modalities", "modality_of_columns"]

SEPARATOR = "__"

#: the last output of a MultimodalFusion in this thread: (number of rows, modality names)
_LAST_OUTPUT = threading.local()


class ModalityWarning(UserWarning):
    """The ``"<modality>__"`` column names were lost between the fusion and the classifier."""


def modality_of_columns(columns):
    """Modality name of each ``"<modality>__<feature>"`` column name.

    Columns without the separator belong to one modality called ``"input"``.

    Examples
    --------
    >>> modality_of_columns(["image__img0", "image__img1", "text__txt0", "x"])
    ['image', 'image', 'text', 'input']
    """
    return [
        str(name).split(SEPARATOR, 1)[0] if SEPARATOR in str(name) else "input"
        for name in columns
    ]


def check_modalities(X, *, estimator="MultimodalClassifier"):
    """Modality name of each column of ``X``, warning when the fusion's modalities were lost.

    A step placed between :class:`MultimodalFusion` and the classifier that
    outputs a plain array (a ``StandardScaler``, a ``VarianceThreshold`` with
    scikit-learn's default output) drops the ``"<modality>__"`` names: every
    column then belongs to one modality, ``"input"``. This function gives a
    :class:`ModalityWarning` when ``X`` has no modality names although the
    last :class:`MultimodalFusion` output in this thread had several
    modalities and as many rows as ``X`` (so ``X`` most likely comes from it).
    The way out it names: ``set_output(transform="pandas")`` on the pipeline,
    so that such steps keep the column names.

    Parameters
    ----------
    X : DataFrame or array-like of shape (n_samples, n_features)
        What the classifier is fitted on.
    estimator : str, default="MultimodalClassifier"
        The caller, named in the warning.

    Returns
    -------
    modalities : list of str
        One modality name per column, as :func:`modality_of_columns`.

    Examples
    --------
    >>> import numpy as np, pandas as pd, warnings
    >>> from skmm.fusion import MultimodalFusion, check_modalities
    >>> df = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    >>> fused = MultimodalFusion([("one", "passthrough", ["a"]), ("two", "passthrough", ["b"])]).fit_transform(df)
    >>> check_modalities(fused)
    ['one', 'two']
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     check_modalities(fused.to_numpy())
    ['input', 'input']
    >>> caught[0].category.__name__, 'set_output(transform="pandas")' in str(caught[0].message)
    ('ModalityWarning', True)
    """
    columns = getattr(X, "columns", None)
    n_rows, n_columns = np.shape(X)[0], (np.shape(X)[1] if np.ndim(X) > 1 else 1)
    names = modality_of_columns(columns) if columns is not None else ["input"] * n_columns
    last = getattr(_LAST_OUTPUT, "value", None)
    if set(names) <= {"input"} and last is not None and last[0] == n_rows and len(last[1]) > 1:
        warnings.warn(
            f"{estimator} got {n_columns} columns without '<modality>__' names, so it sees one "
            f"modality, although the MultimodalFusion before it made {len(last[1])} "
            f"({', '.join(last[1])}): a step in between (a StandardScaler, a VarianceThreshold...) "
            "returned a plain array. Call pipeline.set_output(transform=\"pandas\") so that such "
            "steps keep the column names, or place them inside the fusion, one per modality.",
            ModalityWarning,
            stacklevel=3,
        )
    return names


class MultimodalFusion(DocLinkMixin, ColumnTransformer):
    """Apply one transformer per modality and join the results into one DataFrame.

    A :class:`~sklearn.compose.ColumnTransformer` whose output is a pandas
    DataFrame with columns named ``"<modality>__<feature>"``, so that
    :class:`~skmm.MultimodalClassifier` knows which features belong to which
    modality. Any scikit-learn transformer can be a modality: the skmm
    encoders for images, texts and audio, a ``StandardScaler`` on numeric
    columns, a ``OneHotEncoder`` on categories, a ``TfidfVectorizer`` on text
    (sparse outputs are made dense), a ``FunctionTransformer`` (without
    ``feature_names_out``, its columns are named ``"<modality>__x<i>"``).
    The encoders' float32 blocks stay float32. The input may be a pandas or a
    polars DataFrame; ``set_output(transform="polars")`` gives a polars
    DataFrame.

    Parameters
    ----------
    transformers : list of (name, transformer, columns) tuples
        ``name`` is the modality name (no ``"__"`` in it); ``columns`` is one
        column name (the transformer gets a Series), a list of names, a
        callable or a selector, as for ``ColumnTransformer``.
    remainder : {"drop", "passthrough"} or transformer, default="drop"
        What to do with the columns not listed.
    sparse_threshold : float, default=0.0
        Kept for compatibility; 0 gives a dense result, which the classifier needs.
    n_jobs : int, default=None
        Transformers run in parallel: ``fit`` as ``ColumnTransformer`` does
        (joblib's default backend), ``transform`` in that many threads kept for
        the process, each modality's transformer with one torch thread. The
        output is the same. It makes a single row faster (its image, text and
        audio are encoded side by side) and batches of several rows slower
        (see docs/performance.md); ``skmm serve`` uses it for single rows.
        None or 1: one modality after the other.
    transformer_weights : dict, default=None
        Multiplicative weight per modality.
    verbose : bool, default=False
        Print the time each transformer takes to fit.
    verbose_feature_names_out : bool, default=True
        Must stay True for the modality prefixes; kept for ``ColumnTransformer`` compatibility.

    Attributes
    ----------
    modalities_ : dict
        Modality name → the input columns it reads.
    transformers_ : list
        The fitted transformers, as in ``ColumnTransformer``.
    feature_names_in_ : ndarray of str
        Input column names, when fitted on a DataFrame.

    See Also
    --------
    sklearn.compose.ColumnTransformer, MultimodalClassifier

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmm import MultimodalFusion, TextEncoder
    >>> df = pd.DataFrame({"review": ["great", "awful", None], "price": [1.0, 2.0, 3.0]})
    >>> fusion = MultimodalFusion([
    ...     ("text", TextEncoder(verbose=0), "review"),
    ...     ("tabular", StandardScaler(), ["price"]),
    ... ])
    >>> out = fusion.fit_transform(df)
    >>> out.shape
    (3, 385)
    >>> list(out.columns[[0, -1]])
    ['text__txt0', 'tabular__price']
    >>> fusion.modalities_
    {'text': ['review'], 'tabular': ['price']}
    """

    def __init__(
        self,
        transformers,
        *,
        remainder="drop",
        sparse_threshold=0.0,
        n_jobs=None,
        transformer_weights=None,
        verbose=False,
        verbose_feature_names_out=True,
    ):
        super().__init__(
            transformers,
            remainder=remainder,
            sparse_threshold=sparse_threshold,
            n_jobs=n_jobs,
            transformer_weights=transformer_weights,
            verbose=verbose,
            verbose_feature_names_out=verbose_feature_names_out,
        )

    def _check_params(self):
        """What skmm asks beyond ColumnTransformer's constraints (checked by scikit-learn first)."""
        for position, entry in enumerate(self.transformers):
            if not (isinstance(entry, (tuple, list)) and len(entry) == 3):
                raise ValueError(
                    f"transformers[{position}] must be a (modality name, transformer, columns) "
                    f"tuple, got {entry!r}; e.g. ('tabular', StandardScaler(), ['price'])."
                )
        if self.verbose_feature_names_out is not True:
            raise ValueError(
                "verbose_feature_names_out must be True: the '<modality>__' prefix is how "
                f"MultimodalClassifier finds the modalities; got {self.verbose_feature_names_out!r}."
            )

    def _check_columns_present(self, X):
        """A missing column is named with the columns that are present (ColumnTransformer names only the former)."""
        if not hasattr(X, "columns") or isinstance(X, np.ndarray):
            return  # an array: columns are positions
        wanted = []
        for _, _, columns in self.transformers:
            if isinstance(columns, str):
                wanted.append(columns)
            elif isinstance(columns, (list, tuple)) and all(isinstance(c, str) for c in columns):
                wanted.extend(columns)
        missing = [column for column in wanted if column not in X.columns]
        if missing:
            raise ValueError(
                f"MultimodalFusion: column(s) {missing} are not in the data. Columns present: "
                f"{list(X.columns)}. Rename the data's columns or change the fusion's column lists."
            )

    @_fit_context(prefer_skip_nested_validation=False)  # the modalities' transformers validate when fitted
    def fit_transform(self, X, y=None, **params):
        """Fit every modality's transformer and return the fused features as a DataFrame.

        Parameters
        ----------
        X : DataFrame
            The input table.
        y : array-like, default=None
            Passed to the transformers.
        **params : dict
            Metadata routed to the transformers.

        Returns
        -------
        DataFrame of shape (n_samples, n_features_out)
        """
        self._check_params()
        self._check_columns_present(X)
        self._names_out = None  # the names of a previous fit must not be used while fitting
        output = super().fit_transform(X, y, **params)
        self._names_out = self.get_feature_names_out()
        self.modalities_ = {
            name: _as_list(columns)
            for name, transformer, columns in self.transformers_
            if not (isinstance(transformer, str) and transformer == "drop") and len(_as_list(columns))
        }
        return self._as_frame(output, X)

    def _get_feature_name_out_for_transformer(self, name, trans, feature_names_in):
        """A transformer without ``get_feature_names_out`` gets ``x0, x1, ...`` (as a FunctionTransformer)."""
        if hasattr(trans, "get_feature_names_out") or hasattr(self, "_transformers_feature_names_out"):
            return super()._get_feature_name_out_for_transformer(name, trans, feature_names_in)
        block = self.output_indices_[name]
        return np.asarray([f"x{i}" for i in range(block.stop - block.start)], dtype=object)

    def _hstack(self, Xs, *, n_samples):
        """Join dense array blocks into a DataFrame block by block, so that float32 blocks stay float32.

        ``ColumnTransformer`` joins arrays with ``np.hstack``, which turns the
        encoders' float32 into float64 as soon as one block is float64; the
        other blocks get the dtype ``np.hstack`` would give them. With
        scikit-learn's pandas or polars output, or a sparse result, its own
        joining is kept.
        """
        if self.sparse_output_ or _get_container_adapter("transform", self) is not None:
            return super()._hstack(Xs, n_samples=n_samples)
        blocks = [X.toarray() if sp.issparse(X) else X for X in Xs]
        if not all(isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind in "biuf" for X in blocks):
            return super()._hstack(Xs, n_samples=n_samples)
        common = np.result_type(*blocks)  # what np.hstack gives, kept for every other block
        names = self._feature_names_out()
        frames, start = [], 0
        for block in blocks:
            block = block if block.dtype == np.float32 else block.astype(common, copy=False)
            frames.append(pd.DataFrame(block, columns=names[start : start + block.shape[1]], copy=False))
            start += block.shape[1]
        return pd.concat(frames, axis=1) if len(frames) > 1 else frames[0]

    def _feature_names_out(self):
        """``get_feature_names_out()``, computed once per fit: formatting 1,700 names costs milliseconds."""
        if self._names_out is None:  # while fitting
            return self.get_feature_names_out()
        return self._names_out

    def _call_func_on_transformers(self, X, y, func, column_as_labels, routed_params):
        """With ``n_jobs``, ``transform`` runs the transformers in threads, one torch thread each.

        The threads are kept between calls (joblib's threading backend starts a
        pool per call, which costs more than one row's numeric modalities).
        """
        n_threads = _modality_threads(self.n_jobs)
        if func is _fit_transform_one or n_threads == 1 or getattr(_IN_MODALITY_THREAD, "value", False):
            return super()._call_func_on_transformers(X, y, func, column_as_labels, routed_params)
        from sklearn import config_context, get_config

        from ._threads import submit_in_context, torch_threads

        config = get_config()  # scikit-learn's configuration belongs to the calling thread

        def transform_one(name, transformer, columns, weight):
            _IN_MODALITY_THREAD.value = True  # a fusion inside a fusion runs its modalities in turn
            with config_context(**config), torch_threads(1):
                part = _safe_indexing(X, columns, axis=1)
                return func(transformer=transformer, X=part, y=y, weight=weight, params=routed_params[name])

        jobs = self._iter(fitted=True, column_as_labels=column_as_labels, skip_drop=True, skip_empty_columns=True)
        try:
            # each modality in a copy of the caller's context (no server paths, the request's deadline)
            pool = _thread_pool(n_threads)
            return [future.result() for future in [submit_in_context(pool, transform_one, *job) for job in jobs]]
        except ValueError as error:  # as ColumnTransformer says it
            if "Expected 2D array, got 1D array instead" in str(error):
                raise ValueError(_ERR_MSG_1DCOLUMN) from error
            raise

    def fit(self, X, y=None, **params):
        """Fit every modality's transformer.

        Parameters
        ----------
        X : DataFrame
        y : array-like, default=None
        **params : dict

        Returns
        -------
        self : MultimodalFusion
        """
        self.fit_transform(X, y, **params)
        return self

    def transform(self, X, **params):
        """Transform ``X`` with every modality's transformer, as a DataFrame.

        Parameters
        ----------
        X : DataFrame
        **params : dict

        Returns
        -------
        DataFrame of shape (n_samples, n_features_out)
        """
        check_is_fitted(self, "modalities_")
        self._check_columns_present(X)
        return self._as_frame(super().transform(X, **params), X)

    def __sklearn_tags__(self):
        """What the fusion accepts is what its transformers accept; its output keeps no one dtype.

        ``string`` / ``categorical``: some modality takes text (an encoder, a
        vectorizer) or categories (a one-hot encoder);
        ``allow_nan``: every modality takes missing values (a row missing in
        every modality becomes NaN, then the class prior); ``preserves_dtype``:
        the dtypes that every modality keeps (the skmm encoders keep none: they
        give float32 whatever the input).
        """
        from sklearn.utils import get_tags

        tags = super().__sklearn_tags__()
        try:
            used = [trans for _, trans, _ in self.transformers if not isinstance(trans, str)]
            if not isinstance(self.remainder, str):
                used.append(self.remainder)
            passthrough = self.remainder == "passthrough" or any(
                isinstance(trans, str) and trans == "passthrough" for _, trans, _ in self.transformers
            )
            every = [get_tags(trans) for trans in used]
        except (TypeError, ValueError, AttributeError):
            return tags  # transformers not a list of (name, transformer, columns): fit says so
        tags.input_tags.string = any(t.input_tags.string for t in every)
        tags.input_tags.categorical = any(t.input_tags.categorical for t in every)
        tags.input_tags.allow_nan = all(t.input_tags.allow_nan for t in every)
        kept = [set(t.transformer_tags.preserves_dtype if t.transformer_tags else []) for t in every]
        if passthrough:
            kept.append({"float64", "float32"})
        common = set.intersection(*kept) if kept else set()
        tags.transformer_tags.preserves_dtype = [d for d in ("float64", "float32") if d in common]
        return tags

    def _as_frame(self, output, X):
        """The output as a DataFrame (pandas, or polars as ``set_output`` asks), indexed as ``X``."""
        if sp.issparse(output):
            output = output.toarray()
        if not isinstance(output, pd.DataFrame) and not hasattr(output, "columns"):
            output = pd.DataFrame(np.asarray(output), columns=self._feature_names_out())
        if isinstance(output, pd.DataFrame) and isinstance(X, pd.DataFrame):
            output.index = X.index
            output = self._empty_rows_absent(output, X)
        _LAST_OUTPUT.value = (output.shape[0], self._output_modalities())
        return output

    def _output_modalities(self):
        """The modality names of the output columns, in order, computed once per fit."""
        names = self._feature_names_out()
        cached = getattr(self, "_modalities_out", None)
        if cached is None or cached[0] is not names:
            cached = (names, tuple(dict.fromkeys(modality_of_columns(names))))
            self._modalities_out = cached
        return cached[1]

    def _empty_rows_absent(self, frame, X):
        """Rows whose every input value is missing: NaN in every modality, so nothing is made up.

        Imputers and one-hot encoders would turn such a row into ordinary-looking
        features; as NaN, :class:`~skmm.MultimodalClassifier` sees every modality
        absent and answers the class prior, with a warning.
        """
        from ._utils import all_missing_rows

        if not isinstance(X, pd.DataFrame):
            return frame
        columns = []
        for _, transformer, names in self.transformers_:
            if isinstance(transformer, str) and transformer == "drop":
                continue
            names = _as_list(names)
            if not all(isinstance(name, str) and name in X.columns for name in names):
                return frame  # columns given by position, mask or callable: left as they are
            columns.extend(names)
        if not columns:
            return frame
        empty = all_missing_rows(X[list(dict.fromkeys(columns))])
        if empty.any():
            exact = [name for name in frame.columns if not pd.api.types.is_float_dtype(frame[name])]
            frame = frame.astype({name: float for name in exact})  # float32 blocks stay float32
            frame.loc[empty, :] = np.nan
        return frame


#: True in the threads that run a fusion's modalities
_IN_MODALITY_THREAD = threading.local()
_POOLS, _POOLS_LOCK = {}, threading.Lock()


def _modality_threads(n_jobs):
    """Threads ``transform`` uses for ``n_jobs``: None is 1, -1 every available CPU."""
    from ._threads import resolve_n_threads

    return 1 if n_jobs is None else resolve_n_threads(n_jobs)


def _thread_pool(n_threads):
    """A pool of ``n_threads`` threads, started once per size and kept for the process."""
    from concurrent.futures import ThreadPoolExecutor

    with _POOLS_LOCK:
        if n_threads not in _POOLS:
            _POOLS[n_threads] = ThreadPoolExecutor(n_threads, thread_name_prefix="skmm-modality")
        return _POOLS[n_threads]


def _as_list(columns):
    if isinstance(columns, (str, int)):
        return [columns]
    if isinstance(columns, slice) or callable(columns):
        return [columns]
    return list(columns)
