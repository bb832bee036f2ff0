"""Fitted skorch nets as plain data that skops can store safely, and back.

A skorch net pickles its torch modules with ``torch.save``, so skops can only
store it as an opaque blob that unpickles on load. :func:`to_data` returns a
copy of a fitted estimator in which every skorch net is a :class:`NetState`:
the net's class and parameters, and the ``state_dict`` of each of its modules,
criteria and optimizers, every tensor as a numpy array (:class:`TensorState`).
:func:`from_data` rebuilds the nets: it creates each net from its parameters,
initializes it and loads the saved weights, so loading runs no pickle at all.
The net's class is stored by name, not as a type that skops would create: skops
must never be allowed to create a skorch net itself, whose ``__setstate__``
unpickles. :func:`from_data` creates only the net classes it is told to trust.
Callbacks are rebuilt from their parameters (their per-fit state, e.g. early
stopping's counters, starts afresh on the next fit, as it does anyway).

The estimator given to :func:`to_data` is never changed: estimators on the
path to a net are shallow-copied.
"""

import sys
import warnings

import numpy as np
from sklearn.base import BaseEstimator

__all__ = [
    "CallbackState", "HistoryState", "NetState", "TensorState", "UntrustedNetError", "from_data",
    "to_data",
]

#: the net classes skmm's own estimators use (and used), created without being trusted explicitly
TRUSTED_NET_CLASSES = ("skmm.nn._training.FusionNetClassifier", "skorch.classifier.NeuralNetClassifier")

#: attributes a skorch net sets again in ``initialize()``, not saved
_REBUILT = {
    "initialized_", "virtual_params_", "init_context_", "callbacks_", "prefixes_",
    "cuda_dependent_attributes_", "history_",  # the history is saved on its own
}


class TensorState:
    """A torch tensor as a numpy array."""

    def __init__(self, array):
        self.array = array


class HistoryState:
    """A skorch ``History`` as a list of plain dicts."""

    def __init__(self, entries):
        self.entries = entries


class CallbackState:
    """A skorch callback as its class and parameters."""

    def __init__(self, cls, params):
        self.cls = cls
        self.params = params


class NetState:
    """A fitted skorch net: class name, parameters, fitted attributes and weights."""

    def __init__(self, cls, params, attributes, weights, history):
        self.cls = cls  # "module.Class"
        self.params = params
        self.attributes = attributes
        self.weights = weights
        self.history = history


# --------------------------------------------------------------------------- to data


def to_data(obj):
    """Return ``obj`` with every skorch net, history and tensor replaced by plain data."""
    return _Encoder().encode(obj)


class _Encoder:
    def __init__(self):
        self.memo = {}  # id -> (original, encoded): shared objects stay shared

    def encode(self, obj):
        key = id(obj)
        if key not in self.memo:
            self.memo[key] = (obj, self._encode(obj))
        return self.memo[key][1]

    def _encode(self, obj):
        torch, skorch = sys.modules.get("torch"), sys.modules.get("skorch")
        if torch is not None and isinstance(obj, torch.Tensor):
            return TensorState(obj.detach().cpu().numpy().copy())
        if skorch is not None:
            from skorch.callbacks import Callback
            from skorch.history import History

            if isinstance(obj, skorch.NeuralNet):
                return self._net(obj)
            if isinstance(obj, History):
                return HistoryState(self.encode(list(obj)))
            if isinstance(obj, Callback):
                return CallbackState(type(obj), self.encode(obj.get_params(deep=False)))
        if type(obj) in (list, tuple):
            items = [self.encode(item) for item in obj]
            return obj if all(a is b for a, b in zip(items, obj)) else type(obj)(items)
        if type(obj) is dict:
            items = {key: self.encode(value) for key, value in obj.items()}
            return obj if all(items[key] is obj[key] for key in obj) else items
        if isinstance(obj, BaseEstimator):
            state = {key: self.encode(value) for key, value in vars(obj).items()}
            if all(state[key] is value for key, value in vars(obj).items()):
                return obj
            copy = object.__new__(type(obj))
            copy.__dict__.update(state)
            return copy
        return obj

    def _net(self, net):
        name = f"{type(net).__module__}.{type(net).__name__}"
        params = {key: value for key, value in net.get_params(deep=False).items()
                  if not key.startswith("_")}
        if not getattr(net, "initialized_", False):  # e.g. the template net of a search
            return NetState(name, self.encode(params), {}, None, None)
        names = [*net._modules, *net._criteria, *net._optimizers]
        skipped = _REBUILT | {f"{name}_" for name in names}
        attributes = {key: value for key, value in vars(net).items()
                      if key.endswith("_") and not key.startswith("_") and key not in skipped}
        weights = {name: dict(getattr(net, f"{name}_").state_dict()) for name in names}
        return NetState(
            name, self.encode(params), self.encode(attributes), self.encode(weights),
            self.encode(net.history),
        )


