"""The one interface every fusion strategy follows."""

import inspect

from torch import nn

__all__ = ["FusionStrategy", "build_strategy", "has_own_heads", "learns_combination", "resolve_strategy"]

INTERFACE = (
    "a torch.nn.Module subclass following skmm.nn.FusionStrategy's interface: constructed with keyword "
    "arguments among n_modalities, shared_dim, n_classes, hidden_dims, dropout, attention_heads, and "
    "forward(projected, present) -> (logits, weights or None)"
)


class FusionStrategy(nn.Module):
    """Base class of the fusion strategies: combine projected modalities into class logits.

    A strategy is any ``torch.nn.Module`` with this interface; subclassing
    ``FusionStrategy`` is optional (it only documents the contract).
    :class:`FusionNetwork` does what is common to all strategies (per-modality
    projections, masking absent modalities, modality dropout, the class prior
    for rows with no modality); the strategy only fuses.

    **Construction.** The network calls the strategy class with keyword
    arguments, passing those its ``__init__`` names (all of them if it takes
    ``**kwargs``):

    - ``n_modalities`` (int): number of modalities;
    - ``shared_dim`` (int): width of the shared space;
    - ``n_classes`` (int): number of classes;
    - ``hidden_dims`` (tuple of int): hidden layers of a classification head;
    - ``dropout`` (float): dropout rate;
    - ``attention_heads`` (int): heads of a cross-modal attention.

    **Forward.** ``forward(projected, present) -> (logits, weights)``:

    - ``projected``: float tensor ``(batch, n_modalities, shared_dim)``, the
      projection of every modality, zero where it is absent;
    - ``present``: bool tensor ``(batch, n_modalities)``, which modalities each
      row has (a row may have none; its logits are replaced by the class prior);
    - ``logits``: ``(batch, n_classes)``, unnormalised class scores;
    - ``weights``: ``(batch, n_modalities)``, how much each modality counted,
      summing to 1 over the present modalities and 0 where absent, or ``None``
      when the strategy has no such notion
      (:meth:`skmm.MultimodalClassifier.modality_weights` then estimates them
      by ablation).

    **Optional hooks.** Two methods change how the strategy is trained when it
    defines them (see :class:`skmm.nn.LateFusion`, which defines both):

    - ``unimodal_logits(projected) -> (batch, n_modalities, n_classes)``: the
      strategy has a classifier head per modality. :class:`skmm.nn.FusionLoss`
      then trains each head on the rows where its modality is present (with at
      least weight 1, see ``unimodal_loss``), and :class:`FusionNetwork` adds
      no heads of its own;
    - ``fit_weights(projected, present, target[, sample_weight])``: the
      strategy learns how to combine its heads on rows they did not train on.
      :class:`skmm.MultimodalClassifier` then holds out ``validation_fraction``
      of the rows and calls it once, after training, with their projections.

    Examples
    --------
    A strategy that averages the present modalities, then applies one linear
    layer:

    >>> import torch
    >>> from skmm._torch import masked_mean
    >>> from skmm.nn import FusionNetwork, FusionStrategy
    >>> class MeanFusion(FusionStrategy):
    ...     def __init__(self, *, shared_dim, n_classes):
    ...         super().__init__()
    ...         self.head = torch.nn.Linear(shared_dim, n_classes)
    ...     def forward(self, projected, present):
    ...         return self.head(masked_mean(projected, present, dim=1)), None
    >>> network = FusionNetwork([3, 2], n_classes=4, fusion=MeanFusion, shared_dim=8)
    >>> network(torch.randn(5, 5)).shape
    torch.Size([5, 4])
    """

    def forward(self, projected, present):
        """Fuse ``projected`` ``(batch, n_modalities, shared_dim)``; return ``(logits, weights or None)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(projected, present)")


def has_own_heads(strategy):
    """Whether ``strategy`` (a class or a module) has a head per modality: the ``unimodal_logits`` hook."""
    return callable(getattr(strategy, "unimodal_logits", None))


def learns_combination(strategy):
    """Whether ``strategy`` (a class or a module) combines its heads on held-out rows: the ``fit_weights`` hook."""
    return callable(getattr(strategy, "fit_weights", None))


def resolve_strategy(fusion):
    """The strategy class for ``fusion``: a name in :data:`skmm.nn.FUSIONS`, or a module class.

    Raises
    ------
    ValueError
        For an unknown name.
    TypeError
        For anything that is neither a name nor a ``torch.nn.Module`` subclass.
    """
    from . import FUSIONS

    if isinstance(fusion, str):
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {list(FUSIONS)} or {INTERFACE}; got {fusion!r}.")
        return FUSIONS[fusion]
    if isinstance(fusion, type) and issubclass(fusion, nn.Module):
        return fusion
    raise TypeError(
        f"fusion must be one of {list(FUSIONS)} or {INTERFACE}; got {fusion!r}. "
        "See the docstring of skmm.nn.FusionStrategy for an example."
    )


def build_strategy(strategy, **options):
    """Instantiate ``strategy`` with the ``options`` its ``__init__`` accepts."""
    signature = inspect.signature(strategy)
    parameters = signature.parameters.values()
    if not any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        accepted = {parameter.name for parameter in parameters}
        options = {name: value for name, value in options.items() if name in accepted}
    try:
        signature.bind(**options)
    except TypeError as error:
        raise TypeError(
            f"{strategy.__name__} cannot be built from the keyword arguments {sorted(options)} ({error}); "
            f"fusion must be {INTERFACE}."
        ) from None
    return strategy(**options)
