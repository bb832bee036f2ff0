"""The encoders' forward passes as torch modules: one code path for encoding and for ONNX export.

Each module takes the batch arrays that the encoder's preprocessing makes (pixels, token ids,
an audio feature extractor's arrays) and returns the features, float32 ``(batch, n_features)``;
everything from there to the features is inside the module, so that :func:`skmm.export_onnx`
writes it into the graph and torch and ONNX Runtime compute the same thing. This module
imports torch: the encoders import it only when they load a model.
"""

import copy
import threading

import torch
from torch import nn

from .._torch import masked_mean

__all__ = [
    "AudioFeatures", "AudioTop", "EfficientNetFeatures", "EfficientNetTop", "LayerNotReached", "TextFeatures",
    "TextTop", "VisionFeatures", "VisionTop", "audio_encoder", "hidden_states_before", "speech_final_norm",
    "speech_layers", "transformer_layers", "vision_layers",
]


class EfficientNetFeatures(nn.Module):
    """EfficientNet-Lite's pooled features from uint8 pixels ``(batch, height, width, 3)``.

    The pixels are scaled to [-1, 1] (mean = std = 0.5, as the model was trained), the
    convolutions run in channels-last memory order (faster on a CPU), and the last
    feature map is averaged over its positions.
    """

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, pixels):
        return self.network.extract_features(_efficientnet_input(pixels)).mean((2, 3)).float()


def _efficientnet_input(pixels):
    """uint8 pixels ``(batch, height, width, 3)`` as EfficientNet-Lite takes them: [-1, 1], channels last."""
    batch = pixels.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return batch.contiguous(memory_format=torch.channels_last)


class LayerNotReached(RuntimeError):
    """A model's forward pass ended without running the layer to cut at: it is not one of the blocks it runs."""


class _Captured(Exception):
    """Ends a forward pass once a hook has the activations it was waiting for."""

    def __init__(self, hidden):
        super().__init__()
        self.hidden = hidden


def hidden_states_before(layer, run):
    """The hidden states ``layer`` receives when ``run()`` runs its model; the pass stops there.

    Everything below ``layer`` (front end, positional embeddings, the padding's
    masking, earlier layers) is the model's own code, whatever its architecture.
    Only this thread's pass stops: another thread running the same model (an
    encoder sharing it) goes through.
    """
    thread = threading.get_ident()

    def capture(module, args, kwargs):
        if threading.get_ident() == thread:
            raise _Captured(args[0] if args else kwargs["hidden_states"])

    handle = layer.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        run()
    except _Captured as captured:
        return captured.hidden
    finally:
        handle.remove()
    raise LayerNotReached("the model's forward pass never reached the layer to cut at")


class EfficientNetTop(nn.Module):
    """A trainable copy of EfficientNet-Lite above block ``cut``: its last blocks, head convolution, pooling.

    Given the input of block ``cut`` (:func:`hidden_states_before`), it gives
    :class:`EfficientNetFeatures`'s output. Stochastic depth is left out: the
    copy keeps its batch-norm statistics and trains only its weights.
    """

    def __init__(self, network, cut):
        super().__init__()
        self.blocks = nn.ModuleList(copy.deepcopy(block) for block in network._blocks[cut:])
        self.conv_head = copy.deepcopy(network._conv_head)
        self.bn = copy.deepcopy(network._bn1)
        self.activation = copy.deepcopy(network._swish)
        _plain_pointwise_convolutions(self)

    def write_into(self, network, cut):
        """Copy these weights into ``network``'s blocks from ``cut`` on, and its head (adapters merged first)."""
        for i, block in enumerate(self.blocks):
            network._blocks[cut + i].load_state_dict(block.state_dict())
        network._conv_head.load_state_dict(self.conv_head.state_dict())
        network._bn1.load_state_dict(self.bn.state_dict())

    def forward(self, x):
        x = x.contiguous(memory_format=torch.channels_last)
        for block in self.blocks:
            x = block(x)
        return self.activation(self.bn(self.conv_head(x))).mean((2, 3)).float()


