"""Training MultimodalClassifier's network through Hugging Face Accelerate (several GPUs, mixed precision).

:func:`accelerated_net` builds a skorch net with skorch's
:class:`~skorch.hf.AccelerateMixin`: under ``accelerate launch`` every process
trains a replica of the network on its share of each epoch's batches and the
gradients are averaged (PyTorch's DistributedDataParallel). When training ends,
:func:`plain_net` turns it back into a plain ``FusionNetClassifier`` holding the
trained weights, so the fitted classifier keeps no accelerate state: it pickles,
saves with :func:`skmm.save` and predicts where accelerate is not even
installed.

accelerate is an optional dependency: ``pip install "skmm[accelerate]"``.
"""

__all__ = ["accelerated_net", "device_name", "make_accelerator", "plain_net"]


def make_accelerator(spec):
    """An ``accelerate.Accelerator`` from ``MultimodalClassifier(accelerator=spec)``.

    Parameters
    ----------
    spec : "auto" or dict
        ``"auto"``: ``Accelerator()``, configured by ``accelerate launch`` (or
        ``accelerate config``); a dict: keyword arguments of ``Accelerator``.

    Returns
    -------
    accelerate.Accelerator
    """
    try:
        from accelerate import Accelerator
    except ImportError as exc:
        raise ImportError(
            "MultimodalClassifier(accelerator=...) needs Hugging Face accelerate, which is not "
            "installed. Install it with pip install \"skmm[accelerate]\", or set accelerator=None."
        ) from exc
    return Accelerator(**({} if spec == "auto" else spec))


def _accelerated_class():
    from skorch.hf import AccelerateMixin
    from torch.utils.data import DataLoader

    from .nn._training import FusionNetClassifier

    class AcceleratedFusionNetClassifier(AccelerateMixin, FusionNetClassifier):
        """skmm's skorch net (row weights, per-fit random streams) trained through an ``accelerate.Accelerator``."""

        def _initialize_accelerator(self):
            # skorch prepares every criterion, and on several processes accelerate would wrap
            # skmm's loss, which has no trainable parameters, in DistributedDataParallel, which
            # refuses it: such a criterion is only moved to the accelerator's device
            criteria = self._criteria
            self._criteria = [name for name in criteria if _trains(getattr(self, f"{name}_"))]
            for name in criteria:
                criterion = getattr(self, f"{name}_")
                if name not in self._criteria and hasattr(criterion, "to"):
                    criterion.to(self.accelerator.device)
            try:
                return super()._initialize_accelerator()
            finally:
                self._criteria = criteria

        def get_iterator(self, dataset, training=False):
            iterator = super().get_iterator(dataset, training=training)
            if isinstance(iterator, DataLoader):
                # prepared: split between the processes, batches on the device; it shuffles with this
                # fit's random stream, as skmm's own batches do
                return iterator if self.randomness is None else _DrawingFrom(iterator, self.randomness)
            # the validation rows (TensorBatches, which accelerate leaves alone): all of them in every
            # process, so that every process takes the same early-stopping decisions
            return _OnDevice(iterator, self.accelerator.device)

        def on_train_end(self, net, X=None, y=None, **kwargs):
            super().on_train_end(net, X=X, y=y, **kwargs)  # unwraps the modules
            # EarlyStopping(load_best=True) kept the state dict of the wrapped module, whose keys
            # DistributedDataParallel prefixes with "module.": it is loaded into the unwrapped one
            for _, callback in self.callbacks_:
                weights = getattr(callback, "best_model_weights_", None)
                if weights and all(key.startswith("module.") for key in weights):
                    callback.best_model_weights_ = {
                        key.removeprefix("module."): value for key, value in weights.items()
                    }
            return self

    return AcceleratedFusionNetClassifier


class _DrawingFrom:
    """``loader``'s batches, its random draws (the shuffling order, drawn when a pass starts) taken from
    ``randomness``, a :class:`skmm.nn._training.FitRandomness`."""

    def __init__(self, loader, randomness):
        self.loader = loader
        self.randomness = randomness

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        with self.randomness.drawing():
            batches = iter(self.loader)
            first = next(batches, None)  # the sampler draws its seed on the first batch
        if first is None:
            return
        yield first
        yield from batches


