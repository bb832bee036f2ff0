"""A fitted skorch net as plain data, and back: how a MultimodalClassifier pickles and is stored by skops.

A skorch net pickles its torch modules with ``torch.save``, so skops could only
store it as an opaque blob that unpickles on load. :class:`skmm.MultimodalClassifier`
therefore hands pickle and skops its net as data (its ``__getstate__`` calls
:func:`to_data`): a :class:`NetState` holding the net's class *name* and
parameters, and the ``state_dict`` of each of its modules, criteria and
optimizers, every tensor as a numpy array (:class:`TensorState`).
:func:`from_data` (called by ``__setstate__``) rebuilds the net: it creates it
from its parameters, initializes it and loads the saved weights, so loading
runs no pickle at all, and skops is never asked to create a skorch net (whose
own ``__setstate__`` unpickles).

Rebuilding calls classes named in the data (the net's module, loss, optimizer,
batch iterators, dataset, callbacks, the fusion strategy). Each of these slots
accepts, among the types skmm's model files may hold
(:data:`skmm.persistence.TRUSTED_TYPES`), only the one skmm puts there, checked
by identity: a file cannot make the net call any other allow-listed object (a
function, an estimator class) in its place. A class outside that list can only
reach this point if the loader trusted it (pickle trusts everything; skops only
what it was told to trust, such as your own fusion strategy class), and is used.
The net's own class must be one of :data:`TRUSTED_NET_CLASSES`; it is imported
only once checked.

Callbacks are rebuilt from their attributes, without calling their constructor;
their per-fit state (attributes ending in ``_``, e.g. early stopping's counters)
is left out and starts afresh on the next fit, as it does anyway.
"""

import importlib
import inspect
import sys
import warnings

import numpy as np

__all__ = ["CallbackState", "HistoryState", "NetState", "TensorState", "UntrustedNetError", "from_data", "to_data"]

#: the net classes skmm's estimators use; no other net class is ever created from data
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
    """A skorch callback as its class and attributes (its per-fit state, ending in ``_``, left out)."""

    def __init__(self, cls, params):
        self.cls = cls
        self.params = params


class NetState:
    """A fitted skorch net: class name, parameters, fitted attributes, weights, the state of its callbacks."""

    def __init__(self, cls, params, attributes, weights, history, callbacks=None):
        self.cls = cls  # "module.Class"
        self.params = params
        self.attributes = attributes
        self.weights = weights
        self.history = history
        self.callbacks = callbacks  # {name: attributes} of the callbacks given in ``params``


class UntrustedNetError(ValueError):
    """Data naming a class or function where a net does not accept it; ``name`` says which."""

    def __init__(self, name, where="the net class"):
        super().__init__(f"{where} {name!r} is not one skmm builds its network from")
        self.name = name


# --------------------------------------------------------------------------- to data


def to_data(obj):
    """``obj`` with every skorch net, history, callback and tensor in it replaced by plain data.

    Lists, tuples and dicts are walked (and copied where something in them
    changed); anything else is returned as it is. ``obj`` is never changed.
    """
    return _Encoder().encode(obj)


def _settings(callback):
    """A callback's attributes, without its per-fit state (names ending in ``_``)."""
    return {key: value for key, value in vars(callback).items() if not key.endswith("_")}


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
                return CallbackState(type(obj), self.encode(_settings(obj)))
        if type(obj) in (list, tuple):
            items = [self.encode(item) for item in obj]
            return obj if all(a is b for a, b in zip(items, obj)) else type(obj)(items)
        if type(obj) is dict:
            items = {key: self.encode(value) for key, value in obj.items()}
            return obj if all(items[key] is obj[key] for key in obj) else items
        return obj

    def _net(self, net):
        name = f"{type(net).__module__}.{type(net).__name__}"
        params = {key: value for key, value in net.get_params(deep=False).items() if not key.startswith("_")}
        if not getattr(net, "initialized_", False):
            return NetState(name, self.encode(params), {}, None, None)
        names = [*net._modules, *net._criteria, *net._optimizers]
        skipped = _REBUILT | {f"{name}_" for name in names}
        attributes = {key: value for key, value in vars(net).items()
                      if key.endswith("_") and not key.startswith("_") and key not in skipped}
        weights = {name: dict(getattr(net, f"{name}_").state_dict()) for name in names}
        given = {id(item[1] if isinstance(item, tuple) else item) for item in params.get("callbacks") or ()}
        callbacks = {name: _settings(callback) for name, callback in net.callbacks_ if id(callback) in given}
        return NetState(
            name, self.encode(params), self.encode(attributes), self.encode(weights), self.encode(net.history),
            self.encode(callbacks),
        )


