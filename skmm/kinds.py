"""The registry of column kinds: everything skmm knows about one kind of column, in one entry.

A column's **kind** says what its values are: ``"image"``, ``"audio"``,
``"text"``, ``"numeric"``, ``"categorical"``. It is not a fusion **modality**,
which is a named block of features in :class:`~skmm.MultimodalFusion`'s output
(``"photo"``, ``"numeric"``): one image column gives one modality named after
the column, all numeric columns together give one ``"numeric"`` modality.

Each kind is a :class:`ColumnKind` in :data:`COLUMN_KINDS`. :mod:`skmm.infer`
reads the entries to recognise columns and build a default fusion,
:mod:`skmm.serve` to know which columns arrive as uploaded files and how to
check them, :mod:`skmm.cli` for the kinds ``--override`` accepts. A new kind of
column (say video) is one encoder module (a :class:`~skmm.encoders.BaseEncoder`
subclass declaring ``_kind = "video"``) plus one :func:`register_kind` call.

This module is light: torch, Pillow and soundfile load only when an entry's
functions are called.
"""

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from .io import (
    check_audio_header,
    check_image_header,
    check_video_header,
    is_audio_value,
    is_image_value,
    is_video_value,
    looks_like_audio,
    looks_like_image,
    looks_like_video,
)

__all__ = [
    "COLUMN_KINDS",
    "SNIFF_SIZE",
    "ColumnKind",
    "get_kind",
    "kind_names",
    "register_kind",
    "unregister_kind",
]

#: how many first bytes of a file a kind's ``sniff`` receives (fewer when the file is shorter)
SNIFF_SIZE = 32

#: names a kind cannot take: ``"drop"`` is the override that leaves a column out,
#: ``"other"`` the kind recorded for a column whose transformer does not say
RESERVED_NAMES = ("drop", "other")


