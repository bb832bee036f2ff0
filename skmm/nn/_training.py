"""skorch glue for small tabular-like data: sample weights, per-fit randomness, fast mini-batches, progress."""

import inspect
import threading
from collections.abc import Mapping
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback
from skorch.utils import to_tensor

__all__ = ["FitCombinationWeights", "FitRandomness", "FusionNetClassifier", "TensorBatches", "TrainingProgress"]

#: held while a fit's own generator states are swapped into torch's global generators
_GLOBAL_GENERATORS = threading.Lock()


def _is_array(value):
    return isinstance(value, (np.ndarray, torch.Tensor))


def _arrays(dataset):
    """``(X, y or None, row indices)`` behind a skorch ``Dataset`` or a ``Subset`` of one, else None.

    ``X`` is a tensor, or a dict of tensors (``{"X": ..., "sample_weight": ...}``) when the
    dataset holds one.
    """
    indices = None
    if isinstance(dataset, torch.utils.data.Subset):
        indices = np.asarray(dataset.indices)
        dataset = dataset.dataset
    X, y = getattr(dataset, "X", None), getattr(dataset, "y", None)
    arrays = list(X.values()) if isinstance(X, Mapping) else [X]
    if not (arrays and all(map(_is_array, arrays))) or not (y is None or _is_array(y)):
        return None
    X = {key: torch.as_tensor(value) for key, value in X.items()} if isinstance(X, Mapping) else torch.as_tensor(X)
    if indices is None:
        indices = np.arange(len(arrays[0]))
    return X, None if y is None else torch.as_tensor(y), torch.as_tensor(indices)


def _rows(X, rows):
    """``X[rows]`` for a tensor or each tensor of a dict (``index_select``: several times faster than ``X[rows]``)."""
    if isinstance(X, Mapping):
        return {key: value.index_select(0, rows) for key, value in X.items()}
    return X.index_select(0, rows)


def _draw_seed():
    return int(torch.empty((), dtype=torch.int64).random_().item())


class FitRandomness:
    """One fit's own random streams, so that fits running in parallel threads do not share one.

    torch draws initial weights, dropout masks (and modality dropout) from its
    global generators, which every thread shares: two fits in threads would
    interleave their draws, and a ``random_state`` would not give the same model
    twice. Neither ``nn.Linear``'s initialisation nor dropout (nor
    ``nn.MultiheadAttention``'s, nor a user's strategy) takes a generator, so
    this object keeps the fit's own *state* of the global generators and swaps
    it in, under a lock, only while the fit draws (:meth:`drawing`: building
    the network, ordering its batches and its training-mode forward passes),
    putting the caller's state back after: the global generators are left as
    they were, as with ``torch.random.fork_rng``. Fits draw one at a time, the
    rest of their work runs in parallel.

    Parameters
    ----------
    seed : int or None
        The fit's seed; None draws one from torch's global generator (so that
        ``torch.manual_seed`` still makes an unseeded fit repeat).
    device : str, default="cpu"
        The training device; on CUDA its generator is swapped too.
    """

    def __init__(self, seed, device="cpu"):
        if seed is None:
            with _GLOBAL_GENERATORS:
                seed = _draw_seed() % 2**63
        device = torch.device(device)
        self._cuda = None
        if device.type == "cuda":
            self._cuda = device.index if device.index is not None else torch.cuda.current_device()
        self._state = self._fresh_states(seed)

    def _fresh_states(self, seed):
        cpu = torch.Generator().manual_seed(seed).get_state()
        if self._cuda is None:
            return cpu, None
        return cpu, torch.Generator(device=f"cuda:{self._cuda}").manual_seed(seed).get_state()

    def _global_states(self):
        cuda = None if self._cuda is None else torch.cuda.get_rng_state(self._cuda)
        return torch.get_rng_state(), cuda

    def _set_global_states(self, states):
        cpu, cuda = states
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, self._cuda)

    @contextmanager
    def drawing(self):
        """Within the block, torch's global generators are this fit's (and no other thread draws)."""
        with _GLOBAL_GENERATORS:
            outer = self._global_states()
            self._set_global_states(self._state)
            try:
                yield
            finally:
                self._state = self._global_states()
                self._set_global_states(outer)


