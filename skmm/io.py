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
import re
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


#: what a library's message says of an in-memory file: "<_io.BytesIO object at 0x7f...>"
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def _reason(exc):
    """An exception's message for an error of skmm's, without memory addresses of in-memory files."""
    return _OBJECT_REPR.sub("the data", str(exc)) or type(exc).__name__


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
        reason = exc.error_string if isinstance(raw, bytes) else str(exc)
        raise ValueError(f"not a readable audio file ({_reason(reason)})") from None
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"not a readable audio file ({_reason(exc)})") from None
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
        raise ValueError(f"not a readable audio file ({_reason(exc)})") from None


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


# --------------------------------------------------------------------------- video (PyAV)

__all__ += [
    "read_video_source",
    "decode_video_frames",
    "decode_video_audio",
    "sample_times",
    "looks_like_video",
    "check_video_header",
    "is_video_value",
    "video_container",
    "decoding_deadline",
    "DecodingTimeout",
]

#: a clip claiming to last longer than this (about 11.6 days) has a corrupt or hostile header
MAX_VIDEO_SECONDS = 1e6
#: a header declaring more frames per second, or more frames, than this is refused before decoding
MAX_FRAME_RATE = 1_000
MAX_DECLARED_FRAMES = 500_000
#: decoding one clip may decode at most this many packets (about one frame each) and this many
#: pixels (about 720 frames of 1080p), and read at most MAX_DEMUXED_PACKETS, whatever its header
#: says: a clip with one keyframe and thousands of frames (a CPU bomb) is refused instead of
#: stalling the work behind it
MAX_DECODED_PACKETS = 10_000
MAX_DECODED_PIXELS = 1_500_000_000
MAX_DEMUXED_PACKETS = 1_000_000

#: ISO-BMFF brands that are still images (HEIF/AVIF) or sound (M4A/M4B), not video
_NOT_VIDEO_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis",
                     b"M4A ", b"M4B ", b"M4P ")
#: FFmpeg demuxers of still images (besides the "<codec>_pipe" ones): images, not video
_IMAGE_DEMUXERS = ("image2", "gif", "apng", "ico")


def _import_av():
    try:
        import av
    except ImportError as exc:
        raise ImportError(
            "reading video needs PyAV (the 'av' package, which ships its own FFmpeg): "
            'pip install "skmm[video]"'
        ) from exc
    return av


def read_video_source(value):
    """Return ``(content, raw)`` for one clip: a path, the file's bytes, or frames ``(T, H, W, 3)``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.io import read_video_source
    >>> content, raw = read_video_source(np.zeros((2, 4, 4, 3), dtype=np.uint8))
    >>> content[:6], raw.shape
    (b'array:', (2, 4, 4, 3))
    """
    if isinstance(value, (str, os.PathLike)):
        path = _read_file(value, "a video")
        return _file_digest(path), path
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return data, data
    if isinstance(value, np.ndarray):
        if not is_video_value(value):
            raise ValueError(
                f"expected video frames as an array of shape (T, H, W, 3), got shape {value.shape}"
            )
        return _array_content(value), value
    raise TypeError(
        f"expected a video as a file path, bytes or an array (T, H, W, 3), got {type(value).__name__}"
    )


def video_container(head):
    """The FFmpeg demuxer that opens video bytes starting with ``head``, or None.

    MP4/MOV (an ISO-BMFF ``ftyp`` box), Matroska/WebM (EBML), AVI, MPEG-TS
    (a sync byte every 188 bytes) and raw H.264 streams (a start code).
    Bytes are only ever opened with the demuxer named here, never by
    FFmpeg's probing, so no demuxer that opens other files or URLs (an
    FFmpeg ``concat`` script, HLS and other playlists, image sequences) is
    reachable from bytes.

    Examples
    --------
    >>> from skmm.io import video_container
    >>> video_container(b"\\x00\\x00\\x00\\x20ftypisom"), video_container(b"ffconcat version 1.0")
    ('mov', None)
    """
    head = bytes(head[:189])
    if head[4:8] == b"ftyp":
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head[:1] == b"\x47" and len(head) > 188 and head[188:189] == b"\x47":
        return "mpegts"
    if head.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01")):
        return "h264"
    return None


