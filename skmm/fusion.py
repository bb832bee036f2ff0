"""MultimodalFusion: a ColumnTransformer whose output keeps track of each column's modality."""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import _fit_context
from sklearn.compose import ColumnTransformer
from sklearn.utils.validation import check_is_fitted

__all__ = ["MultimodalFusion", "modality_of_columns"]

SEPARATOR = "__"


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


class MultimodalFusion(ColumnTransformer):
    """Apply one transformer per modality and join the results into one DataFrame.

    A :class:`~sklearn.compose.ColumnTransformer` whose output is a pandas
    DataFrame with columns named ``"<modality>__<feature>"``, so that
    :class:`~skmm.MultimodalClassifier` knows which features belong to which
    modality. Any scikit-learn transformer can be a modality: the skmm
    encoders for images, texts and audio, a ``StandardScaler`` on numeric
    columns, a ``OneHotEncoder`` on categories, a ``TfidfVectorizer`` on text
    (sparse outputs are made dense).

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
        Transformers fitted in parallel.
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
        if not isinstance(X, pd.DataFrame):
            return
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
        output = super().fit_transform(X, y, **params)
        self.modalities_ = {
            name: _as_list(columns)
            for name, transformer, columns in self.transformers_
            if not (isinstance(transformer, str) and transformer == "drop") and len(_as_list(columns))
        }
        return self._as_frame(output, X)

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

    def _as_frame(self, output, X):
        if isinstance(output, pd.DataFrame):
            return output
        if sp.issparse(output):
            output = output.toarray()
        index = X.index if isinstance(X, pd.DataFrame) else None
        frame = pd.DataFrame(np.asarray(output), columns=self.get_feature_names_out(), index=index)
        return self._empty_rows_absent(frame, X)

    def _empty_rows_absent(self, frame, X):
        """Rows whose every input value is missing: NaN in every modality, so nothing is made up.

        Imputers and one-hot encoders would turn such a row into ordinary-looking
        features; as NaN, :class:`~skmm.MultimodalClassifier` sees every modality
        absent and answers the class prior, with a warning.
        """
        from ._utils import is_missing

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
        empty = X[list(dict.fromkeys(columns))].map(is_missing).all(axis=1).to_numpy()
        if empty.any():
            frame = frame.astype(float)
            frame.loc[empty, :] = np.nan
        return frame


def _as_list(columns):
    if isinstance(columns, (str, int)):
        return [columns]
    if isinstance(columns, slice) or callable(columns):
        return [columns]
    return list(columns)
