"""Guess the modality of every column of a DataFrame and propose a fusion for it.

:func:`column_kinds` says what each column holds (``"image"``, ``"audio"``,
``"text"``, ``"numeric"``, ``"categorical"`` or ``"drop"``), looking at the
dtype and at a sample of non-missing values: file extensions and magic bytes
for images and audio, whitespace and cardinality for text against categories.
:func:`infer_modalities` turns that into an unfitted
:class:`~skmm.MultimodalFusion` with a sensible default transformer per kind.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ._utils import is_missing
from .exceptions import InferenceError

__all__ = ["KINDS", "InferenceError", "column_kinds", "infer_modalities", "kind_of_transformer"]

#: what a column can be; ``"drop"`` is only ever chosen through ``overrides``
KINDS = ("image", "audio", "text", "numeric", "categorical", "drop")

IMAGE_EXTENSIONS = frozenset(
    ".png .jpg .jpeg .jpe .jfif .gif .bmp .tif .tiff .webp .ppm .pgm .pbm .pnm .ico".split()
)
AUDIO_EXTENSIONS = frozenset(".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .au .snd".split())

#: at most this many distinct values make a categorical column (unless they read like sentences)
MAX_CATEGORIES = 20
#: sampled non-missing values inspected per column
SAMPLE_SIZE = 50


# --------------------------------------------------------------------------- magic bytes


def sniff_bytes(data):
    """Return ``"image"``, ``"audio"`` or None from the first bytes of a file.

    Parameters
    ----------
    data : bytes
        The start of the file (16 bytes are enough).

    Returns
    -------
    kind : {"image", "audio"} or None

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
    head = bytes(data[:16])
    if (
        head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a"))
        or head.startswith((b"II*\x00", b"MM\x00*", b"BM"))
        or (head.startswith(b"RIFF") and head[8:12] == b"WEBP")
        or head.startswith((b"P1\n", b"P2\n", b"P3\n", b"P4\n", b"P5\n", b"P6\n"))
    ):
        return "image"
    if (
        (head.startswith(b"RIFF") and head[8:12] == b"WAVE")
        or head.startswith((b"fLaC", b"OggS", b"ID3", b".snd"))
        or (head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"))
        or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)  # MPEG audio frame
    ):
        return "audio"
    return None


def _sniff_file(path):
    try:
        with open(path, "rb") as handle:
            return sniff_bytes(handle.read(16))
    except OSError:
        return None


# --------------------------------------------------------------------------- one column


def _sample(values, size):
    """Evenly spread, deterministic sample of at most ``size`` values."""
    if len(values) <= size:
        return values
    positions = np.linspace(0, len(values) - 1, size).round().astype(int)
    return [values[i] for i in positions]


def _fail(column, found, way_out=None):
    way_out = way_out or (
        f"pass overrides={{{column!r}: kind}} with kind one of {list(KINDS)} or a "
        "transformer"
    )
    raise InferenceError(f"cannot tell what column {column!r} holds: {found}; {way_out}.")