def _image_format(head):
    """The name of the image format ``head`` starts like (see :func:`looks_like_image`)."""
    names = {b"\x89PNG": "png", b"\xff\xd8\xff": "jpeg", b"GIF8": "gif", b"II*\x00": "tiff", b"MM\x00*": "tiff",
             b"BM": "bmp", b"RIFF": "webp", b"P": "pnm"}
    return next(name for start, name in names.items() if bytes(head).startswith(start))


def _open_video(raw, av):
    """Open ``raw`` (path or bytes) with PyAV; ``ValueError`` with a reason when FFmpeg cannot.

    Bytes are opened with the one demuxer their first bytes call for
    (:func:`video_container`), never by FFmpeg's probing, and refused when
    they start like nothing skmm reads.
    """
    if isinstance(raw, bytes):
        demuxer = video_container(raw)
        if demuxer is None:
            if looks_like_image(raw):
                raise ValueError(f"an image ({_image_format(raw)}), not a video")
            raise ValueError(
                f"not a readable video file: bytes starting with {raw[:12]!r}; video bytes must be "
                "MP4/MOV, Matroska/WebM, AVI, MPEG-TS or a raw H.264 stream"
            )
        source, options = io.BytesIO(raw), {"format": demuxer}
    else:
        source, options = str(raw), {}
    try:
        return av.open(source, "r", **options)
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not a readable video file ({_av_reason(exc)})") from None


#: the latest time.monotonic() by which decoding must end, set by whoever waits for the answer
_DEADLINE = contextvars.ContextVar("skmm_decode_deadline", default=None)


class DecodingTimeout(RuntimeError):
    """Decoding went on past the deadline set with :func:`decoding_deadline` (not a bad row)."""


@contextlib.contextmanager
def decoding_deadline(deadline):
    """Within this block, decoding a clip stops with :class:`DecodingTimeout` past ``deadline``.

    ``deadline`` is a :func:`time.monotonic` time, or None for none. The
    server sets the request's own deadline, so that a clip that decodes
    slowly stops when nobody waits for its answer any more.
    """
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


class _DecodingBudget:
    """Bounds the work of decoding one clip: packets read, pixels decoded, and the caller's deadline."""

    def __init__(self, stream=None):
        context = None if stream is None else stream.codec_context
        self.pixels_per_packet = 0 if context is None else max(1, context.width * context.height)
        self.demuxed = self.decoded = self.pixels = 0
        self.deadline = _DEADLINE.get()

    def packets_of(self, container, stream):
        """``container.demux(stream)``: each packet counted, the deadline checked."""
        import time

        for packet in container.demux(stream):
            self.demuxed += 1
            if self.demuxed > MAX_DEMUXED_PACKETS:
                raise ValueError(
                    f"reading this clip would take more than {MAX_DEMUXED_PACKETS:,} packets "
                    "(skmm.io.MAX_DEMUXED_PACKETS); the file is corrupt or hostile"
                )
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise DecodingTimeout("decoding stopped: the answer's deadline has passed")
            yield packet

    def decode(self, packet):
        """``packet.decode()``, paid for: refuse a clip past its budget of decoded packets and pixels."""
        self.decoded += 1
        self.pixels += self.pixels_per_packet
        if self.decoded > MAX_DECODED_PACKETS or self.pixels > MAX_DECODED_PIXELS:
            raise ValueError(
                f"decoding this clip would decode more than {MAX_DECODED_PACKETS:,} packets or "
                f"{MAX_DECODED_PIXELS:,} pixels (skmm.io.MAX_DECODED_PACKETS / MAX_DECODED_PIXELS): "
                "it has too few keyframes for its length; re-encode it with a keyframe every few "
                "seconds, or use seek='keyframe'"
            )
        return packet.decode()

    def frames_of(self, container, stream):
        """``container.decode(stream)``, paid for."""
        for packet in self.packets_of(container, stream):
            yield from self.decode(packet)


