"""skorch glue for small tabular-like data: fast mini-batches and a progress bar."""

import sys

import numpy as np
import torch
from skorch.callbacks import Callback

__all__ = ["FitCombinationWeights", "TensorBatches", "TrainingProgress"]


def _arrays(dataset):
    """``(X, y or None, row indices)`` behind a skorch ``Dataset`` or a ``Subset`` of one, else None."""
    indices = None
    if isinstance(dataset, torch.utils.data.Subset):
        indices = np.asarray(dataset.indices)
        dataset = dataset.dataset
    X, y = getattr(dataset, "X", None), getattr(dataset, "y", None)
    if not isinstance(X, (np.ndarray, torch.Tensor)) or not (y is None or isinstance(y, (np.ndarray, torch.Tensor))):
        return None
    if indices is None:
        indices = np.arange(len(X))
    return torch.as_tensor(X), None if y is None else torch.as_tensor(y), torch.as_tensor(indices)


def _draw_seed():
    return int(torch.empty((), dtype=torch.int64).random_().item())


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
    """

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
        # torch's global generator is drawn from as by a DataLoader (its base seed, then its
        # RandomSampler's seed), so a seeded fit gives the same model as with skorch's default loader
        _draw_seed()
        if self.shuffle:
            generator = torch.Generator().manual_seed(_draw_seed())
            indices = indices[torch.randperm(len(indices), generator=generator)]
        for start in range(0, len(indices), self.batch_size):
            rows = indices[start : start + self.batch_size]
            yield X[rows], torch.zeros(len(rows)) if y is None else y[rows]


class TrainingProgress(Callback):
    """A progress bar on stderr over the epochs: loss, validation loss, time left.

    It appears only once training has run for ``delay`` seconds and is removed
    when training ends, as the encoders' bars are.

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
        from tqdm.auto import tqdm

        self.bar_ = tqdm(
            total=net.max_epochs, desc="MultimodalClassifier", unit="epoch",
            disable=self.disable, delay=self.delay, leave=False, file=sys.stderr,
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
    heads never trained on. Without a validation split nothing changes.
    """

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        self.valid_ = dataset_valid

    def on_train_end(self, net, X=None, y=None, **kwargs):
        valid = self.__dict__.pop("valid_", None)
        arrays = None if valid is None else _arrays(valid)
        if arrays is None or arrays[1] is None:
            return
        X_valid, y_valid, rows = arrays
        module = net.module_
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                projected, present = module.project(X_valid[rows].to(net.device))
            module.strategy.fit_weights(projected, present, y_valid[rows].to(net.device).long())
        finally:
            module.train(was_training)
