"""Which modality mattered: importance over a data set and attributions per row.

Three answers to three questions, all on a fitted estimator and the raw table:

- :func:`modality_importance` — how much does the *score* on a data set drop
  when a modality is made absent (skmm's own missing-modality path) or when
  its rows are shuffled across samples? A property of the model on that data.
- :func:`modality_shap_values` — for *one row*, how much did each modality add
  to the predicted probability, relative to the prediction with every
  modality absent? Shapley values (the ``shap`` library) over modalities.
- :meth:`skmm.MultimodalClassifier.modality_weights` — the network's own
  weights (attention, gates, softmax weights): what the fusion layer looked
  at, which is not the same as what changed the prediction.

A modality is "absent" when its input columns hold None (NaN for numbers):
the encoders turn that into a NaN block and the classifier masks it out.
"""

import warnings
from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.metrics import check_scoring
from sklearn.utils import Bunch, check_random_state

from ._fitted import modality_columns as fitted_modality_columns
from .exceptions import InputWarning
from .fusion import modality_of_columns

__all__ = ["modality_importance", "modality_shap_values", "modality_contributions", "modality_columns", "make_absent"]


def modality_columns(estimator, X):
    """Map each modality of ``estimator`` to the columns of ``X`` it reads.

    Parameters
    ----------
    estimator : Pipeline, MultimodalFusion or MultimodalClassifier
        A fitted estimator. Its fusion step (a :class:`~skmm.MultimodalFusion`
        or any ``ColumnTransformer``, the first step of a pipeline, the best
        estimator of a search) gives the map; a classifier fitted on fused
        features gives it through the ``"<modality>__"`` column prefixes.
    X : DataFrame
        The data the estimator is applied to.

    Returns
    -------
    dict
        Modality name → list of column names of ``X``.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmm.inspection import modality_columns
    >>> from skmm import MultimodalClassifier
    >>> X = pd.DataFrame({"image__a": [0.0, 1.0], "text__b": [1.0, 0.0], "text__c": [0.0, 0.0]})
    >>> clf = MultimodalClassifier(max_epochs=1).fit(X, ["cat", "dog"])
    >>> modality_columns(clf, X)
    {'image': ['image__a'], 'text': ['text__b', 'text__c']}
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"X must be a pandas DataFrame (the raw table with its column names), got {type(X).__name__}. "
            "Wrap it with pd.DataFrame(X, columns=...)."
        )
    mapping = fitted_modality_columns(estimator)
    if mapping is None:
        mapping = {}
        for column, modality in zip(X.columns, modality_of_columns(X.columns)):
            mapping.setdefault(modality, []).append(column)
    for name, columns in mapping.items():
        unknown = [column for column in columns if not isinstance(column, (str, int)) or column not in X.columns]
        if unknown:
            raise ValueError(
                f"modality {name!r} reads column(s) {unknown} that are not columns of X "
                f"({list(X.columns)}). Name the modality's columns explicitly in MultimodalFusion "
                "(a list of names, not a selector) and pass the same table the model was fitted on."
            )
    return mapping


def make_absent(X, columns):
    """A copy of ``X`` where ``columns`` hold missing values (None, or NaN in numeric columns).

    Parameters
    ----------
    X : DataFrame
    columns : list of str

    Returns
    -------
    DataFrame

    Examples
    --------
    >>> import pandas as pd
    >>> from skmm.inspection import make_absent
    >>> absent = make_absent(pd.DataFrame({"text": ["hi"], "price": [2.0]}), ["text", "price"])
    >>> absent["text"].tolist(), absent["price"].isna().tolist()
    ([None], [True])
    """
    X = X.copy()
    _set_absent(X, columns, np.ones(len(X), dtype=bool))
    return X


def _set_absent(X, columns, rows):
    """Set ``columns`` of the rows where the boolean array ``rows`` is True to missing, in place."""
    for column in columns:
        if pd.api.types.is_numeric_dtype(X[column]):
            X[column] = X[column].astype(float).where(~rows, np.nan)
        else:
            X[column] = X[column].astype(object).where(~rows, None)


def _permute(X, columns, permutation):
    X = X.copy()
    for column in columns:
        X[column] = X[column].to_numpy()[permutation]
    return X


def modality_importance(estimator, X, y, *, scoring=None, n_repeats=5, random_state=None):
    """Score drop of a fitted estimator when each modality is made absent or permuted.

    Like :func:`sklearn.inspection.permutation_importance`, but the unit is a
    modality (all its input columns together) and there are two ways of taking
    a modality away:

    - *absence*: its input columns are set to None (NaN for numbers), so skmm
      masks it. This asks "what is the model worth without this modality?".
      It is deterministic: one evaluation per modality.
    - *permutation*: its rows are shuffled across samples (``n_repeats``
      times), so the modality is present but unrelated to the label. This
      asks "how much does the model rely on this modality's information?".

    A value near zero means the model does not need the modality on this data;
    a negative value means the score improved without it. The columns are the
    raw input columns, so two modalities that read the same column (say a
    ``TextEncoder`` and a ``TfidfVectorizer`` on one review) are taken away
    together.

    Parameters
    ----------
    estimator : estimator
        A fitted pipeline (:class:`~skmm.MultimodalFusion` then a classifier)
        or a classifier fitted on fused ``"<modality>__<feature>"`` columns.
    X : DataFrame of shape (n_samples, n_columns)
        The raw table (file paths, texts, numbers), as given to ``fit``.
    y : array-like of shape (n_samples,)
        True labels.
    scoring : str, callable or None, default=None
        A scikit-learn scorer; None uses the estimator's ``score`` (accuracy).
    n_repeats : int, default=5
        Permutations per modality.
    random_state : int, RandomState or None, default=None
        Seed of the permutations.

    Returns
    -------
    result : Bunch
        modalities : list of str
            Modality names.
        baseline_score : float
            Score on the unaltered ``X``.
        absence_importances : ndarray of shape (n_modalities,)
            Baseline score minus the score with the modality absent.
        permutation_importances : ndarray of shape (n_modalities, n_repeats)
            Baseline score minus the score with the modality permuted.
        permutation_importances_mean, permutation_importances_std : ndarray of shape (n_modalities,)
            Their mean and standard deviation over the repeats.

    See Also
    --------
    sklearn.inspection.permutation_importance : the same idea, one column at a time.
    modality_shap_values : what each modality added to one row's prediction.
    skmm.plotting.ModalityImportanceDisplay : draws this result.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from skmm import MultimodalClassifier
    >>> from skmm.inspection import modality_importance
    >>> rng = np.random.RandomState(0)
    >>> y = np.repeat(["cat", "dog"], 60)
    >>> X = pd.DataFrame({"image__a": rng.randn(120) + 3 * (y == "dog"), "text__b": rng.randn(120)})
    >>> clf = MultimodalClassifier(max_epochs=30, random_state=0).fit(X, y)
    >>> result = modality_importance(clf, X, y, n_repeats=3, random_state=0)
    >>> result.modalities
    ['image', 'text']
    >>> bool(result.permutation_importances_mean[0] > 0.3 > abs(result.permutation_importances_mean[1]))
    True
    """
    if not (isinstance(n_repeats, Integral) and n_repeats >= 1):
        raise ValueError(f"n_repeats must be an int >= 1, got {n_repeats!r}.")
    mapping = modality_columns(estimator, X)
    y = np.asarray(y)
    scorer = check_scoring(estimator, scoring=scoring)
    rng = check_random_state(random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)  # a row whose only modality is taken away
        baseline = float(scorer(estimator, X, y))
        absence = []
        permutation = []
        for columns in mapping.values():
            absence.append(baseline - scorer(estimator, make_absent(X, columns), y))
            permutation.append([
                baseline - scorer(estimator, _permute(X, columns, rng.permutation(len(X))), y)
                for _ in range(n_repeats)
            ])
    permutation = np.asarray(permutation, dtype=float)
    return Bunch(
        modalities=list(mapping),
        baseline_score=baseline,
        absence_importances=np.asarray(absence, dtype=float),
        permutation_importances=permutation,
        permutation_importances_mean=permutation.mean(axis=1),
        permutation_importances_std=permutation.std(axis=1),
    )


def modality_shap_values(estimator, X, *, per_column=()):
    """Shapley values of each modality for each row's predicted probabilities.

    The players are the modalities; a coalition is predicted with the other
    modalities *absent* (their input columns set to None, which skmm masks),
    never zeroed or replaced by other rows. The values are exact (every
    coalition is evaluated, ``2 ** n_modalities`` per row) and, for every row
    and class, they sum to the predicted probability minus the probability
    with every modality absent (the class prior the classifier learnt).

    Needs the ``shap`` library: ``pip install "skmm[explain]"``.

    Parameters
    ----------
    estimator : estimator
        A fitted pipeline or classifier with ``predict_proba``.
    X : DataFrame of shape (n_samples, n_columns)
        The raw rows to explain.
    per_column : list of str, default=()
        Modalities (typically tabular ones) whose input columns are
        attributed one by one, as players named ``"<modality>:<column>"``.
        A column taken out while the rest of its modality stays is missing
        (NaN) inside a present block, which the classifier fills with the
        column's training mean.

    Returns
    -------
    result : Bunch
        shap_values : ndarray of shape (n_samples, n_modalities, n_classes)
            Contribution of each modality to each class probability.
        base_values : ndarray of shape (n_classes,)
            Predicted probabilities with every modality absent.
        predictions : ndarray of shape (n_samples, n_classes)
            Predicted probabilities of the rows.
        modalities : list of str
            The players: modality names (and ``"<modality>:<column>"`` for
            ``per_column``), in the order of ``shap_values``' second axis.
        classes : ndarray of shape (n_classes,)
            Class labels, in the order of the last axis.
        index : Index
            The index of ``X``.

    See Also
    --------
    modality_importance : score drops over a whole data set.
    skmm.plotting.ModalityContributionDisplay : draws one row's values.
    """
    shap = _import_shap()
    mapping = _players(modality_columns(estimator, X), per_column)
    modalities = list(mapping)
    fast = None if per_column else _shapley_from_one_encoding(estimator, X, modalities)
    if fast is not None:
        values, base_values, predictions = fast
        return Bunch(shap_values=values, base_values=base_values, predictions=predictions,
                     modalities=modalities, classes=np.asarray(estimator.classes_), index=X.index)
    raw = X.reset_index(drop=True)

    def predict(coalitions):
        # each coalition row holds the explained row's position where a modality is present, -1 where absent
        coalitions = np.asarray(coalitions, dtype=int)
        positions = np.where(coalitions.max(axis=1) >= 0, coalitions.max(axis=1), 0)
        batch = raw.iloc[positions].reset_index(drop=True)
        for column_index, name in enumerate(modalities):
            _set_absent(batch, mapping[name], coalitions[:, column_index] < 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InputWarning)  # the all-absent coalition
            return estimator.predict_proba(batch)

    def absent_where_masked(mask, row):
        return np.where(mask, row, -1)[None, :]

    absent_where_masked.shape = (1, len(modalities))
    positions = np.repeat(np.arange(len(raw))[:, None], len(modalities), axis=1)
    explanation = shap.explainers.Exact(predict, absent_where_masked)(positions, silent=True)
    values = np.asarray(explanation.values, dtype=float)
    if values.ndim == 2:  # shap drops the class axis of a single output
        values = values[:, :, None]
    return Bunch(
        shap_values=values,
        base_values=np.asarray(explanation.base_values, dtype=float).reshape(len(raw), -1)[0],
        predictions=predict(positions),
        modalities=modalities,
        classes=np.asarray(estimator.classes_),
        index=X.index,
    )


def modality_contributions(estimator, X, *, per_column=()):
    """What each modality added to the probability of each row's predicted class.

    The SHAP values of :func:`modality_shap_values` for the predicted class,
    as a table: for every row, the values add up to the predicted class's
    probability minus its probability with every modality absent. Needs
    ``pip install "skmm[explain]"``.

    Parameters
    ----------
    estimator : estimator
        A fitted pipeline or classifier with ``predict_proba``.
    X : DataFrame of shape (n_samples, n_columns)
        The raw rows to explain.
    per_column : list of str, default=()
        As for :func:`modality_shap_values`.

    Returns
    -------
    DataFrame of shape (n_samples, n_modalities)
        Indexed like ``X``, one column per modality.

    See Also
    --------
    skmm.MultimodalClassifier.modality_weights : the fusion layer's own weights.
    """
    result = modality_shap_values(estimator, X, per_column=per_column)
    predicted = result.predictions.argmax(axis=1)
    values = result.shap_values[np.arange(len(predicted)), :, predicted]
    return pd.DataFrame(values, columns=result.modalities, index=result.index)


def _shapley_from_one_encoding(estimator, X, modalities):
    """Exact Shapley values of whole modalities, each row encoded once: ``(values, base, predictions)``.

    For a pipeline whose steps before the last give ``"<modality>__<feature>"``
    columns (a :class:`MultimodalFusion`), a modality absent from a coalition is
    its block of fused features set to NaN, which is what its encoder gives for a
    missing input: every one of the ``2 ** n_modalities`` coalitions of every row
    is one row of a single ``predict_proba`` of the last step, and nothing is
    encoded again. None when the pipeline does not have that shape (the caller
    then makes each modality absent in the raw rows).
    """
    from math import factorial

    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline) or len(estimator.steps) < 2 or len(modalities) > 12:
        return None
    fused = estimator[:-1].transform(X)
    if not isinstance(fused, pd.DataFrame):
        return None
    blocks = [np.array([str(column).split("__", 1)[0] == name for column in fused.columns]) for name in modalities]
    if not all(block.any() for block in blocks) or not np.logical_or.reduce(blocks).all():
        return None
    n_rows, n_players = len(fused), len(modalities)
    masks = (np.arange(2**n_players)[:, None] >> np.arange(n_players)[None, :]) & 1  # (coalitions, players)
    values = np.repeat(fused.to_numpy(dtype=np.float64)[:, None, :], len(masks), axis=1)
    for player, block in enumerate(blocks):
        absent = masks[:, player] == 0
        values[:, absent[:, None] & block[None, :]] = np.nan
    batch = pd.DataFrame(values.reshape(n_rows * len(masks), -1), columns=fused.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)  # the coalition with every modality absent
        proba = estimator.steps[-1][1].predict_proba(batch).reshape(n_rows, len(masks), -1)
    sizes = masks.sum(axis=1)
    shapley = np.zeros((n_rows, n_players, proba.shape[2]))
    for player in range(n_players):
        without = np.flatnonzero(masks[:, player] == 0)
        weight = np.array([factorial(k) * factorial(n_players - k - 1) for k in sizes[without]]) / factorial(n_players)
        gain = proba[:, without + (1 << player)] - proba[:, without]  # (rows, coalitions, classes)
        shapley[:, player] = np.einsum("c,rck->rk", weight, gain)
    return shapley, proba[0, 0], proba[:, -1]


def _players(mapping, per_column):
    unknown = sorted(set(per_column) - set(mapping))
    if unknown:
        raise ValueError(f"per_column names unknown modalities {unknown}; the modalities are {list(mapping)}.")
    players = {}
    for name, columns in mapping.items():
        if name in per_column:
            players.update({f"{name}:{column}": [column] for column in columns})
        else:
            players[name] = columns
    return players


def _import_shap():
    try:
        import shap
    except ImportError as error:
        raise ImportError(
            'modality_shap_values needs the shap library: pip install "skmm[explain]"'
        ) from error
    return shap
