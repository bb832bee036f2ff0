"""MultimodalClassifier: a skorch-trained neural network that fuses modality blocks."""

import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._docs import DocLinkMixin
from ._sklearn import Interval, Options, StrOptions, _check_sample_weight, _fit_context
from ._threads import resolve_n_threads, torch_threads
from ._utils import resolve_device
from .exceptions import InputWarning
from .fusion import check_modalities
from .nn import FUSIONS

__all__ = ["MultimodalClassifier"]

_OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}
#: ``batch_size="auto"``: at most this many rows a step, and at least this many steps an epoch
_AUTO_BATCH_ROWS, _MIN_STEPS_PER_EPOCH = 256, 8

#: parameters handed to :class:`skmm.nn.FusionNetwork` unchanged, as skorch's ``module__<name>``
_MODULE_PARAMS = (
    "fusion", "shared_dim", "hidden_dims", "dropout", "attention_heads", "modality_dropout", "unimodal_loss"
)


def _softmax(logits):
    import torch

    return torch.softmax(logits, dim=-1)


def _keep_label_dtype(y):
    """pandas' nullable labels (``Int64``, ``boolean``) as numpy arrays of their own dtype.

    scikit-learn's validation turns them into float64, so ``classes_`` and ``predict`` would give
    ``1.0`` for the label ``1``; labels with missing values are left to its error.
    """
    dtype = getattr(y, "dtype", None)
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and numpy_dtype is not None:
        if not pd.isna(y).any():
            return np.asarray(y, dtype=numpy_dtype)
    return y


