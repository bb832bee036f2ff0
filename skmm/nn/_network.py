"""The network every fusion strategy plugs into: projections, absent-modality masks, class prior."""

import torch
from torch import nn

from ._base import INTERFACE, build_strategy, has_own_heads, resolve_strategy

__all__ = ["FusionNetwork"]


class FusionNetwork(nn.Module):
    """Project each modality into a shared space and fuse the projections with a strategy.

    The input is standardised already (the classifier does it). A block that is
    entirely NaN for a row is an *absent* modality: its projection is zeroed
    and it is marked absent for the strategy. A row with no modality at all
    gets the class prior seen in training.

    Parameters
    ----------
    block_sizes : sequence of int
        Width of each modality block, in the order of the input columns.
    n_classes : int
        Number of classes.
    fusion : str or class, default="concat"
        A name in :data:`skmm.nn.FUSIONS` or a ``torch.nn.Module`` subclass
        following the interface of :class:`skmm.nn.FusionStrategy`.
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
    class_log_prior : tensor of shape (n_classes,)
        Logits returned for rows where no modality is present.
    unimodal_loss : float, default=0.0
        When positive, every modality also gets a linear head of its own on
        its projection: training-mode ``forward`` returns these heads' logits
        too, for :class:`FusionLoss` to train each modality on its own, and
        eval-mode ``forward`` averages the probabilities of the fused
        prediction and of the heads of the modalities present in each row.
        A strategy with its own per-modality heads (a ``unimodal_logits``
        method, like late fusion's) always returns those in training mode,
        whatever this value: its heads learn from their own losses.

    Attributes
    ----------
    projections : ModuleList
        One Linear → LayerNorm → GELU → Dropout per modality.
    strategy : torch.nn.Module
        The fusion strategy, built from ``fusion``.
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
        class_log_prior=None,
        unimodal_loss=0.0,
    ):
        super().__init__()
        strategy = resolve_strategy(fusion)
        self.block_sizes = [int(size) for size in block_sizes]
        self.modality_dropout = float(modality_dropout)
        if class_log_prior is None:
            class_log_prior = torch.zeros(n_classes)
        self.register_buffer("class_log_prior", torch.as_tensor(class_log_prior, dtype=torch.float32))
        self.projections = nn.ModuleList(
            nn.Sequential(nn.Linear(size, shared_dim), nn.LayerNorm(shared_dim), nn.GELU(), nn.Dropout(dropout))
            for size in self.block_sizes
        )
        self.strategy = build_strategy(
            strategy,
            n_modalities=len(self.block_sizes),
            shared_dim=shared_dim,
            n_classes=n_classes,
            hidden_dims=tuple(hidden_dims),
            dropout=dropout,
            attention_heads=attention_heads,
        )
        self.unimodal_loss = float(unimodal_loss)
        if self.unimodal_loss > 0 and not has_own_heads(self.strategy):
            self.unimodal_heads = nn.ModuleList(nn.Linear(shared_dim, n_classes) for _ in self.block_sizes)

    def forward(self, X, return_weights=False, present=None):
        """Class logits ``(batch, n_classes)``; with ``return_weights`` also the strategy's weights.

        ``present`` (bool, ``(batch, n_modalities)``), when given, says which
        modalities each row has, and ``X`` holds no NaN (what training passes,
        computed once for all epochs); else both are found from the NaN in ``X``.

        The weights are ``(batch, n_modalities)``, or ``None`` for a strategy
        that has none. In training mode with per-modality heads (see
        ``unimodal_loss``) the result is ``(logits, unimodal_logits, present)``
        instead, with ``unimodal_logits`` of shape
        ``(batch, n_modalities, n_classes)``. With ``unimodal_loss > 0``
        outside training, the logits are those of the averaged probabilities
        (their softmax is the average).
        """
        projected, present = self.project(X, present)
        fused = self.strategy(projected, present)
        if not (isinstance(fused, tuple) and len(fused) == 2):
            raise TypeError(
                f"{type(self.strategy).__name__}.forward returned {type(fused).__name__}, expected a pair "
                f"(logits, weights or None); fusion must be {INTERFACE}."
            )
        logits, weights = fused
        nothing = ~present.any(dim=1)
        logits = torch.where(nothing.unsqueeze(1), self.class_log_prior.expand_as(logits), logits)
        if self.training and self.has_unimodal_heads and not return_weights:
            return logits, self._unimodal_logits(projected), present
        if not self.training and hasattr(self, "unimodal_heads"):
            logits = self._average_with_heads(logits, projected, present)
        return (logits, weights) if return_weights else logits

    @property
    def has_unimodal_heads(self):
        """Whether every modality has a head of its own (the strategy's, or added by ``unimodal_loss``)."""
        return has_own_heads(self.strategy) or hasattr(self, "unimodal_heads")

    def _average_with_heads(self, logits, projected, present):
        """Log of the mean of the fused probabilities and those of the present modalities' own heads.

        Every head was trained to predict on its own, so each is one more vote: averaging them with the
        fused prediction is a small ensemble that no single modality can dominate. A row with no
        modality keeps the fused logits (the class prior).
        """
        heads = torch.softmax(self._unimodal_logits(projected), dim=-1) * present.unsqueeze(-1)
        mean = (torch.softmax(logits, dim=-1) + heads.sum(dim=1)) / (1 + present.sum(dim=1, keepdim=True))
        return torch.log(mean.clamp(min=1e-12))

    def project(self, X, present=None):
        """The projections ``(batch, n_modalities, shared_dim)``, zero where absent, and the presence mask.

        A block is absent from a row when all its features are NaN; ``present``, when
        given, says so instead, for an ``X`` without NaN.
        """
        X = X.float()
        if present is None:
            present, X = self.presence(X), torch.nan_to_num(X, nan=0.0)
        if self.training and self.modality_dropout > 0:
            present = self._drop_modalities(present)
        blocks = torch.split(X, self.block_sizes, dim=1)
        projected = torch.stack([project(block) for project, block in zip(self.projections, blocks)], dim=1)
        return projected * present.unsqueeze(-1), present

    def presence(self, X):
        """Which modalities each row of ``X`` has: ``(batch, n_modalities)``, False where a block is all NaN."""
        missing = torch.split(torch.isnan(X), self.block_sizes, dim=1)
        return torch.stack([~block.all(dim=1) for block in missing], dim=1)

    def _unimodal_logits(self, projected):
        if has_own_heads(self.strategy):
            return self.strategy.unimodal_logits(projected)
        return torch.stack([head(projected[:, index]) for index, head in enumerate(self.unimodal_heads)], dim=1)

    def _drop_modalities(self, present):
        dropped = torch.rand(present.shape, device=present.device) < self.modality_dropout
        kept = present & ~dropped
        keeps_one = kept.any(dim=1, keepdim=True)
        return torch.where(keeps_one, kept, present)