# --------------------------------------------------------------------------- from data


class UntrustedNetError(ValueError):
    """A net class that the caller did not trust; ``name`` says which."""

    def __init__(self, name):
        super().__init__(f"the net class {name!r} is not trusted")
        self.name = name


def from_data(obj, *, trusted=()):
    """Rebuild what :func:`to_data` replaced (in place where possible) and return ``obj``.

    Parameters
    ----------
    obj : object
        What :func:`to_data` returned, after a round trip through skops.
    trusted : True or collection of str, default=()
        Net classes (``"module.Class"``) to create besides
        :data:`TRUSTED_NET_CLASSES`; ``True`` creates any skorch net class.

    Raises
    ------
    UntrustedNetError
        When a net's class is not trusted.
    """
    return _Decoder(trusted).decode(obj)


def _net_class(name, trusted):
    import importlib

    from skorch import NeuralNet

    if trusted is not True and name not in TRUSTED_NET_CLASSES and name not in trusted:
        raise UntrustedNetError(name)
    module_name, _, class_name = name.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, NeuralNet)):
        raise TypeError(f"{name!r} is not a skorch net class")
    return cls


class _Decoder:
    def __init__(self, trusted):
        self.trusted = trusted
        self.memo = {}

    def decode(self, obj):
        key = id(obj)
        if key not in self.memo:
            self.memo[key] = (obj, self._decode(obj))
        return self.memo[key][1]

    def _decode(self, obj):
        if isinstance(obj, TensorState):
            import torch

            return torch.from_numpy(np.array(obj.array))
        if isinstance(obj, HistoryState):
            from skorch.history import History

            return History(self.decode(obj.entries))
        if isinstance(obj, CallbackState):
            from skorch.callbacks import Callback

            if not (isinstance(obj.cls, type) and issubclass(obj.cls, Callback)):
                raise TypeError(f"{obj.cls!r} is not a skorch callback class")
            return obj.cls(**self.decode(obj.params))
        if isinstance(obj, NetState):
            return self._net(obj)
        if type(obj) is list:
            obj[:] = [self.decode(item) for item in obj]
        elif type(obj) is tuple:
            obj = tuple(self.decode(item) for item in obj)
        elif type(obj) is dict:
            for key, value in obj.items():
                obj[key] = self.decode(value)
        elif isinstance(obj, BaseEstimator):
            for key, value in vars(obj).items():
                setattr(obj, key, self.decode(value))
        return obj

    def _net(self, state):
        import torch

        cls = _net_class(state.cls, self.trusted)
        params = self.decode(state.params)
        device = str(params.get("device") or "cpu")
        if device.startswith("cuda") and not torch.cuda.is_available():
            warnings.warn(
                f"the {cls.__name__} in this model file was trained on {device!r}, and no "
                "CUDA device is available here: it is loaded on the CPU.",
                UserWarning,
                stacklevel=2,
            )
            params["device"] = "cpu"
        net = cls(**params)
        if state.weights is None:
            return net
        net.initialize()
        for name, weights in self.decode(state.weights).items():
            getattr(net, f"{name}_").load_state_dict(weights)
        for key, value in self.decode(state.attributes).items():
            setattr(net, key, value)
        net.history = self.decode(state.history)
        return net
