"""Fine-tuning the top of an encoder's backbone on the labels: the ``FineTuning`` parameter and its training.

An encoder with ``fine_tune`` set learns in ``fit(X, y)``: the last ``blocks``
blocks of its backbone (all their weights, or low-rank adapters added to them
with Hugging Face ``peft``) train with a temporary linear head on the labels of
its own column. The frozen part below them gives the same activations at every
epoch, so they are computed once per row and kept in the encoder's cache
(keyed like its embeddings, plus the cut point): an epoch costs only the
trainable part. The encoder keeps the trained weights of that part (numpy
arrays, ``fine_tuned_``), never a second copy of the backbone, and its
``transform`` gives the embeddings of the tuned backbone; the fusion step and
the classifier use them as any other features.

The head starts from a logistic regression fitted on the frozen embeddings
(a linear probe, then fine-tuning: the backbone's features are not pulled
apart by a random head's first gradients), and the epochs stop at the best
loss on held-out rows of the labels, whose weights are kept.
"""

import copy
import warnings
import weakref
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator

from sklearn.utils import check_random_state

from .._docs import DocLinkMixin
from .._sklearn import Interval, StrOptions
from ._encoding import ColumnEncoding

__all__ = [
    "FineTuning", "TrunkRows", "TrunkView", "fine_tune", "fit_top", "merged_network", "resolve_fine_tuning", "transform_tuned",
]

#: how much of the backbone trains: every weight of its last blocks, or low-rank adapters on them
MODES = ("top", "lora")
#: the learning rate of the backbone's trainable part when ``lr=None``, per mode
DEFAULT_LR = {"top": 3e-4, "lora": 1e-3}
#: the learning rate of the temporary head (warm-started from a linear probe)
HEAD_LR = 1e-3
#: the linear probe's C is this over the number of training rows (an L2 penalty of 1/8 per row)
PROBE_ROWS_PER_PENALTY = 8.0
#: epochs without a better held-out loss before training stops
PATIENCE = 3
#: the first rows of ``X``, two of which run whole and split to check the split before training
SPLIT_CHECK_ROWS = 8
#: encoder -> (bundle, its tuned top): built once, never pickled with the encoder
_TOPS = weakref.WeakKeyDictionary()