# --------------------------------------------------------------------------- from data


def from_data(obj):
    """Rebuild what :func:`to_data` replaced, in lists, tuples and dicts too, and return it.

    Raises
    ------
    UntrustedNetError
        When the data names a net class that is not one of
        :data:`TRUSTED_NET_CLASSES`, or puts one of skmm's allow-listed types
        or functions into a slot that takes another (see the module's docstring).
    """
    return _Decoder().decode(obj)


def _name(obj):
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _slots():
    """``{parameter: (what skmm puts there, the base class anything else must derive from)}``."""
    import torch
    from skorch.callbacks import Callback
    from skorch.dataset import Dataset, ValidSplit

    from .classifier import _softmax
    from .nn import FUSIONS
    from .nn._loss import FusionLoss
    from .nn._network import FusionNetwork
    from .nn._training import FitCombinationWeights, TensorBatches, TrainingProgress

    iterators = ((TensorBatches, torch.utils.data.DataLoader), object)
    return {
        "module": ((FusionNetwork,), torch.nn.Module),
        "module__fusion": (tuple(FUSIONS[name] for name in FUSIONS), torch.nn.Module),
        "criterion": ((FusionLoss, torch.nn.CrossEntropyLoss), torch.nn.Module),
        "optimizer": ((torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD), torch.optim.Optimizer),
        "iterator_train": iterators,
        "iterator_valid": iterators,
        "dataset": ((Dataset,), Dataset),
        "train_split": ((ValidSplit,), object),  # an instance
        "predict_nonlinearity": ((_softmax,), None),  # a function, "auto" or None
        "callbacks": ((TrainingProgress, FitCombinationWeights, _early_stopping()), Callback),
    }


def _early_stopping():
    from skorch.callbacks import EarlyStopping

    return EarlyStopping


def _check_slot(slot, value, expected, base):
    """Refuse ``value`` in ``slot`` unless skmm puts it there, or it is a class nobody allow-listed.

    A value on the allow-list (:data:`skmm.persistence.TRUSTED_TYPES`) is there because any model
    file may hold it, so it is accepted only in the slot skmm puts it in. A class off the list got
    here only because the loader trusted it; it must still be of the slot's kind (``base``).
    """
    from .persistence._trust import TRUSTED_TYPES

    if value is None or isinstance(value, str):  # "auto", None: skorch's own choices
        return
    cls = value if inspect.isclass(value) else type(value)  # train_split holds an instance
    if any(cls is allowed or value is allowed for allowed in expected):
        return
    trusted_class = _name(cls) not in TRUSTED_TYPES and (inspect.isclass(value) or slot == "train_split")
    of_its_kind = base is None or issubclass(cls, base)
    if not (trusted_class and of_its_kind):
        raise UntrustedNetError(_name(value), where=f"{slot}=")


class _Decoder:
    def __init__(self):
        self.memo = {}
        self._slots = None

    @property
    def slots(self):
        if self._slots is None:
            self._slots = _slots()
        return self._slots

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
            expected, base = self.slots["callbacks"]
            _check_slot("callbacks", obj.cls, expected, base)
            callback = obj.cls.__new__(obj.cls)  # no constructor runs: the stored attributes are set
            callback.__dict__.update(self.decode(obj.params))
            return callback
        if isinstance(obj, NetState):
            return self._net(obj)
        if type(obj) is list:
            return [self.decode(item) for item in obj]
        if type(obj) is tuple:
            return tuple(self.decode(item) for item in obj)
        if type(obj) is dict:
            return {key: self.decode(value) for key, value in obj.items()}
        return obj

    def _net(self, state):
        import torch

        cls = _net_class(state.cls)
        params = self.decode(state.params)
        for slot, (expected, base) in self.slots.items():
            if slot != "callbacks" and slot in params:
                _check_slot(slot, params[slot], expected, base)
        if isinstance(params.get("module__fusion"), str):
            from .nn import FUSIONS

            if params["module__fusion"] not in FUSIONS:
                raise UntrustedNetError(params["module__fusion"], where="module__fusion=")
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
        initialized = dict(net.callbacks_)  # initialize() reset them: give back what they had learned
        for name, settings in self.decode(getattr(state, "callbacks", None) or {}).items():
            initialized[name].__dict__.update(settings)
        return net


def _net_class(name):
    from skorch import NeuralNet

    if name not in TRUSTED_NET_CLASSES:
        raise UntrustedNetError(name)
    module_name, _, class_name = name.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, NeuralNet)):
        raise TypeError(f"{name!r} is not a skorch net class")
    return cls
