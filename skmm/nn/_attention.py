"""Cross-modal attention fusion: every modality is a token."""

import torch
from torch import nn

from .._torch import masked_mean
from ._base import FusionStrategy
from ._layers import mlp

__all__ = ["AttentionFusion"]


class AttentionFusion(FusionStrategy):
    """Multi-head self-attention across modalities, residual + LayerNorm, masked mean, MLP head.

    Each projection plus a learned modality embedding is a token; absent
    modalities are masked out of the attention. The attention each modality
    receives (averaged over the heads and the present modalities) is the
    modality weight returned.

    Parameters
    ----------
    n_modalities, shared_dim, n_classes : int
        See :class:`FusionStrategy`.
    hidden_dims : tuple of int, default=(64,)
        Hidden layers of the head.
    dropout : float, default=0.1
        Dropout in the attention and the head.
    attention_heads : int, default=4
        Attention heads; ``shared_dim`` must be divisible by it.
    """

    def __init__(self, *, n_modalities, shared_dim, n_classes, hidden_dims=(64,), dropout=0.1, attention_heads=4):
        super().__init__()
        if shared_dim % attention_heads:
            raise ValueError(
                f"shared_dim={shared_dim} must be divisible by attention_heads={attention_heads} "
                "for fusion='attention'; e.g. shared_dim=64, attention_heads=4."
            )
        self.head = mlp(shared_dim, hidden_dims, n_classes, dropout)
        self.modality_embedding = nn.Parameter(torch.randn(n_modalities, shared_dim) * 0.02)
        self.attention = nn.MultiheadAttention(shared_dim, attention_heads, dropout=dropout, batch_first=True)
        self.attention_norm = nn.LayerNorm(shared_dim)

    def forward(self, projected, present):
        tokens = projected + self.modality_embedding
        # a row without any modality would make attention NaN; its logits are replaced anyway
        ignore = ~present & present.any(dim=1, keepdim=True)
        attended, attention = self.attention(
            tokens, tokens, tokens, key_padding_mask=ignore, need_weights=True, average_attn_weights=True
        )
        tokens = self.attention_norm(tokens + attended)
        pooled = masked_mean(tokens, present, dim=1)
        received = masked_mean(attention, present, dim=1)
        return self.head(pooled), received * present
