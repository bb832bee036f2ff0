"""The fitted MultimodalClassifier as one torch module: fused features in, probabilities out."""

import copy

import numpy as np
import torch
from torch import nn

__all__ = ["ClassifierGraph"]


class ClassifierGraph(nn.Module):
    """What :meth:`MultimodalClassifier.predict_proba` computes, as a module ONNX can hold.

    From the fused features ``(batch, n_features)`` (float32, NaN where a modality is
    absent, in the order of ``feature_names_in_``): standardise with ``scaler_``, clip to
    ``CLIP_STD`` standard deviations, put the columns in modality order, run the network in
    evaluation mode (its absent-modality masks, per-modality heads and class prior
    included), and average with the logistic regression ``linear_`` at ``linear_weight``
    (a row with no modality keeps the network's class prior). The probabilities sum to 1.

    With ``checks=True`` it also returns, per row, whether a feature was clipped
    (``far_rows``) and whether no modality is present (``empty_rows``): what
    ``predict_proba`` warns about.

    Parameters
    ----------
    classifier : fitted MultimodalClassifier
    checks : bool, default=False
    """

    def __init__(self, classifier, checks=False):
        super().__init__()
        from ..classifier import CLIP_STD

        scaler = classifier.scaler_
        self.register_buffer("mean", torch.as_tensor(scaler.mean_, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scaler.scale_, dtype=torch.float32))
        self.register_buffer("order", torch.as_tensor(classifier._column_order, dtype=torch.int64))
        self.clip = float(CLIP_STD)
        self.checks = checks
        self.network = copy.deepcopy(classifier.net_.module_).float().cpu().eval()
        linear = getattr(classifier, "linear_", None)
        self.linear_weight = 0.0 if linear is None else float(classifier.linear_weight)
        if linear is not None:
            self.register_buffer("coef", torch.as_tensor(np.atleast_2d(linear.coef_), dtype=torch.float32))
            self.register_buffer("intercept", torch.as_tensor(np.atleast_1d(linear.intercept_), dtype=torch.float32))

    def forward(self, features):
        x = (features - self.mean) / self.scale
        far = (x.abs() > self.clip).any(dim=1)
        # comparisons leave NaN (an absent modality) as it is, where a clip op might not
        x = torch.where(x > self.clip, self.clip, torch.where(x < -self.clip, -self.clip, x))
        x = x.index_select(1, self.order)
        proba = torch.softmax(self.network(x), dim=-1)
        nothing = torch.isnan(x).all(dim=1, keepdim=True)
        if self.linear_weight > 0:
            scores = torch.nan_to_num(x, nan=0.0) @ self.coef.T + self.intercept
            if scores.shape[1] == 1:  # a binary logistic regression scores the second class
                positive = torch.sigmoid(scores)
                linear = torch.cat([1 - positive, positive], dim=1)
            else:
                linear = torch.softmax(scores, dim=-1)
            blended = (1 - self.linear_weight) * proba + self.linear_weight * linear
            proba = torch.where(nothing, proba, blended)
        proba = proba / proba.sum(dim=1, keepdim=True)
        return (proba, far, nothing[:, 0]) if self.checks else proba