class FusionNetClassifier(NeuralNetClassifier):
    """skorch's ``NeuralNetClassifier`` with row weights and a random stream of its own per fit.

    **Sample weights** travel with the features, as skorch's dict input
    ``X = {"X": features, "sample_weight": weights}``: every split (the
    early-stopping / late-fusion validation rows) and every batch keeps its
    rows' weights. The weights are taken out before the module sees ``X``
    and given to the criterion, which is called as
    ``criterion(output, target, sample_weight=...)``.

    **Randomness**: while a :class:`FitRandomness` is set as ``randomness``
    (the classifier sets it for the time of a fit), the module is built, run
    in training mode and its batches ordered with that fit's own generator
    states: the same draws, in the same order, as a fit alone in its process
    after ``torch.manual_seed(seed)``.
    """

    randomness = None

    def initialize_module(self):
        if self.randomness is None:
            return super().initialize_module()
        with self.randomness.drawing():
            return super().initialize_module()

    def get_iterator(self, dataset, training=False):
        iterator = super().get_iterator(dataset, training=training)
        if self.randomness is not None and isinstance(iterator, TensorBatches):
            iterator.randomness = self.randomness
        return iterator

    def infer(self, x, **fit_params):
        if isinstance(x, Mapping):  # features, and what travels with them: presence, row weights
            if x.get("present") is not None:
                fit_params = {**fit_params, "present": x["present"]}
            x = x["X"]
        if self.randomness is None or not self.module_.training:
            return super().infer(x, **fit_params)
        with self.randomness.drawing():
            return super().infer(x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = to_tensor(y_true, device=self.device)
        sample_weight = X.get("sample_weight") if isinstance(X, Mapping) else None
        if sample_weight is None:
            return self.criterion_(y_pred, y_true)
        return self.criterion_(y_pred, y_true, sample_weight=to_tensor(sample_weight, device=self.device))


class TensorBatches:
    """Mini-batches cut from whole tensors, for skorch's ``iterator_train`` and ``iterator_valid``.

    skorch's default ``DataLoader`` fetches every row on its own and collates
    them, which costs more than the step itself for small networks on
    embeddings. This iterator indexes the whole arrays once per batch, in
    the order a ``DataLoader`` would give (the same draws from torch's global
    generator), so a seeded fit repeats and matches skorch's default loader.
    Datasets it does not know (not a skorch ``Dataset`` of arrays) go to a
    ``DataLoader`` as usual.

    Parameters
    ----------
    dataset : skorch Dataset or torch Subset of one
        The rows to iterate over.
    batch_size : int
        Rows per batch.
    shuffle : bool, default=False
        Draw a new row order on every pass.

    Attributes
    ----------
    randomness : FitRandomness or None
        The fit whose random stream the order is drawn from (set by
        :class:`FusionNetClassifier`); None: torch's global generator, and an
        iterator that does not shuffle draws nothing.
    """

    randomness = None

    def __init__(self, dataset, batch_size, shuffle=False, **loader_options):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.loader_options = loader_options
        self._arrays = _arrays(dataset)

    def __len__(self):
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        if self._arrays is None:
            loader = torch.utils.data.DataLoader(
                self.dataset, batch_size=self.batch_size, shuffle=self.shuffle, **self.loader_options
            )
            yield from loader
            return
        X, y, indices = self._arrays
        if self.shuffle or self.randomness is not None:
            indices = self._order(indices)
        for start in range(0, len(indices), self.batch_size):
            rows = indices[start : start + self.batch_size]
            yield _rows(X, rows), torch.zeros(len(rows)) if y is None else y.index_select(0, rows)

    def _order(self, indices):
        # drawn as by a DataLoader (its base seed, then its RandomSampler's seed), so that a seeded
        # fit gives the same model as with skorch's default loader
        with nullcontext() if self.randomness is None else self.randomness.drawing():
            _draw_seed()
            if self.shuffle:
                generator = torch.Generator().manual_seed(_draw_seed())
                indices = indices[torch.randperm(len(indices), generator=generator)]
        return indices


class TrainingProgress(Callback):
    """Progress on stderr over the epochs: loss, validation loss, time left.

    In a terminal, a bar that appears only once training has run for ``delay``
    seconds and is removed when training ends, as the encoders' bars are; in a
    log (stderr not a terminal), a plain line at each quarter of the epochs
    (see :func:`skmm._progress.progress`).

    Parameters
    ----------
    delay : float, default=1.0
        Seconds before the bar appears.
    disable : bool, default=False
        Show nothing.
    """

    def __init__(self, delay=1.0, disable=False):
        self.delay = delay
        self.disable = disable

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        from .._progress import progress

        self.bar_ = progress(
            net.max_epochs, desc="MultimodalClassifier", unit="epoch", disable=self.disable, delay=self.delay
        )

    def on_epoch_end(self, net, **kwargs):
        last = net.history[-1]
        losses = {name: f"{last[name]:.3f}" for name in ("train_loss", "valid_loss") if name in last}
        self.bar_.set_postfix(losses, refresh=False)
        self.bar_.update(1)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self.bar_.close()
        del self.bar_  # a fitted net keeps no open bar (and pickles)


class FitCombinationWeights(Callback):
    """At the end of training, fit a late-fusion strategy's combination weights on the held-out rows.

    The strategy's ``fit_weights(projected, present, target)`` gets the
    projections of the validation rows (skorch's ``train_split``), which the
    heads never trained on, with their ``sample_weight`` when the strategy's
    ``fit_weights`` takes one (else the rows of weight 0 are left out).
    Without a validation split nothing changes.
    """

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        self.valid_ = dataset_valid

    def on_train_end(self, net, X=None, y=None, **kwargs):
        valid = self.__dict__.pop("valid_", None)
        arrays = None if valid is None else _arrays(valid)
        if arrays is None or arrays[1] is None:
            return
        X_valid, y_valid, rows = arrays
        X_valid, y_valid = _rows(X_valid, rows), y_valid[rows].to(net.device).long()
        options, present = {}, None
        if isinstance(X_valid, Mapping):
            weight, present = X_valid.get("sample_weight"), X_valid.get("present")
            X_valid = X_valid["X"]
            if weight is not None and "sample_weight" in inspect.signature(net.module_.strategy.fit_weights).parameters:
                options["sample_weight"] = weight.to(net.device)
            elif weight is not None:
                kept = weight > 0
                X_valid, y_valid = X_valid[kept], y_valid[kept.to(y_valid.device)]
                present = None if present is None else present[kept]
        module = net.module_
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                projected, present = module.project(
                    X_valid.to(net.device), None if present is None else present.to(net.device)
                )
            module.strategy.fit_weights(projected, present, y_valid, **options)
        finally:
            module.train(was_training)
