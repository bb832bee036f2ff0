"""Decision-level (late) fusion: one classifier per modality."""

import torch
from torch import nn

from ._base import FusionStrategy
from ._layers import masked_softmax, mlp

__all__ = ["LateFusion"]


class LateFusion(FusionStrategy):
    """One classifier head per modality; their log-probabilities combined with learned softmax weights.

    The weights (a softmax of one learned score per modality over the
    modalities present in each row) are the modality weights returned.

    Parameters
    ----------
    n_modalities, shared_dim, n_classes : int
        See :class:`FusionStrategy`.
    hidden_dims : tuple of int, default=(64,)
        Hidden layers of each head.
    dropout : float, default=0.1
        Dropout in the heads.
    """

    def __init__(self, *, n_modalities, shared_dim, n_classes, hidden_dims=(64,), dropout=0.1):
        super().__init__()
        self.modality_scores = nn.Parameter(torch.zeros(n_modalities))
        self.heads = nn.ModuleList(mlp(shared_dim, hidden_dims, n_classes, dropout) for _ in range(n_modalities))

    def unimodal_logits(self, projected):
        """Each modality's own class logits, ``(batch, n_modalities, n_classes)``."""
        return torch.stack([head(projected[:, index]) for index, head in enumerate(self.heads)], dim=1)

    def forward(self, projected, present):
        log_probs = torch.log_softmax(self.unimodal_logits(projected), dim=-1)  # (batch, modalities, classes)
        weights = masked_softmax(self.modality_scores.expand(present.shape), present)
        return (weights.unsqueeze(-1) * log_probs).sum(1), weights
