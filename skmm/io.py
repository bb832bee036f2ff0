"""Reading images and audio from file paths, bytes, PIL images, arrays and waveforms.

Each kind of media column has two steps, kept apart so that the embedding cache
can be consulted before any expensive decoding happens:

* ``read_*_source(value)`` is cheap. It returns ``(content, raw)``: ``content``
  is the bytes that identify the row for the cache (the file's bytes, not its
  path), ``raw`` is what the decoder needs.
* ``decode_*(raw, ...)`` does the heavy work and returns a PIL image or a mono
  float32 waveform.

Both raise ``ValueError`` (or ``TypeError``) with a short reason; the encoders
add the row and the file to the message.

Beside the decoders sit the cheap tests that the column-kind registry
(:mod:`skmm.kinds`) points at: ``looks_like_*(head)`` recognises a file from
its first bytes, ``check_*_header(data)`` refuses bytes that are not a readable
file of that kind (reading only the header), and ``is_*_value(value)`` says
whether an in-memory Python value holds that kind of media.
"""

import contextlib
import contextvars
import hashlib
import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np

__all__ = [
    "read_image_source",
    "decode_image",
    "looks_like_image",
    "check_image_header",
    "is_image_value",
    "read_audio_source",
    "decode_audio",
    "looks_like_audio",
    "check_audio_header",
    "is_audio_value",
]

_WHITE = (255, 255, 255, 255)

#: set while paths must not be opened (the server predicting a request)
_PATHS_REFUSED = contextvars.ContextVar("skmm_paths_refused", default=False)


@contextlib.contextmanager
def paths_refused():
    """Within this block, reading an image or audio *path* fails instead of opening the file.

    The server predicts every request inside it, so that no value of a request
    can make it open a file of its own, whatever the pipeline looks like.
    """
    token = _PATHS_REFUSED.set(True)
    try:
        yield
    finally:
        _PATHS_REFUSED.reset(token)


def _read_file(path, kind):
    if _PATHS_REFUSED.get():
        raise ValueError(
            f"a path was given where {kind} file's bytes were expected; this server never "
            "opens paths: send the file itself"
        )
    path = Path(os.fspath(path)).expanduser()
    if not path.exists():
        raise ValueError(f"file not found: '{path}'")
    if path.is_dir():
        raise ValueError(f"'{path}' is a directory, expected {kind} file")
    return path


def _file_digest(path, chunk_size=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return b"file:" + digest.digest()


def _array_content(array, *extra):
    """A digest of an array's dtype, shape and values (no copy when it is contiguous)."""
    array = np.ascontiguousarray(array)
    if array.dtype.hasobject:
        raise TypeError(f"expected an array of numbers, got dtype {array.dtype}")
    digest = hashlib.sha256(repr((array.dtype.str, array.shape, *extra)).encode())
    digest.update(array.reshape(-1).view(np.uint8))
    return b"array:" + digest.digest()


# --------------------------------------------------------------------------- images


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


def _upright(image):
    """``image`` turned as its EXIF orientation tag says (phone photos are stored rotated)."""
    from PIL import ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's "Corrupt EXIF data" and the like
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


def _reason(exc):
    return str(exc) or type(exc).__name__


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
        raise ValueError(f"not a readable image ({exc})") from None
    _check_pixels(size, None)


def is_image_value(value):
    """Whether ``value`` is an image held in memory: a PIL image or a numpy array."""
    if isinstance(value, np.ndarray):
        return True
    from PIL import Image

    return isinstance(value, Image.Image)


# --------------------------------------------------------------------------- audio


def read_audio_source(value):
    """Return ``(content, raw)`` for one clip: a path, bytes, or ``(waveform, sample_rate)``.

    A dict with ``"array"`` and ``"sampling_rate"`` keys (the Hugging Face
    datasets layout) is accepted as a waveform too.
    """
    if isinstance(value, (str, os.PathLike)):
        path = _read_file(value, "an audio")
        return _file_digest(path), path
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return data, data
    if isinstance(value, dict) and {"array", "sampling_rate"} <= value.keys():
        value = (value["array"], value["sampling_rate"])
    if isinstance(value, (tuple, list)) and len(value) == 2:
        waveform, sample_rate = value
        if isinstance(sample_rate, (int, np.integer)) and not isinstance(sample_rate, bool) and sample_rate > 0:
            waveform = np.asarray(waveform)
            if not np.issubdtype(waveform.dtype, np.number) or np.iscomplexobj(waveform):
                raise TypeError(f"waveform must be real numbers, got dtype {waveform.dtype}")
            return _array_content(waveform, int(sample_rate)), (waveform, int(sample_rate))
        raise ValueError(
            f"expected (waveform, sample_rate) with a positive integer sample rate, "
            f"got sample_rate={sample_rate!r}"
        )
    if isinstance(value, np.ndarray):
        raise TypeError(
            "a bare array has no sample rate; pass (waveform, sample_rate) instead"
        )
    raise TypeError(
        f"expected audio as a file path, bytes or (waveform, sample_rate), "
        f"got {type(value).__name__}"
    )


def decode_audio(raw, *, sr, max_duration=None):
    """Decode ``raw`` into a mono float32 waveform at ``sr`` Hz.

    Only the first ``max_duration`` seconds are read, so a very long file costs
    bounded memory and time. Integer waveforms are PCM samples, scaled to
    [-1, 1] as soundfile reads them from files (int16 is divided by 32768).
    """
    if isinstance(raw, tuple):
        waveform, source_sr = raw
        waveform = _mono(_first_seconds(np.asarray(waveform), source_sr, max_duration))
    else:
        waveform, source_sr = _read_audio_file(raw, max_duration)
    if waveform.size == 0:
        raise ValueError("audio has no samples (empty clip)")
    if not np.isfinite(waveform).all():
        raise ValueError("audio contains NaN or infinite samples")
    if source_sr != sr:
        import librosa

        waveform = librosa.resample(waveform, orig_sr=source_sr, target_sr=sr, res_type="soxr_hq")
    return np.ascontiguousarray(waveform, dtype=np.float32)


def _read_audio_file(raw, max_duration):
    import soundfile

    source = io.BytesIO(raw) if isinstance(raw, bytes) else str(raw)
    try:
        with soundfile.SoundFile(source) as handle:
            frames = -1
            if max_duration is not None:
                frames = int(np.ceil(max_duration * handle.samplerate))
            data = handle.read(frames, dtype="float32", always_2d=True)
            sample_rate = handle.samplerate
    except soundfile.LibsndfileError as exc:
        reason = exc.error_string if isinstance(raw, bytes) else str(exc)  # no "<BytesIO at 0x...>"
        raise ValueError(f"not a readable audio file ({reason})") from None
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"not a readable audio file ({exc})") from None
    return data.mean(axis=1), sample_rate


