"""AudioEncoder: a frozen, pretrained transformers audio model turning a column of clips into embeddings."""

import os
from numbers import Integral, Real
from types import SimpleNamespace

import numpy as np
from .._sklearn import Interval, StrOptions

from .._utils import resolve_device
from ..io import decode_audio, read_audio_source
from ._audio import _size_hint, waveform_rows
from ._base import FINE_TUNE_CONSTRAINT, BaseEncoder
from ._bundle import shared_bundle, weights_fingerprint
from .._torch import inference_context, quiet_transformers

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
    fine_tune : None, "top", "lora" or FineTuning, default=None
        None encodes with the frozen model. Otherwise ``fit(X, y)`` trains the
        last layers of the model on the labels (all their weights with
        ``"top"``, low-rank adapters with ``"lora"``) and ``transform`` gives
        the tuned model's embeddings; see :class:`~skmm.FineTuning`. Supported
        for wav2vec2 (the default), HuBERT, data2vec-audio, Whisper (the
        encoder's layers) and AST; WavLM and CLAP are refused.
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
    fine_tuned_ : dict of str to ndarray
        With ``fine_tune`` set: the trained weights of the last layers (or
        their adapters), the only weights the fitted encoder keeps.
    fine_tune_history_ : list of dict
        With ``fine_tune`` set: per epoch, ``train_loss``, and ``valid_loss``
        and ``valid_accuracy`` on the held-out rows.
    fine_tune_cut_ : int
        With ``fine_tune`` set: the index of the first layer that trained; the
        layers below it are frozen, their activations cached.

    See Also
    --------
    AudioMFCC : hand-crafted MFCC statistics, no model needed.
    ImageEncoder, TextEncoder, MultimodalFusion, FineTuning

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
        "fine_tune": FINE_TUNE_CONSTRAINT,
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
        fine_tune=None,
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
        self.fine_tune = fine_tune
        self.batch_size = batch_size
        self.device = device
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _load_bundle(self):
        device = resolve_device(self.device)
        name = str(self.model)
        return self._at_its_rate(shared_bundle(("audio", name, device), lambda: _load_audio_model(name, device)))

    def _at_its_rate(self, bundle):
        """``bundle``, once ``sr`` is checked to be None or the rate of its feature extractor."""
        if self.sr is not None and self.sr != bundle.sr:
            raise ValueError(
                f"sr={self.sr} but the feature extractor of {str(self.model)!r} expects audio at "
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
        for rows in _passes(items, bundle):
            output[rows] = bundle.encode([items[i] for i in rows], self.pooling)
        return output

    # ------------------------------------------------------------------ fine-tuning (the transformer layers)

    def _n_blocks(self, bundle):
        from ._finetune import refusal
        from ._graphs import speech_layers

        model_type = _model_type(bundle.network)
        if model_type in REFUSED_MODEL_TYPES:
            raise ValueError(refusal(self, REFUSED_MODEL_TYPES[model_type]))
        layers = speech_layers(bundle.network) if model_type in TUNABLE_MODEL_TYPES else None
        return None if layers is None else len(layers)

    def _trunk_batch(self, items, bundle, cut):
        """Each clip's hidden states at the input of layer ``cut``, flattened.

        wav2vec2-style models: the clip's own frames only (no padding). Whisper's encoder and
        AST, whose layers attend to every frame of their fixed window: the number of frames
        pooled (the clip's share of the window, as :class:`AudioFeatures` counts them), then
        every frame of the window.
        """
        import torch

        from ._graphs import AudioFeatures, hidden_states_before, speech_layers

        graph = AudioFeatures(bundle.network, bundle.keys, self.pooling, bundle.window)
        layer, window, output = speech_layers(bundle.network)[cut], _attends_to_window(bundle), [None] * len(items)
        for rows in _passes(items, bundle):
            batch = bundle.batch_of([items[i] for i in rows])
            tensors = {key: torch.from_numpy(batch[key]).to(bundle.device) for key in bundle.keys}
            with inference_context(bundle.device):
                hidden = hidden_states_before(layer, lambda: graph.network(**tensors))
                pooled = graph.frame_mask(tensors, torch.from_numpy(batch["n_samples"]), hidden).sum(1)
            hidden, pooled = hidden.float().cpu().numpy(), pooled.cpu().numpy()
            for row, clip, length in zip(rows, hidden, pooled):
                output[row] = np.concatenate([np.float32([length]), clip.ravel()]) if window else clip[:length].ravel()
        return output

    def _top_module(self, bundle, cut):
        from ._graphs import AudioTop

        return AudioTop(bundle.network, cut, self.pooling, masked=not _attends_to_window(bundle))

    def _top_inputs(self, rows, bundle, cut):
        """The rows of :meth:`_trunk_batch` as the top's ``(hidden, mask)``: the frames, 1 on those pooled."""
        import torch

        from ._finetune import padded_sequences

        if not _attends_to_window(bundle):
            return padded_sequences(rows, bundle.dim, bundle.device)
        hidden, _ = padded_sequences([row[1:] for row in rows], bundle.dim, bundle.device)
        pooled = torch.as_tensor(np.array([row[0] for row in rows]), device=bundle.device)
        return hidden, (torch.arange(hidden.shape[1], device=bundle.device) < pooled[:, None]).long()


#: the wav2vec2-style models (by model type): their layers attend to each clip's own frames only, a batch
#: being padded to its longest clip
CLIP_FRAMES_MODEL_TYPES = ("wav2vec2", "hubert", "data2vec-audio")
#: the models whose layers attend to every frame of a fixed window, padding included: Whisper's encoder, AST
WINDOW_MODEL_TYPES = ("whisper", "audio-spectrogram-transformer")
#: the models whose last layers fine-tuning trains, by the model type of the part that encodes a clip
#: (any encoder-decoder model whose encoder is Whisper's)
TUNABLE_MODEL_TYPES = CLIP_FRAMES_MODEL_TYPES + WINDOW_MODEL_TYPES
#: the audio models fine-tuning refuses although their layers are known, and why
REFUSED_MODEL_TYPES = {
    "wavlm": "WavLM's layers hand on a relative position bias that the first one computes from the number of "
             "frames, take the padding mask as 0/1 where the others take an additive one, and its attention "
             "reads its projections' weights directly (torch's multi_head_attention_forward), out of reach of "
             "LoRA adapters",
    "clap": "CLAP's audio tower is a Swin transformer (HTSAT), whose stages take the spectrogram's dimensions "
            "from the loop that runs them (as Swin's do), then pools through its own head and projection",
}


def _model_type(network):
    """The model type of the part of ``network`` that encodes a clip (an encoder-decoder model's encoder)."""
    from ._graphs import audio_encoder

    return getattr(audio_encoder(network).config, "model_type", None)


def _attends_to_window(bundle):
    """Whether the model's layers attend to every frame of a fixed window (Whisper, AST), not to each clip's own."""
    return _model_type(bundle.network) in WINDOW_MODEL_TYPES


def _passes(items, bundle):
    """The positions of ``items`` that share a forward pass: all of them when the model takes an attention
    mask, else those of equal length (padding would change the others' features)."""
    groups = {}
    for position, (features, _) in enumerate(items):
        key = None if bundle.pads else tuple(value.shape for value in features.values())
        groups.setdefault(key, []).append(position)
    return list(groups.values())


def _load_audio_model(name, device):
    import torch
    from transformers import AutoFeatureExtractor, AutoModel

    from ._graphs import AudioFeatures, audio_encoder

    with quiet_transformers():
        extractor = AutoFeatureExtractor.from_pretrained(name)
        network = AutoModel.from_pretrained(name).eval().to(device)
    window = getattr(extractor, "n_samples", None)  # Whisper pads every clip to a fixed window

    def forward(batch, pooling):
        graph = AudioFeatures(network, [key for key in batch if key != "n_samples"], pooling, window)
        with inference_context(device):
            pooled = graph(*[torch.from_numpy(batch[key]).to(device) for key in graph.inputs])
        return pooled.float().cpu().numpy()

    shortest = 1 if window else _shortest_clip(audio_encoder(network))
    bundle = audio_bundle(extractor, forward, name=name, shortest=shortest)
    bundle.network, bundle.window, bundle.fingerprint = network, window, weights_fingerprint(network)
    bundle.device = device
    return bundle


def audio_bundle(extractor, forward, *, name, shortest, dim=None):
    """What :class:`AudioEncoder` computes with, around ``forward(batch, pooling)``: the model's pass.

    ``forward`` takes a batch of numpy arrays (the feature extractor's, plus ``n_samples``:
    each clip's number of samples) and gives the pooled features; torch runs it for the
    encoder, ONNX Runtime for :class:`skmm.onnx.OnnxModel`. The rest is shared: the
    sampling rate, the clips too short for one frame (fewer than ``shortest`` samples),
    the feature extractor's preparation of a clip and the padding of a batch.
    """
    sr = int(extractor.sampling_rate)
    shortest = max(shortest, _shortest_extractable(extractor, sr))
    # CLAP's extractor picks chunks of a clip longer than its window at random: such a clip is cut to
    # the window, so that its embedding is the same on every run (and in an ONNX consumer)
    window = extractor.nb_max_samples if getattr(extractor, "truncation", None) in RANDOM_TRUNCATIONS else None

    def prepare(waveform):
        if waveform.size < shortest:
            raise ValueError(
                f"clip of {waveform.size} samples is shorter than the {shortest} samples "
                f"({1000 * shortest / sr:g} ms at {sr} Hz) that {name!r} needs for one frame; "
                "pad it with silence or drop it"
            )
        features = extractor(waveform[:window], sampling_rate=sr, return_tensors="np")
        return {key: np.asarray(value)[0] for key, value in features.items()}

    def batch_of(items):
        """The extractor's arrays of ``items`` ((features, n_samples) pairs) as one batch, with ``n_samples``."""
        features = [item[0] for item in items]
        if bundle.pads:
            batch = dict(extractor.pad(features, padding=True, return_tensors="np"))
        else:
            batch = {key: np.stack([f[key] for f in features]) for key in features[0]}
        batch["n_samples"] = np.array([item[1] for item in items], dtype=np.int64)
        return batch

    def encode(items, pooling):
        return forward(batch_of(items), pooling)

    probe = prepare(np.zeros(sr, dtype=np.float32))
    bundle = SimpleNamespace(sr=sr, pads="attention_mask" in probe, keys=list(probe), shortest=shortest,
                             random_window=window,
                             extractor=extractor, prepare=prepare, batch_of=batch_of, encode=encode)
    bundle.dim = dim or encode([(probe, sr)], "mean").shape[1]
    return bundle


#: the truncations of CLAP's feature extractor that choose a long clip's chunks at random
RANDOM_TRUNCATIONS = ("fusion", "rand_trunc")


def _shortest_extractable(extractor, sr):
    """Fewest samples (up to one second) the feature extractor turns into features.

    1 for the extractors that pad any clip; AST's filterbank needs 15 ms of sound
    and fails inside the extractor on less.
    """

    def extracts(n_samples):
        try:
            extractor(np.zeros(n_samples, dtype=np.float32), sampling_rate=sr, return_tensors="np")
        except (ValueError, RuntimeError, IndexError):
            return False
        return True

    if extracts(1) or not extracts(sr):
        return 1
    low, high = 1, sr  # low fails, high works
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if extracts(middle) else (middle, high)
    return high


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
