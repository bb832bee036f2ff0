"""Reading images: file paths, bytes, PIL images and arrays (Pillow).

``read_image_source`` returns ``(content, raw)``, ``decode_image`` an upright
RGB PIL image; ``looks_like_image``, ``check_image_header`` and
``is_image_value`` are the cheap tests :mod:`skmm.kinds` points at.
"""

import io
import os
import struct
import warnings

import numpy as np

from ._common import _array_content, _read_file, _reason

__all__ = [
    "read_image_source",
    "decode_image",
    "looks_like_image",
    "check_image_header",
    "is_image_value",
]

_WHITE = (255, 255, 255, 255)


def read_image_source(value):
    """Return ``(content, raw)`` for one image given as a path, bytes, PIL image or array."""
    from PIL import Image

    if isinstance(value, (str, os.PathLike)):
        data = _read_file(value, "an image").read_bytes()
        return data, data
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return data, data
    if isinstance(value, Image.Image):
        return _array_content(np.asarray(value), value.mode), value
    if isinstance(value, np.ndarray):
        return _array_content(value), value
    raise TypeError(
        f"expected an image as a file path, bytes, a PIL image or a numpy array, "
        f"got {type(value).__name__}"
    )


def decode_image(raw, *, max_pixels=None, draft_size=None):
    """Decode ``raw`` (bytes, PIL image or array) into an upright RGB PIL image.

    An EXIF orientation tag (a phone photo stored rotated) is applied.

    Parameters
    ----------
    raw : bytes, PIL.Image.Image or ndarray
    max_pixels : int, optional
        Refuse images that claim more pixels than this, before decoding them
        (protection against decompression bombs).
    draft_size : int, optional
        Let JPEG decoding downscale by a power of two towards this size.
    """
    from PIL import Image

    if isinstance(raw, np.ndarray):
        image = _array_to_image(raw)
        _check_pixels(image.size, None)
        return image
    if isinstance(raw, Image.Image):
        _check_pixels(raw.size, max_pixels)
        return _to_rgb(_upright(raw))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image refused as a decompression bomb ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ValueError(
            "not a readable image: Pillow cannot identify it (not an image, or a corrupt or "
            f"truncated one; the data starts with {bytes(raw[:8])!r})"
        ) from None
    except _PILLOW_ERRORS as exc:
        raise ValueError(f"not a readable image ({_reason(exc)})") from None
    _check_pixels(image.size, max_pixels)
    try:
        if draft_size and image.format == "JPEG":
            image.draft("RGB", (draft_size, draft_size))
        image.load()
    except MemoryError:
        raise ValueError(_too_big(image)) from None
    except _PILLOW_ERRORS as exc:
        raise ValueError(
            f"not a readable image: corrupt or truncated {image.format} data ({_reason(exc)})"
        ) from None
    try:
        return _to_rgb(_upright(image))
    except MemoryError:
        raise ValueError(_too_big(image)) from None


#: the EXIF tag of an image's orientation (1: stored upright)
_EXIF_ORIENTATION = 0x0112


def _upright(image):
    """``image`` turned as its EXIF orientation tag says (phone photos are stored rotated)."""
    from PIL import ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's "Corrupt EXIF data" and the like
            if image.getexif().get(_EXIF_ORIENTATION, 1) == 1:
                return image  # already upright (exif_transpose would copy every pixel)
            return ImageOps.exif_transpose(image)
    except _PILLOW_ERRORS:  # a damaged EXIF block: the pixels are still good
        return image


def _too_big(image):
    return f"image of {image.size[0]}x{image.size[1]} pixels does not fit in memory"


#: what Pillow's decoders raise on malformed data (besides UnidentifiedImageError)
_PILLOW_ERRORS = (
    OSError, SyntaxError, EOFError, NotImplementedError, struct.error,
    IndexError, KeyError, TypeError, ValueError, ZeroDivisionError,
)