def _first_seconds(waveform, sample_rate, max_duration):
    """``waveform`` as ``(samples,)`` or ``(channels, samples)``, cut to ``max_duration`` seconds."""
    if waveform.ndim not in (1, 2):
        raise ValueError(f"expected a 1-D or 2-D waveform, got shape {waveform.shape}")
    if waveform.size == 0:
        raise ValueError(f"audio has no samples (empty clip, shape {waveform.shape})")
    if waveform.ndim == 2 and waveform.shape[0] > waveform.shape[1]:
        waveform = waveform.T  # channels were the shorter axis
    if max_duration is not None:
        waveform = waveform[..., : int(np.ceil(max_duration * sample_rate))]
    return waveform


def _mono(waveform):
    """Mix ``(samples,)`` or ``(channels, samples)`` down to float32 mono; integers are PCM."""
    if np.issubdtype(waveform.dtype, np.integer):
        info = np.iinfo(waveform.dtype)
        half = (int(info.max) - int(info.min) + 1) / 2
        waveform = (waveform.astype(np.float64) - (info.min + half)) / half
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range samples are refused next
        waveform = waveform.astype(np.float32, copy=False)
        return waveform.mean(axis=0) if waveform.ndim == 2 else waveform


def looks_like_audio(head):
    """Whether ``head``, the first bytes of a file, start like an audio file.

    Recognises WAV, FLAC, Ogg, MP3 (ID3 tag or MPEG frame), AIFF and Sun au
    (12 bytes are enough).

    Examples
    --------
    >>> from skmm.io import looks_like_audio
    >>> looks_like_audio(b"RIFF\\x24\\x00\\x00\\x00WAVEfmt "), looks_like_audio(b"hello")
    (True, False)
    """
    head = bytes(head[:16])
    return (
        (head.startswith(b"RIFF") and head[8:12] == b"WAVE")
        or head.startswith((b"fLaC", b"OggS", b"ID3", b".snd"))
        or (head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"))
        or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)  # MPEG audio frame
    )


def check_audio_header(data):
    """Raise ``ValueError`` unless ``data`` is an audio file soundfile can open.

    Only the header is read (no samples are decoded).

    Parameters
    ----------
    data : bytes
        The whole file.

    Raises
    ------
    ValueError
        ``"not a readable audio file (<reason>)"``.
    """
    import soundfile

    try:
        soundfile.info(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"not a readable audio file ({exc})") from None


def is_audio_value(value):
    """Whether ``value`` is a clip held in memory.

    A ``(waveform, sample_rate)`` tuple (a numpy array and an integer), or a
    dict with ``"array"`` and ``"sampling_rate"`` keys (the Hugging Face
    datasets layout).
    """
    if isinstance(value, dict):
        return {"array", "sampling_rate"} <= value.keys()
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], np.ndarray)
        and isinstance(value[1], (int, np.integer))
    )