class MultimodalClassifier(DocLinkMixin, ClassifierMixin, BaseEstimator):
    """Neural classifier that projects each modality into a shared space and fuses them.

    The modality of every input column is read from its name,
    ``"<modality>__<feature>"`` (the output of :class:`MultimodalFusion`); a
    plain array is one modality. Each feature is standardised, each modality
    block projected to ``shared_dim`` and the blocks fused by the strategy
    ``fusion``; by default (``unimodal_loss=1``) every modality also learns to
    predict on its own, and the network's prediction averages the fused output
    with these per-modality votes. A logistic regression on the same
    standardised features is the second member of a small ensemble: the
    probabilities are ``1 - linear_weight`` times the network's plus
    ``linear_weight`` times the linear model's (see the user guide for how these
    defaults were chosen on real datasets, one left out at a time).
    A block that is entirely NaN for a row (an encoder's missing input) is an
    absent modality and is masked out for that row. Training uses skorch with
    cross-entropy (or focal loss) and Adam, on CPU or CUDA.

    Parameters
    ----------
    fusion : {"concat", "weighted", "gated", "attention", "late"} or class, default="concat"
        How modalities are combined: a name in :data:`skmm.nn.FUSIONS`, or a
        ``torch.nn.Module`` subclass following the interface of
        :class:`skmm.nn.FusionStrategy` (as skorch's ``module=`` takes a class).
    shared_dim : int, default=64
        Width of the shared space every modality is projected into.
    hidden_dims : tuple of int, default=(64,)
        Hidden layers of the classification head.
    dropout : float, default=0.5
        Dropout rate of the projections and heads. Strong by default: the
        embeddings are wide and the datasets small (see the user guide's
        benchmark).
    attention_heads : int, default=4
        Heads of the cross-modal attention (``fusion="attention"``);
        ``shared_dim`` must be divisible by it.
    modality_dropout : float, default=0.0
        Probability of dropping each modality of a training row (at least one
        kept), so the model learns to predict when modalities are absent.
    unimodal_loss : float, default=1.0
        Weight of the unimodal auxiliary losses. When positive, every modality
        also predicts the class on its own (a linear head on its projection),
        scored on the rows where it is present; the mean of these losses, times
        this weight, is added to the loss of the fused prediction, so every
        modality learns something useful by itself instead of leaning on the
        strongest one. The prediction is then the mean of the fused
        probabilities and those of the heads of the modalities present in the
        row. 0 trains and predicts with the fused output alone.
        ``fusion="late"`` has one head per modality anyway, each always
        trained on its own loss only (with this weight, or 1 when it is 0).
    class_weight : None, "balanced", "balanced_sqrt" or dict, default="balanced_sqrt"
        Weights of the classes in the losses of the network and of the linear
        model. ``"balanced"`` weighs each class by ``n_rows / (n_classes *
        rows_of_the_class)``, ``"balanced_sqrt"`` by the square root of that: a
        rare class counts more without its few rows dominating. Both are
        computed from the ``y`` (and ``sample_weight``) of each fit, so they are
        right inside every cross-validation fold. They multiply the
        ``sample_weight`` of ``fit``. None: every class 1.
    loss : {"cross_entropy", "focal"}, default="cross_entropy"
        Training loss of the network.
    focal_gamma : float, default=2.0
        Focusing parameter of the focal loss.
    label_smoothing : float, default=0.1
        Share of each cross-entropy target spread evenly over the classes, so
        the network does not chase certainty on its training rows.
    linear_weight : float, default=0.3
        Weight of the linear member in the ensemble, in ``[0, 1)``: a
        :class:`~sklearn.linear_model.LogisticRegression` fitted on the
        standardised features (absent values at the training mean). 0 predicts
        with the network alone.
    linear_alpha : float, default=1/8
        L2 penalty of the linear member on its mean loss, as SGDClassifier's
        ``alpha``: the logistic regression's ``C`` is ``1 / (linear_alpha *
        n_rows)``, the same regularisation per row whatever the size of the data.
    max_epochs : int, default=20
        Passes over the training data.
    lr : float, default=3e-3
        Learning rate.
    batch_size : int or "auto", default="auto"
        Rows per training step. ``"auto"``: ``min(256, ceil(n_rows / 8))`` for
        the ``n_rows`` that ``fit`` receives, so that every epoch takes at least
        8 steps: the same training as batches of 256 from 2,048 rows up, and
        enough steps on a small set (300 rows get 8 steps of 38 rows an epoch
        instead of one of 256). Predictions go in batches of 256.
    weight_decay : float, default=0.0
        L2 penalty of the optimiser.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        Optimiser.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified) and
        stop when its loss has not improved for ``patience`` epochs, keeping the
        best weights.
    patience : int, default=5
        Epochs without improvement before stopping.
    validation_fraction : float, default=0.1
        Share of the training data held out (stratified) for early stopping,
        and for learning how to combine the modalities with ``fusion="late"``
        (when every class has a row on both sides; else it trains on all rows).
    callbacks : list of skorch callbacks or (name, callback) pairs, default=None
        Extra skorch callbacks for training, next to skmm's own (early
        stopping). Each ``fit`` trains with clones of them, so the objects
        given stay untouched; the trained ones are in ``net_.callbacks_``.
    warm_start : bool, default=False
        Continue training the fitted network on the next ``fit`` (skorch's
        ``warm_start``) instead of starting again, when features and classes
        are unchanged.
    device : str, default="auto"
        ``"auto"`` trains on CUDA when available, else CPU. Ignored with an
        ``accelerator``, which places the network itself.
    accelerator : None, "auto" or dict, default=None
        Train through Hugging Face Accelerate (``pip install
        "skmm[accelerate]"``), e.g. on several GPUs under ``accelerate launch
        --multi_gpu --num_processes N script.py``: every process trains a
        replica on its share of the batches, gradients are averaged. ``"auto"``
        uses ``accelerate.Accelerator()`` as the launcher configured it; a dict
        gives its keyword arguments, e.g. ``{"mixed_precision": "bf16"}`` or
        ``{"cpu": True}``. Settings, not an ``Accelerator`` instance, so that
        the parameter clones and pickles: the fitted model keeps no accelerate
        state (``net_`` is a plain skorch net on ``device_``). None: no
        accelerate. See the *Scaling out* page of the documentation.
    n_threads : int or None, default=1
        torch CPU threads used by ``fit``, ``predict*`` and ``modality_weights``,
        set for the call and restored after it (the caller's setting is left as
        it was). One thread is fastest for these small networks, and much
        faster on a busy CPU or when scikit-learn runs fits in parallel
        (``n_jobs``); -1 uses every available CPU, None keeps torch's setting.
    random_state : int, RandomState or None, default=None
        Seed for initialisation, shuffling and dropout; an int gives the same
        model on CPU every time, also when fits run in parallel threads (each
        fit draws from random streams of its own).
    verbose : int, default=1
        0: silent. 1: a progress bar on stderr (epochs, loss, time left) for a
        fit that lasts more than a second, removed when training ends. 2: also
        skorch's per-epoch table.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    modalities_ : list of str
        Modality names, in the order of their first column.
    modality_sizes_ : list of int
        Number of features of each modality.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of str
        Input column names, when fitted on a DataFrame.
    scaler_ : sklearn.preprocessing.StandardScaler
        Standardisation learned in ``fit``, NaN ignored. A constant column
        gets scale 1; a column NaN in every row gets mean 0 and scale 1.
    net_ : skorch.NeuralNetClassifier (skmm.nn._training.FusionNetClassifier)
        The trained skorch net.
    linear_ : sklearn.linear_model.LogisticRegression or None
        The linear member of the ensemble, on the standardised features in
        the order of ``modalities_``; None with ``linear_weight=0``.
    history_ : skorch.History
        Per-epoch losses (and validation scores with early stopping).
    n_iter_ : int
        Epochs trained.
    device_ : str
        Device the network trained on.

    See Also
    --------
    MultimodalFusion : produces the ``"<modality>__<feature>"`` columns.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from skmm import MultimodalClassifier
    >>> rng = np.random.RandomState(0)
    >>> y = np.repeat(["cat", "dog"], 50)
    >>> X = pd.DataFrame({"image__a": rng.randn(100) + 3 * (y == "dog"),
    ...                   "text__b": rng.randn(100) + 3 * (y == "dog")})
    >>> clf = MultimodalClassifier(fusion="attention", max_epochs=20, random_state=0).fit(X, y)
    >>> clf.modalities_
    ['image', 'text']
    >>> clf.predict(X.iloc[:2]).dtype.kind, clf.score(X, y) > 0.9
    ('U', True)
    >>> clf.modality_weights(X.iloc[:1]).columns.tolist()
    ['image', 'text']
    """

    _parameter_constraints = {
        "fusion": [StrOptions(set(FUSIONS)), type],
        "shared_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden_dims": [tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "attention_heads": [Interval(Integral, 1, None, closed="left")],
        "modality_dropout": [Interval(Real, 0, 1, closed="left")],
        "unimodal_loss": [Interval(Real, 0, None, closed="left")],
        "class_weight": [None, StrOptions({"balanced", "balanced_sqrt"}), dict],
        "loss": [StrOptions({"cross_entropy", "focal"})],
        "focal_gamma": [Interval(Real, 0, None, closed="left")],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "linear_weight": [Interval(Real, 0, 1, closed="left")],
        "linear_alpha": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "optimizer": [StrOptions(set(_OPTIMIZERS))],
        "early_stopping": ["boolean"],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "callbacks": [None, list, tuple],
        "warm_start": ["boolean"],
        "device": [str],
        "accelerator": [None, StrOptions({"auto"}), dict],
        "n_threads": [None, Options(Integral, {-1}), Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        fusion="concat",
        shared_dim=64,
        hidden_dims=(64,),
        dropout=0.5,
        attention_heads=4,
        modality_dropout=0.0,
        unimodal_loss=1.0,
        class_weight="balanced_sqrt",
        loss="cross_entropy",
        focal_gamma=2.0,
        label_smoothing=0.1,
        linear_weight=0.3,
        linear_alpha=1 / 8,
        max_epochs=20,
        lr=3e-3,
        batch_size="auto",
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        patience=5,
        validation_fraction=0.1,
        callbacks=None,
        warm_start=False,
        device="auto",
        accelerator=None,
        n_threads=1,
        random_state=None,
        verbose=1,
    ):
        self.fusion = fusion
        self.shared_dim = shared_dim
        self.hidden_dims = hidden_dims
        self.dropout = dropout
        self.attention_heads = attention_heads
        self.modality_dropout = modality_dropout
        self.unimodal_loss = unimodal_loss
        self.class_weight = class_weight
        self.loss = loss
        self.focal_gamma = focal_gamma
        self.label_smoothing = label_smoothing
        self.linear_weight = linear_weight
        self.linear_alpha = linear_alpha
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.device = device
        self.accelerator = accelerator
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the fusion network on fused features ``X`` and labels ``y``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Features; column names ``"<modality>__<feature>"`` define the
            modalities. NaN marks absent values (a row whose whole block is NaN
            has that modality absent). A :class:`~skmm.fusion.ModalityWarning`
            says when a step after :class:`MultimodalFusion` dropped the names.
        y : array-like of shape (n_samples,)
            Class labels (strings allowed).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row in the loss (times its class's
            ``class_weight``), in the standardisation and in the class prior;
            a row of weight 0 counts for nothing. The rows held out for early
            stopping or late fusion keep their weights. None: every row 1.

        Returns
        -------
        self : MultimodalClassifier
        """
        self._check_params()
        previous = (self.n_features_in_, list(self.classes_)) if self.warm_start and hasattr(self, "net_") else None
        given = X
        X, y = validate_data(
            self, X, _keep_label_dtype(y), dtype=np.float32, ensure_all_finite="allow-nan", reset=True
        )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float32, ensure_non_negative=True, allow_all_zero_weights=True
            )
            if not sample_weight.any():
                raise ValueError(
                    "sample_weight is zero for every row, so there is nothing to learn from. Give the "
                    "rows to learn from a positive weight."
                )
        check_classification_targets(y)
        classes, y_encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"MultimodalClassifier needs at least 2 classes in y, got 1 class: {classes.tolist()}. "
                "Check the target column."
            )
        self.classes_ = classes
        self._set_blocks(check_modalities(given if hasattr(self, "feature_names_in_") else X))
        self._check_some_data(X[:, self._column_order])
        self._check_validation_split(y_encoded)
        self.device_ = resolve_device(self.device)
        seed = self._seed()

        with torch_threads(self.n_threads):
            if previous == (self.n_features_in_, list(self.classes_)):
                self.net_.set_params(warm_start=True)  # skorch trains on from the fitted weights
                # skorch's set_params would re-initialise the net for an iterator's parameter
                self.net_.iterator_train__batch_size = self._training_batch_size(len(y))
            else:
                self.scaler_ = _fit_scaler(X, sample_weight)
                self.net_ = self._build_net(y_encoded, seed, sample_weight)
            X = _clip(self.scaler_.transform(X))[:, self._column_order]
            # which modalities each row has, and the features without NaN, found once for every epoch
            present, X = self._presence(X), np.nan_to_num(X, nan=0.0)
            self.linear_ = self._fit_linear(X, y_encoded, sample_weight)
            # skorch's dict input: splits and batches keep each row's presence and weight
            # float32 as the network computes, rows contiguous (the column reordering leaves the array in
            # Fortran order): every batch copies a block of whole rows, the values unchanged
            inputs = {"X": np.ascontiguousarray(X, dtype=np.float32), "present": present}
            if sample_weight is not None:
                inputs["sample_weight"] = sample_weight
            self._train(inputs, y_encoded.astype(np.int64), seed)
        if self.accelerator is not None:  # the fitted model keeps no accelerate state
            from ._accelerate import plain_net

            self.net_ = plain_net(self.net_)
        self.history_ = self.net_.history
        self.n_iter_ = len(self.history_)
        if self.device_.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
        return self

    def _check_params(self):
        if not all(isinstance(width, Integral) and width > 0 for width in self.hidden_dims):
            raise ValueError(
                f"hidden_dims must be a tuple of positive integers, got {self.hidden_dims!r}; "
                "e.g. hidden_dims=(128, 64) or () for none."
            )
        if self.warm_start and self.accelerator is not None:
            raise ValueError(
                f"warm_start=True cannot be combined with accelerator={self.accelerator!r}: a fitted "
                "network is handed back without its accelerate state, so it could only train on in "
                "one process. Set warm_start=False (each fit trains from the start), or accelerator=None."
            )
        if not isinstance(self.fusion, str):
            from .nn._base import resolve_strategy

            resolve_strategy(self.fusion)

    def _check_validation_split(self, y_encoded):
        """Early stopping holds out a stratified share: it needs a row of every class on each side."""
        if self.early_stopping and not self._can_hold_out(y_encoded):
            n_rows, n_classes = len(y_encoded), len(self.classes_)
            n_valid = int(np.ceil(self.validation_fraction * n_rows))
            smallest = int(np.bincount(y_encoded).min())
            needed = min(0.5, n_classes / n_rows)
            raise ValueError(
                f"early_stopping=True holds out validation_fraction={self.validation_fraction} of the "
                f"{n_rows} training rows ({n_valid} rows) for a stratified validation set, which needs "
                f"at least one row of each of the {n_classes} classes on both sides (the smallest "
                f"class has {smallest} rows). Raise validation_fraction (to at least {needed:.2f}), "
                "train on more rows, or set early_stopping=False."
            )

    def _can_hold_out(self, y_encoded):
        """Whether a stratified share of ``validation_fraction`` has a row of every class on each side."""
        n_rows, n_classes = len(y_encoded), len(self.classes_)
        n_valid = int(np.ceil(self.validation_fraction * n_rows))
        smallest = int(np.bincount(y_encoded).min())
        return n_valid >= n_classes and n_rows - n_valid >= n_classes and smallest >= 2

    def _set_blocks(self, names):
        """Columns grouped by modality: ``names`` is the modality of each column."""
        modalities = list(dict.fromkeys(names))
        self._column_order = np.concatenate(
            [[i for i, name in enumerate(names) if name == modality] for modality in modalities]
        ).astype(int)
        self.modalities_ = modalities
        self.modality_sizes_ = [names.count(modality) for modality in modalities]

    def _block_slices(self):
        """The column slice of each modality, in ``modalities_`` order (after ``_column_order``)."""
        ends = np.cumsum(self.modality_sizes_)
        return [slice(end - size, end) for end, size in zip(ends, self.modality_sizes_)]

    def _check_some_data(self, X):
        for modality, block in zip(self.modalities_, self._block_slices()):
            if np.isnan(X[:, block]).all():
                raise ValueError(
                    f"modality {modality!r} is missing (NaN) in every training row, so nothing can "
                    "be learned from it. Check that its files/texts exist, or remove it from the fusion."
                )

    def _build_net(self, y_encoded, seed, sample_weight=None):
        import torch
        from skorch.callbacks import EarlyStopping
        from skorch.dataset import ValidSplit

        from .nn import FusionLoss, FusionNetwork
        from .nn._base import learns_combination, resolve_strategy
        from .nn._training import FitCombinationWeights, FusionNetClassifier, TensorBatches, TrainingProgress

        counts = np.bincount(y_encoded, weights=sample_weight, minlength=len(self.classes_))
        prior = np.maximum(counts / counts.sum(), 1e-12)  # a class of weight 0 stays finite in the logits
        class_weight = self._class_weights(y_encoded, sample_weight)
        callbacks, train_split = [("progress", TrainingProgress(disable=not self.verbose))], None
        # late fusion learns how to combine its heads on rows they did not train on
        combines_held_out = learns_combination(resolve_strategy(self.fusion)) and self._can_hold_out(y_encoded)
        if self.early_stopping or combines_held_out:
            train_split = ValidSplit(self.validation_fraction, stratified=True, random_state=seed)
        if self.early_stopping:
            callbacks.append(EarlyStopping(patience=self.patience, load_best=True))
        if combines_held_out:
            callbacks.append(("combination", FitCombinationWeights()))
        callbacks += [clone(callback, safe=False) for callback in self.callbacks or ()]
        params = dict(
            **{f"module__{name}": getattr(self, name) for name in _MODULE_PARAMS},
            module__block_sizes=self.modality_sizes_,
            module__n_classes=len(self.classes_),
            module__class_log_prior=torch.log(torch.tensor(prior, dtype=torch.float32)),
            criterion=FusionLoss,
            criterion__loss=self.loss,
            criterion__weight=None if class_weight is None else torch.tensor(class_weight, dtype=torch.float32),
            criterion__gamma=self.focal_gamma,
            criterion__label_smoothing=self.label_smoothing,
            criterion__unimodal_loss=self._unimodal_loss_weight(),
            optimizer=getattr(torch.optim, _OPTIMIZERS[self.optimizer]),
            optimizer__weight_decay=self.weight_decay,
            optimizer__foreach=True,  # one kernel per step for all parameters: much faster on a CPU
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=_AUTO_BATCH_ROWS if self.batch_size == "auto" else self.batch_size,
            iterator_train__batch_size=self._training_batch_size(len(y_encoded)),
            iterator_train=TensorBatches,
            iterator_valid=TensorBatches,
            iterator_train__shuffle=True,
            train_split=train_split,
            callbacks=callbacks,
            warm_start=self.warm_start,
            classes=list(range(len(self.classes_))),
            predict_nonlinearity=_softmax,
            device=self.device_,
            verbose=int(self.verbose >= 2),
            # skorch's epoch table is formatted every epoch even when it is not printed
            **({} if self.verbose >= 2 else {"callbacks__print_log": None}),
        )
        if self.accelerator is None:
            return FusionNetClassifier(FusionNetwork, **params)
        from ._accelerate import accelerated_net, device_name

        net = accelerated_net(self.accelerator, FusionNetwork, **params)
        self.device_ = device_name(net)
        return net

    def _training_batch_size(self, n_rows):
        """Rows per training step: ``batch_size``, or for ``"auto"`` enough steps an epoch for ``n_rows``."""
        if self.batch_size != "auto":
            return self.batch_size
        return max(1, min(_AUTO_BATCH_ROWS, -(-n_rows // _MIN_STEPS_PER_EPOCH)))

    def _fit_linear(self, X, y_encoded, sample_weight=None):
        """The linear member: a logistic regression on standardised ``X`` (NaN at the mean), or None.

        ``X`` holds no NaN (absent values at the standardised mean, 0). Its row weights are the
        class weights times ``sample_weight``; its penalty is
        ``linear_alpha`` per row (``C = 1 / (linear_alpha * n_rows)``). It runs on
        ``n_threads`` BLAS threads, as the network on its torch threads.
        """
        if self.linear_weight == 0:
            return None
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        weight = np.ones(len(y_encoded)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        class_weight = self._class_weights(y_encoded, sample_weight)
        if class_weight is not None:
            weight = weight * class_weight[y_encoded]
        n_rows = len(y_encoded) if sample_weight is None else float(np.sum(sample_weight))  # a weight 2 row counts twice
        linear = LogisticRegression(C=1.0 / (self.linear_alpha * n_rows), max_iter=500, tol=1e-3)
        with threadpool_limits(limits=resolve_n_threads(self.n_threads), user_api="blas"), warnings.catch_warnings():
            # an unconverged fit after 500 L-BFGS steps is still a well-regularised model
            warnings.simplefilter("ignore", ConvergenceWarning)
            return linear.fit(X, y_encoded, sample_weight=weight)

    def _unimodal_loss_weight(self):
        """``unimodal_loss``; at least 1 for a strategy whose heads learn from their own losses only."""
        from .nn._base import has_own_heads, resolve_strategy

        if has_own_heads(resolve_strategy(self.fusion)):
            return self.unimodal_loss or 1.0
        return self.unimodal_loss

    def _class_weights(self, y_encoded, sample_weight=None):
        if self.class_weight is None:
            return None
        if isinstance(self.class_weight, dict):
            unknown = set(self.class_weight) - set(self.classes_.tolist())
            if unknown:
                raise ValueError(
                    f"class_weight names classes {sorted(map(str, unknown))} that are not in y; "
                    f"the classes are {self.classes_.tolist()}."
                )
            return np.array([float(self.class_weight.get(label, 1.0)) for label in self.classes_.tolist()])
        # n_samples / (n_classes * count), as scikit-learn's "balanced", counting rows by their weight
        counts = np.bincount(y_encoded, weights=sample_weight, minlength=len(self.classes_))
        present = counts > 0
        weights = np.zeros(len(counts))
        weights[present] = counts.sum() / (present.sum() * counts[present])
        return np.sqrt(weights) if self.class_weight == "balanced_sqrt" else weights

    def _seed(self):
        if self.random_state is None:
            return None
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _train(self, X, y_encoded, seed):
        """Fit ``net_`` with random streams of this fit's own (see :class:`skmm.nn._training.FitRandomness`)."""
        from .nn._training import FitRandomness

        self.net_.randomness = FitRandomness(seed, self.device_)
        try:
            self.net_.fit(X, y_encoded)
        finally:
            del self.net_.randomness  # not a parameter of the net: nothing of it is saved

    # ------------------------------------------------------------------ predict

    def _prepare(self, X):
        check_is_fitted(self, "net_")
        # float64 first: a large finite value (1e300) must be clipped, not overflow float32
        X = self._as_float64(X)
        X = (X - self.scaler_.mean_) / self.scaler_.scale_  # StandardScaler.transform, without its checks
        warn_far_rows((np.abs(X) > CLIP_STD).any(axis=1), stacklevel=4)
        return _clip(X)[:, self._column_order]

    def _as_float64(self, X):
        """``X`` checked against what ``fit`` saw, as a float64 array.

        A DataFrame of numeric columns (numpy dtypes) with exactly the fitted
        column names, in order, and no infinite value is converted in one step:
        scikit-learn's ``validate_data`` checks every column's dtype, which
        costs more than the network for one row of a wide fused frame. Anything
        else goes through ``validate_data``, with its checks and errors.
        """
        names = getattr(self, "feature_names_in_", None)
        if isinstance(X, pd.DataFrame) and names is not None and len(X) and len(X.columns) == len(names):
            plain = all(isinstance(dtype, np.dtype) and dtype.kind in "biuf" for dtype in set(X.dtypes))
            if plain and (X.columns.to_numpy() == names).all():
                array = np.asarray(X, dtype=np.float64)
                if not np.isinf(array).any():
                    return array
        return validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)

    def _presence(self, X):
        """Which modalities each row of prepared ``X`` has: ``(n_rows, n_modalities)``, False where all NaN."""
        return np.stack([~np.isnan(X[:, block]).all(axis=1) for block in self._block_slices()], axis=1)

    def _warn_if_nothing_present(self, X):
        warn_empty_rows(~self._presence(X).any(axis=1), stacklevel=4)

    def predict_proba(self, X):
        """Class probabilities, in the order of ``classes_``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        X = self._prepare(X)
        self._warn_if_nothing_present(X)
        with torch_threads(self.n_threads):
            proba = self._proba(X)
        return proba / proba.sum(axis=1, keepdims=True)

    def _proba(self, X):
        """The ensemble's probabilities for prepared ``X``: network and linear member, weighed."""
        proba = self._network_proba(X).astype(np.float64)
        if getattr(self, "linear_", None) is None:
            return proba
        linear = self.linear_.predict_proba(np.nan_to_num(X, nan=0.0))
        blended = (1 - self.linear_weight) * proba + self.linear_weight * linear
        nothing = np.isnan(X).all(axis=1)  # no modality at all: the network's class prior alone
        blended[nothing] = proba[nothing]
        return blended

    def _network_proba(self, X):
        """The network's probabilities for prepared ``X``: skorch's ``predict_proba`` without its iterator.

        The same batches of ``batch_size`` rows go through the module in evaluation mode,
        so the probabilities are those of ``net_.predict_proba``; skorch's dataset, iterator
        and per-batch bookkeeping cost several milliseconds for one row.
        """
        import torch

        net = self.net_
        net.module_.train(False)
        batches = []
        with torch.inference_mode():
            for start in range(0, len(X), net.batch_size):
                batch = torch.as_tensor(X[start : start + net.batch_size], device=net.device)
                batches.append(_softmax(net.module_(batch)).cpu().numpy())
        return np.concatenate(batches)

    def predict_log_proba(self, X):
        """Natural logarithm of the class probabilities, in the order of ``classes_``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted class labels (values of ``classes_``).

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def modality_weights(self, X):
        """How much each modality counted for each row's prediction.

        When the fusion strategy reports weights (``"weighted"``, ``"gated"``,
        ``"attention"``, ``"late"``: softmax weights, normalised gates,
        attention received, head weights) these are returned. For a strategy
        that reports none (``"concat"``, or a class of yours returning
        ``None``) the weights are an ablation estimate: the drop in the
        predicted class's probability when the modality is removed, normalised
        to sum to 1 per row. Absent modalities weigh 0.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        DataFrame of shape (n_samples, n_modalities)
        """
        index = X.index if isinstance(X, pd.DataFrame) else None
        X = self._prepare(X)
        with torch_threads(self.n_threads):
            weights = self._strategy_weights(X)
            if weights is None:
                weights = self._ablation_weights(X)
        return pd.DataFrame(weights, columns=self.modalities_, index=index)

    def _strategy_weights(self, X):
        """The weights the fusion strategy returns for ``X`` (prepared), or None if it returns none."""
        import torch

        batches = []

        def keep_weights(_strategy, _inputs, fused):
            batches.append(fused[1])

        # skorch's forward_iter batches X and runs the network; the hook keeps what the strategy returned
        hook = self.net_.module_.strategy.register_forward_hook(keep_weights)
        try:
            for _ in self.net_.forward_iter(X):
                pass
        finally:
            hook.remove()
        if any(weights is None for weights in batches):
            return None
        return torch.cat(batches).float().cpu().numpy()

    def _ablation_weights(self, X):
        full = self._proba(X)
        predicted = full.argmax(axis=1)[:, None]
        p_full = np.take_along_axis(full, predicted, axis=1)
        effects = []
        for block in self._block_slices():
            present = ~np.isnan(X[:, block]).all(axis=1, keepdims=True)
            ablated = X.copy()
            ablated[:, block] = np.nan
            p_without = np.take_along_axis(self._proba(ablated), predicted, axis=1)
            effects.append((np.clip(p_full - p_without, 0, None) + 1e-6) * present)
        effects = np.concatenate(effects, axis=1)
        return effects / np.clip(effects.sum(axis=1, keepdims=True), 1e-12, None)

    def __getstate__(self):
        """The state pickle and skops store: the trained net as plain data (see :mod:`skmm._net_state`)."""
        from ._net_state import to_data

        state = dict(super().__getstate__())  # for a class outside sklearn, this is the live __dict__
        state.pop("history_", None)  # the net's own history, restored with it
        for key in ("net_", "callbacks"):
            if key in state:
                state[key] = to_data(state[key])
        return state

    def __setstate__(self, state):
        from ._net_state import from_data

        state = dict(state)
        for key in ("net_", "callbacks"):
            if key in state:
                state[key] = from_data(state[key])
        if "net_" in state and getattr(state["net_"], "initialized_", False):
            state["history_"] = state["net_"].history
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.non_deterministic = self.random_state is None
        return tags


def warn_far_rows(far, stacklevel=2):
    """Warn (:class:`InputWarning`) when ``far`` (one bool per row) marks rows whose features were clipped."""
    if far.any():
        warnings.warn(
            f"{int(far.sum())} row(s) have features more than {CLIP_STD:g} standard deviations from the "
            f"training data (first at row {int(np.flatnonzero(far)[0])}); they are clipped to that range. "
            "Check those inputs.",
            InputWarning,
            stacklevel=stacklevel,
        )


def warn_empty_rows(empty, stacklevel=2):
    """Warn (:class:`InputWarning`) when ``empty`` (one bool per row) marks rows with no modality at all."""
    positions = np.flatnonzero(empty)
    if len(positions):
        warnings.warn(
            f"{len(positions)} row(s) (positions {positions[:10].tolist()}{'...' if len(positions) > 10 else ''}) "
            "have every modality missing; their prediction is the class prior of the training data.",
            InputWarning,
            stacklevel=stacklevel,
        )


#: standardised features are clipped to +-CLIP_STD: far beyond what real inputs reach (a sparse
#: image feature, near 0 on 100 training images, was seen 1,600 standard deviations out on a new
#: one), yet small enough that no float32 layer of the network overflows into inf/NaN
#: probabilities whatever finite number comes in (every projection starts with a LayerNorm).
CLIP_STD = 1e6


def _clip(X):
    """Standardised ``X`` clipped to ``[-CLIP_STD, CLIP_STD]`` (NaN kept), as float32."""
    return np.clip(X, -CLIP_STD, CLIP_STD).astype(np.float32)


def _fit_scaler(X, sample_weight=None):
    """A StandardScaler fitted on ``X`` ignoring NaN; a column NaN in every row keeps mean 0 and scale 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        scaler = StandardScaler().fit(X, sample_weight=sample_weight)
    scaler.mean_ = np.nan_to_num(scaler.mean_, nan=0.0)
    scaler.scale_ = np.where(np.isfinite(scaler.scale_), scaler.scale_, 1.0)
    return scaler
