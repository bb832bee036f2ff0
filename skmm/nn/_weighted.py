"""Weighted-sum fusion: y = α·f₁(x₁) + β·f₂(x₂) + …"""

import torch
from torch import nn

from ._base import FusionStrategy
from ._layers import masked_softmax, mlp

__all__ = ["WeightedFusion"]


class WeightedFusion(FusionStrategy):
    """A learned weighted sum of the projections, then an MLP head.

    The weights are a softmax of one learned score per modality, taken over the
    modalities present in each row; they are the modality weights returned.

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
        self.head = mlp(shared_dim, hidden_dims, n_classes, dropout)
        self.modality_scores = nn.Parameter(torch.zeros(n_modalities))

    def forward(self, projected, present):
        weights = masked_softmax(self.modality_scores.expand(present.shape), present)
        return self.head((weights.unsqueeze(-1) * projected).sum(1)), weights
