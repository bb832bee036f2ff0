"""Gated fusion: per-row sigmoid gates scale each projection."""

import torch
from torch import nn

from ._base import FusionStrategy
from ._layers import mlp, side_by_side

__all__ = ["GatedFusion"]


class GatedFusion(FusionStrategy):
    """Per-row sigmoid gates, computed from all modalities, scale each projection before the MLP head.

    The gates of the present modalities, normalised to sum to 1, are the
    modality weights returned.

    Parameters
    ----------
    n_modalities, shared_dim, n_classes : int
        See :class:`FusionStrategy`.
    hidden_dims : tuple of int, default=(64,)
        Hidden layers of the head.
    dropout : float, default=0.1
        Dropout in the head.
    """

    def __init__(self, *, n_modalities, shared_dim, n_classes, hidden_dims=(64,), dropout=0.1):
        super().__init__()
        fused_dim = n_modalities * shared_dim + n_modalities
        self.head = mlp(fused_dim, hidden_dims, n_classes, dropout)
        self.gate = nn.Linear(fused_dim, n_modalities)

    def forward(self, projected, present):
        gates = torch.sigmoid(self.gate(side_by_side(projected, present))) * present
        logits = self.head(side_by_side(projected * gates.unsqueeze(-1), present))
        return logits, gates / gates.sum(1, keepdim=True).clamp(min=1e-12)