@dataclass(frozen=True)
class ColumnKind:
    """Everything skmm knows about one kind of column.

    Parameters
    ----------
    name : str
        The kind's name (``"image"``), as :func:`skmm.infer.column_kinds`
        returns it, ``overrides`` and ``skmm fit --override`` accept it and
        encoders declare it in their ``_kind`` class attribute.
    default_transformer : callable
        Zero-argument factory returning a fresh, unfitted transformer for such
        a column (it imports what it needs when called).
    extensions : iterable of str, default=()
        File suffixes of paths of this kind, such as ``".png"``; matched
        case-insensitively. Empty for kinds that are not files.
    sniff : callable or None, default=None
        ``sniff(head) -> bool``: whether a file whose first :data:`SNIFF_SIZE`
        bytes are ``head`` is of this kind; used for bytes values and for
        paths without a telling extension.
    check_upload : callable or None, default=None
        ``check_upload(data)`` raises ``ValueError`` with a short reason when
        the bytes of an uploaded file are not a readable file of this kind,
        reading only its header; the server answers 422 naming the field.
    accepts_value : callable or None, default=None
        ``accepts_value(value) -> bool``: whether an in-memory Python value
        (not a string, not bytes) is of this kind, e.g. a PIL image.
    grouped : bool, default=False
        Whether :func:`skmm.infer_modalities` puts every column of this kind
        into one modality named after the kind (as for ``"numeric"``) instead
        of one modality per column (as for ``"image"``).
    claims_transformer : callable or None, default=None
        ``claims_transformer(transformer) -> bool``: whether a transformer that
        does not declare a ``_kind`` (a scikit-learn one) is made for columns
        of this kind, e.g. a ``OneHotEncoder`` for ``"categorical"``; see
        :func:`skmm.infer.kind_of_transformer`.

    Attributes
    ----------
    reads_files : bool
        Whether columns of this kind hold files (paths or bytes): the kind has
        extensions or a sniff. Relative paths in such columns are resolved
        against a CSV's folder.
    takes_uploads : bool
        Whether the server takes values of this kind only as uploaded files
        (or base64), never as paths: the kind reads files or checks uploads.

    Examples
    --------
    >>> from skmm.kinds import ColumnKind
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> toy = ColumnKind("toy", FunctionTransformer, extensions={".TOY"},
    ...                  sniff=lambda head: head.startswith(b"TOY1"))
    >>> toy.extensions, toy.reads_files
    (frozenset({'.toy'}), True)
    """

    name: str
    default_transformer: Callable[[], Any]
    extensions: frozenset = frozenset()
    sniff: Optional[Callable[[bytes], bool]] = None
    check_upload: Optional[Callable[[bytes], None]] = None
    accepts_value: Optional[Callable[[Any], bool]] = None
    grouped: bool = False
    claims_transformer: Optional[Callable[[Any], bool]] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier() or "__" in self.name:
            raise ValueError(
                "ColumnKind name must be one word of letters, digits and single underscores, "
                f"such as 'video'; got {self.name!r}."
            )
        if self.name in RESERVED_NAMES:
            raise ValueError(
                f"ColumnKind name {self.name!r} is reserved (reserved: {list(RESERVED_NAMES)}); "
                "choose another name."
            )
        if not callable(self.default_transformer):
            raise TypeError(
                f"ColumnKind {self.name!r}: default_transformer must be a zero-argument callable "
                f"returning a transformer, got {type(self.default_transformer).__name__}."
            )
        if isinstance(self.extensions, str):
            raise TypeError(
                f"ColumnKind {self.name!r}: extensions must be a collection of suffixes such as "
                f"{{'.mp4'}}, got the string {self.extensions!r}."
            )
        extensions = frozenset(str(suffix).lower() for suffix in self.extensions)
        odd = sorted(suffix for suffix in extensions if not suffix.startswith(".") or len(suffix) < 2)
        if odd:
            raise ValueError(
                f"ColumnKind {self.name!r}: extensions must start with a dot, such as '.mp4'; "
                f"got {odd}."
            )
        object.__setattr__(self, "extensions", extensions)
        for field in ("sniff", "check_upload", "accepts_value"):
            value = getattr(self, field)
            if value is not None and not callable(value):
                raise TypeError(
                    f"ColumnKind {self.name!r}: {field} must be a callable or None, "
                    f"got {type(value).__name__}."
                )

    @property
    def reads_files(self):
        """Whether columns of this kind hold files: the kind has extensions or a sniff."""
        return bool(self.extensions) or self.sniff is not None

    @property
    def takes_uploads(self):
        """Whether the server takes values of this kind as uploaded files only, never as paths."""
        return self.reads_files or self.check_upload is not None


# --------------------------------------------------------------------------- default transformers


def _image_encoder():
    from .encoders import ImageEncoder

    return ImageEncoder()


def _audio_encoder():
    from .encoders import AudioMFCC

    return AudioMFCC()


def _video_encoder():
    from .encoders import VideoEncoder

    return VideoEncoder()


def _text_encoder():
    from .encoders import TextEncoder

    return TextEncoder()


def _numeric_transformer():
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])


def _categorical_transformer():
    from sklearn.preprocessing import OneHotEncoder

    return OneHotEncoder(handle_unknown="ignore", sparse_output=False)


def _is_text_vectorizer(transformer):
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer

    return isinstance(transformer, (CountVectorizer, HashingVectorizer))  # TfidfVectorizer included


def _is_numeric_transformer(transformer):
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import (
        MaxAbsScaler, MinMaxScaler, PowerTransformer, QuantileTransformer, RobustScaler, StandardScaler,
    )

    scalers = (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler, PowerTransformer, QuantileTransformer)
    return isinstance(transformer, scalers) or (
        isinstance(transformer, SimpleImputer) and transformer.strategy in ("mean", "median")
    )


def _is_category_encoder(transformer):
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    return isinstance(transformer, (OneHotEncoder, OrdinalEncoder))