#: images longer than this many times their width (or wider than their height) are refused
MAX_ASPECT_RATIO = 100


def _check_pixels(size, max_pixels):
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"image is empty ({width}x{height} pixels)")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ValueError(
            f"image is {width}x{height} pixels, an aspect ratio over {MAX_ASPECT_RATIO}:1; "
            "crop it to the region of interest first"
        )
    if max_pixels is not None and width * height > max_pixels:
        raise ValueError(
            f"image is {width}x{height} = {width * height:,} pixels, over "
            f"max_pixels={max_pixels:,}; raise max_pixels if the image is trusted"
        )


def _to_rgb(image):
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I") and pixels.max(initial=0) > 255 else 255.0
        if mode == "F" and pixels.max(initial=0) <= 1.0:
            top = 1.0
        pixels = np.clip(pixels / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(pixels).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode in ("PA", "LA", "La", "RGBa"):
        image = image.convert("LA" if mode == "La" else "RGBA").convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, _WHITE)
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def _array_to_image(array):
    from PIL import Image

    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        hint = " (channels first? use np.moveaxis(a, 0, -1))" if array.ndim == 3 else ""
        raise ValueError(
            f"expected an image array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
            f"got shape {array.shape}{hint}"
        )
    if 0 in array.shape:
        raise ValueError(f"image array is empty (shape {array.shape})")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype == np.uint16:
        array = (array // 257).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("image array contains NaN or infinite values")
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
        array = np.clip(array * scale, 0, 255).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ValueError(
            f"expected an image array of dtype uint8, uint16, bool or float in [0, 1], "
            f"got dtype {array.dtype}"
        )
    image = Image.fromarray(np.ascontiguousarray(array))
    return _to_rgb(image)


def looks_like_image(head):
    """Whether ``head``, the first bytes of a file, start like an image file.

    Recognises PNG, JPEG, GIF, TIFF, BMP, WebP and the PNM family (12 bytes
    are enough).

    Examples
    --------
    >>> from skmm.io import looks_like_image
    >>> looks_like_image(b"\\x89PNG\\r\\n\\x1a\\n...."), looks_like_image(b"hello")
    (True, False)
    """
    head = bytes(head[:16])
    return (
        head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a"))
        or head.startswith((b"II*\x00", b"MM\x00*", b"BM"))
        or (head.startswith(b"RIFF") and head[8:12] == b"WEBP")
        or head.startswith((b"P1\n", b"P2\n", b"P3\n", b"P4\n", b"P5\n", b"P6\n"))
    )


def check_image_header(data):
    """Raise ``ValueError`` unless ``data`` is an image file Pillow can open.

    Only the header is parsed (no pixels are decoded); an image claiming far
    more pixels than Pillow's ``MAX_IMAGE_PIXELS`` is refused as a
    decompression bomb, one more than :data:`MAX_ASPECT_RATIO` times longer
    than wide (or wider than high) as an absurd shape.

    Parameters
    ----------
    data : bytes
        The whole file.

    Raises
    ------
    ValueError
        ``"not a readable image (<reason>)"``.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                size = image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
            ValueError) as exc:
        raise ValueError(f"not a readable image ({_reason(exc)})") from None
    _check_pixels(size, None)


def is_image_value(value):
    """Whether ``value`` is an image held in memory: a PIL image or an array (H, W) or (H, W, 1|3|4)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 2 or (value.ndim == 3 and value.shape[-1] in (1, 3, 4))
    from PIL import Image

    return isinstance(value, Image.Image)


def _image_format(head):
    """The name of the image format ``head`` starts like (see :func:`looks_like_image`)."""
    names = {b"\x89PNG": "png", b"\xff\xd8\xff": "jpeg", b"GIF8": "gif", b"II*\x00": "tiff", b"MM\x00*": "tiff",
             b"BM": "bmp", b"RIFF": "webp", b"P": "pnm"}
    return next(name for start, name in names.items() if bytes(head).startswith(start))
