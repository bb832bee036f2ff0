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
    :meth:`fit_weights` learns them from the heads' predictions on rows held
    out of training (what :class:`skmm.MultimodalClassifier` does), as classic
    late fusion learns its combination out of fold: weights learned on the
    training rows would favour the modality that memorises them best.

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
        return self._combine(self.modality_scores, log_probs, present)

    @staticmethod
    def _combine(scores, log_probs, present):
        weights = masked_softmax(scores.expand(present.shape), present)
        return (weights.unsqueeze(-1) * log_probs).sum(1), weights

    def fit_weights(self, projected, present, target, steps=50):
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
        """
        rows = present.any(dim=1)
        with torch.no_grad():
            log_probs = torch.log_softmax(self.unimodal_logits(projected[rows]), dim=-1)
        present, target = present[rows], target[rows]
        if not len(target):
            return
        scores = torch.zeros_like(self.modality_scores, requires_grad=True)
        optimizer = torch.optim.LBFGS([scores], max_iter=steps, line_search_fn="strong_wolfe")

        def loss():
            optimizer.zero_grad()
            value = nn.functional.cross_entropy(self._combine(scores, log_probs, present)[0], target)
            value.backward()
            return value

        optimizer.step(loss)
        with torch.no_grad():
            self.modality_scores.copy_(scores)
