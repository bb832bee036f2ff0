"""Training losses: focal loss for class imbalance, unimodal auxiliary losses for fusion."""

import torch
from torch import nn

__all__ = ["FocalLoss", "FusionLoss"]


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


class FusionLoss(nn.Module):
    """The loss of the fused logits, plus the losses of each modality's own logits when given.

    :class:`FusionNetwork` in training mode with ``unimodal_loss > 0`` returns
    ``(logits, unimodal_logits, present)``; each modality's logits are scored
    on the rows where it is present, so that every modality learns to predict
    on its own (unimodal auxiliary losses) instead of leaning on the others.

    Parameters
    ----------
    loss : {"cross_entropy", "focal"}, default="cross_entropy"
        The loss of every set of logits.
    weight : tensor of shape (n_classes,), optional
        Class weights.
    gamma : float, default=2.0
        Focusing strength of the focal loss.
    unimodal_loss : float, default=0.0
        Weight of the mean of the modalities' own losses in the total.
    """

    def __init__(self, loss="cross_entropy", weight=None, gamma=2.0, unimodal_loss=0.0):
        super().__init__()
        self.unimodal_loss = float(unimodal_loss)
        self.base = FocalLoss(gamma, weight) if loss == "focal" else nn.CrossEntropyLoss(weight=weight)

    def forward(self, output, target):
        if not isinstance(output, tuple):
            return self.base(output, target)
        logits, unimodal, present = output
        loss = self.base(logits, target)
        own = [
            self.base(unimodal[present[:, index], index], target[present[:, index]])
            for index in range(unimodal.shape[1])
            if present[:, index].any()
        ]
        if own and self.unimodal_loss > 0:
            loss = loss + self.unimodal_loss * torch.stack(own).mean()
        return loss