def _kind_of_strings(column, values, n_rows, base_dir):
    suffixes = [
        Path(v.strip()).suffix.lower() if len(v) < 4096 and "\n" not in v else "" for v in values
    ]
    n_image = sum(s in IMAGE_EXTENSIONS for s in suffixes)
    n_audio = sum(s in AUDIO_EXTENSIONS for s in suffixes)
    if n_image == len(values):
        return "image"
    if n_audio == len(values):
        return "audio"
    if n_image or n_audio:
        odd = [v for v, s in zip(values, suffixes) if s not in IMAGE_EXTENSIONS | AUDIO_EXTENSIONS]
        others = f", the others do not (e.g. {odd[0][:60]!r})" if odd else ""
        _fail(
            column,
            f"of {len(values)} sampled values, {n_image} look like image paths and {n_audio} "
            f"like audio paths{others}",
        )
    # existing files without a telling extension: look at their magic bytes
    if all("\n" not in v and len(v) < 4096 for v in values):
        sniffed = []
        for value in values:
            path = Path(value.strip()).expanduser()
            if not path.is_absolute() and base_dir is not None:
                path = Path(base_dir) / path
            sniffed.append(_sniff_file(path) if path.is_file() else None)
        for kind in ("image", "audio"):
            if sniffed.count(kind) == len(values):
                return kind

    distinct = pd.unique(pd.Series(values, dtype=object))
    n_unique = len(distinct)
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
    values = _sample(values, SAMPLE_SIZE)
    from PIL import Image

    types = {type(v) for v in values}
    if all(isinstance(v, str) for v in values):
        return _kind_of_strings(column, values, len(series), base_dir)
    if all(isinstance(v, (bytes, bytearray, memoryview)) for v in values):
        sniffed = [sniff_bytes(v) for v in values]
        for kind in ("image", "audio"):
            if sniffed.count(kind) == len(values):
                return kind
        _fail(
            column,
            f"it holds bytes, but only {sniffed.count('image')} of {len(values)} sampled values "
            f"start like an image file and {sniffed.count('audio')} like an audio file",
        )
    if all(isinstance(v, (Image.Image, np.ndarray)) for v in values):
        return "image"
    if all(_is_waveform(v) for v in values):
        return "audio"
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return "categorical"
    if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values):
        return "numeric"
    names = sorted(t.__name__ for t in types)
    _fail(column, f"its values have mixed or unsupported types {names}")


def _is_waveform(value):
    if isinstance(value, dict):
        return {"array", "sampling_rate"} <= value.keys()
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], np.ndarray)
        and isinstance(value[1], (int, np.integer))
    )


# --------------------------------------------------------------------------- transformers


def kind_of_transformer(transformer):
    """The kind of column a transformer is made for, or None when it does not say.

    skmm encoders tell (``ImageEncoder`` → ``"image"``, audio encoders →
    ``"audio"``, ``TextEncoder`` and scikit-learn's text vectorizers → ``"text"``,
    ``OneHotEncoder``/``OrdinalEncoder`` → ``"categorical"``, scalers →
    ``"numeric"``); a :class:`~sklearn.pipeline.Pipeline` is judged by its first
    step, ``"drop"`` is ``"drop"``.

    Examples
    --------
    >>> from sklearn.preprocessing import OneHotEncoder
    >>> from skmm import ImageEncoder
    >>> from skmm.infer import kind_of_transformer
    >>> kind_of_transformer(ImageEncoder()), kind_of_transformer(OneHotEncoder())
    ('image', 'categorical')
    """
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        MaxAbsScaler, MinMaxScaler, OneHotEncoder, OrdinalEncoder, PowerTransformer,
        QuantileTransformer, RobustScaler, StandardScaler,
    )

    from .encoders import BaseEncoder

    if isinstance(transformer, str):
        return "drop" if transformer == "drop" else None
    if isinstance(transformer, Pipeline) and transformer.steps:
        return kind_of_transformer(transformer.steps[0][1])
    if isinstance(transformer, BaseEncoder):
        return transformer._kind
    if isinstance(transformer, (CountVectorizer, HashingVectorizer)):
        return "text"
    if isinstance(transformer, (OneHotEncoder, OrdinalEncoder)):
        return "categorical"
    numeric = (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler, PowerTransformer,
               QuantileTransformer)
    if isinstance(transformer, numeric):
        return "numeric"
    if isinstance(transformer, SimpleImputer) and transformer.strategy in ("mean", "median"):
        return "numeric"
    return None


