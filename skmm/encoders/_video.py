"""VideoEncoder: sampled frames embedded by ImageEncoder's backbone, and the sound track's MFCC statistics."""

import os
from numbers import Integral, Real
from types import SimpleNamespace

import numpy as np
from sklearn.base import clone
from .._sklearn import Interval, StrOptions

from .._threads import available_cpus
from .._utils import resolve_device
from ..io import decode_video_audio, decode_video_frames, read_video_source
from ._audio import FEATURES_VERSION as AUDIO_FEATURES_VERSION
from ._audio import AudioMFCC
from ._base import N_THREADS_CONSTRAINT, BaseEncoder
from ._image import DEFAULT_IMAGE_MODEL, ImageEncoder

__all__ = ["VideoEncoder"]

#: frames decoded for a transformers backbone are scaled to this shorter side (its processor resizes them)
DECODE_SIDE = 384
#: 8K UHD: larger frames are refused before decoding
DEFAULT_MAX_PIXELS = 7680 * 4320
#: frames embedded together in one forward pass, on CUDA and on CPU (where larger batches
#: spill the caches: 8 frames of 224 px ran faster per frame than 32 on the 2-core machine)
FRAME_BATCH = {"cuda": 64, "cpu": 8}
#: bump when the definition of the features changes, so that cached vectors are not reused
FEATURES_VERSION = "video-v1"
#: clips decoded at once by the encoder's worker threads (skmm.encoders._encoding)
DECODE_WORKERS = 4
_STATISTICS = {"mean": ("mean",), "meanmax": ("mean", "max"), "meanstd": ("mean", "std")}


