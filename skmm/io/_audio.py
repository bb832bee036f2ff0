"""Reading audio: file paths, bytes, ``(waveform, sample_rate)`` and Hugging Face dicts (soundfile).

``read_audio_source`` returns ``(content, raw)`` (a path's content is a
digest of the file), ``decode_audio`` a mono float32 waveform at the rate asked
for; ``looks_like_audio``, ``check_audio_header`` and
``is_audio_value`` are the cheap tests :mod:`skmm.kinds` points at. The sound
track of a video file is read by :func:`skmm.io.decode_video_audio`.
"""

import io

import numpy as np

from ._common import _array_content, _reason, _streamed_source

__all__ = [
    "read_audio_source",
    "decode_audio",
    "looks_like_audio",
    "check_audio_header",
    "is_audio_value",
]


def read_audio_source(value):
    """Return ``(content, raw)`` for one clip: a path, bytes, or ``(waveform, sample_rate)``.

    A dict with ``"array"`` and ``"sampling_rate"`` keys (the Hugging Face
    datasets layout) is accepted as a waveform too.
    """
    source = _streamed_source(value, "an audio")
    if source is not None:
        return source
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
