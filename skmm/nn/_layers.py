"""Building blocks shared by the fusion strategies."""

import torch
from torch import nn

__all__ = ["masked_softmax", "mlp", "side_by_side"]


def mlp(in_dim, hidden_dims, out_dim, dropout):
    """Linear → GELU → Dropout for each width in ``hidden_dims``, then a Linear to ``out_dim``."""
    layers = []
    for width in hidden_dims:
        layers += [nn.Linear(in_dim, width), nn.GELU(), nn.Dropout(dropout)]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def masked_softmax(scores, mask):
    """Softmax over the positions where ``mask`` is true; rows with none get zeros."""
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return torch.nan_to_num(weights, nan=0.0)


def side_by_side(projected, present):
    """``(batch, n_modalities * shared_dim + n_modalities)``: every projection, then the presence flags."""
    return torch.cat([projected.flatten(1), present.float()], dim=1)