class VideoEncoder(BaseEncoder):
    """Encode a column of video clips: embedded frames pooled over time, and the sound track.

    ``frames`` frames are sampled from each clip, uniformly over its first
    ``max_duration`` seconds (the centre of each of ``frames`` equal
    segments) or every ``1 / fps`` seconds. The decoder seeks to each sampled
    timestamp instead of decoding the whole file, uses timestamps (variable
    frame rates are sampled by time) and applies the rotation recorded in the
    file; ``seek="keyframe"`` takes the nearest keyframes instead (faster,
    approximate). The frames are embedded in batches by the same backbone as
    :class:`ImageEncoder` (one loaded model shared by both) and pooled over
    time. With ``audio``, the sound track is summarised as
    :class:`AudioMFCC` does; a clip without sound gets a NaN audio block.

    Rows may be file paths (MP4, MOV, M4V, WebM, MKV, AVI, anything FFmpeg
    reads), the bytes of such a file, or frames as an array ``(T, H, W, 3)``
    (uint8, or floats in [0, 1]; sampled by index, no sound). A missing row
    (None, NaN, empty string) gives a row of NaN. Decoding needs PyAV:
    ``pip install "skmm[video]"``.

    **One modality or two.** The features are named ``frames_*`` and
    ``audio_*``. One entry ``("clip", VideoEncoder(), "clip")`` in
    :class:`MultimodalFusion` gives one modality holding both (the
    classifier imputes a missing sound track with the training mean). Two
    entries on the same column, ``("clip_frames", VideoEncoder(part="frames"),
    "clip")`` and ``("clip_audio", VideoEncoder(part="audio"), "clip")``, give
    two modalities, and a clip without sound is then an absent modality that
    the classifier masks. Each part decodes only its own stream.

    Parameters
    ----------
    frames : int, default=8
        Frames taken from each clip (the most, with ``fps``). A clip with
        fewer frames repeats them.
    fps : float, default=None
        Take one frame every ``1 / fps`` seconds from the start instead (at
        most ``frames`` of them: a longer clip is sampled over its first
        ``frames / fps`` seconds).
    seek : {"exact", "keyframe"}, default="exact"
        ``"exact"``: the first frame at or after each sampled time (decoded
        from the keyframe before it). ``"keyframe"``: the keyframe nearest to
        each sampled time, and only keyframes are decoded; several times
        faster, but off by up to half the keyframe interval (a clip with a
        single keyframe gives that frame for every sample).
    image_model : str, default="efficientnet-lite0"
        The image backbone, as :class:`ImageEncoder`'s ``model``.
    audio : bool or AudioMFCC, default=True
        Summarise the sound track: True uses ``AudioMFCC()``'s features, an
        :class:`AudioMFCC` chooses them (``n_mfcc``, ``deltas``, ``chroma``,
        ``spectral``, ``sr``, ``max_duration``); False leaves sound out.
    part : {"all", "frames", "audio"}, default="all"
        Which features to output: both blocks, or one of them (to make two
        fusion modalities from one column).
    pooling : {"mean", "meanmax", "meanstd"}, default="mean"
        Statistics of the frame embeddings over time: the mean, or the mean
        with the maximum or the standard deviation.
    max_duration : float, default=600.0
        Frames are sampled from the first ``max_duration`` seconds only; None
        samples whole clips. Sound is read up to the audio features'
        ``max_duration`` (30 s by default).
    max_pixels : int, default=33_177_600
        Clips whose frames claim more pixels (8K UHD) are refused before
        anything is decoded.
    batch_size : int, default=4
        Clips decoded together (in worker threads, while the model embeds
        the previous batch) and embedded in one call: their frames go through
        the model 8 at a time on CPU, 64 at a time on CUDA.
    n_threads : int or None, default=-1
        CPU threads the embedding uses: batches of clips are embedded at once
        by up to 4 workers sharing this many torch threads, set for the call
        and restored after it (as :class:`ImageEncoder` does). -1 uses every
        available CPU torch may use in the calling thread, None embeds one
        batch at a time with torch's own setting. Ignored on CUDA. Features
        do not depend on it beyond float rounding.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available, else CPU.
    cache : "memory", path or None, default="memory"
        Where clip vectors are cached; see :mod:`skmm.cache`.
    on_error : {"raise", "missing"}, default="raise"
        What an unreadable clip does (corrupt, truncated, no video stream, too
        large): raise :class:`skmm.InputError` naming the row, or become a row
        of NaN (with one summary :class:`skmm.InputWarning`).
    verbose : int, default=1
        Show a progress bar when encoding takes more than a second.

    Attributes
    ----------
    n_features_in_ : int
        Always 1: one column is encoded.
    feature_names_in_ : ndarray of str
        The column's name, when fitted on a one-column DataFrame.
    n_features_out_ : int
        Width of the output: the image embedding times the number of pooling
        statistics, plus the audio features.

    See Also
    --------
    ImageEncoder, AudioMFCC, MultimodalFusion

    Examples
    --------
    >>> import numpy as np
    >>> from skmm import VideoEncoder
    >>> clips = [np.zeros((16, 32, 32, 3), dtype=np.uint8), None]
    >>> encoder = VideoEncoder(frames=4, audio=False, verbose=0)
    >>> Z = encoder.fit_transform(clips)
    >>> Z.shape, encoder.get_feature_names_out()[0]
    ((2, 1280), 'frames_img0_mean')
    >>> bool(np.isnan(Z[1]).all())
    True
    """

    _parameter_constraints = {
        **BaseEncoder._parameter_constraints,
        "frames": [Interval(Integral, 1, None, closed="left")],
        "fps": [None, Interval(Real, 0, None, closed="neither")],
        "seek": [StrOptions({"exact", "keyframe"})],
        "image_model": [str, os.PathLike],
        "audio": ["boolean", AudioMFCC],
        "part": [StrOptions({"all", "frames", "audio"})],
        "pooling": [StrOptions(set(_STATISTICS))],
        "max_duration": [None, Interval(Real, 0, None, closed="neither")],
        "max_pixels": [Interval(Integral, 1, None, closed="left")],
        "n_threads": N_THREADS_CONSTRAINT,
    }
    _kind = "video"

    def __init__(
        self,
        *,
        frames=8,
        fps=None,
        seek="exact",
        image_model=DEFAULT_IMAGE_MODEL,
        audio=True,
        part="all",
        pooling="mean",
        max_duration=600.0,
        max_pixels=DEFAULT_MAX_PIXELS,
        batch_size=4,
        n_threads=-1,
        device="auto",
        cache="memory",
        on_error="raise",
        verbose=1,
    ):
        self.frames = frames
        self.fps = fps
        self.seek = seek
        self.image_model = image_model
        self.audio = audio
        self.part = part
        self.pooling = pooling
        self.max_duration = max_duration
        self.max_pixels = max_pixels
        self.batch_size = batch_size
        self.n_threads = n_threads
        self.device = device
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _check_params(self):
        if self.part == "audio" and self.audio is False:
            raise ValueError(
                "part='audio' outputs the sound track's features, but audio=False leaves sound "
                "out; pass audio=True (or an AudioMFCC), or part='frames'."
            )
        sound = self._sound()
        if sound is not None:
            sound._check_params()

    # ------------------------------------------------------------------ the two blocks

    def _has_frames(self):
        return self.part != "audio"

    def _sound(self):
        """The AudioMFCC computing the audio block (None without one), on this encoder's device."""
        if self.part == "frames" or self.audio is False:
            return None
        features = AudioMFCC() if self.audio is True else clone(self.audio)
        return features.set_params(device=self.device, cache=None, verbose=0)

    def _statistics(self):
        return _STATISTICS[self.pooling]

    def _frame_names(self, image_dim):
        if not self._has_frames():
            return []
        return [f"frames_img{i}_{stat}" for stat in self._statistics() for i in range(image_dim)]

    def _audio_names(self):
        sound = self._sound()
        if sound is None:
            return []
        return [f"audio_{name}_{stat}" for name in sound._frame_feature_names() for stat in ("mean", "std")]

    def get_feature_names_out(self, input_features=None):
        """Names of the output features: ``frames_img<i>_<stat>``, then ``audio_<feature>_<stat>``.

        ``<stat>`` of the frames is each statistic of ``pooling``; the audio
        features are those of :meth:`AudioMFCC.get_feature_names_out`.

        Returns
        -------
        ndarray of str
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "n_features_out_")
        return np.asarray(self._frame_names(self._image_dim) + self._audio_names(), dtype=object)

    # ------------------------------------------------------------------ BaseEncoder hooks

    def _load_bundle(self):
        image = None
        if self._has_frames():  # ImageEncoder's own bundle: the same key, the same loaded model
            image = ImageEncoder(self.image_model, device=self.device)._load_bundle()
        sound = self._sound()
        return SimpleNamespace(
            image=image,
            device=resolve_device(self.device),
            sound=sound,
            sound_tables=None if sound is None else sound._load_bundle(),
        )

    def _model_identity(self, bundle):
        image = f"{self.image_model}@{bundle.image.fingerprint}" if bundle.image is not None else "-"
        return f"{FEATURES_VERSION}|{image}|{AUDIO_FEATURES_VERSION}"

    def _output_dim(self, bundle):
        self._image_dim = bundle.image.dim if bundle.image is not None else 0
        return len(self._frame_names(self._image_dim)) + len(self._audio_names())

    def _read(self, value):
        return read_video_source(value)

    def _decode(self, raw, bundle):
        frames = sound = None
        if bundle.image is not None:
            from PIL import Image

            size = bundle.image.image_size
            pictures = decode_video_frames(
                raw, frames=self.frames, fps=self.fps, max_duration=self.max_duration,
                max_pixels=self.max_pixels, size=size or DECODE_SIDE, seek=self.seek,
                threads=_decoder_threads(),
            )
            frames = [bundle.image.preprocess(Image.fromarray(picture), size) for picture in pictures]
        if bundle.sound is not None:
            limits = [d for d in (bundle.sound.max_duration, self.max_duration) if d is not None]
            sound = decode_video_audio(raw, sr=bundle.sound.sr, max_duration=min(limits, default=None))
        return SimpleNamespace(frames=frames, sound=sound)

    def _encode_batch(self, items, bundle):
        output = np.full((len(items), self.n_features_out_), np.nan, dtype=np.float32)
        width = 0
        if bundle.image is not None:
            pooled = self._pool_frames([item.frames for item in items], bundle.image, bundle.device)
            width = pooled.shape[1]
            output[:, :width] = pooled
        with_sound = [row for row, item in enumerate(items) if item.sound is not None]
        if with_sound:
            waves = [items[row].sound for row in with_sound]
            output[with_sound, width:] = bundle.sound._encode_batch(waves, bundle.sound_tables)
        return output

    def _pool_frames(self, clips, image, device):
        """Embed every frame of ``clips`` in batches and pool each clip's over time.

        On CPU this runs in one of the encoder's workers, under its share of
        ``n_threads`` (see :meth:`BaseEncoder._encode_workers`).
        """
        flat = [frame for frames in clips for frame in frames]
        step = FRAME_BATCH["cuda" if str(device).startswith("cuda") else "cpu"]
        embedded = np.concatenate(
            [image.encode(flat[start : start + step]) for start in range(0, len(flat), step)]
        ).astype(np.float64)
        ends = np.cumsum([len(frames) for frames in clips])
        pooled = []
        for clip in np.split(embedded, ends[:-1]):
            stats = {"mean": clip.mean(0), "max": clip.max(0), "std": clip.std(0)}
            pooled.append(np.concatenate([stats[name] for name in self._statistics()]))
        return np.stack(pooled).astype(np.float32)

    def _is_usable(self, vector):
        """The frames must be finite; the sound block may be all NaN (a clip without sound)."""
        width = len(self._frame_names(self._image_dim))
        frames, sound = vector[:width], vector[width:]
        return bool(np.isfinite(frames).all()) and bool(
            np.isfinite(sound).all() or np.isnan(sound).all()
        )


def _decoder_threads():
    """FFmpeg threads per clip: the CPUs this process may use, shared by the clips decoded at once."""
    cpus = available_cpus()
    return max(1, cpus // min(DECODE_WORKERS, cpus))