def _av_reason(exc):
    return getattr(exc, "strerror", None) or _reason(exc)


def _video_stream(container, max_pixels=None):
    """The first video stream, its sizes checked against ``max_pixels`` before anything is decoded."""
    demuxer = container.format.name
    if demuxer.endswith("_pipe") or demuxer in _IMAGE_DEMUXERS:
        raise ValueError(f"an image ({demuxer.removesuffix('_pipe')}), not a video")
    if not container.streams.video:
        found = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        raise ValueError(f"no video stream in the file (found {found})")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width < 1 or height < 1:
        raise ValueError(f"video stream has no picture size ({width}x{height})")
    rate = stream.average_rate or stream.guessed_rate
    if rate and float(rate) > MAX_FRAME_RATE:
        raise ValueError(
            f"the header claims {float(rate):g} frames per second (limit {MAX_FRAME_RATE:,}, "
            "skmm.io.MAX_FRAME_RATE); the file is corrupt or hostile"
        )
    if stream.frames and stream.frames > MAX_DECLARED_FRAMES:
        raise ValueError(
            f"the header claims {stream.frames:,} frames (limit {MAX_DECLARED_FRAMES:,}, "
            "skmm.io.MAX_DECLARED_FRAMES); the file is corrupt or hostile"
        )
    if max_pixels is not None and width * height > max_pixels:
        raise ValueError(
            f"video frames are {width}x{height} = {width * height:,} pixels, over "
            f"max_pixels={max_pixels:,}; raise max_pixels if the file is trusted"
        )
    return stream