class FineTuning(DocLinkMixin, BaseEstimator):
    """How an encoder fine-tunes the top of its backbone: an encoder's ``fine_tune`` parameter.

    ``ImageEncoder(fine_tune="top")`` and ``fine_tune="lora"`` use these
    defaults; pass a ``FineTuning`` to change them. Its parameters are the
    encoder's nested parameters (``fine_tune__blocks``), so ``GridSearchCV`` can
    tune them, and compare ``fine_tune=None`` (frozen) with fine-tuning.

    Parameters
    ----------
    mode : {"top", "lora"}, default="top"
        ``"top"`` trains every weight of the last ``blocks`` blocks;
        ``"lora"`` freezes them too and trains low-rank adapters (LoRA, with
        Hugging Face ``peft``) added to their linear and 1×1 convolution layers:
        fewer weights to train and to store.
    blocks : int, default=2
        How many blocks at the top of the backbone train (transformer layers of
        a text, speech or vision transformer model; MBConv blocks of
        EfficientNet-Lite, whose head convolution always trains with them;
        stages of ConvNeXt or ResNet). What follows the last block (a final
        norm, a pooler, CLIP's projection) trains with them. The blocks below are frozen, and
        their output is computed once per row and cached.
    rank : int, default=8
        Rank of the LoRA adapters (``mode="lora"``).
    epochs : int, default=10
        Most passes over the training rows; training stops earlier when the
        loss on the held-out rows has not improved for 3 epochs. The weights
        of the epoch with the lowest held-out loss are kept: the frozen ones
        when no epoch does better, so fine-tuning cannot make that loss worse.
    lr : float, default=None
        Learning rate of the backbone's trainable part (AdamW). None: 3e-4 for
        ``"top"``, 1e-3 for ``"lora"``. The head learns at 1e-3.
    batch_size : int, default=32
        Rows per optimiser step. On CUDA, a batch that runs out of memory is
        halved and tried again (with a warning), down to one row.
    validation_fraction : float, default=0.15
        Share of the labelled rows held out (stratified) to choose the epoch;
        they do not train the backbone. 0 trains on every row for ``epochs``.
    random_state : int, RandomState instance or None, default=None
        Seeds the split, the order of the rows and the adapters' initial
        weights: on a CPU, the same seed gives the same weights.

    See Also
    --------
    ImageEncoder, TextEncoder

    Examples
    --------
    >>> from skmm import FineTuning, TextEncoder
    >>> encoder = TextEncoder(fine_tune=FineTuning("lora", blocks=2, rank=4))
    >>> encoder.get_params()["fine_tune__rank"]
    4
    """

    _parameter_constraints = {
        "mode": [StrOptions(set(MODES))],
        "blocks": [Interval(Integral, 1, None, closed="left")],
        "rank": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [None, Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        mode="top",
        *,
        blocks=2,
        rank=8,
        epochs=10,
        lr=None,
        batch_size=32,
        validation_fraction=0.15,
        random_state=None,
    ):
        self.mode = mode
        self.blocks = blocks
        self.rank = rank
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.random_state = random_state


def resolve_fine_tuning(value):
    """The :class:`FineTuning` an encoder's ``fine_tune`` parameter stands for (validated), or None.

    The encoder's own constraint (:data:`~skmm.encoders._base.FINE_TUNE_CONSTRAINT`) has
    already refused anything but None, ``"top"``, ``"lora"`` and a ``FineTuning``.
    """
    if value is None:
        return None
    tuning = FineTuning(value) if isinstance(value, str) else value
    tuning._validate_params()
    return tuning


class TrunkView:
    """An encoder seen as the frozen part of its backbone below ``cut``, for :class:`ColumnEncoding`.

    Reading, decoding, batching, the cache and the row errors are the
    encoder's own; only the batch's encoding (the trunk's activations, one flat
    float32 vector per row, of any length) and the cache key (the encoder's,
    with the cut point) differ.
    """

    n_features_out_ = None  # ragged: ColumnEncoding.run_ragged

    def __init__(self, encoder, cut):
        self._encoder = encoder
        self._cut = cut
        self.display_name = f"{type(encoder).__name__} (frozen blocks)"

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def _identity(self, bundle):
        return self._encoder._identity(bundle, trunk=self._cut)

    def _encode_batch(self, items, bundle):
        return self._encoder._trunk_batch(items, bundle, self._cut)

    def _is_usable(self, vector):
        return bool(np.isfinite(vector).all())

    def activations(self, values, labels, bundle):
        """Each row's activations below the cut (from the cache, or computed and cached); None where missing."""
        return ColumnEncoding(self, values, labels, bundle).run_ragged()


class TrunkRows:
    """Some rows' cached activations below the cut, turned into the top's input tensors on demand.

    ``rows(indices)`` gives the tensors of those rows (padded to the longest of
    them for texts); ``lengths`` lets callers batch rows of similar length.
    """

    def __init__(self, encoder, bundle, cut, activations):
        self._encoder, self._bundle, self._cut = encoder, bundle, cut
        self._activations = activations
        self.lengths = np.array([len(row) for row in activations])

    def __call__(self, indices):
        return self._encoder._top_inputs([self._activations[i] for i in indices], self._bundle, self._cut)


def padded_sequences(rows, width, device):
    """Flat rows of ``width``-wide vectors (tokens, frames) as one zero-padded batch and its 0/1 mask."""
    import torch

    lengths = [len(row) // width for row in rows]
    hidden = np.zeros((len(rows), max(lengths), width), dtype=np.float32)
    mask = np.zeros((len(rows), max(lengths)), dtype=np.int64)
    for i, (row, length) in enumerate(zip(rows, lengths)):
        hidden[i, :length] = row.reshape(length, width)
        mask[i, :length] = 1
    return torch.from_numpy(hidden).to(device), torch.from_numpy(mask).to(device)


def fine_tune(encoder, X, y, bundle, tuning):
    """Train the top of ``encoder``'s backbone on ``y``: its fitted attributes, for ``fit`` to set once it has worked."""
    from sklearn.utils.validation import check_consistent_length

    check_consistent_length(X, y)
    cut, _, trunks = frozen_activations(encoder, X, bundle, tuning)
    state, history = fit_top(encoder, trunks, y, bundle, tuning, cut)
    return {"fine_tuned_": state, "fine_tune_cut_": cut, "fine_tune_history_": history}


def frozen_activations(encoder, X, bundle, tuning):
    """The cut point of ``tuning`` in ``encoder``'s backbone, ``X``'s rows and their activations below it.

    The activations come from the cache, or are computed and cached there: every
    later fit on these rows with the same cut (a fold, a refit, a grid-search
    candidate) reads them instead of running the frozen blocks again. The split
    is checked first, on the first rows (:func:`check_split`): a model that cannot
    be split is refused in seconds, not once its frozen blocks have run on every row.
    """
    from ..exceptions import InputWarning
    from ._graphs import LayerNotReached

    cut = check_blocks(encoder, tuning, bundle)
    values, labels = encoder._rows(X, bundle)
    first = slice(0, SPLIT_CHECK_ROWS)
    try:
        # a view of its own, whose warning is dropped: the bad rows are reported once, among all rows
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InputWarning)
            first_trunks = TrunkView(encoder, cut).activations(
                values[first], None if labels is None else labels[first], bundle
            )
    except LayerNotReached as exc:  # the list of blocks found is not what the model runs
        raise ValueError(_unknown_blocks(encoder)) from exc
    check_split(encoder, values[first], first_trunks, bundle, cut, tuning)
    trunks = TrunkView(encoder, cut).activations(values, labels, bundle)  # the first rows cached (if caching)
    if all(trunk is None for trunk in first_trunks):  # none of the first rows could be checked
        check_split(encoder, values, trunks, bundle, cut, tuning)
    return cut, values, trunks


def cache_frozen_blocks(encoder, X):
    """Compute and cache the frozen blocks' activations of ``X``'s rows, as fine-tuning ``encoder`` would.

    For a cross-validation that should run each row through the frozen blocks
    once, before its folds; ``encoder`` itself is left unfitted.
    """
    from sklearn.base import clone

    encoder = clone(encoder)
    encoder._validate_params()
    encoder._check_params()
    tuning = resolve_fine_tuning(encoder.fine_tune)
    X = encoder._validate_column(X, reset=True)
    frozen_activations(encoder, X, encoder._bundle(), tuning)


def transform_tuned(encoder, values, labels, bundle):
    """The embeddings of a fine-tuned encoder: its cached frozen blocks, then its trained top.

    Only the frozen blocks' activations are cached (keyed by the cut point): the
    trained top runs every time, so an output can never come from another fit's
    weights. Rows run in order of length (less padding); the output keeps the
    input order, NaN where a row is missing.
    """
    from .._threads import resolve_n_threads, torch_threads

    cut = encoder.fine_tune_cut_
    trunks = TrunkView(encoder, cut).activations(values, labels, bundle)
    output = np.full((len(values), encoder.n_features_out_), np.nan, dtype=np.float32)
    present = np.array([i for i, trunk in enumerate(trunks) if trunk is not None], dtype=int)
    if len(present):
        inputs = TrunkRows(encoder, bundle, cut, [trunks[i] for i in present])
        with torch_threads(resolve_n_threads(getattr(encoder, "n_threads", None))):
            features = _features(tuned_top(encoder, bundle), inputs, bundle.device, np.arange(len(present)),
                                 batch_size=encoder.batch_size)
        output[present] = features.numpy()
    return output


def check_split(encoder, values, trunks, bundle, cut, tuning):
    """Refuse a backbone whose blocks above ``cut``, run on their own, do not give its features.

    Checked on two rows against the whole model: an architecture whose layers
    take another kind of attention mask, or whose features are not pooled from
    the last layer, fails here instead of training on wrong activations. With
    ``tuning.mode="lora"`` the top with its adapters (which start as no change)
    is checked too: an adapter that breaks a layer is refused here, not after
    the frozen blocks have run on every row.
    """
    import torch

    positions = [i for i, trunk in enumerate(trunks) if trunk is not None][:2]
    if not positions:
        return
    items = [encoder._decode(encoder._read(values[i])[1], bundle) for i in positions]
    whole = np.asarray(encoder._encode_batch(items, bundle), dtype=np.float32)
    inputs = encoder._top_inputs([trunks[i] for i in positions], bundle, cut)
    tolerance = 5e-2 if str(bundle.device).startswith("cuda") else 1e-3  # bfloat16 on CUDA
    for mode in dict.fromkeys(("top", tuning.mode)):
        refusal = (
            f"{type(encoder).__name__}(model={encoder.model!r}): the top blocks of this model, run on "
            "their own, do not give its features (its layers need more than the output of the layer "
            "below them), so skmm cannot fine-tune them; use fine_tune=None for this model."
            if mode == "top" else
            f"{type(encoder).__name__}(model={encoder.model!r}): the top blocks of this model do not "
            "run with LoRA adapters in their layers; use fine_tune='top' (or None) for this model."
        )
        try:
            top = build_top(encoder, bundle, FineTuning(mode, rank=tuning.rank), cut, seed=0)
            with torch.no_grad():
                split = top(*inputs).float().cpu().numpy()
        except torch.cuda.OutOfMemoryError:
            raise
        except (RuntimeError, TypeError, ValueError, IndexError, AttributeError) as exc:  # what a split breaks
            raise ValueError(refusal) from exc
        if split.shape != whole.shape or not np.allclose(split, whole, atol=tolerance, rtol=tolerance):
            raise ValueError(refusal)


def check_blocks(encoder, tuning, bundle):
    """The cut point (index of the first trainable block) for ``tuning.blocks``, checked against the model."""
    count = encoder._n_blocks(bundle)
    if count is None:
        raise ValueError(_unknown_blocks(encoder))
    if tuning.blocks > count:
        raise ValueError(
            f"fine_tune__blocks={tuning.blocks}, but {encoder.model!r} has {count} "
            f"block{'s' if count > 1 else ''}; choose {'1 to ' if count > 1 else ''}{count}."
        )
    return count - tuning.blocks


def _unknown_blocks(encoder):
    """The error for a model whose blocks skmm cannot find."""
    return refusal(encoder, "skmm does not know where the blocks of this architecture are")


def refusal(encoder, reason):
    """The error for a model that skmm cannot fine-tune, for ``reason``: with the models it can fine-tune."""
    return (
        f"{type(encoder).__name__}(model={encoder.model!r}) cannot be fine-tuned: {reason}. Fine-tuning "
        "supports EfficientNet-Lite (the default image model), transformers vision models whose layers or "
        "stages are in sequence (ViT, DeiT, DINOv2, CLIP, SigLIP, ConvNeXt, ResNet), BERT-style text models "
        "(BERT, RoBERTa, XLM-R, ELECTRA, MiniLM) and transformer audio models (wav2vec2, HuBERT, "
        "data2vec-audio, Whisper's encoder, AST); use fine_tune=None for this model."
    )


def build_top(encoder, bundle, tuning, cut, *, seed):
    """The trainable part above ``cut`` (a fresh copy), with LoRA adapters for ``mode="lora"``."""
    top = encoder._top_module(bundle, cut)
    frozen = set(getattr(top, "frozen", ()))  # parameters the cached activations never reach
    if tuning.mode == "lora":
        top = _with_adapters(top, tuning.rank, seed, frozen)
    else:
        for name, parameter in top.named_parameters():
            parameter.requires_grad_(name not in frozen)
    return top.to(bundle.device).eval()  # eval: dropout off, batch-norm statistics kept


def _with_adapters(top, rank, seed, frozen=()):
    """``top`` with LoRA adapters on its linear and 1×1 convolution layers (not those whose weight is in
    ``frozen``); only the adapters train."""
    import torch
    from torch import nn

    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as exc:
        raise ImportError(
            "fine_tune mode 'lora' needs Hugging Face peft: pip install \"skmm[finetune]\" "
            "(or use fine_tune='top', which needs nothing more)."
        ) from exc
    targets = [
        name
        for name, module in top.named_modules()
        if (isinstance(module, nn.Linear)
            or (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1))
        and f"{name}.weight" not in frozen
    ]
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        top = inject_adapter_in_model(config, top)
    for name, parameter in top.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return top


def trainable_state(top):
    """The trained weights of ``top``, as numpy arrays by name: only those that train."""
    return {
        name: parameter.detach().float().cpu().numpy().copy()
        for name, parameter in top.named_parameters()
        if parameter.requires_grad
    }


def load_trainable_state(top, state):
    """Put the weights of :func:`trainable_state` back into a freshly built ``top``."""
    import torch

    parameters = dict(top.named_parameters())
    unknown = sorted(set(state) - set(parameters))
    if unknown:
        raise ValueError(
            f"the fine-tuned weights name parts the model does not have ({unknown[:3]}): "
            "they were trained on another architecture. Fit the encoder again."
        )
    with torch.no_grad():
        for name, values in state.items():
            target = parameters[name]
            if tuple(target.shape) != values.shape:
                raise ValueError(
                    f"the fine-tuned weight {name!r} has shape {values.shape}, the model's "
                    f"{tuple(target.shape)}: fit the encoder again."
                )
            target.copy_(torch.from_numpy(np.asarray(values, dtype=np.float32)))
    top.requires_grad_(False)
    return top


def fit_top(encoder, trunks, y, bundle, tuning, cut):
    """Train the part above ``cut`` on the labels ``y`` of the rows whose trunk activations are in ``trunks``.

    Returns ``(state, history)``: the trained weights (:func:`trainable_state`)
    of the epoch with the lowest loss on the held-out rows -- epoch 0, the
    frozen weights, when no epoch beats them -- and one dict per epoch
    (``epoch``, ``train_loss``, ``valid_loss``, ``valid_accuracy``,
    ``batch_size``; epoch 0 has only the held-out scores).
    """
    import torch

    from .._progress import progress
    from .._threads import resolve_n_threads, torch_threads

    import pandas as pd
    from sklearn.utils.multiclass import check_classification_targets

    y = np.asarray(y)
    kept = np.array([i for i, trunk in enumerate(trunks) if trunk is not None], dtype=int)
    if len(kept) == 0:
        raise ValueError(f"{type(encoder).__name__}: no row can be encoded, nothing to fine-tune on.")
    holes = kept[np.asarray(pd.isna(y[kept]), dtype=bool)]
    if len(holes):
        raise ValueError(
            f"{type(encoder).__name__} fine-tuning: y has no label for {len(holes)} rows (the first at "
            f"position {holes[0]}); give every row a class label, or leave those rows out."
        )
    check_classification_targets(y[kept])  # class labels, not a regression target
    classes, codes = np.unique(y[kept], return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"{type(encoder).__name__} fine-tuning needs at least 2 classes among the rows it can "
            f"encode; found {len(classes)} ({classes.tolist()})."
        )
    seed = int(check_random_state(tuning.random_state).randint(2**31 - 1))
    train, valid = _split(codes, tuning.validation_fraction, seed)
    if tuning.validation_fraction > 0 and len(valid) == 0:
        warnings.warn(
            f"{type(encoder).__name__} fine-tuning: too few rows to hold out "
            f"fine_tune__validation_fraction={tuning.validation_fraction} of them with every class on "
            f"both sides ({len(kept)} rows, {len(classes)} classes; the smallest has "
            f"{np.bincount(codes).min()}), so it trains on every row for all {tuning.epochs} epochs and "
            "cannot keep the frozen weights when training does not help. Give it more labelled rows, or "
            "set fine_tune__validation_fraction=0 to say this is meant.",
            UserWarning,
            stacklevel=4,
        )
    inputs = TrunkRows(encoder, bundle, cut, [trunks[i] for i in kept])
    device = bundle.device

    with torch_threads(resolve_n_threads(getattr(encoder, "n_threads", None))):
        top = build_top(encoder, bundle, tuning, cut, seed=seed)
        head = _linear_probe(top, inputs, device, codes, train, len(classes))
        trainable = [p for p in top.parameters() if p.requires_grad]
        lr = tuning.lr if tuning.lr is not None else DEFAULT_LR[tuning.mode]
        optimizer = torch.optim.AdamW(
            [{"params": trainable, "lr": lr}, {"params": head.parameters(), "lr": HEAD_LR}],
            weight_decay=0.01,
        )
        steps_per_epoch = -(-len(train) // tuning.batch_size)
        # the learning rates rise linearly over the first epoch: a first step at full rate tears
        # the pretrained weights before the gradients mean anything
        warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / steps_per_epoch))
        loss_of = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
        targets = torch.as_tensor(codes, dtype=torch.long)
        generator = torch.Generator().manual_seed(seed)
        batch_size = tuning.batch_size
        n_steps = tuning.epochs * steps_per_epoch
        bar = progress(n_steps, desc=f"{type(encoder).__name__} fine-tuning", unit="step",
                       disable=not encoder.verbose)
        history, best, best_loss, waited = [], trainable_state(top), np.inf, 0
        if len(valid):  # epoch 0, the frozen weights: kept unless an epoch does better on held-out rows
            history.append({"epoch": 0, **_evaluate(top, head, inputs, device, targets, valid, loss_of)})
            best_loss = history[0]["valid_loss"]
        try:
            for epoch in range(1, tuning.epochs + 1):
                order = _similar_lengths(train, inputs.lengths, batch_size, generator)
                train_loss, batch_size = _train_epoch(
                    encoder, top, head, inputs, device, targets, order, optimizer, warmup, loss_of, batch_size, bar
                )
                record = {"epoch": epoch, "train_loss": train_loss, "batch_size": batch_size}
                if len(valid):
                    record.update(_evaluate(top, head, inputs, device, targets, valid, loss_of))
                history.append(record)
                bar.set_postfix({key: round(value, 4) for key, value in record.items()
                                 if isinstance(value, float)}, refresh=False)
                score = record.get("valid_loss", -epoch)  # without held-out rows: the last epoch
                if score < best_loss:
                    best, best_loss, waited = trainable_state(top), score, 0
                else:
                    waited += 1
                    if waited >= PATIENCE:
                        break
        finally:
            bar.close()
    return best, history


