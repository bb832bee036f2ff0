"""The encoders' forward passes as torch modules: one code path for encoding and for ONNX export.

Each module takes the batch arrays that the encoder's preprocessing makes (pixels, token ids,
an audio feature extractor's arrays) and returns the features, float32 ``(batch, n_features)``;
everything from there to the features is inside the module, so that :func:`skmm.export_onnx`
writes it into the graph and torch and ONNX Runtime compute the same thing. This module
imports torch: the encoders import it only when they load a model.
"""

import torch
from torch import nn

from .._torch import masked_mean

__all__ = ["AudioFeatures", "EfficientNetFeatures", "TextFeatures", "VisionFeatures"]


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
        batch = pixels.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        batch = batch.contiguous(memory_format=torch.channels_last)
        return self.network.extract_features(batch).mean((2, 3)).float()


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
        pooled = hidden[:, 0] if self.pooling == "cls" else masked_mean(hidden, attention_mask, dim=1)
        if self.normalize:
            pooled = nn.functional.normalize(pooled, p=2, dim=1)
        return pooled


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
        if getattr(network.config, "is_encoder_decoder", False):
            network = network.get_encoder()
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
        mask = self._frame_mask(batch, n_samples, hidden)
        if self.pooling == "max":
            return hidden.masked_fill(~mask[..., None], -torch.inf).amax(1)
        return masked_mean(hidden, mask, dim=1)

    def _frame_mask(self, batch, n_samples, hidden):
        """``(batch, frames)``: which frames of ``hidden`` hold the clip rather than padding."""
        n_frames = hidden.shape[1]
        if self.lengths:
            valid = self.network._get_feat_extract_output_lengths(batch["attention_mask"].sum(-1))
        elif self.window:  # in float64, as ceil(n_frames * min(1, n / window)) in Python
            valid = torch.ceil(n_frames * torch.clamp(n_samples.double() / self.window, max=1.0))
        else:
            return torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        return torch.arange(n_frames, device=hidden.device) < valid.to(hidden.device)[:, None]