def _is_number(value):
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _is_boolean(value):
    return isinstance(value, (bool, np.bool_))


# --------------------------------------------------------------------------- the registry

#: name -> :class:`ColumnKind`, in the order inference tries them
COLUMN_KINDS = {
    kind.name: kind
    for kind in (
        ColumnKind(
            "image",
            _image_encoder,
            extensions=".png .jpg .jpeg .jpe .jfif .gif .bmp .tif .tiff .webp .ppm .pgm .pbm "
            ".pnm .ico".split(),
            sniff=looks_like_image,
            check_upload=check_image_header,
            accepts_value=is_image_value,
        ),
        ColumnKind(
            "audio",
            _audio_encoder,
            extensions=".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .au .snd".split(),
            sniff=looks_like_audio,
            check_upload=check_audio_header,
            accepts_value=is_audio_value,
        ),
        # after audio: .ogg/.opus stay audio; Matroska/WebM and MP4 headers sniff as video, and a
        # Matroska file holding only sound is refused by check_video_header
        ColumnKind(
            "video",
            _video_encoder,
            extensions=".mp4 .m4v .mov .webm .mkv .avi".split(),
            sniff=looks_like_video,
            check_upload=check_video_header,
            accepts_value=is_video_value,
        ),
        ColumnKind("text", _text_encoder, claims_transformer=_is_text_vectorizer),
        ColumnKind("numeric", _numeric_transformer, accepts_value=_is_number, grouped=True,
                   claims_transformer=_is_numeric_transformer),
        ColumnKind("categorical", _categorical_transformer, accepts_value=_is_boolean, grouped=True,
                   claims_transformer=_is_category_encoder),
    )
}


def kind_names():
    """The kind names a user may give: every registered kind, then ``"drop"``.

    Returns
    -------
    names : tuple of str

    Examples
    --------
    >>> from skmm.kinds import kind_names
    >>> kind_names()
    ('image', 'audio', 'video', 'text', 'numeric', 'categorical', 'drop')
    """
    return (*COLUMN_KINDS, "drop")


def get_kind(name):
    """The registered :class:`ColumnKind` called ``name``.

    Raises
    ------
    ValueError
        When no kind has that name; the message lists the registered ones.
    """
    try:
        return COLUMN_KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"no column kind is registered as {name!r}; registered kinds: {list(COLUMN_KINDS)} "
            "(skmm.kinds.register_kind adds one)."
        ) from None


def register_kind(kind, *, replace=False):
    """Add a kind of column to the registry; inference tries it after those already there.

    Parameters
    ----------
    kind : ColumnKind
    replace : bool, default=False
        Replace a registered kind of the same name (keeping its place in the
        inference order) instead of refusing it.

    Returns
    -------
    kind : ColumnKind
        The registered kind.

    Examples
    --------
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from skmm.kinds import ColumnKind, kind_names, register_kind, unregister_kind
    >>> _ = register_kind(ColumnKind("toy", FunctionTransformer, extensions={".toy"}))
    >>> kind_names()
    ('image', 'audio', 'video', 'text', 'numeric', 'categorical', 'toy', 'drop')
    >>> unregister_kind("toy").name
    'toy'
    """
    if not isinstance(kind, ColumnKind):
        raise TypeError(f"register_kind expects a ColumnKind, got {type(kind).__name__}.")
    if kind.name in COLUMN_KINDS and not replace:
        raise ValueError(
            f"a column kind named {kind.name!r} is already registered; pass replace=True to "
            "replace it, or choose another name."
        )
    COLUMN_KINDS[kind.name] = kind
    return kind


def unregister_kind(name):
    """Remove the kind called ``name`` from the registry and return it.

    Raises
    ------
    ValueError
        When no kind has that name.
    """
    kind = get_kind(name)
    del COLUMN_KINDS[name]
    return kind