class VisionFeatures(nn.Module):
    """One vector per image from a transformers vision model, from its processor's ``pixel_values``."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, pixel_values):
        if hasattr(self.network, "get_image_features"):
            output = self.network.get_image_features(pixel_values=pixel_values)
        else:
            output = self.network(pixel_values=pixel_values)
        return _pool(output).float()


def vision_layers(network):
    """The path of a transformers vision model's blocks (layers of a vision transformer, stages of ConvNeXt), or None.

    The ``nn.ModuleList`` that holds most of the weights, outside a text tower
    (CLIP's ``text_model``): ViT's, DINOv2's or CLIP's transformer layers, the
    stages of ConvNeXt or ResNet.
    """
    lists = [
        (sum(p.numel() for p in module.parameters()), name)
        for name, module in network.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) and "text" not in name
    ]
    return max(lists)[1] if lists else None


class VisionTop(nn.Module):
    """A trainable copy of a vision model above block ``cut``: from that block's input to the image's vector.

    The copy is the model itself with its layers below ``cut`` left out (and a
    text tower, which the image path never runs): its forward pass runs on
    blank pixels of ``pixel_shape``, and the first kept layer gets the given
    hidden states (one image's of shape ``hidden_shape``) in place of what the
    embeddings made of them. So every module past the layers (final norm,
    pooler, projection) is the model's own code, whatever the architecture.
    ``frozen`` names the parameters the given hidden states never reach (the
    embeddings): they do not train.
    """

    def __init__(self, network, cut, pixel_shape, hidden_shape):
        super().__init__()
        path = vision_layers(network)
        layers = network.get_submodule(path)
        kept = nn.ModuleList(copy.deepcopy(layer) for layer in layers[cut:])
        memo = {id(layers): kept}
        memo.update({id(child): None for name, child in network.named_children() if "text" in name})
        self.features = VisionFeatures(copy.deepcopy(network, memo))
        self.path, self.pixel_shape = path, tuple(pixel_shape)
        self._given = {}  # thread -> the hidden states its forward pass was given
        kept[0].register_forward_pre_hook(self._give, with_kwargs=True)
        self.frozen = self._unreached(next(network.parameters()).new_zeros(1, *hidden_shape))

    def _give(self, module, args, kwargs):
        hidden = self._given.get(threading.get_ident())
        if hidden is None:  # no hidden states given: the model's own
            return None
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    def _blank(self, like, rows):
        return like.new_zeros(()).expand(rows, *self.pixel_shape)

    def _unreached(self, hidden):
        """Names of the parameters that get no gradient from ``hidden``, the input of the first kept layer.

        Which parameters the gradient reaches depends on the graph, not on the values: zeros do.
        """
        parameters = dict(self.named_parameters())
        before = {name: p.requires_grad for name, p in parameters.items()}
        self.requires_grad_(True)
        with torch.enable_grad():
            self(hidden).sum().backward()
        unreached = tuple(name for name, p in parameters.items() if p.grad is None)
        for name, p in parameters.items():
            p.grad = None
            p.requires_grad_(before[name])
        return unreached

    def write_into(self, network, cut):
        """Copy the trained weights into ``network``: its layers from ``cut`` on, and every module past them."""
        kept = len(self.features.network.get_submodule(self.path))
        frozen = set(self.frozen)
        renamed = {f"{self.path}.{i}.": f"{self.path}.{cut + i}." for i in range(kept)}
        state = {}
        for name, value in self.features.network.state_dict().items():
            if f"features.network.{name}" in frozen:
                continue
            for old, new in renamed.items():
                if name.startswith(old):
                    name = new + name[len(old):]
                    break
            state[name] = value
        network.load_state_dict(state, strict=False)

    def forward(self, hidden):
        thread = threading.get_ident()
        self._given[thread] = hidden
        try:
            return self.features(self._blank(hidden, len(hidden)))
        finally:
            del self._given[thread]


def _pool(output):
    """One vector per image from whatever a transformers vision model returns."""
    if isinstance(output, torch.Tensor):
        return output.flatten(1)
    pooled = getattr(output, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1)
    hidden = output.last_hidden_state
    if hidden.ndim == 4:  # convolutional: (batch, channels, height, width)
        return hidden.mean((2, 3))
    return hidden.mean(1)  # transformer tokens


def _sentence_embedding(hidden, attention_mask, pooling, normalize):
    """One vector per text from its last hidden states: the first token (``"cls"``) or the mean over the mask."""
    pooled = hidden[:, 0] if pooling == "cls" else masked_mean(hidden, attention_mask, dim=1)
    return nn.functional.normalize(pooled, p=2, dim=1) if normalize else pooled


class TextFeatures(nn.Module):
    """A text model's pooled, optionally L2-normalised embedding from token ids and attention mask.

    ``pooling="mean"`` averages the tokens the mask keeps, ``"cls"`` takes the first token.
    """

    def __init__(self, network, pooling="mean", normalize=True):
        super().__init__()
        self.network = network
        self.pooling = pooling
        self.normalize = normalize

    def forward(self, input_ids, attention_mask):
        hidden = self.network(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state.float()
        return _sentence_embedding(hidden, attention_mask, self.pooling, self.normalize)


def _plain_pointwise_convolutions(module):
    """Make every 1×1 convolution of ``module`` a plain ``nn.Conv2d`` (same weights, same output).

    EfficientNet-Lite's "same padding" subclass cannot be rebuilt from its
    shape alone, as adapters (``peft``'s LoRA) rebuild the layer they wrap; a
    1×1 convolution pads nothing anyway.
    """
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv2d) and type(child) is not nn.Conv2d and child.kernel_size == (1, 1):
            plain = nn.Conv2d(child.in_channels, child.out_channels, 1, stride=child.stride,
                              groups=child.groups, bias=child.bias is not None)
            plain.load_state_dict(child.state_dict())
            setattr(module, name, plain)
        else:
            _plain_pointwise_convolutions(child)


def transformer_layers(network):
    """The list of a transformers encoder's layers (BERT, RoBERTa, XLM-R, ELECTRA: ``encoder.layer``), or None."""
    layers = getattr(getattr(network, "encoder", None), "layer", None)
    return layers if isinstance(layers, nn.ModuleList) else None


def _run_layers(layers, hidden, attention_mask=None):
    """Run transformer layers one after the other, each given the additive attention mask built from the 0/1
    ``attention_mask`` (0 where kept, the lowest value where not); None: every position attends to every other."""
    blocked = None
    if attention_mask is not None:
        blocked = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    for layer in layers:
        output = layer(hidden, attention_mask=blocked)
        hidden = output[0] if isinstance(output, tuple) else output
    return hidden


class TextTop(nn.Module):
    """A trainable copy of a text model's last layers, from the hidden states below them to the pooled embedding.

    ``hidden`` is ``(batch, tokens, width)``, the output of layer ``cut`` (padding
    anywhere the mask is 0); pooling and normalisation are :class:`TextFeatures`'s.
    Each layer gets the additive attention mask of BERT-style layers; whether a
    model's layers take it is checked once, against the whole model, when an
    encoder is fine-tuned.
    """

    def __init__(self, network, cut, pooling="mean", normalize=True):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for layer in transformer_layers(network)[cut:])
        self.pooling = pooling
        self.normalize = normalize

    def write_into(self, network, cut):
        """Copy these weights into ``network``'s layers from ``cut`` on (adapters merged first)."""
        for i, layer in enumerate(self.layers):
            transformer_layers(network)[cut + i].load_state_dict(layer.state_dict())

    def forward(self, hidden, attention_mask):
        hidden = _run_layers(self.layers, hidden, attention_mask).float()
        return _sentence_embedding(hidden, attention_mask, self.pooling, self.normalize)


def audio_encoder(network):
    """The part of a transformers audio model that encodes a clip: an encoder-decoder model's encoder, else itself."""
    return network.get_encoder() if getattr(network.config, "is_encoder_decoder", False) else network


def speech_layers(network):
    """The transformer layers of an audio model, in the order they run (None where there is no such list).

    wav2vec2-style models (wav2vec2, HuBERT, data2vec-audio: ``encoder.layers``), Whisper's encoder
    (``layers``), AST (``layers``; ``encoder.layer`` in older transformers).
    """
    body = audio_encoder(network)
    for path in ("encoder.layers", "layers", "encoder.layer"):
        try:
            layers = body.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layers, nn.ModuleList):
            return layers
    return None


def speech_final_norm(network):
    """The norm an audio model applies to the output of its last layer, or None.

    wav2vec2-style models: ``encoder.layer_norm`` with a stable layer norm (without, that norm comes
    before the layers); Whisper's encoder: ``layer_norm``; AST: ``layernorm``.
    """
    body = audio_encoder(network)
    encoder = getattr(body, "encoder", None)
    if isinstance(getattr(encoder, "layers", None), nn.ModuleList):  # wav2vec2-style
        return encoder.layer_norm if getattr(body.config, "do_stable_layer_norm", False) else None
    for name in ("layer_norm", "layernorm"):
        norm = getattr(body, name, None)
        if isinstance(norm, nn.Module):
            return norm
    return None


class AudioTop(nn.Module):
    """A trainable copy of an audio transformer's last layers, from the hidden states below them to the clip's vector.

    ``hidden`` is ``(batch, frames, width)``, the input of layer ``cut``; ``mask`` is 1 on
    the frames :class:`AudioFeatures` pools (each clip's own). With ``masked`` (wav2vec2,
    HuBERT, data2vec-audio, whose batches are padded to the longest clip) the layers attend
    to those frames only; without (Whisper's encoder, AST), to every frame of the model's
    fixed window, padding included, as in the whole model. The norm after the last layer
    (:func:`speech_final_norm`) trains with them; the frames are then pooled as in
    :class:`AudioFeatures` (``"mean"`` or ``"max"``).
    """

    def __init__(self, network, cut, pooling="mean", masked=True):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for layer in speech_layers(network)[cut:])
        norm = speech_final_norm(network)
        self.norm = nn.Identity() if norm is None else copy.deepcopy(norm)
        self.pooling = pooling
        self.masked = masked

    def write_into(self, network, cut):
        """Copy these weights into ``network``'s layers from ``cut`` on, and its final norm (adapters merged first)."""
        for i, layer in enumerate(self.layers):
            speech_layers(network)[cut + i].load_state_dict(layer.state_dict())
        if not isinstance(self.norm, nn.Identity):
            speech_final_norm(network).load_state_dict(self.norm.state_dict())

    def forward(self, hidden, mask):
        hidden = _run_layers(self.layers, hidden, mask if self.masked else None)
        return _pool_frames(self.norm(hidden).float(), mask.bool(), self.pooling)


