"""What a fitted model is made of: its fusion step, input columns, their kinds, modalities, encoders.

Saving a model (its metadata), serving it (which columns arrive as files),
reporting on it and inspecting it all ask the same questions of a fitted
estimator; they ask here, so that one rule finds the fusion step:

* a fitted search (``GridSearchCV``...) stands for its ``best_estimator_``;
* a ``ColumnTransformer`` (:class:`~skmm.MultimodalFusion` included) is its
  own fusion step;
* a :class:`~sklearn.pipeline.Pipeline`'s fusion step is its first step, when
  that is a ``ColumnTransformer``: only the first step sees the raw columns.

Without a fusion step, the estimator's ``feature_names_in_`` are its input
columns, all of one modality (``"input"``).
"""

import numpy as np

__all__ = ["describe_inputs", "encoder_models", "fusion_parts", "fusion_step", "input_kinds", "modality_columns"]


def fusion_step(estimator):
    """The step of ``estimator`` that splits the raw input columns into modalities, or None.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmm import MultimodalFusion
    >>> from skmm._fitted import fusion_step
    >>> fusion = MultimodalFusion([("numbers", StandardScaler(), ["x"])])
    >>> fusion_step(make_pipeline(fusion, LogisticRegression())) is fusion
    True
    >>> fusion_step(make_pipeline(StandardScaler(), fusion, LogisticRegression())) is None
    True
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    while hasattr(estimator, "best_estimator_"):
        estimator = estimator.best_estimator_
    if isinstance(estimator, Pipeline) and estimator.steps:
        estimator = estimator.steps[0][1]
    return estimator if isinstance(estimator, ColumnTransformer) else None


def _fitted_fusion(estimator):
    fusion = fusion_step(estimator)
    return fusion if hasattr(fusion, "transformers_") else None


def _column_names(columns, names_in):
    """The names of the columns a ``ColumnTransformer`` entry selects, given the names it was fitted on."""
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, (int, np.integer)):
        return [str(names_in[columns])] if names_in is not None else []
    if isinstance(columns, slice) or (isinstance(columns, np.ndarray) and columns.dtype == bool):
        return [str(c) for c in np.asarray(names_in)[columns]] if names_in is not None else []
    out = []
    for column in list(columns):
        if isinstance(column, (int, np.integer)) and not isinstance(column, bool):
            if names_in is not None:
                out.append(str(names_in[column]))
        else:
            out.append(str(column))
    return out


def fusion_parts(fusion):
    """``[(position, modality, transformer, column names)]`` of a fitted fusion step.

    ``position`` is the entry's place in ``transformers_``; entries that are
    dropped or select no column are left out.
    """
    names_in = getattr(fusion, "feature_names_in_", None)
    entries = []
    for position, (name, transformer, columns) in enumerate(fusion.transformers_):
        if isinstance(transformer, str) and transformer == "drop":
            continue
        names = _column_names(columns, names_in)
        if names:
            entries.append((position, str(name), transformer, names))
    return entries


def modality_columns(estimator):
    """``{modality: [column, ...]}`` as the fitted fusion step reads the raw columns, or None without one.

    A :class:`~skmm.MultimodalFusion` gives its ``modalities_`` (the columns as
    it was given them); another ``ColumnTransformer`` the names of the columns
    each of its transformers selects.
    """
    from .fusion import MultimodalFusion

    fusion = _fitted_fusion(estimator)
    if fusion is None:
        return None
    if isinstance(fusion, MultimodalFusion):
        return {name: list(columns) for name, columns in fusion.modalities_.items()}
    return {name: names for _, name, _, names in fusion_parts(fusion)}


def input_kinds(estimator):
    """``{column: kind}`` for the raw columns the fitted fusion step reads; None where its transformer does not say.

    The kind comes from the first transformer reading the column (see
    :func:`skmm.infer.kind_of_transformer`). Empty without a fitted fusion step.
    """
    fusion = _fitted_fusion(estimator)
    return {} if fusion is None else _kinds(fusion_parts(fusion))


def _kinds(parts):
    """``{column: kind or None}`` of a fusion's parts, the first transformer reading a column deciding."""
    from .infer import kind_of_transformer

    kinds = {}
    for _, _, transformer, names in parts:
        kind = kind_of_transformer(transformer)
        for column in names:
            kinds.setdefault(column, kind)
    return kinds


def describe_inputs(estimator, kinds=None):
    """The input columns a fitted estimator uses, their kinds and its modalities.

    The fusion step (see the module's docstring) tells which transformer reads
    which columns; the transformer's type gives the column's kind (see
    :func:`skmm.infer.kind_of_transformer`), ``"other"`` when it does not say.
    ``kinds`` (e.g. from :func:`skmm.infer.column_kinds`) wins.

    Parameters
    ----------
    estimator : fitted estimator
    kinds : dict, optional
        ``{column: kind}`` taking precedence over what the transformers say.

    Returns
    -------
    description : dict
        ``{"input_columns": [...], "kinds": {...}, "modalities": {...}}``, every
        name a string.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import OneHotEncoder, StandardScaler
    >>> from skmm import MultimodalFusion
    >>> from skmm.persistence import describe_inputs
    >>> df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "colour": ["red", "blue"] * 2})
    >>> fusion = MultimodalFusion([("numbers", StandardScaler(), ["x"]), ("colour", OneHotEncoder(), ["colour"])])
    >>> describe_inputs(make_pipeline(fusion, LogisticRegression()).fit(df, [0, 1, 1, 0]))["kinds"]
    {'x': 'numeric', 'colour': 'categorical'}
    """
    kinds = dict(kinds or {})
    fusion = _fitted_fusion(estimator)
    if fusion is None:
        names_in = getattr(estimator, "feature_names_in_", None)
        columns = [str(c) for c in names_in] if names_in is not None else []
        return {
            "input_columns": columns,
            "kinds": {c: kinds.get(c, "other") for c in columns},
            "modalities": {"input": columns} if columns else {},
        }
    parts = fusion_parts(fusion)
    found = {column: kind or "other" for column, kind in _kinds(parts).items()}
    fusion_names = getattr(fusion, "feature_names_in_", None)
    order = [str(c) for c in fusion_names] if fusion_names is not None else sorted(found)
    columns = [c for c in order if c in found]
    return {
        "input_columns": columns,
        "kinds": {c: kinds.get(c, found[c]) for c in columns},
        "modalities": {name: names for _, name, _, names in parts},
    }


def encoder_models(estimator):
    """``{modality: "model@weights fingerprint"}`` of the fitted skmm encoders of the fusion step."""
    fusion = _fitted_fusion(estimator)
    return {
        str(name): transformer.model_identity_
        for name, transformer, _ in getattr(fusion, "transformers_", ())
        if isinstance(getattr(transformer, "model_identity_", None), str)
    }
