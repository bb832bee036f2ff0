"""AudioEncoder: a frozen, pretrained transformers audio model turning a column of clips into embeddings."""

import math
import os
from numbers import Integral, Real
from types import SimpleNamespace

import numpy as np
from .._sklearn import Interval, StrOptions

from .._utils import resolve_device
from ..io import decode_audio, read_audio_source
from ._audio import _size_hint, waveform_rows
from ._base import BaseEncoder
from ._bundle import shared_bundle, weights_fingerprint
from .._torch import inference_context, masked_mean, quiet_transformers

__all__ = ["AudioEncoder"]

DEFAULT_AUDIO_MODEL = "facebook/wav2vec2-base"


class AudioEncoder(BaseEncoder):
    """Encode a column of audio clips with a frozen, pretrained transformers audio model.

    Each clip is decoded to mono at the model's sampling rate, cut to its first
    ``max_duration`` seconds, prepared by the model's own feature extractor
    (``transformers.AutoFeatureExtractor``) and run through
    ``transformers.AutoModel``. The hidden states of the last layer are pooled
    over time into one vector per clip, over the clip's own frames only:

    * wav2vec2, HuBERT, WavLM, data2vec-audio: when the feature extractor
      returns an attention mask, clips of a batch are padded to the longest
      and the mask is passed to the model; when it does not (e.g.
      ``wav2vec2-base``, whose group norm would see the padding), only clips
      of equal length share a forward pass, so a clip's embedding never
      depends on the other clips of its batch.
    * Whisper and other encoder-decoder models: the encoder only; the frames
      of the 30 s window that hold padding are left out of the pooling.
    * AST: the mean of all patch tokens of its fixed-length window.
    * CLAP: ``get_audio_features`` (the projected, normalised audio embedding);
      ``pooling`` does not apply.

    Rows are what :class:`AudioMFCC` takes: file paths, encoded bytes,
    ``(waveform, sample_rate)`` pairs or ``{"array", "sampling_rate"}`` dicts.
    A missing row gives a row of NaN. As for :class:`AudioMFCC`, a 2-D array
    of numbers ``(n_clips, n_samples)`` is a batch of waveforms, here at the
    model's sampling rate (``sr``, or the feature extractor's when None), and
    ``n_features_in_`` is then ``n_samples``.

    Parameters
    ----------
    model : str or path, default="facebook/wav2vec2-base"
        A Hugging Face model id (downloaded on first use) or a local folder
        holding the model and its feature extractor (``save_pretrained``).
    pooling : {"mean", "max"}, default="mean"
        How the frame embeddings of a clip become one vector.
    sr : int, default=None
        Sample rate clips are resampled to; None uses the feature extractor's
        ``sampling_rate``, and any other value must equal it.
    max_duration : float, default=30.0
        Only the first ``max_duration`` seconds of a clip are read; None reads
        whole clips.
    batch_size : int, default=8
        Clips per forward pass.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available (with bfloat16 autocast), else CPU.
    cache : "memory", path or None, default="memory"
        Where embeddings are cached; see :mod:`skmm.cache`.
    on_error : {"raise", "missing"}, default="raise"
        What an unusable row does: raise :class:`skmm.InputError` naming the
        row, or become a row of NaN (with one summary warning).
    verbose : int, default=1
        Show a progress bar when encoding takes more than a second.

    Attributes
    ----------
    n_features_in_ : int
        1 for a column; the number of samples per clip for a 2-D array of waveforms.
    feature_names_in_ : ndarray of str
        The column's name, when fitted on a one-column DataFrame.
    n_features_out_ : int
        Width of the embedding (the model's hidden size).

    See Also
    --------
    AudioMFCC : hand-crafted MFCC statistics, no model needed.
    ImageEncoder, TextEncoder, MultimodalFusion

    Examples
    --------
    A tiny randomly initialised wav2vec2 saved to a folder stands in for a
    pretrained checkpoint here:

    >>> import tempfile
    >>> import numpy as np
    >>> from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model
    >>> from skmm import AudioEncoder
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = tmp.name
    >>> config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    ...                         intermediate_size=32, conv_dim=(8, 8), conv_stride=(5, 4),
    ...                         conv_kernel=(10, 8), num_conv_pos_embeddings=8,
    ...                         num_conv_pos_embedding_groups=2)
    >>> Wav2Vec2Model(config).save_pretrained(folder)
    >>> _ = Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(folder)
    >>> clips = [(np.random.default_rng(0).normal(size=8000), 16000), None]
    >>> Z = AudioEncoder(folder, verbose=0).fit_transform(clips)
    >>> Z.shape, Z.dtype
    ((2, 16), dtype('float32'))
    >>> bool(np.isnan(Z[1]).all())
    True
    >>> tmp.cleanup()
    """

    _parameter_constraints = {
        **BaseEncoder._parameter_constraints,
        "model": [str, os.PathLike],
        "pooling": [StrOptions({"mean", "max"})],
        "sr": [None, Interval(Integral, 1000, None, closed="left")],
        "max_duration": [None, Interval(Real, 0, None, closed="neither")],
    }
    _feature_prefix = "aud"
    _kind = "audio"
    _matrix_rows = "waveform"

    def __init__(
        self,
        model=DEFAULT_AUDIO_MODEL,
        *,
        pooling="mean",
        sr=None,
        max_duration=30.0,
        batch_size=8,
        device="auto",
        cache="memory",
        on_error="raise",
        verbose=1,
    ):
        self.model = model
        self.pooling = pooling
        self.sr = sr
        self.max_duration = max_duration
        self.batch_size = batch_size
        self.device = device
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _load_bundle(self):
        device = resolve_device(self.device)
        name = str(self.model)
        bundle = shared_bundle(("audio", name, device), lambda: _load_audio_model(name, device))
        if self.sr is not None and self.sr != bundle.sr:
            raise ValueError(
                f"sr={self.sr} but the feature extractor of {name!r} expects audio at "
                f"{bundle.sr} Hz; leave sr=None to use the model's rate."
            )
        return bundle

    def _model_identity(self, bundle):
        return f"{self.model}@{bundle.fingerprint}"

    def _output_dim(self, bundle):
        return bundle.dim

    def _read(self, value):
        return read_audio_source(value)

    def _rows_of_matrix(self, X, bundle):
        return waveform_rows(X, bundle.sr)

    def _batch_order(self, raws):
        return np.argsort([_size_hint(raw) for raw in raws], kind="stable")

    def _decode(self, raw, bundle):
        waveform = decode_audio(raw, sr=bundle.sr, max_duration=self.max_duration)
        return bundle.prepare(waveform), waveform.size

    def _encode_batch(self, items, bundle):
        output = np.empty((len(items), bundle.dim), dtype=np.float32)
        groups = {}
        for position, (features, _) in enumerate(items):
            key = None if bundle.pads else tuple(value.shape for value in features.values())
            groups.setdefault(key, []).append(position)
        for rows in groups.values():
            output[rows] = bundle.encode([items[i] for i in rows], self.pooling)
        return output