def default_transformer(kind):
    """A fresh default transformer for ``kind`` (not for ``"drop"``)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from .encoders import AudioMFCC, ImageEncoder, TextEncoder

    if kind == "image":
        return ImageEncoder()
    if kind == "audio":
        return AudioMFCC()
    if kind == "text":
        return TextEncoder()
    if kind == "numeric":
        return Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    if kind == "categorical":
        return OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    raise ValueError(f"no default transformer for kind {kind!r}")


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
            if value not in KINDS:
                raise InferenceError(
                    f"overrides[{column!r}]={value!r} is not a kind; expected one of "
                    f"{list(KINDS)} or a transformer."
                )
        elif not (hasattr(value, "fit") and hasattr(value, "transform")):
            raise InferenceError(
                f"overrides[{column!r}] must be a kind name ({list(KINDS)}) or a transformer "
                f"with fit and transform, got {type(value).__name__}."
            )
    return overrides


def column_kinds(df, target=None, *, overrides=None, base_dir=None):
    """Say what each input column of ``df`` holds.

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
        ``{column: kind}`` in column order, kind one of ``"image"``, ``"audio"``,
        ``"text"``, ``"numeric"``, ``"categorical"``, ``"drop"``, or ``"other"`` for a
        column given a transformer of no known kind that inference cannot classify.

    Raises
    ------
    InferenceError
        When a column cannot be classified; the message names the column and
        how to override it.

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


def infer_modalities(df, target=None, *, overrides=None, base_dir=None):
    """Propose an unfitted :class:`~skmm.MultimodalFusion` for the columns of ``df``.

    Every image, audio and text column becomes its own modality named after
    the column, with :class:`~skmm.ImageEncoder`, :class:`~skmm.AudioMFCC` or
    :class:`~skmm.TextEncoder`. Numeric columns are grouped into one
    ``"numeric"`` modality (median imputation then standard scaling), and
    categorical ones (few distinct strings, booleans, pandas categories) into
    one ``"categorical"`` modality (one-hot, unknown categories ignored).

    Parameters
    ----------
    df : pandas DataFrame
        The training data (the target column may be in it).
    target : str, optional
        The target column; it is never an input.
    overrides : dict, optional
        ``{column: kind or transformer}``. A kind (``"image"``, ``"audio"``,
        ``"text"``, ``"numeric"``, ``"categorical"``, ``"drop"``) replaces the
        guess; a transformer is used as is for that column, as its own
        modality named after the column.
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
    kinds = column_kinds(df, target, overrides=overrides, base_dir=base_dir)
    taken = {"numeric", "categorical"}
    transformers, numeric, categorical = [], [], []
    for column, kind in kinds.items():
        override = overrides.get(column)
        if kind == "drop":
            continue
        if override is not None and not isinstance(override, str):
            columns = column if kind in ("image", "audio", "text") else [column]
            transformers.append((_modality_name(column, taken), override, columns))
        elif kind == "numeric":
            numeric.append(column)
        elif kind == "categorical":
            categorical.append(column)
        else:
            transformers.append((_modality_name(column, taken), default_transformer(kind), column))
    if numeric:
        transformers.append(("numeric", default_transformer("numeric"), numeric))
    if categorical:
        transformers.append(("categorical", default_transformer("categorical"), categorical))
    if not transformers:
        raise InferenceError(
            f"no input column left in df (columns {list(df.columns)}, target={target!r}, "
            "the rest dropped); keep at least one column."
        )
    return _fusion(transformers)


def _fusion(transformers):
    from .fusion import MultimodalFusion

    return MultimodalFusion(transformers, remainder="drop")


def resolve_paths(df, kinds, base_dir):
    """Return a copy of ``df`` whose relative paths in image/audio columns start at ``base_dir``."""
    df = df.copy()
    base_dir = Path(base_dir)
    for column, kind in kinds.items():
        if kind not in ("image", "audio") or column not in df.columns:
            continue

        def resolve(value):
            if isinstance(value, str) and not is_missing(value):
                path = Path(value.strip()).expanduser()
                return os.fspath(path if path.is_absolute() else base_dir / path)
            return value

        df[column] = df[column].map(resolve).astype(object)
    return df
