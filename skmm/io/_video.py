"""Reading video: file paths, bytes and arrays of frames ``(T, H, W, 3)`` (PyAV, imported when first needed).

``read_video_source`` returns ``(content, raw)``; ``decode_video_frames``
samples frames by time, seeking instead of decoding the whole clip, and
``decode_video_audio`` reads a clip's sound track as a mono waveform like
:func:`skmm.io.decode_audio`'s. ``looks_like_video``, ``check_video_header``
and ``is_video_value`` are the cheap tests :mod:`skmm.kinds` points at.

Bytes are opened only with the demuxer their first bytes call for
(:func:`video_container`). Decoding one clip is bounded: headers that claim
implausible sizes are refused before decoding (``MAX_VIDEO_SECONDS``,
``MAX_FRAME_RATE``, ``MAX_DECLARED_FRAMES``), and :class:`_DecodingBudget`
caps the packets read and decoded and the pixels decoded
(``MAX_DEMUXED_PACKETS``, ``MAX_DECODED_PACKETS``, ``MAX_DECODED_PIXELS``)
and stops at the deadline set with :func:`decoding_deadline`.
"""

import contextlib
import contextvars
import io

import numpy as np

from ._common import _array_content, _reason, _streamed_source
from ._image import _image_format, looks_like_image

__all__ = [
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
    source = _streamed_source(value, "a video")
    if source is not None:
        return source
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
    from .._threads import available_cpus

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