def _load_audio_model(name, device):
    import torch
    from transformers import AutoFeatureExtractor, AutoModel

    with quiet_transformers():
        extractor = AutoFeatureExtractor.from_pretrained(name)
        network = AutoModel.from_pretrained(name).eval().to(device)
    is_clap = hasattr(network, "get_audio_features")
    body = network.get_encoder() if getattr(network.config, "is_encoder_decoder", False) else network
    sr = int(extractor.sampling_rate)
    window = getattr(extractor, "n_samples", None)  # Whisper pads every clip to a fixed window
    shortest = 1 if window else _shortest_clip(body)

    def prepare(waveform):
        if waveform.size < shortest:
            raise ValueError(
                f"clip of {waveform.size} samples is shorter than the {shortest} samples "
                f"({1000 * shortest / sr:g} ms at {sr} Hz) that {name!r} needs for one frame; "
                "pad it with silence or drop it"
            )
        features = extractor(waveform, sampling_rate=sr, return_tensors="np")
        return {key: np.asarray(value)[0] for key, value in features.items()}

    def frame_mask(batch, n_samples, n_frames):
        if "attention_mask" in batch and hasattr(body, "_get_feat_extract_output_lengths"):
            valid = body._get_feat_extract_output_lengths(batch["attention_mask"].sum(-1))
        elif window:
            valid = torch.tensor([math.ceil(n_frames * min(1.0, n / window)) for n in n_samples])
        else:
            return None
        return torch.arange(n_frames, device=device) < valid.to(device)[:, None]

    def encode(items, pooling):
        features = [item[0] for item in items]
        if pads:
            batch = extractor.pad(features, padding=True, return_tensors="pt")
        else:
            batch = {key: torch.from_numpy(np.stack([f[key] for f in features])) for key in features[0]}
        batch = {key: value.to(device) for key, value in batch.items()}
        with inference_context(device):
            if is_clap:
                output = network.get_audio_features(**batch)
                pooled = output if isinstance(output, torch.Tensor) else output.pooler_output
                return pooled.float().cpu().numpy()
            hidden = body(**batch).last_hidden_state.float()
        mask = frame_mask(batch, [item[1] for item in items], hidden.shape[1])
        if mask is None:
            mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=device)
        if pooling == "max":
            pooled = hidden.masked_fill(~mask[..., None], -torch.inf).amax(1)
        else:
            pooled = masked_mean(hidden, mask, dim=1)
        return pooled.cpu().numpy()

    probe = prepare(np.zeros(sr, dtype=np.float32))
    pads = "attention_mask" in probe
    dim = encode([(probe, sr)], "mean").shape[1]
    return SimpleNamespace(
        sr=sr, dim=dim, pads=pads, prepare=prepare, encode=encode,
        fingerprint=weights_fingerprint(network),
    )


def _shortest_clip(body):
    """Fewest samples the model's convolutions turn into one frame (1 when it has no such limit).

    For the models that read the waveform itself (wav2vec2, HuBERT, WavLM, data2vec-audio, ...).
    Models that read filterbank frames count in frames here: their limit, compared with a number
    of samples, then only refuses clips too short to give any frame anyway.
    """
    import torch

    lengths = getattr(body, "_get_feat_extract_output_lengths", None)
    if lengths is None:
        return 1

    def gives_a_frame(n_samples):
        return int(lengths(torch.tensor(n_samples))) >= 1

    high = 1
    while not gives_a_frame(high):
        high *= 2
    low = high // 2  # gives no frame (or is 0)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if gives_a_frame(middle) else (middle, high)
    return high
