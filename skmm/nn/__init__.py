"""Plain torch modules behind :class:`skmm.MultimodalClassifier` (no scikit-learn code here).

Every modality block is projected into one shared space of width
``shared_dim`` by :class:`FusionNetwork` and fused by a *fusion strategy*: one
``torch.nn.Module`` per strategy, all following the interface documented on
:class:`FusionStrategy`, found by name in :data:`FUSIONS`.

Importing this package does not import torch: :data:`FUSIONS` knows the
strategies by name and imports a class when it is looked up, and the other
names (``FusionNetwork``, ``FocalLoss``, the strategy classes) are imported on
first use.

Examples
--------
>>> from skmm.nn import FUSIONS
>>> list(FUSIONS)
['concat', 'weighted', 'gated', 'attention', 'late']
>>> "gated" in FUSIONS
True
>>> FUSIONS["attention"].__name__
'AttentionFusion'
"""

from collections.abc import Mapping
from importlib import import_module

#: public name -> "module:attribute" that defines it
_LAZY = {
    "FusionNetwork": "._network:FusionNetwork",
    "FocalLoss": "._loss:FocalLoss",
    "FusionLoss": "._loss:FusionLoss",
    "FusionStrategy": "._base:FusionStrategy",
    "ConcatFusion": "._concat:ConcatFusion",
    "WeightedFusion": "._weighted:WeightedFusion",
    "GatedFusion": "._gated:GatedFusion",
    "AttentionFusion": "._attention:AttentionFusion",
    "LateFusion": "._late:LateFusion",
}


def _import(path):
    module, _, attribute = path.partition(":")
    return getattr(import_module(module, __name__), attribute)


class _Strategies(Mapping):
    """Read-only ``{name: strategy class}`` that imports a class (and torch) only when it is looked up."""

    def __init__(self, names):
        self._names = dict(names)  # name -> public class name in this package

    def __getitem__(self, name):
        return _import(_LAZY[self._names[name]])

    def __contains__(self, name):
        return name in self._names

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def __repr__(self):
        return "{" + ", ".join(f"{name!r}: skmm.nn.{cls}" for name, cls in self._names.items()) + "}"


#: The built-in fusion strategies, ``{name: class}``; the names are the values of
#: ``MultimodalClassifier(fusion=...)``.
FUSIONS = _Strategies(
    {
        "concat": "ConcatFusion",
        "weighted": "WeightedFusion",
        "gated": "GatedFusion",
        "attention": "AttentionFusion",
        "late": "LateFusion",
    }
)

__all__ = sorted(["FUSIONS", *_LAZY])


def __getattr__(name):
    path = _LAZY.get(name)
    if path is None:
        raise AttributeError(f"module 'skmm.nn' has no attribute {name!r}")
    value = _import(path)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted({*globals(), *_LAZY})
