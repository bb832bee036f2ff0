"""Focal loss for class imbalance."""

import torch
from torch import nn

__all__ = ["FocalLoss"]


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017): cross-entropy scaled by ``(1 - p_true) ** gamma``.

    Parameters
    ----------
    gamma : float
        Focusing strength; 0 gives (weighted) cross-entropy.
    weight : tensor of shape (n_classes,), optional
        Class weights, as in :class:`torch.nn.CrossEntropyLoss`.
    """

    def __init__(self, gamma=2.0, weight=None):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits, target):
        log_probs = torch.log_softmax(logits, dim=-1)
        log_true = log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
        loss = -((1 - log_true.exp()) ** self.gamma) * log_true
        if self.weight is None:
            return loss.mean()
        sample_weight = self.weight[target]
        return (loss * sample_weight).sum() / sample_weight.sum()
