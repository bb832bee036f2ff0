"""Decision-level (late) fusion: one classifier per modality."""

import math

import torch
from torch import nn

from ._base import FusionStrategy
from ._layers import mlp
from ._loss import weighted_mean

__all__ = ["LateFusion"]


class LateFusion(FusionStrategy):
    """One classifier head per modality; their log-probabilities summed with learned positive weights.

    The logits are ``sum_m exp(s_m) * log p_m`` over the modalities present in
    a row (a product of experts, each raised to a learned power: ``s_m`` is one
    score per modality, ``-log(n_modalities)`` at first: the mean of the
    log-probabilities). The powers, normalised to sum to 1 over
    the present modalities, are the modality weights returned. A modality
    whose predictions do not help gets a power near 0: being free in scale,
    the weights need not lean on a useless modality to soften the others.
    :meth:`fit_weights` learns them from the heads' predictions on rows held
    out of training (what :class:`skmm.MultimodalClassifier` does), as classic
    late fusion learns its combination out of fold: weights learned on the
    training rows would favour the modality that memorises them best.

    As in classic late fusion, each head is a classifier trained on its own:
    in training mode the combination sees the heads' predictions detached, so
    its loss only moves the weights, and :class:`skmm.nn.FusionLoss` trains
    every head on the rows where its modality is present.

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
        self.modality_scores = nn.Parameter(torch.full((n_modalities,), -math.log(n_modalities)))
        self.heads = nn.ModuleList(mlp(shared_dim, hidden_dims, n_classes, dropout) for _ in range(n_modalities))

    def unimodal_logits(self, projected):
        """Each modality's own class logits, ``(batch, n_modalities, n_classes)``."""
        return torch.stack([head(projected[:, index]) for index, head in enumerate(self.heads)], dim=1)

    def forward(self, projected, present):
        log_probs = torch.log_softmax(self.unimodal_logits(projected), dim=-1)  # (batch, modalities, classes)
        if self.training:
            # each head learns from its own loss only (FusionLoss scores every modality's logits); the
            # loss of the combination trains the weights alone, so the heads do not co-adapt
            log_probs = log_probs.detach()
        return self._combine(self.modality_scores, log_probs, present)

    @staticmethod
    def _combine(scores, log_probs, present):
        """Logits ``sum_m exp(score_m) * log p_m`` over the present modalities, and the normalised weights."""
        coefficients = scores.exp().expand(present.shape) * present
        weights = coefficients / coefficients.sum(dim=1, keepdim=True).clamp(min=1e-12)
        return (coefficients.unsqueeze(-1) * log_probs).sum(1), weights

    def fit_weights(self, projected, present, target, steps=50, sample_weight=None):
        """Set the combination weights that best predict ``target`` from the heads' predictions.

        Parameters
        ----------
        projected : tensor of shape (batch, n_modalities, shared_dim)
            Projections of rows the heads were not trained on.
        present : bool tensor of shape (batch, n_modalities)
        target : int tensor of shape (batch,)
            Class indices.
        steps : int, default=50
            L-BFGS iterations.
        sample_weight : tensor of shape (batch,), optional
            Weight of each row in the loss.
        """
        rows = present.any(dim=1)
        with torch.no_grad():
            log_probs = torch.log_softmax(self.unimodal_logits(projected[rows]), dim=-1)
        present, target = present[rows], target[rows]
        sample_weight = None if sample_weight is None else sample_weight[rows]
        if not len(target):
            return
        scores = self.modality_scores.detach().clone().requires_grad_(True)
        optimizer = torch.optim.LBFGS([scores], max_iter=steps, line_search_fn="strong_wolfe")

        def loss():
            optimizer.zero_grad()
            losses = nn.functional.cross_entropy(self._combine(scores, log_probs, present)[0], target, reduction="none")
            value = weighted_mean(losses, target, sample_weight=sample_weight)
            # a small price per unit of weight: a modality that does not help the held-out predictions
            # fades to 0 instead of keeping its starting weight, and the weights stay bounded
            value = value + 0.01 * scores.exp().sum()
            value.backward()
            return value

        optimizer.step(loss)
        with torch.no_grad():
            self.modality_scores.copy_(scores)
