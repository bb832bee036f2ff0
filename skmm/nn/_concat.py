"""Feature-level fusion: the projections side by side, then an MLP."""

from ._base import FusionStrategy
from ._layers import mlp, side_by_side

__all__ = ["ConcatFusion"]


class ConcatFusion(FusionStrategy):
    """The projected modalities side by side (plus presence flags), then an MLP head.

    It has no per-modality weights (``forward`` returns ``None`` for them).

    Parameters
    ----------
    n_modalities, shared_dim, n_classes : int
        See :class:`FusionStrategy`.
    hidden_dims : tuple of int, default=(64,)
        Hidden layers of the head.
    dropout : float, default=0.1
        Dropout in the head.
    """

    def __init__(self, *, n_modalities, shared_dim, n_classes, hidden_dims=(64,), dropout=0.1):
        super().__init__()
        self.head = mlp(n_modalities * shared_dim + n_modalities, hidden_dims, n_classes, dropout)

    def forward(self, projected, present):
        return self.head(side_by_side(projected, present)), None
