"""Plain torch modules behind :class:`skmm.MultimodalClassifier` (no scikit-learn code here).

Every modality block is standardised, projected into one shared space of
width ``shared_dim`` and fused by one of the strategies in :data:`FUSIONS`.
A block that is entirely NaN for a row is an *absent* modality: it is masked
out of the fusion for that row. A row with no modality at all gets the
class prior seen in training.
"""

import torch
from torch import nn

from ._torch import masked_mean

__all__ = ["FUSIONS", "FusionNetwork", "FocalLoss"]

FUSIONS = ("concat", "weighted", "gated", "attention", "late")


def _mlp(in_dim, hidden_dims, out_dim, dropout):
    layers = []
    for width in hidden_dims:
        layers += [nn.Linear(in_dim, width), nn.GELU(), nn.Dropout(dropout)]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def _masked_softmax(scores, mask):
    """Softmax over modalities that are present; rows with none present get zeros."""
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return torch.nan_to_num(weights, nan=0.0)


class FusionNetwork(nn.Module):
    """Project each modality into a shared space and fuse the projections.

    Parameters
    ----------
    block_sizes : sequence of int
        Width of each modality block, in the order of the input columns.
    n_classes : int
        Number of classes.
    fusion : {"concat", "weighted", "gated", "attention", "late"}
        ``concat``: projected blocks side by side, then an MLP. ``weighted``: a
        learned softmax-weighted sum of the projections (y = α·f₁(x₁) + β·f₂(x₂)
        + …). ``gated``: per-sample sigmoid gates, computed from all modalities,
        scale each projection before the MLP. ``attention``: each projection is
        a token; multi-head self-attention across modalities, then a masked
        mean. ``late``: one classifier head per modality, their log-probabilities
        combined with learned softmax weights (decision-level fusion).
    shared_dim : int
        Width of the shared space.
    hidden_dims : sequence of int
        Hidden layers of the classification head(s).
    dropout : float
        Dropout in projections and heads.
    attention_heads : int
        Heads of the cross-modal attention (``shared_dim`` must be divisible by it).
    modality_dropout : float
        During training, each present modality of a row is dropped with this
        probability (at least one is always kept).
    feature_mean, feature_scale : tensor of shape (n_features,)
        Standardisation learned from the training data.
    class_log_prior : tensor of shape (n_classes,)
        Logits returned for rows where no modality is present.
    """

    def __init__(
        self,
        block_sizes,
        n_classes,
        *,
        fusion="concat",
        shared_dim=64,
        hidden_dims=(64,),
        dropout=0.1,
        attention_heads=4,
        modality_dropout=0.0,
        feature_mean=None,
        feature_scale=None,
        class_log_prior=None,
    ):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.block_sizes = [int(size) for size in block_sizes]
        self.fusion = fusion
        self.modality_dropout = float(modality_dropout)
        n_features, n_blocks = sum(self.block_sizes), len(self.block_sizes)
        self.register_buffer(
            "feature_mean", torch.zeros(n_features) if feature_mean is None else torch.as_tensor(feature_mean, dtype=torch.float32)
        )
        self.register_buffer(
            "feature_scale", torch.ones(n_features) if feature_scale is None else torch.as_tensor(feature_scale, dtype=torch.float32)
        )
        self.register_buffer(
            "class_log_prior",
            torch.zeros(n_classes) if class_log_prior is None else torch.as_tensor(class_log_prior, dtype=torch.float32),
        )
        self.projections = nn.ModuleList(
            nn.Sequential(nn.Linear(size, shared_dim), nn.LayerNorm(shared_dim), nn.GELU(), nn.Dropout(dropout))
            for size in self.block_sizes
        )
        if fusion in ("concat", "gated"):
            fused_dim = n_blocks * shared_dim + n_blocks
            self.head = _mlp(fused_dim, hidden_dims, n_classes, dropout)
        else:
            self.head = None if fusion == "late" else _mlp(shared_dim, hidden_dims, n_classes, dropout)
        if fusion == "gated":
            self.gate = nn.Linear(n_blocks * shared_dim + n_blocks, n_blocks)
        if fusion in ("weighted", "late"):
            self.modality_scores = nn.Parameter(torch.zeros(n_blocks))
        if fusion == "attention":
            self.modality_embedding = nn.Parameter(torch.randn(n_blocks, shared_dim) * 0.02)
            self.attention = nn.MultiheadAttention(shared_dim, attention_heads, dropout=dropout, batch_first=True)
            self.attention_norm = nn.LayerNorm(shared_dim)
        if fusion == "late":
            self.heads = nn.ModuleList(_mlp(shared_dim, hidden_dims, n_classes, dropout) for _ in self.block_sizes)

    def forward(self, X, return_weights=False):
        """Class logits ``(batch, n_classes)``; with ``return_weights`` also ``(batch, n_modalities)`` weights."""
        X = (X.float() - self.feature_mean) / self.feature_scale
        blocks = torch.split(X, self.block_sizes, dim=1)
        present = torch.stack([torch.isfinite(block).any(dim=1) for block in blocks], dim=1)
        if self.training and self.modality_dropout > 0:
            present = self._drop_modalities(present)
        projected = torch.stack(
            [project(torch.nan_to_num(block, nan=0.0)) for project, block in zip(self.projections, blocks)],
            dim=1,
        )  # (batch, modalities, shared_dim)
        projected = projected * present.unsqueeze(-1)
        logits, weights = getattr(self, f"_fuse_{self.fusion}")(projected, present)
        nothing = ~present.any(dim=1)
        logits = torch.where(nothing.unsqueeze(1), self.class_log_prior.expand_as(logits), logits)
        return (logits, weights) if return_weights else logits

    def _drop_modalities(self, present):
        dropped = torch.rand(present.shape, device=present.device) < self.modality_dropout
        kept = present & ~dropped
        keeps_one = kept.any(dim=1, keepdim=True)
        return torch.where(keeps_one, kept, present)

    def _flat(self, projected, present):
        return torch.cat([projected.flatten(1), present.float()], dim=1)

    def _fuse_concat(self, projected, present):
        return self.head(self._flat(projected, present)), None

    def _fuse_weighted(self, projected, present):
        weights = _masked_softmax(self.modality_scores.expand(present.shape), present)
        return self.head((weights.unsqueeze(-1) * projected).sum(1)), weights

    def _fuse_gated(self, projected, present):
        gates = torch.sigmoid(self.gate(self._flat(projected, present))) * present
        logits = self.head(self._flat(projected * gates.unsqueeze(-1), present))
        return logits, gates / gates.sum(1, keepdim=True).clamp(min=1e-12)

    def _fuse_attention(self, projected, present):
        tokens = projected + self.modality_embedding
        # a row without any modality would make attention NaN; its logits are replaced anyway
        ignore = ~present & present.any(dim=1, keepdim=True)
        attended, attention = self.attention(
            tokens, tokens, tokens, key_padding_mask=ignore, need_weights=True, average_attn_weights=True
        )
        tokens = self.attention_norm(tokens + attended)
        pooled = masked_mean(tokens, present, dim=1)
        received = masked_mean(attention, present, dim=1)
        return self.head(pooled), received * present

    def _fuse_late(self, projected, present):
        log_probs = torch.stack(
            [torch.log_softmax(head(projected[:, index]), dim=-1) for index, head in enumerate(self.heads)],
            dim=1,
        )  # (batch, modalities, classes)
        weights = _masked_softmax(self.modality_scores.expand(present.shape), present)
        return (weights.unsqueeze(-1) * log_probs).sum(1), weights


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
