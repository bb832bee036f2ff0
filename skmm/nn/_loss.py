"""Training losses: focal loss for class imbalance, unimodal auxiliary losses for fusion."""

import torch
from torch import nn

__all__ = ["FocalLoss", "FusionLoss"]


def weighted_mean(losses, target, class_weight=None, sample_weight=None):
    """Mean of the per-row ``losses`` weighted by ``class_weight[target] * sample_weight``.

    As :class:`torch.nn.CrossEntropyLoss` with class weights: the sum of the
    weighted losses over the sum of the weights. Rows of weight 0 contribute
    nothing; a batch whose weights are all 0 has a loss of 0.
    """
    if class_weight is None and sample_weight is None:
        return losses.mean()
    weight = torch.ones_like(losses) if class_weight is None else class_weight[target]
    if sample_weight is not None:
        weight = weight * sample_weight.to(losses.dtype)
    total = weight.sum()
    return (losses * weight).sum() / torch.where(total > 0, total, torch.ones_like(total))


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

    def row_losses(self, logits, target):
        """The loss of each row, unweighted."""
        log_probs = torch.log_softmax(logits, dim=-1)
        log_true = log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
        return -((1 - log_true.exp()) ** self.gamma) * log_true

    def forward(self, logits, target, sample_weight=None):
        """The weighted mean loss; ``sample_weight`` (batch,) weighs each row besides its class's weight."""
        return weighted_mean(self.row_losses(logits, target), target, self.weight, sample_weight)


class _CrossEntropy(nn.Module):
    """Cross-entropy with label smoothing, class weights and, per call, row weights.

    Each row's loss is weighted by its target's class weight times its row
    weight (with label smoothing too: the weight is the row's, not spread
    over the classes the smoothing touches).
    """

    def __init__(self, weight=None, label_smoothing=0.0):
        super().__init__()
        self.label_smoothing = float(label_smoothing)
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def row_losses(self, logits, target):
        """The loss of each row, unweighted."""
        return nn.functional.cross_entropy(logits, target, reduction="none", label_smoothing=self.label_smoothing)

    def forward(self, logits, target, sample_weight=None):
        return weighted_mean(self.row_losses(logits, target), target, self.weight, sample_weight)


class FusionLoss(nn.Module):
    """The loss of the fused logits, plus the losses of each modality's own logits when given.

    :class:`FusionNetwork` in training mode with ``unimodal_loss > 0`` returns
    ``(logits, unimodal_logits, present)``; each modality's logits are scored
    on the rows where it is present, so that every modality learns to predict
    on its own (unimodal auxiliary losses) instead of leaning on the others.
    Every loss is a mean over rows weighted by the class weights times the
    ``sample_weight`` of the rows, when given.

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
    label_smoothing : float, default=0.0
        Share of each cross-entropy target spread evenly over the classes
        (not used by the focal loss).
    """

    def __init__(self, loss="cross_entropy", weight=None, gamma=2.0, unimodal_loss=0.0, label_smoothing=0.0):
        super().__init__()
        self.unimodal_loss = float(unimodal_loss)
        self.base = FocalLoss(gamma, weight) if loss == "focal" else _CrossEntropy(weight, label_smoothing)

    def forward(self, output, target, sample_weight=None):
        """The loss of ``output`` for ``target``; ``sample_weight`` (batch,) weighs each row."""
        if not isinstance(output, tuple):
            return self.base(output, target, sample_weight)
        logits, unimodal, present = output
        loss = self.base(logits, target, sample_weight)
        if self.unimodal_loss > 0:
            loss = loss + self.unimodal_loss * self._own_losses(unimodal, target, present, sample_weight)
        return loss

    def _own_losses(self, unimodal, target, present, sample_weight):
        """Mean over the modalities present in the batch of each one's weighted mean loss on its rows.

        All modalities in one call: ``unimodal`` is ``(batch, modalities, classes)``, a row of
        an absent modality weighs 0.
        """
        n_rows, n_modalities, n_classes = unimodal.shape
        losses = self.base.row_losses(
            unimodal.reshape(n_rows * n_modalities, n_classes), target.repeat_interleave(n_modalities)
        ).view(n_rows, n_modalities)
        weight = present.to(losses.dtype)
        if self.base.weight is not None:
            weight = weight * self.base.weight[target].unsqueeze(1)
        if sample_weight is not None:
            weight = weight * sample_weight.to(losses.dtype).unsqueeze(1)
        total = weight.sum(dim=0)
        means = (losses * weight).sum(dim=0) / torch.where(total > 0, total, torch.ones_like(total))
        counted = present.any(dim=0)
        return means[counted].mean() if counted.any() else losses.new_zeros(())