def _pool_frames(hidden, mask, pooling):
    """One vector per clip: the mean (``"mean"``) or maximum (``"max"``) of its frames where ``mask`` (bool) holds."""
    if pooling == "max":
        return hidden.masked_fill(~mask[..., None], -torch.inf).amax(1)
    return masked_mean(hidden, mask, dim=1)


class AudioFeatures(nn.Module):
    """One vector per clip from a transformers audio model, from its feature extractor's arrays.

    ``forward`` takes the tensors named by ``inputs``, in that order: those the feature
    extractor gives (``keys``: ``input_values`` or ``input_features``, ``attention_mask``
    when it gives one, CLAP's ``is_longer``), then, for a model that pads every clip to a
    fixed ``window`` of samples (Whisper), ``n_samples``: each clip's number of samples.
    The last hidden states are pooled over the clip's own frames (``pooling`` "mean" or
    "max"): those the attention mask keeps, through the model's convolutions
    (wav2vec2, HuBERT, WavLM, ...); the clip's share of the window (Whisper); all of them
    otherwise (AST). An encoder-decoder model runs its encoder only; CLAP gives
    ``get_audio_features`` and ``pooling`` does not apply.
    """

    def __init__(self, network, keys, pooling="mean", window=None):
        super().__init__()
        self.clap = hasattr(network, "get_audio_features")
        network = audio_encoder(network)
        self.network = network
        self.pooling = pooling
        self.lengths = "attention_mask" in keys and hasattr(network, "_get_feat_extract_output_lengths")
        self.window = None if self.clap or self.lengths else window
        self.inputs = (*keys, "n_samples") if self.window else tuple(keys)

    def forward(self, *tensors):
        batch = dict(zip(self.inputs, tensors))
        n_samples = batch.pop("n_samples", None)
        if self.clap:
            output = self.network.get_audio_features(**batch)
            return (output if isinstance(output, torch.Tensor) else output.pooler_output).float()
        hidden = self.network(**batch).last_hidden_state.float()
        return _pool_frames(hidden, self.frame_mask(batch, n_samples, hidden), self.pooling)

    def frame_mask(self, batch, n_samples, hidden):
        """``(batch, frames)``: which frames of ``hidden`` (at any of the model's layers) hold the clip, not padding.

        ``batch`` holds the tensors named by ``keys``, ``n_samples`` each clip's number of samples.
        """
        n_frames = hidden.shape[1]
        if self.lengths:
            valid = self.network._get_feat_extract_output_lengths(batch["attention_mask"].sum(-1))
        elif self.window:  # in float64, as ceil(n_frames * min(1, n / window)) in Python
            valid = torch.ceil(n_frames * torch.clamp(n_samples.double() / self.window, max=1.0))
        else:
            return torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        return torch.arange(n_frames, device=hidden.device) < valid.to(hidden.device)[:, None]
