"""AudioMFCC: fixed-length MFCC (and chroma / spectral) statistics for a column of audio clips."""

import os
from numbers import Integral, Real
from types import SimpleNamespace

import numpy as np
from .._sklearn import Interval, StrOptions

from .._utils import resolve_device
from ..io import decode_audio, read_audio_source
from ._base import N_THREADS_CONSTRAINT, BaseEncoder
from ._bundle import shared_bundle

__all__ = ["AudioMFCC"]

#: frames in the Savitzky-Golay window of the deltas (librosa's default)
DELTA_WIDTH = 9
#: librosa's ``power_to_db`` defaults, used by ``librosa.feature.mfcc``
AMIN, TOP_DB = 1e-10, 80.0
DB_PER_NEPER = 10.0 / np.log(10.0)  # 10 * log10(x) == DB_PER_NEPER * ln(x)
ROLL_PERCENT = 0.85
SPECTRAL = ("centroid", "bandwidth", "rolloff", "flatness", "rms")
#: bump when the definition of the features changes, so that cached vectors are not reused
FEATURES_VERSION = "mfcc-stats-v1"


class AudioMFCC(BaseEncoder):
    """Summarise each audio clip as statistics of its MFCCs (and optionally chroma and spectral shape).

    Every clip is decoded to mono at ``sr`` Hz, cut to its first
    ``max_duration`` seconds, and turned into frame-level features: ``n_mfcc``
    MFCCs as computed by :func:`librosa.feature.mfcc` (Hann-windowed STFT with
    zero padding, Slaney mel filterbank, ``power_to_db`` with ``top_db=80``
    relative to the clip's own peak, orthonormal DCT-II), with ``deltas=True``
    their first and second derivatives (:func:`librosa.feature.delta`, width 9,
    ``mode="nearest"``), with ``chroma=True`` 12 chroma bins
    (:func:`librosa.feature.chroma_stft` with ``tuning=0``), with
    ``spectral=True`` the spectral centroid, bandwidth, 85 % rolloff, flatness
    and RMS of the magnitude spectrum. The output holds the mean and the
    standard deviation over time of every frame-level feature: one float32
    vector of fixed length per clip, whatever the clip's duration.

    Rows may be file paths (``str`` or :class:`pathlib.Path`; WAV, FLAC, OGG,
    MP3 and whatever else soundfile reads), the encoded bytes of such a file,
    ``(waveform, sample_rate)`` pairs (1-D, or 2-D with channels on either
    axis) or Hugging Face ``{"array": ..., "sampling_rate": ...}`` dicts.
    Multichannel audio is mixed down to mono, other sample rates are
    resampled. A missing row (None, NaN, empty string) gives a row of NaN.

    A 2-D array of numbers ``(n_clips, n_samples)`` is a batch of waveforms
    already at ``sr`` Hz, one clip per row (integers are PCM samples); a row
    of NaN is a missing clip. As for any scikit-learn transformer fitted on
    an array, ``n_features_in_`` is then ``n_samples`` and ``transform`` takes
    clips of that length: clips of other lengths go in a column of
    ``(waveform, sample_rate)`` pairs. An ``(n, 1)`` array of paths or bytes
    (object dtype) stays a column.

    Parameters
    ----------
    sr : int, default=16000
        Sample rate the audio is resampled to before analysis.
    n_mfcc : int, default=20
        Number of cepstral coefficients kept.
    n_fft : int, default=512
        FFT window length in samples (32 ms at 16 kHz).
    hop_length : int, default=160
        Samples between frames (10 ms at 16 kHz).
    n_mels : int, default=40
        Mel bands the power spectrum is pooled into.
    fmin : float, default=0.0
        Lowest frequency of the mel filterbank, in Hz.
    fmax : float, default=None
        Highest frequency of the mel filterbank; None means ``sr / 2``.
    deltas : bool, default=False
        Add the statistics of the MFCC deltas and delta-deltas.
    chroma : bool, default=False
        Add the statistics of 12 chroma bins (pitch classes).
    spectral : bool, default=False
        Add the statistics of spectral centroid, bandwidth, rolloff, flatness and RMS.
    max_duration : float, default=30.0
        Only the first ``max_duration`` seconds of a clip are read and analysed;
        None reads whole clips.
    backend : {"torch", "librosa"}, default="torch"
        ``"torch"`` computes whole batches at once (padded to the longest clip of
        the batch, statistics over each clip's own frames) on ``device``;
        ``"librosa"`` loops over the clips with librosa (the reference). The two
        agree within ``atol=1e-3, rtol=1e-5`` (:func:`numpy.allclose`) on every
        feature, per frame and in the summary; measured worst cases are 3e-5
        beyond ``rtol`` on summaries and 8e-4 on single MFCC frames of a loud
        tone over a -54 dB noise floor (float32 FFT round-off in the weak
        bins). Spectral bandwidth of a noise-free synthetic pure tone is
        ill-conditioned (round-off in far sidelobes, weighted by the squared
        distance to the centroid) and may differ by about 1 Hz.
    batch_size : int, default=64
        Clips computed together by the torch backend.
    n_threads : int or None, default=-1
        CPU threads the encoding uses: batches are encoded at once by up to
        4 workers sharing this many torch threads, set for the call and
        restored after it. Workers each on few threads keep their pace when
        other work shares the CPU, where one forward pass on many threads
        waits for its slowest thread at every step. -1 uses every available
        CPU torch may use in the calling thread (a budget set around the call
        holds), None encodes one batch at a time with torch's own setting.
        Ignored on CUDA. Features do not depend on it beyond float rounding.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available, else CPU (torch backend only).
    cache : "memory", path or None, default="memory"
        Where feature vectors are cached; see :mod:`skmm.cache`.
    on_error : {"raise", "missing"}, default="raise"
        What an unusable row does (unreadable file, empty clip, NaN samples):
        raise :class:`skmm.InputError` naming the row, or become a row of NaN
        (with one summary :class:`skmm.InputWarning`).
    verbose : int, default=1
        Show a progress bar when encoding takes more than a second.

    Attributes
    ----------
    n_features_in_ : int
        1 for a column; the number of samples per clip for a 2-D array of waveforms.
    feature_names_in_ : ndarray of str
        The column's name, when fitted on a one-column DataFrame.
    n_features_out_ : int
        ``2 * (n_mfcc * (3 if deltas else 1) + 12 * chroma + 5 * spectral)``.

    See Also
    --------
    AudioEncoder : embeddings from a pretrained audio transformer.
    ImageEncoder, TextEncoder, MultimodalFusion

    Examples
    --------
    >>> import numpy as np
    >>> from skmm import AudioMFCC
    >>> t = np.arange(16000) / 16000
    >>> clips = [(np.sin(2 * np.pi * 440 * t), 16000), None]
    >>> encoder = AudioMFCC(n_mfcc=13, spectral=True, verbose=0)
    >>> Z = encoder.fit_transform(clips)
    >>> Z.shape, Z.dtype
    ((2, 36), dtype('float32'))
    >>> encoder.get_feature_names_out()[[0, 1, 26]].tolist()
    ['mfcc0_mean', 'mfcc0_std', 'centroid_mean']
    >>> bool(np.isnan(Z[1]).all())
    True

    A 2-D array is a batch of waveforms at ``sr`` Hz, one clip per row:

    >>> waves = np.stack([np.sin(2 * np.pi * f * t) for f in (220, 440, 880)])
    >>> encoder.fit_transform(waves).shape, encoder.n_features_in_
    ((3, 36), 16000)
    """

    _parameter_constraints = {
        **BaseEncoder._parameter_constraints,
        "n_threads": N_THREADS_CONSTRAINT,
        "sr": [Interval(Integral, 1000, None, closed="left")],
        "n_mfcc": [Interval(Integral, 1, None, closed="left")],
        "n_fft": [Interval(Integral, 16, None, closed="left")],
        "hop_length": [Interval(Integral, 1, None, closed="left")],
        "n_mels": [Interval(Integral, 1, None, closed="left")],
        "fmin": [Interval(Real, 0, None, closed="left")],
        "fmax": [None, Interval(Real, 0, None, closed="neither")],
        "deltas": ["boolean"],
        "chroma": ["boolean"],
        "spectral": ["boolean"],
        "max_duration": [None, Interval(Real, 0, None, closed="neither")],
        "backend": [StrOptions({"torch", "librosa"})],
    }
    _kind = "audio"
    _matrix_rows = "waveform"

    def __init__(
        self,
        *,
        sr=16000,
        n_mfcc=20,
        n_fft=512,
        hop_length=160,
        n_mels=40,
        fmin=0.0,
        fmax=None,
        deltas=False,
        chroma=False,
        spectral=False,
        max_duration=30.0,
        backend="torch",
        batch_size=64,
        n_threads=-1,
        device="auto",
        cache="memory",
        on_error="raise",
        verbose=1,
    ):
        self.sr = sr
        self.n_mfcc = n_mfcc
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.fmin = fmin
        self.fmax = fmax
        self.deltas = deltas
        self.chroma = chroma
        self.spectral = spectral
        self.max_duration = max_duration
        self.backend = backend
        self.batch_size = batch_size
        self.n_threads = n_threads
        self.device = device
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _check_params(self):
        if self.n_mfcc > self.n_mels:
            raise ValueError(
                f"n_mfcc={self.n_mfcc} cannot exceed n_mels={self.n_mels}: the cepstrum of "
                f"{self.n_mels} mel bands has {self.n_mels} coefficients. Lower n_mfcc or raise n_mels."
            )
        top = self.sr / 2 if self.fmax is None else self.fmax
        if top > self.sr / 2 or self.fmin >= top:
            raise ValueError(
                f"expected 0 <= fmin < fmax <= sr / 2 = {self.sr / 2:g} Hz, got fmin={self.fmin!r}, "
                f"fmax={self.fmax!r}; use fmax=None for sr / 2."
            )

    # ------------------------------------------------------------------ features

    def _frame_feature_names(self):
        names = [f"mfcc{i}" for i in range(self.n_mfcc)]
        if self.deltas:
            names += [f"delta{i}" for i in range(self.n_mfcc)]
            names += [f"ddelta{i}" for i in range(self.n_mfcc)]
        if self.chroma:
            names += [f"chroma{i}" for i in range(12)]
        if self.spectral:
            names += list(SPECTRAL)
        return names

    def get_feature_names_out(self, input_features=None):
        """Names of the output features: ``"<feature>_mean"`` and ``"<feature>_std"``.

        Features are ``mfcc<i>``, then with ``deltas=True`` ``delta<i>`` and
        ``ddelta<i>`` (delta-delta), with ``chroma=True`` ``chroma<k>``
        (k = 0 is C), with ``spectral=True`` ``centroid``, ``bandwidth``,
        ``rolloff``, ``flatness`` and ``rms``.

        Returns
        -------
        ndarray of str
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "n_features_out_")
        names = [f"{name}_{stat}" for name in self._frame_feature_names() for stat in ("mean", "std")]
        return np.asarray(names, dtype=object)

    # ------------------------------------------------------------------ BaseEncoder hooks

    def _load_bundle(self):
        if self.backend == "librosa":
            return SimpleNamespace(device="cpu")
        device = resolve_device(self.device)
        key = ("audio-mfcc", self.sr, self.n_fft, self.n_mels, self.fmin, self.fmax, self.n_mfcc, device)
        return shared_bundle(key, lambda: _torch_tables(self, device))

    def _model_identity(self, bundle):
        return FEATURES_VERSION

    def _output_dim(self, bundle):
        return 2 * len(self._frame_feature_names())

    def _read(self, value):
        return read_audio_source(value)

    def _rows_of_matrix(self, X, bundle):
        return waveform_rows(X, self.sr)

    def _use_decode_threads(self, raws):
        # files and bytes are worth reading in threads; in-memory waveforms are not
        return any(not isinstance(raw, tuple) for raw in raws)

    def _batch_order(self, raws):
        return np.argsort([_size_hint(raw) for raw in raws], kind="stable")

    def _decode(self, raw, bundle):
        return decode_audio(raw, sr=self.sr, max_duration=self.max_duration)

    def _encode_batch(self, items, bundle):
        if self.backend == "librosa":
            return np.stack([_summary(self._librosa_frames(y)) for y in items])
        return self._torch_summary(items, bundle)

    # ------------------------------------------------------------------ librosa (reference)

    def _librosa_frames(self, y):
        """Frame-level features of one clip, shape ``(n_frame_features, n_frames)``."""
        import warnings

        import librosa

        stft = dict(n_fft=self.n_fft, hop_length=self.hop_length)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="n_fft=.*too large")
            mfcc = librosa.feature.mfcc(
                y=y, sr=self.sr, n_mfcc=self.n_mfcc, n_mels=self.n_mels,
                fmin=self.fmin, fmax=self.fmax, **stft,
            )
            rows = [mfcc]
            if self.deltas:
                rows += [librosa.feature.delta(mfcc, width=DELTA_WIDTH, order=k, mode="nearest")
                         for k in (1, 2)]
            if self.chroma or self.spectral:
                magnitude = np.abs(librosa.stft(y, center=True, pad_mode="constant", **stft))
            if self.chroma:
                rows.append(librosa.feature.chroma_stft(S=magnitude**2, sr=self.sr, tuning=0.0, **stft))
            if self.spectral:
                f = librosa.feature
                rows += [
                    f.spectral_centroid(S=magnitude, sr=self.sr, **stft),
                    f.spectral_bandwidth(S=magnitude, sr=self.sr, **stft),
                    f.spectral_rolloff(S=magnitude, sr=self.sr, roll_percent=ROLL_PERCENT, **stft),
                    f.spectral_flatness(S=magnitude, amin=AMIN),
                    f.rms(S=magnitude, frame_length=self.n_fft, hop_length=self.hop_length),
                ]
        return np.concatenate(rows, axis=0)

    # ------------------------------------------------------------------ torch (batched)

    def _torch_frames(self, waves, tables):
        """Frame-level features of a padded batch: ``(batch, n_frame_features, n_frames)`` and the valid-frame mask."""
        import torch

        device = tables.device
        lengths = np.fromiter((len(w) for w in waves), dtype=np.int64, count=len(waves))
        half = self.n_fft // 2  # librosa's center=True: frames centred on multiples of the hop, zeros beyond
        padded = np.zeros((len(waves), int(lengths.max()) + 2 * half), dtype=np.float32)
        for row, wave in zip(padded, waves):
            row[half : half + len(wave)] = wave
        # the STFT as torch.stft computes it, laid out (batch, frames, bins): then each filterbank
        # is one matrix product over every frame of the batch
        frames = torch.from_numpy(padded).to(device).unfold(-1, self.n_fft, self.hop_length)
        spectrum = torch.fft.rfft(frames.contiguous().mul_(tables.window))
        parts = torch.view_as_real(spectrum).square_()  # in place; abs() is 3x slower
        power = torch.add(parts[..., 0], parts[..., 1])  # (batch, frames, bins)
        n_frames = torch.from_numpy(1 + lengths // self.hop_length).to(device)
        valid = torch.arange(power.shape[1], device=device) < n_frames[:, None]  # (batch, frames)

        # power_to_db(ref=1, amin=1e-10, top_db=80) in natural-log units (the factor 10 / ln 10 is
        # folded into the DCT matrix); the floor follows each clip's own peak over its valid frames
        log_mel = (power @ tables.mel.T).clamp_(min=AMIN).log_()  # (batch, frames, n_mels)
        peak = log_mel.amax(dim=2).masked_fill_(~valid, -torch.inf).amax(dim=1)
        log_mel = log_mel.clamp_(min=(peak - TOP_DB / DB_PER_NEPER)[:, None, None])
        mfcc = (log_mel @ tables.dct.T).mT  # (batch, n_mfcc, frames)
        power = power.mT  # (batch, bins, frames), as librosa lays it out
        rows = [mfcc]
        if self.deltas:
            # mode="nearest": repeat each clip's last valid frame past its end, and the first before it
            last = torch.minimum(torch.arange(mfcc.shape[-1], device=device), n_frames[:, None] - 1)
            held = mfcc.gather(2, last[:, None, :].expand_as(mfcc))
            half = DELTA_WIDTH // 2
            held = torch.nn.functional.pad(held, (half, half), mode="replicate")
            windows = held.unfold(-1, DELTA_WIDTH, 1)  # (batch, n_mfcc, frames, width)
            rows += list((windows @ tables.savgol).movedim(-1, 0))
        if self.chroma:
            raw = (power.mT @ tables.chroma.T).mT
            peak = raw.amax(dim=1, keepdim=True)
            rows.append(raw / torch.where(peak < tables.tiny, 1.0, peak))
        if self.spectral:
            rows.append(_torch_spectral(power.sqrt(), power, tables, self.n_fft))
        return torch.cat(rows, dim=1), valid

    def _torch_summary(self, waves, tables):
        import torch

        with torch.inference_mode():
            frames, valid = self._torch_frames(waves, tables)
            frames = frames.double()  # float64 sums: a constant feature gets std 0, whatever the batch
            weights = valid.double()
            weights = (weights / weights.sum(1, keepdim=True))[:, :, None]  # (batch, frames, 1)
            mean = frames @ weights  # (batch, features, 1)
            std = ((frames - mean).square_() @ weights).sqrt_()
            return torch.cat([mean, std], dim=-1).flatten(1).float().cpu().numpy()


def waveform_rows(X, sr):
    """The rows of a 2-D array of waveforms at ``sr`` Hz as ``(waveform, sr)`` pairs; a row of NaN is missing."""
    return [None if np.isnan(row).all() else (row, sr) for row in X]


def _summary(frames):
    """Mean and std over time of every row, interleaved: ``[f0_mean, f0_std, f1_mean, ...]``."""
    frames = frames.astype(np.float64)
    return np.stack([frames.mean(axis=1), frames.std(axis=1)], axis=1).ravel().astype(np.float32)


def _size_hint(raw):
    """A rough clip length used to batch clips of similar length together."""
    if isinstance(raw, tuple):
        return max(np.shape(raw[0]), default=0) / raw[1]
    if isinstance(raw, bytes):
        return len(raw)
    try:
        return os.path.getsize(raw)
    except OSError:
        return 0


def _torch_spectral(magnitude, power, tables, n_fft):
    """Centroid, bandwidth, rolloff, flatness and RMS per frame, as librosa computes them from ``|STFT|``."""
    import torch

    freq = tables.freq[:, None]
    total = magnitude.sum(1, keepdim=True)
    share = magnitude / torch.where(total < tables.tiny, 1.0, total)
    centroid = (share * freq).sum(1)
    bandwidth = (share * (freq - centroid[:, None, :]).square()).sum(1).sqrt()
    cumulative = magnitude.cumsum(1)
    reached = cumulative >= ROLL_PERCENT * cumulative[:, -1:, :]
    rolloff = torch.where(reached, freq, torch.inf).amin(1)
    floor = torch.clamp(power, min=AMIN)
    flatness = floor.log().mean(1).exp() / floor.mean(1)
    edges = power.clone()
    edges[:, 0] *= 0.5
    if n_fft % 2 == 0:
        edges[:, -1] *= 0.5
    rms = (2.0 * edges.sum(1) / n_fft**2).sqrt()
    return torch.stack([centroid, bandwidth, rolloff, flatness, rms], dim=1)


def _torch_tables(encoder, device):
    """The bundle of the torch backend: its constant matrices, built once per configuration and device."""
    import librosa
    import scipy.fft
    import scipy.signal
    import torch

    def tensor(array):
        return torch.as_tensor(np.asarray(array, dtype=np.float32), device=device)

    mel = librosa.filters.mel(
        sr=encoder.sr, n_fft=encoder.n_fft, n_mels=encoder.n_mels, fmin=encoder.fmin, fmax=encoder.fmax
    )
    dct = scipy.fft.dct(np.eye(encoder.n_mels), type=2, norm="ortho", axis=0)[: encoder.n_mfcc]
    dct = dct * DB_PER_NEPER  # the cepstrum of dB values, taken from natural logs
    savgol = np.stack(
        [scipy.signal.savgol_coeffs(DELTA_WIDTH, order, deriv=order, use="dot") for order in (1, 2)],
        axis=1,
    )
    return SimpleNamespace(
        device=device,
        window=torch.hann_window(encoder.n_fft, periodic=True, device=device),
        mel=tensor(mel),
        dct=tensor(dct),
        savgol=tensor(savgol),
        chroma=tensor(librosa.filters.chroma(sr=encoder.sr, n_fft=encoder.n_fft, tuning=0.0)),
        freq=tensor(librosa.fft_frequencies(sr=encoder.sr, n_fft=encoder.n_fft)),
        tiny=float(np.finfo(np.float32).tiny),
    )