def _clip_span(container, stream):
    """``(start, duration)`` of the stream in seconds; duration None when the headers do not say."""
    base = stream.time_base
    start = float(stream.start_time * base) if stream.start_time is not None and base else 0.0
    if stream.duration is not None and base:
        duration = float(stream.duration * base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = None
    if duration is not None and not 0 <= duration <= MAX_VIDEO_SECONDS:
        raise ValueError(
            f"the header claims a duration of {duration:g} s, not a plausible clip "
            f"(limit {MAX_VIDEO_SECONDS:g} s); the file is corrupt or hostile"
        )
    return start, duration


def sample_times(duration, *, frames, fps=None):
    """Offsets (seconds from the clip's start) of the frames to take from a clip of ``duration`` s.

    Uniform sampling takes the centre of each of ``frames`` equal segments;
    with ``fps``, one frame every ``1 / fps`` s from the start (centred in its
    interval), at most ``frames`` of them.

    Examples
    --------
    >>> from skmm.io import sample_times
    >>> sample_times(2.0, frames=4).tolist()
    [0.25, 0.75, 1.25, 1.75]
    >>> sample_times(2.0, frames=8, fps=2).tolist()
    [0.25, 0.75, 1.25, 1.75]
    """
    if fps is None:
        return (np.arange(frames) + 0.5) * (duration / frames)
    count = int(min(frames, max(1, np.ceil(duration * fps - 1e-9))))
    return (np.arange(count) + 0.5) / fps


def decode_video_frames(raw, *, frames=8, fps=None, max_duration=None, max_pixels=None, size=None,
                        seek="exact", threads=None):
    """Decode the frames to embed from one clip, seeking to each instead of decoding the whole file.

    Frame timestamps are taken from the clip's timeline (uniformly, or every
    ``1 / fps`` s; see :func:`sample_times`), so variable-frame-rate clips are
    sampled by time, not by frame number. For each timestamp the container
    seeks to the keyframe before it and decodes forward to the first frame at
    or after it; when no keyframe lies between the last decoded frame and the
    next timestamp, decoding simply goes on (no seek would save work). The
    rotation recorded in the file (display matrix, or the older ``rotate``
    tag) is applied, so portrait phone clips come out upright.

    With ``seek="keyframe"`` each timestamp gets instead the keyframe nearest
    to it, and only those keyframes are decoded: much less work, at the price
    of positions that are off by up to half the keyframe interval (a clip
    with a single keyframe gives that frame every time). A clip whose headers
    give no duration (a raw stream) is sampled as with ``"exact"``.

    Parameters
    ----------
    raw : str, Path, bytes or ndarray
        A file path, the file's bytes, or frames ``(T, H, W, 3)`` (uint8, or
        floats in [0, 1]; sampled uniformly by index, as an array has no
        timestamps: ``fps`` does not apply).
    frames : int, default=8
        How many frames to take (the most, with ``fps``).
    fps : float, optional
        Sample at this rate instead of uniformly over the clip.
    max_duration : float, optional
        Only the first ``max_duration`` seconds are sampled.
    max_pixels : int, optional
        Refuse clips whose frames claim more pixels, before decoding.
    size : int, optional
        Scale frames (while converting them to RGB) so that their shorter
        side is at most ``size`` pixels.
    seek : {"exact", "keyframe"}, default="exact"
        Take the first frame at or after each timestamp, or the keyframe
        nearest to it.
    threads : int, optional
        Threads FFmpeg decodes with (frame and slice threading); None uses
        every CPU this process may run on, 1 decodes in the calling thread.

    Returns
    -------
    ndarray of shape (n, H, W, 3), dtype uint8
        ``n`` is ``frames`` (a clip shorter than its samples repeats frames),
        or fewer with ``fps`` on a short clip.

    Raises
    ------
    ValueError
        For a file FFmpeg cannot read, without a video stream, with no frames,
        too many pixels or an implausible duration.
    """
    if seek not in ("exact", "keyframe"):
        raise ValueError(f"seek must be 'exact' or 'keyframe', got {seek!r}")
    if isinstance(raw, np.ndarray):
        return _frames_of_array(raw, frames=frames, max_pixels=max_pixels)
    av = _import_av()
    with _open_video(raw, av) as container:
        stream = _video_stream(container, max_pixels)
        start, duration = _clip_span(container, stream)
        _use_threads(stream, threads)
        budget = _DecodingBudget(stream)
        try:
            if duration is None or duration <= 0:
                picked = _sample_by_decoding(container, stream, start, frames, fps, max_duration, budget)
            else:
                if max_duration is not None:
                    duration = min(duration, max_duration)
                targets = start + sample_times(duration, frames=frames, fps=fps)
                sample = _sample_keyframes if seek == "keyframe" else _sample_by_seeking
                picked = sample(container, stream, targets, budget)
        except av.FFmpegError as exc:
            raise ValueError(f"corrupt or truncated video ({_av_reason(exc)})") from None
        rotate = _rotation_quarters(stream)
        return np.stack([_frame_to_rgb(frame, size, rotate) for frame in picked])


def _frames_of_array(array, *, frames, max_pixels):
    """``frames`` frames taken uniformly by index from frames ``(T, H, W, 3)``, as uint8."""
    if not is_video_value(array) or 0 in array.shape:
        raise ValueError(f"expected video frames as an array (T, H, W, 3), got shape {array.shape}")
    if max_pixels is not None and array.shape[1] * array.shape[2] > max_pixels:
        raise ValueError(
            f"video frames are {array.shape[2]}x{array.shape[1]} pixels, over max_pixels={max_pixels:,}"
        )
    picked = array[((np.arange(frames) + 0.5) * len(array) / frames).astype(int)]
    if picked.dtype == np.uint8:
        return picked
    if not np.issubdtype(picked.dtype, np.floating) or not np.isfinite(picked).all():
        raise ValueError(f"expected uint8 frames, or finite floats in [0, 1]; got dtype {picked.dtype}")
    return np.clip(picked * 255.0, 0, 255).round().astype(np.uint8)


def _keyframe_times(stream):
    """Sorted times (s) of the keyframes the container's index lists; empty when it has none."""
    base = stream.time_base
    try:
        entries = stream.index_entries
        return np.array(sorted(float(e.timestamp * base) for e in entries if e.is_keyframe))
    except (AttributeError, TypeError):  # an older PyAV without the index
        return np.array([])


#: frames within half a millisecond of a timestamp count as at it
_TIME_SLACK = 5e-4


def _use_threads(stream, threads):
    """Let FFmpeg decode ``stream`` with ``threads`` threads (None: every CPU this process may use).

    Frame threading decodes several frames at once; the frames are the same
    as a single-threaded decode's.
    """
    from ._threads import available_cpus

    count = available_cpus() if threads is None else max(1, int(threads))
    stream.codec_context.thread_count = count
    if count > 1:
        stream.thread_type = "AUTO"


def _sample_by_seeking(container, stream, targets, budget):
    """For each target time, the first frame at or after it (the last frame past the end)."""
    keyframes = _keyframe_times(stream)
    base = stream.time_base
    decoded, last, picked, goal = None, None, [], [0.0]
    for target in targets:
        position = -np.inf if last is None else _time_of(last)
        if last is not None and position >= target - _TIME_SLACK:
            picked.append(last)  # several samples fall on one frame (short clip)
            continue
        goal[0] = target
        if decoded is None or _worth_seeking(keyframes, position, target):
            if len(keyframes):  # without an index (MPEG-TS), a seek can land between keyframes
                container.seek(max(0, int(target / base)), stream=stream, backward=True)
            decoded = _decode_forward(container, stream, goal, budget)
        for frame in decoded:
            last = frame
            if _time_of(frame) >= target - _TIME_SLACK:
                break
        else:
            _check_not_truncated(last, target, stream)
        picked.append(last)
    return picked


def _decode_forward(container, stream, goal, budget):
    """Frames from the container's position on; non-reference frames before ``goal[0]`` s are skipped.

    No frame depends on a non-reference frame, so the frames at and after the
    goal decode exactly as they would from a full decode.
    """
    codec, base = stream.codec_context, stream.time_base
    for packet in budget.packets_of(container, stream):
        early = packet.pts is not None and float(packet.pts * base) < goal[0] - _TIME_SLACK
        codec.skip_frame = "NONREF" if early else "DEFAULT"
        yield from budget.decode(packet)


def _sample_keyframes(container, stream, targets, budget):
    """For each target time, the keyframe nearest to it; only keyframes are decoded.

    The keyframes' times come from the packets, read up to the first keyframe
    after the last target (an index may list decoding times or, in Matroska,
    only some keyframes). With an index, the container then seeks to each
    chosen keyframe and decodes it alone; without one (MPEG-TS, where a seek
    can land past a keyframe), the keyframes are decoded during that one pass.
    """
    if len(_keyframe_times(stream)):
        times = _keyframe_packet_times(container, stream, targets[-1], budget)
        chosen = _nearest(times, targets)
        frames = {time: _first_at(_decode_keyframe(container, stream, time, budget), time) for time in set(chosen)}
    else:
        decoded = _decode_keyframes_until(container, stream, targets[-1], budget)
        chosen = _nearest([frame.time for frame in decoded], targets)
        frames = {time: _first_at(decoded, time) for time in set(chosen)}
    return [frames[time] for time in chosen]


def _keyframe_packet_times(container, stream, until, budget):
    """Times (s) of the keyframe packets, up to the first one after ``until`` s; nothing is decoded."""
    base, times, last = stream.time_base, [], -np.inf
    for packet in budget.packets_of(container, stream):
        if packet.pts is None:
            continue
        time = float(packet.pts * base)
        last = max(last, time)
        if packet.is_keyframe:
            times.append(time)
            if time > until:
                return times
    _check_reaches(last, until, stream)
    return times


def _decode_keyframes_until(container, stream, until, budget):
    """The keyframes, decoded in one pass (the others skipped), up to the first one after ``until`` s."""
    codec, base, decoded, last = stream.codec_context, stream.time_base, [], -np.inf
    codec.skip_frame = "NONKEY"
    try:
        for packet in budget.packets_of(container, stream):
            if packet.pts is not None:
                last = max(last, float(packet.pts * base))
            # with NONKEY the decoder skips the other packets at little cost: only keyframes are paid for
            frames = budget.decode(packet) if packet.is_keyframe else packet.decode()
            decoded.extend(frame for frame in frames if frame.time is not None)
            if decoded and decoded[-1].time > until:  # frames come out some packets late
                return decoded
    finally:
        codec.skip_frame = "DEFAULT"
    _check_reaches(last, until, stream)
    return decoded


def _nearest(times, targets):
    """For each target, the nearest of ``times`` (a list of floats)."""
    if not times:
        raise ValueError("video has no keyframes (zero-length or truncated)")
    times = np.asarray(times)
    return times[np.abs(times[None, :] - np.asarray(targets)[:, None]).argmin(1)].tolist()


def _first_at(frames, time):
    """The first of ``frames`` at or after ``time`` s."""
    found = next((frame for frame in frames if _time_of(frame) >= time - _TIME_SLACK), None)
    if found is None:
        raise ValueError(f"truncated video: its keyframe at {time:.2f} s does not decode")
    return found


def _decode_keyframe(container, stream, time, budget):
    """The frames of the keyframe at ``time`` s alone: seek to it, decode its packet, drain the decoder.

    Draining returns the frame at once (a decoder holding frames back to
    reorder them would otherwise wait for the next keyframes); the next seek
    resets the decoder.
    """
    base = stream.time_base
    container.seek(int(round(time / base)), stream=stream, backward=True)
    for packet in budget.packets_of(container, stream):
        early = packet.pts is not None and float(packet.pts * base) < time - _TIME_SLACK
        if packet.is_keyframe and not early:
            frames = [*budget.decode(packet), *stream.codec_context.decode(None)]
            for frame in frames:
                frame.time_base = frame.time_base or base  # drained frames come without one
            return frames
    return []


def _check_not_truncated(last, target, stream):
    """At the end of the frames before ``target``: refuse a clip whose frames stop well before its header's end."""
    if last is None:
        raise ValueError("video has no frames (zero-length or truncated)")
    _check_reaches(_time_of(last), target, stream)


def _check_reaches(last, target, stream):
    """Refuse a clip whose frames stop at ``last`` s (-inf: none), well before ``target`` s."""
    if last == -np.inf:
        raise ValueError("video has no frames (zero-length or truncated)")
    rate = stream.average_rate or stream.guessed_rate
    slack = max(0.5, 2 / float(rate)) if rate else 0.5
    if last + slack < target:
        raise ValueError(
            f"truncated video: its frames stop at {last:.2f} s, but its header says "
            f"it goes on past {target:.2f} s"
        )


def _worth_seeking(keyframes, position, target):
    """Whether a keyframe lies after ``position`` and at or before ``target`` (False without an index)."""
    after = np.searchsorted(keyframes, position, side="right")
    return after < len(keyframes) and keyframes[after] <= target


def _time_of(frame):
    return -np.inf if frame.time is None else frame.time


def _sample_by_decoding(container, stream, start, frames, fps, max_duration, budget):
    """Sample a clip whose headers give no duration (a raw stream): decode it, then pick.

    Decoding stops after ``max_duration`` seconds; at most ``4 * frames``
    frames are kept, evenly spaced (every ``stride``-th decoded frame, the
    stride doubling whenever the list fills up). Frames without timestamps
    are picked by position among those kept: uniform within one stride.
    """
    kept, stride = [], 1
    for number, frame in enumerate(budget.frames_of(container, stream)):
        if max_duration is not None and _time_of(frame) - start > max_duration:
            break
        if number % stride:
            continue
        kept.append(frame)
        if len(kept) > 4 * frames:  # bounded memory
            kept, stride = kept[::2], stride * 2
    if not kept:
        raise ValueError("video has no frames (zero-length or truncated)")
    times = np.array([_time_of(frame) for frame in kept]) - start
    if not np.isfinite(times).all():  # no timestamps: by position
        index = ((np.arange(frames) + 0.5) * len(kept) / frames).astype(int)
        return [kept[i] for i in index]
    targets = sample_times(times[-1] + 1e-6, frames=frames, fps=fps)
    index = np.minimum(np.searchsorted(times, targets - _TIME_SLACK), len(kept) - 1)
    return [kept[i] for i in index]


def _rotation_quarters(stream):
    """Counter-clockwise quarter turns the stream's metadata asks for (the older 'rotate' tag)."""
    try:
        degrees = -float(stream.metadata.get("rotate", 0))  # the tag is clockwise
    except ValueError:
        return 0
    return int(round(degrees / 90)) % 4


def _frame_to_rgb(frame, size, stream_quarters):
    """An RGB uint8 array of ``frame``, scaled so its shorter side is at most ``size``, upright."""
    width, height = frame.width, frame.height
    if size is not None and min(width, height) > size:
        scale = size / min(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    image = frame.to_ndarray(format="rgb24", width=width, height=height)
    rotation = getattr(frame, "rotation", 0) or 0  # the display matrix, counter-clockwise degrees
    quarters = int(round(rotation / 90)) % 4 if rotation else stream_quarters
    return np.ascontiguousarray(np.rot90(image, quarters)) if quarters else image


def decode_video_audio(raw, *, sr, max_duration=None):
    """The sound track of a clip as a mono float32 waveform at ``sr`` Hz, or None when it has none.

    Parameters
    ----------
    raw : str, Path, bytes or ndarray
        A file path or the file's bytes; frames in an array have no sound (None).
    sr : int
        Sample rate of the returned waveform.
    max_duration : float, optional
        Only the first ``max_duration`` seconds are decoded.

    Returns
    -------
    ndarray of shape (n_samples,), dtype float32, or None
    """
    if isinstance(raw, np.ndarray):
        return None
    av = _import_av()
    with _open_video(raw, av) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        limit = None if max_duration is None else int(np.ceil(max_duration * sr))
        chunks, total = [], 0
        try:
            for frame in _DecodingBudget().frames_of(container, stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if limit is not None and total >= limit:
                    break
            else:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as exc:
            raise ValueError(f"corrupt or truncated sound track ({_av_reason(exc)})") from None
    if not chunks:
        return None
    waveform = np.concatenate(chunks)[:limit].astype(np.float32, copy=False)
    return waveform if waveform.size else None


def looks_like_video(head):
    """Whether ``head``, the first bytes of a file, start like a video container.

    Recognises MP4/MOV (``ftyp`` box, except still-image and audio brands
    such as HEIC, AVIF and M4A), Matroska/WebM (EBML) and AVI (12 bytes are
    enough). A Matroska file holding only sound passes this sniff and is
    refused by :func:`check_video_header`.

    Examples
    --------
    >>> from skmm.io import looks_like_video
    >>> looks_like_video(b"\\x00\\x00\\x00\\x20ftypisom"), looks_like_video(b"\\x00\\x00\\x00\\x1cftypavif")
    (True, False)
    >>> looks_like_video(b"\\x1aE\\xdf\\xa3...."), looks_like_video(b"RIFF\\x00\\x00\\x00\\x00AVI LIST")
    (True, True)
    """
    head = bytes(head[:16])
    return (
        (head[4:8] == b"ftyp" and head[8:12] not in _NOT_VIDEO_BRANDS)
        or head.startswith(b"\x1a\x45\xdf\xa3")
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
    )


def check_video_header(data, *, max_pixels=None):
    """Raise ``ValueError`` unless ``data`` is a video file with a video stream PyAV can open.

    Only the container's headers are read (no frame is decoded).

    Parameters
    ----------
    data : bytes
        The whole file.
    max_pixels : int, optional
        Refuse frames larger than this.

    Raises
    ------
    ValueError
        ``"not a readable video (<reason>)"``.
    """
    av = _import_av()
    try:
        with _open_video(bytes(data), av) as container:
            stream = _video_stream(container, max_pixels)
            _clip_span(container, stream)
    except ValueError as exc:
        reason = str(exc)
        raise ValueError(
            reason if reason.startswith("not a readable video") else f"not a readable video ({reason})"
        ) from None


def is_video_value(value):
    """Whether ``value`` is a clip held in memory: an array of frames ``(T, H, W, 3)``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.io import is_video_value
    >>> is_video_value(np.zeros((8, 4, 4, 3))), is_video_value(np.zeros((4, 4, 3)))
    (True, False)
    """
    return isinstance(value, np.ndarray) and value.ndim == 4 and value.shape[-1] == 3
