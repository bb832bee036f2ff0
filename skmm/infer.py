"""Guess the kind of every column of a DataFrame and propose a fusion for it.

:func:`column_kinds` says what each column holds, as a kind from the registry
:mod:`skmm.kinds` (``"image"``, ``"audio"``, ``"text"``, ``"numeric"``,
``"categorical"``, and any kind registered since) or ``"drop"``. It looks at
the dtype and at a sample of non-missing values: file extensions and magic
bytes for the kinds that read files, the kinds' in-memory value types for
Python objects, whitespace and cardinality for text against categories.
:func:`fusion_from_kinds` turns those kinds into an unfitted
:class:`~skmm.MultimodalFusion` with each kind's default transformer, and
:func:`infer_modalities` does both.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ._utils import is_missing
from .exceptions import InferenceError
from .kinds import COLUMN_KINDS, SNIFF_SIZE, kind_names

__all__ = [
    "InferenceError",
    "column_kinds",
    "fusion_from_kinds",
    "infer_modalities",
    "kind_of_transformer",
    "kinds_reached",
]

#: at most this many distinct values make a categorical column (unless they read like sentences)
MAX_CATEGORIES = 20
#: sampled non-missing values inspected per column
SAMPLE_SIZE = 50


def _file_kinds():
    """The registered kinds whose columns hold files, in inference order."""
    return [kind for kind in COLUMN_KINDS.values() if kind.reads_files]


# --------------------------------------------------------------------------- magic bytes


def sniff_bytes(data):
    """Return the kind of a file from its first bytes, or None.

    The registered kinds' ``sniff`` functions are tried in registry order.

    Parameters
    ----------
    data : bytes
        The start of the file (:data:`skmm.kinds.SNIFF_SIZE` bytes are enough).

    Returns
    -------
    kind : str or None
        ``"image"``, ``"audio"`` or another registered kind that reads files.

    Examples
    --------
    >>> from skmm.infer import sniff_bytes
    >>> sniff_bytes(b"\\x89PNG\\r\\n\\x1a\\n....")
    'image'
    >>> sniff_bytes(b"RIFF\\x24\\x00\\x00\\x00WAVEfmt ")
    'audio'
    >>> sniff_bytes(b"hello") is None
    True
    """
    head = bytes(data[:SNIFF_SIZE])
    for kind in COLUMN_KINDS.values():
        if kind.sniff is not None and kind.sniff(head):
            return kind.name
    return None


def _sniff_file(path):
    try:
        with open(path, "rb") as handle:
            return sniff_bytes(handle.read(SNIFF_SIZE))
    except OSError:
        return None


def _same_kind(kinds):
    """The kind shared by every item of ``kinds`` (not None), else None."""
    return kinds[0] if kinds and kinds[0] is not None and kinds.count(kinds[0]) == len(kinds) else None


# --------------------------------------------------------------------------- one column


def _sample(values, size):
    """Evenly spread, deterministic sample of at most ``size`` values."""
    if len(values) <= size:
        return values
    positions = np.linspace(0, len(values) - 1, size).round().astype(int)
    return [values[i] for i in positions]


def _fail(column, found, way_out=None):
    way_out = way_out or (
        f"pass overrides={{{column!r}: kind}} with kind one of {list(kind_names())} or a "
        "transformer"
    )
    raise InferenceError(f"cannot tell what column {column!r} holds: {found}; {way_out}.")


def _kind_of_strings(column, values, n_rows, base_dir, n_unique):
    """The kind of a column of strings from a sample of its ``values``; ``n_unique`` counts the
    distinct values of the whole column (a sample of 50 cannot tell an identifier)."""
    suffixes = [
        Path(v.strip()).suffix.lower() if len(v) < 4096 and "\n" not in v else "" for v in values
    ]
    counts = {kind.name: sum(s in kind.extensions for s in suffixes) for kind in _file_kinds()}
    for name, count in counts.items():
        if count == len(values):
            return name
    if any(counts.values()):
        known = set().union(*(kind.extensions for kind in _file_kinds()))
        odd = [v for v, s in zip(values, suffixes) if s not in known]
        others = f", the others do not (e.g. {odd[0][:60]!r})" if odd else ""
        found = " and ".join(
            f"{count} {'' if number else 'look '}like {name} paths"
            for number, (name, count) in enumerate((n, c) for n, c in counts.items() if c)
        )
        _fail(column, f"of {len(values)} sampled values, {found}{others}")
    # existing files without a telling extension: look at their magic bytes
    if all("\n" not in v and len(v) < 4096 for v in values):
        sniffed = []
        for value in values:
            path = Path(value.strip()).expanduser()
            if not path.is_absolute() and base_dir is not None:
                path = Path(base_dir) / path
            sniffed.append(_sniff_file(path) if path.is_file() else None)
        kind = _same_kind(sniffed)
        if kind is not None:
            return kind

    distinct = pd.unique(pd.Series(values, dtype=object))
    words = np.mean([len(str(v).split()) for v in distinct])
    unique_ratio = n_unique / max(n_rows, 1)
    sentences = words >= 5 or (words >= 3 and unique_ratio > 0.5)
    if words < 2 and n_unique == n_rows >= 10:
        _identifier(column, n_unique, n_rows)
    if n_unique <= MAX_CATEGORIES and not sentences:
        return "categorical"
    if words >= 2:
        return "text"
    if unique_ratio <= 0.5:
        return "categorical"
    _identifier(column, n_unique, n_rows)


def _identifier(column, n_unique, n_rows):
    _fail(
        column,
        f"{n_unique} distinct single-word values in {n_rows} rows, which looks like an "
        "identifier rather than text or categories",
        f"drop it with overrides={{{column!r}: 'drop'}}, or force a kind with "
        f"overrides={{{column!r}: 'categorical'}} or 'text'",
    )


def _kind_of_column(column, series, base_dir):
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        if series.notna().sum() == 0:
            _fail(column, "every value is missing", f"drop it with overrides={{{column!r}: 'drop'}}")
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        _fail(
            column,
            f"dates ({dtype}) have no default transformer",
            f"derive numeric columns from it (e.g. df[{column!r}].dt.dayofyear) and drop it "
            f"with overrides={{{column!r}: 'drop'}}",
        )
    values = [v for v in series.tolist() if not is_missing(v)]
    if not values:
        _fail(column, "every value is missing", f"drop it with overrides={{{column!r}: 'drop'}}")
    sample = _sample(values, SAMPLE_SIZE)
    if all(isinstance(v, str) for v in sample):
        n_unique = len(set(values)) if all(isinstance(v, str) for v in values) else len(sample)
        return _kind_of_strings(column, sample, len(series), base_dir, n_unique)
    values = sample
    if all(isinstance(v, (bytes, bytearray, memoryview)) for v in values):
        sniffed = [sniff_bytes(v) for v in values]
        kind = _same_kind(sniffed)
        if kind is not None:
            return kind
        found = " and ".join(
            f"{sniffed.count(kind.name)} {'' if number else 'start '}like {kind.name} files"
            for number, kind in enumerate(k for k in COLUMN_KINDS.values() if k.sniff)
        )
        _fail(
            column,
            f"it holds bytes, but of {len(values)} sampled values, {found} (all must start "
            "like files of one kind)",
        )
    for kind in COLUMN_KINDS.values():
        if kind.accepts_value is not None and all(kind.accepts_value(v) for v in values):
            return kind.name
    names = sorted({type(v).__name__ for v in values})
    _fail(column, f"its values have mixed or unsupported types {names}")


# --------------------------------------------------------------------------- transformers


def kind_of_transformer(transformer):
    """The kind of column a transformer is made for, or None when it does not say.

    skmm encoders declare their kind in the class attribute ``_kind``
    (``ImageEncoder`` → ``"image"``, audio encoders → ``"audio"``,
    ``TextEncoder`` → ``"text"``), and so may any transformer made for a
    registered kind; other transformers are claimed by a kind's
    ``claims_transformer`` (scikit-learn's text vectorizers are ``"text"``,
    ``OneHotEncoder``/``OrdinalEncoder`` ``"categorical"``, scalers
    ``"numeric"``: see :mod:`skmm.kinds`). A column reaching an encoder of a
    kind that takes uploaded files (``"image"``, ``"audio"``, ``"video"``)
    anywhere inside the transformer (a ``FeatureUnion`` of encoders, a
    ``Pipeline`` step, a nested parameter: see :func:`kinds_reached`) is of
    that kind. Otherwise a :class:`~sklearn.pipeline.Pipeline` is judged by
    its first step; ``"drop"`` is ``"drop"``.

    Examples
    --------
    >>> from sklearn.preprocessing import OneHotEncoder
    >>> from skmm import ImageEncoder
    >>> from skmm.infer import kind_of_transformer
    >>> kind_of_transformer(ImageEncoder()), kind_of_transformer(OneHotEncoder())
    ('image', 'categorical')
    """
    from sklearn.pipeline import Pipeline

    if isinstance(transformer, str):
        return "drop" if transformer == "drop" else None
    file_kinds = [kind for kind in kinds_reached(transformer) if COLUMN_KINDS[kind].takes_uploads]
    if file_kinds:  # whatever wraps it, a column some encoder reads as files holds files
        return file_kinds[0]
    if isinstance(transformer, Pipeline) and transformer.steps:
        return kind_of_transformer(transformer.steps[0][1])
    declared = getattr(type(transformer), "_kind", None)
    if isinstance(declared, str):
        return declared
    for kind in COLUMN_KINDS.values():
        if kind.claims_transformer is not None and kind.claims_transformer(transformer):
            return kind.name
    return None


def _parts(estimator):
    """The estimators directly inside ``estimator``: its parameters and fitted sub-estimators."""
    parts = []
    if hasattr(estimator, "get_params"):
        try:
            parts.extend(estimator.get_params(deep=False).values())
        except Exception:  # noqa: BLE001 - an odd estimator is walked by its attributes below
            pass
    for name in ("steps", "transformer_list", "transformers", "transformers_", "estimators",
                 "estimators_", "named_steps"):
        parts.append(getattr(estimator, name, None))
    return parts


def kinds_reached(transformer):
    """Every registered kind declared by an estimator that ``transformer`` contains or is.

    Walks whole estimator trees: :class:`~sklearn.pipeline.Pipeline` steps,
    :class:`~sklearn.pipeline.FeatureUnion` and ``ColumnTransformer`` members
    (fitted or not), and estimators held in parameters, however deep. An
    estimator declares a kind with the class attribute ``_kind``.

    Parameters
    ----------
    transformer : estimator, str or None

    Returns
    -------
    kinds : list of str
        The registered kinds found, each once, in the order met.

    Examples
    --------
    >>> from sklearn.pipeline import FeatureUnion
    >>> from skmm import ImageEncoder
    >>> from skmm.infer import kinds_reached
    >>> kinds_reached(FeatureUnion([("a", ImageEncoder()), ("b", ImageEncoder(image_size=64))]))
    ['image']
    """
    found = []
    for item in estimators_inside(transformer):
        declared = getattr(type(item), "_kind", None)
        if isinstance(declared, str) and declared in COLUMN_KINDS and declared not in found:
            found.append(declared)
    return found


def estimators_inside(transformer):
    """``transformer`` and every estimator inside it, fitted copies included, each once."""
    seen, todo = set(), [transformer]
    while todo:
        item = todo.pop()
        if item is None or isinstance(item, (str, bytes, int, float, bool)) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            todo.extend(reversed(list(item.values())))
            continue
        if isinstance(item, (list, tuple)):
            todo.extend(reversed(item))
            continue
        if isinstance(item, type):
            continue
        if hasattr(item, "get_params") or hasattr(item, "steps"):
            yield item
            todo.extend(reversed(_parts(item)))


def default_transformer(kind):
    """A fresh default transformer for ``kind``, from the kind's registry entry (not ``"drop"``).

    Examples
    --------
    >>> from skmm.infer import default_transformer
    >>> default_transformer("categorical")
    OneHotEncoder(handle_unknown='ignore', sparse_output=False)
    """
    if kind not in COLUMN_KINDS:
        raise ValueError(
            f"no default transformer for kind {kind!r}; expected one of {list(COLUMN_KINDS)}."
        )
    return COLUMN_KINDS[kind].default_transformer()


# --------------------------------------------------------------------------- public API


def _check_frame(df, target, overrides):
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"df must be a pandas DataFrame with one column per input, got {type(df).__name__}; "
            "wrap arrays with pd.DataFrame(X, columns=[...])."
        )
    if not df.columns.is_unique:
        duplicated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise InferenceError(f"df has duplicated column names {duplicated}; rename them.")
    columns = list(df.columns)
    if target is not None and target not in columns:
        raise InferenceError(
            f"target={target!r} is not a column of df; expected one of {columns}."
        )
    overrides = dict(overrides or {})
    for column, value in overrides.items():
        if column not in columns:
            raise InferenceError(
                f"overrides names column {column!r}, which is not in df; expected one of {columns}."
            )
        if column == target:
            raise InferenceError(
                f"overrides names the target column {target!r}; the target is never an input."
            )
        if isinstance(value, str):
            if value not in kind_names():
                raise InferenceError(
                    f"overrides[{column!r}]={value!r} is not a kind; expected one of "
                    f"{list(kind_names())} or a transformer."
                )
        elif not (hasattr(value, "fit") and hasattr(value, "transform")):
            raise InferenceError(
                f"overrides[{column!r}] must be a kind name ({list(kind_names())}) or a "
                f"transformer with fit and transform, got {type(value).__name__}."
            )
    return overrides


def column_kinds(df, target=None, *, overrides=None, base_dir=None):
    """Say what kind of values each input column of ``df`` holds.

    Parameters
    ----------
    df : pandas DataFrame
        One column per input, one row per sample.
    target : str, optional
        The target column, left out of the result.
    overrides : dict, optional
        ``{column: kind or transformer}``; a kind name wins over the guess, a
        transformer gives the kind it is made for (see
        :func:`kind_of_transformer`), or the guessed kind when it does not say.
    base_dir : path, optional
        Folder that relative file paths are resolved against when their magic
        bytes are read (used for paths without a telling extension).

    Returns
    -------
    kinds : dict
        ``{column: kind}`` in column order: a registered kind (see
        :mod:`skmm.kinds`; built in: ``"image"``, ``"audio"``, ``"text"``,
        ``"numeric"``, ``"categorical"``), ``"drop"``, or ``"other"`` for a
        column given a transformer of no known kind that inference cannot
        classify.

    Raises
    ------
    InferenceError
        When a column cannot be classified; the message names the column and
        how to override it.

    See Also
    --------
    fusion_from_kinds : The fusion built from these kinds.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmm.infer import column_kinds
    >>> df = pd.DataFrame({
    ...     "photo": ["a.png", "b.jpg", None],
    ...     "review": ["a lovely little cat", "what a noisy dog", "not my favourite"],
    ...     "colour": ["red", "blue", "red"],
    ...     "price": [1.0, 2.5, None],
    ...     "label": ["cat", "dog", "cat"],
    ... })
    >>> column_kinds(df, target="label")
    {'photo': 'image', 'review': 'text', 'colour': 'categorical', 'price': 'numeric'}
    """
    overrides = _check_frame(df, target, overrides)
    return _column_kinds(df, target, overrides, base_dir)


def _column_kinds(df, target, overrides, base_dir):
    kinds = {}
    for column in df.columns:
        if column == target:
            continue
        override = overrides.get(column)
        if isinstance(override, str):
            kinds[column] = override
            continue
        if override is not None:
            told = kind_of_transformer(override)
            if told is None:
                try:
                    told = _kind_of_column(column, df[column], base_dir)
                except InferenceError:
                    told = "other"
            kinds[column] = told
            continue
        kinds[column] = _kind_of_column(column, df[column], base_dir)
    return kinds


def _modality_name(column, taken):
    name = str(column).replace("__", "_") or "column"
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}_{number}", number + 1
    taken.add(candidate)
    return candidate


def fusion_from_kinds(kinds, *, overrides=None):
    """Build an unfitted :class:`~skmm.MultimodalFusion` from column kinds.

    Each column becomes part of a fusion modality according to its kind's
    registry entry: a *grouped* kind (``"numeric"``, ``"categorical"``) puts
    all its columns into one modality named after the kind, any other kind
    (``"image"``, ``"audio"``, ``"text"``) gives each column its own modality
    named after the column. Every modality gets the kind's default
    transformer; ``"drop"`` columns are left out.

    Parameters
    ----------
    kinds : dict
        ``{column: kind}``, as returned by :func:`column_kinds`.
    overrides : dict, optional
        ``{column: transformer}`` used as is for that column, as its own
        modality named after the column (kind names in ``overrides`` are
        ignored here: they are already in ``kinds``).

    Returns
    -------
    fusion : MultimodalFusion
        Unfitted; ``fusion.transformers`` lists ``(modality, transformer, columns)``.

    Raises
    ------
    InferenceError
        When a kind is not registered, or no input column is left.

    Examples
    --------
    >>> from skmm.infer import fusion_from_kinds
    >>> fusion = fusion_from_kinds({"price": "numeric", "colour": "categorical",
    ...                             "age": "numeric", "id": "drop"})
    >>> [(name, columns) for name, _, columns in fusion.transformers]
    [('numeric', ['price', 'age']), ('categorical', ['colour'])]
    """
    transformers_of = {
        column: value for column, value in dict(overrides or {}).items() if not isinstance(value, str)
    }
    unknown = sorted(str(c) for c in transformers_of if c not in kinds)
    if unknown:
        raise InferenceError(
            f"overrides names column(s) {unknown} that have no kind; expected columns of "
            f"kinds: {list(kinds)}."
        )
    for column, kind in kinds.items():
        if kind not in COLUMN_KINDS and kind != "drop" and column not in transformers_of:
            raise InferenceError(
                f"column {column!r} has kind {kind!r}, which is not registered; expected one of "
                f"{list(kind_names())}, or pass a transformer for it in overrides."
            )
    taken = {name for name, kind in COLUMN_KINDS.items() if kind.grouped}
    transformers, grouped = [], {}
    for column, kind in kinds.items():
        if kind == "drop":
            continue
        entry = COLUMN_KINDS.get(kind)
        if column in transformers_of:
            one_column = entry is not None and not entry.grouped  # 1-D, as the kind's encoder takes it
            columns = column if one_column else [column]
            transformers.append((_modality_name(column, taken), transformers_of[column], columns))
        elif entry.grouped:
            grouped.setdefault(kind, []).append(column)
        else:
            transformers.append((_modality_name(column, taken), entry.default_transformer(), column))
    for kind in COLUMN_KINDS:  # grouped modalities last, in registry order
        if kind in grouped:
            transformers.append((kind, COLUMN_KINDS[kind].default_transformer(), grouped[kind]))
    if not transformers:
        raise InferenceError(
            f"no input column left (kinds {kinds}: the target is never an input and 'drop' "
            "columns are left out); keep at least one column."
        )
    from .fusion import MultimodalFusion

    return MultimodalFusion(transformers, remainder="drop")


def infer_modalities(df, target=None, *, overrides=None, base_dir=None):
    """Propose an unfitted :class:`~skmm.MultimodalFusion` for the columns of ``df``.

    :func:`column_kinds` then :func:`fusion_from_kinds`: every image, audio
    and text column becomes its own modality named after the column, with
    :class:`~skmm.ImageEncoder`, :class:`~skmm.AudioMFCC` or
    :class:`~skmm.TextEncoder`. Numeric columns are grouped into one
    ``"numeric"`` modality (median imputation then standard scaling), and
    categorical ones (few distinct strings, booleans, pandas categories) into
    one ``"categorical"`` modality (one-hot, unknown categories ignored).
    Kinds added with :func:`skmm.kinds.register_kind` are recognised too.

    Parameters
    ----------
    df : pandas DataFrame
        The training data (the target column may be in it).
    target : str, optional
        The target column; it is never an input.
    overrides : dict, optional
        ``{column: kind or transformer}``. A kind (``"image"``, ``"audio"``,
        ``"text"``, ``"numeric"``, ``"categorical"``, another registered kind,
        or ``"drop"``) replaces the guess; a transformer is used as is for
        that column, as its own modality named after the column.
    base_dir : path, optional
        Folder that relative file paths are resolved against when sniffing
        magic bytes; see :func:`column_kinds`.

    Returns
    -------
    fusion : MultimodalFusion
        Unfitted; ``fusion.transformers`` lists ``(modality, transformer, columns)``.

    Raises
    ------
    InferenceError
        When a column cannot be classified, or no input column is left.

    See Also
    --------
    column_kinds : The kinds alone.
    fusion_from_kinds : The fusion from kinds already known.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmm import infer_modalities
    >>> df = pd.DataFrame({"price": [1.0, 2.0, 3.0], "colour": ["red", "blue", "red"],
    ...                    "label": [0, 1, 0]})
    >>> fusion = infer_modalities(df, target="label")
    >>> [(name, columns) for name, _, columns in fusion.transformers]
    [('numeric', ['price']), ('categorical', ['colour'])]
    >>> fusion.fit_transform(df.drop(columns="label")).shape
    (3, 3)
    """
    overrides = _check_frame(df, target, overrides)
    kinds = _column_kinds(df, target, overrides, base_dir)
    return fusion_from_kinds(kinds, overrides=overrides)


def resolve_paths(df, kinds, base_dir):
    """Return a copy of ``df`` whose relative paths in file columns start at ``base_dir``.

    File columns are those whose kind reads files (``"image"``, ``"audio"``
    and any registered kind with extensions or a sniff); see
    :attr:`skmm.kinds.ColumnKind.reads_files`.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmm.infer import resolve_paths
    >>> df = pd.DataFrame({"photo": ["cats/1.png", "/tmp/2.png"], "tag": ["a", "b"]})
    >>> resolve_paths(df, {"photo": "image", "tag": "categorical"}, "/data").to_dict("list")
    {'photo': ['/data/cats/1.png', '/tmp/2.png'], 'tag': ['a', 'b']}
    """
    df = df.copy()
    base_dir = Path(base_dir)
    for column, kind in kinds.items():
        entry = COLUMN_KINDS.get(kind)
        if entry is None or not entry.reads_files or column not in df.columns:
            continue

        def resolve(value):
            if isinstance(value, str) and not is_missing(value):
                path = Path(value.strip()).expanduser()
                return os.fspath(path if path.is_absolute() else base_dir / path)
            return value

        df[column] = df[column].map(resolve).astype(object)
    return df