def _similar_lengths(indices, lengths, batch_size, generator):
    """A random order of ``indices`` in which each batch holds rows of similar length.

    Rows are shuffled, sorted by length within windows of 50 batches, cut into
    batches and the batches shuffled: a batch of texts is padded to its longest
    one, and random batches of texts of every length would pad most of them.
    """
    import torch

    order = indices[torch.randperm(len(indices), generator=generator).numpy()]
    window = 50 * batch_size
    for start in range(0, len(order), window):
        part = order[start : start + window]
        order[start : start + window] = part[np.argsort(lengths[part], kind="stable")]
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    shuffled = torch.randperm(len(batches), generator=generator).numpy()
    return np.concatenate([batches[i] for i in shuffled]) if batches else order


def _split(codes, fraction, seed):
    """Indices of the training and held-out rows: stratified, every class kept in training."""
    from sklearn.model_selection import train_test_split

    everything = np.arange(len(codes))
    n_valid = int(round(fraction * len(codes)))
    counts = np.bincount(codes)
    if n_valid < len(counts) or counts.min() < 2:
        return everything, everything[:0]
    train, valid = train_test_split(everything, test_size=n_valid, stratify=codes, random_state=seed)
    return np.sort(train), np.sort(valid)


def _features(top, inputs, device, indices, batch_size=64):
    """The output of ``top`` for some rows of ``inputs`` (:class:`TrunkRows`), without gradients, on the CPU.

    The rows are run in order of length (less padding), the output in the order of ``indices``.
    """
    import torch

    from .._torch import inference_context

    order = np.argsort(inputs.lengths[indices], kind="stable")
    chunks = []
    for start in range(0, len(order), batch_size):
        with inference_context(device):
            chunks.append(top(*inputs(indices[order[start : start + batch_size]])).float().cpu())
    features = torch.cat(chunks)
    return features[torch.from_numpy(np.argsort(order))]