class _OnDevice:
    """The batches of ``iterator`` moved to ``device``, on every pass."""

    def __init__(self, iterator, device):
        self.iterator = iterator
        self.device = device

    def __len__(self):
        return len(self.iterator)

    def __iter__(self):
        from skorch.utils import to_device

        for batch in self.iterator:
            yield to_device(batch, self.device)


def _trains(criterion):
    """Whether ``criterion`` is a torch module with trainable parameters."""
    parameters = getattr(criterion, "parameters", None)
    return parameters is not None and any(parameter.requires_grad for parameter in parameters())


def _same_split_everywhere(split, accelerator):
    """``split`` with a seed shared by all processes, when it has none (each would hold out other rows)."""
    if split is None or split.random_state is not None or accelerator.num_processes == 1:
        return split
    import numpy as np
    from accelerate.utils import broadcast_object_list
    from skorch.dataset import ValidSplit

    seed = broadcast_object_list([int(np.random.randint(np.iinfo(np.int32).max))], from_process=0)[0]
    return ValidSplit(split.cv, stratified=split.stratified, random_state=seed)


def accelerated_net(spec, module, **params):
    """A skorch classifier net that trains through the Accelerator described by ``spec``.

    Parameters
    ----------
    spec : "auto" or dict
        See :func:`make_accelerator`.
    module : torch.nn.Module class
        The network, as skorch's ``module``.
    **params
        The parameters of a plain ``FusionNetClassifier``. ``device`` is
        ignored: the accelerator places the network (``accelerator.device``).
        The training batches come from a ``DataLoader`` (skorch's default),
        which the accelerator splits between the processes.

    Returns
    -------
    net : skorch net
        Unfitted; ``net.accelerator.device`` is where it will train.
    """
    from torch.utils.data import DataLoader

    accelerator = make_accelerator(spec)
    accelerated = {key: value for key, value in params.items()
                   if not key.startswith(("iterator_train", "device", "callbacks__print_log"))}
    accelerated["train_split"] = _same_split_everywhere(params.get("train_split"), accelerator)
    # AccelerateMixin sets a sink on skorch's epoch table, so the table must stay; when it is not
    # wanted, its sink prints nothing (accelerator.print, its default, ignores ``verbose``)
    silent = params.get("callbacks__print_log", "kept") is None
    net = _accelerated_class()(
        module,
        accelerator=accelerator,
        device=None,  # the accelerator places the modules and batches
        callbacks__print_log__sink=_print_nothing if silent else "auto",
        iterator_train=DataLoader,
        iterator_train__shuffle=True,
        **accelerated,
    )
    net._plain_params = {"module": module, **params}
    return net


def device_name(net):
    """The device ``net``'s accelerator trains on, as ``MultimodalClassifier.device_`` names it."""
    device = net.accelerator.device
    return "cpu" if device.type == "cpu" else str(device)  # "cpu", not the "cpu:0" of several processes


def _print_nothing(*args, **kwargs):
    pass


def plain_net(net):
    """A plain :class:`skmm.nn._training.FusionNetClassifier` with the trained modules of the accelerated ``net``.

    Its parameters are those given to :func:`accelerated_net`, its device the
    accelerator's, its history the same; it holds no reference to accelerate.

    Parameters
    ----------
    net : fitted net from :func:`accelerated_net`

    Returns
    -------
    skmm.nn._training.FusionNetClassifier
    """
    from .nn._training import FusionNetClassifier

    net._unwrap_accelerator()  # done at the end of training already (unwrap_after_train=True)
    plain = FusionNetClassifier(**{**net._plain_params, "device": device_name(net)})
    plain.initialize()
    for name in [*net._modules, *net._criteria]:
        setattr(plain, f"{name}_", getattr(net, f"{name}_"))
    plain._initialize_optimizer()  # bound to the trained module's parameters
    plain.history = net.history
    return plain