def _linear_probe(top, inputs, device, codes, train, n_classes):
    """A linear head on ``top``'s output, started from a logistic regression on the frozen features."""
    import torch
    from sklearn.linear_model import LogisticRegression

    features = _features(top, inputs, device, train).numpy().astype(np.float64)
    mean, scale = features.mean(0), features.std(0) + 1e-6
    # the penalty per row of MultimodalClassifier's linear member (linear_alpha=1/8): a probe that
    # separates the training rows perfectly would leave the backbone no gradient to learn from
    probe = LogisticRegression(C=PROBE_ROWS_PER_PENALTY / len(train), max_iter=500)
    probe.fit((features - mean) / scale, codes[train])
    weight = probe.coef_ / scale
    bias = probe.intercept_ - weight @ mean
    if n_classes == 2:  # the binary probe has one row: logits (-z/2, z/2) give the same probabilities
        weight, bias = np.vstack([-weight / 2, weight / 2]), np.array([-bias[0] / 2, bias[0] / 2])
    head = torch.nn.Linear(features.shape[1], n_classes)
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return head.to(device)


def _train_epoch(encoder, top, head, inputs, device, targets, order, optimizer, schedule, loss_of, batch_size,
                 bar):
    """One pass over ``order``; on CUDA, a batch out of memory halves ``batch_size`` and is tried again.

    Returns the mean training loss and the batch size in use at the end.
    """
    import torch

    on_cuda = str(device).startswith("cuda")
    total, seen, start = 0.0, 0, 0
    while start < len(order):
        batch = order[start : start + batch_size]
        try:
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=on_cuda):
                logits = head(top(*inputs(batch)).float())
                loss = loss_of(logits.float(), targets[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        except torch.cuda.OutOfMemoryError:
            optimizer.zero_grad(set_to_none=True)
            if batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)
            if on_cuda:
                torch.cuda.empty_cache()
            warnings.warn(
                f"{type(encoder).__name__} fine-tuning ran out of GPU memory; it goes on with "
                f"batches of {batch_size} rows (fine_tune__batch_size).",
                ResourceWarning,
                stacklevel=4,
            )
            continue
        total += float(loss.detach()) * len(batch)
        seen += len(batch)
        start += len(batch)
        bar.update(1)
    return total / max(seen, 1), batch_size


def _evaluate(top, head, inputs, device, targets, valid, loss_of):
    """The loss and accuracy on the held-out rows."""
    import torch

    features = _features(top, inputs, device, valid)
    with torch.no_grad():
        logits = head(features.to(device)).float().cpu()
        loss = float(loss_of(logits, targets[valid]))
        accuracy = float((logits.argmax(1) == targets[valid]).float().mean())
    return {"valid_loss": loss, "valid_accuracy": accuracy}


def tuned_top(encoder, bundle):
    """The fitted encoder's trained part, rebuilt from ``fine_tuned_`` (once per encoder and bundle)."""
    cached = _TOPS.get(encoder)
    if cached is not None and cached[0] is bundle:
        return cached[1]
    tuning = resolve_fine_tuning(encoder.fine_tune)
    top = build_top(encoder, bundle, tuning, encoder.fine_tune_cut_, seed=0)
    top = load_trainable_state(top, encoder.fine_tuned_).eval()
    _TOPS[encoder] = (bundle, top)
    return top


def merged_network(encoder, bundle):
    """A copy of the encoder's whole network with its fine-tuned weights in place (LoRA adapters merged).

    What :func:`skmm.export_onnx` writes: one plain network, which computes the
    fine-tuned encoder's features without the cache of the frozen blocks.
    """
    top = copy.deepcopy(tuned_top(encoder, bundle))
    for name, module in list(top.named_modules()):
        if hasattr(module, "merge") and hasattr(module, "get_base_layer"):  # a peft LoRA layer
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(top.get_submodule(parent) if parent else top, child, module.get_base_layer())
    network = copy.deepcopy(bundle.network)
    top.write_into(network, encoder.fine_tune_cut_)
    return network.eval()
