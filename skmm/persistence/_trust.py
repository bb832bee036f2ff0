"""What a model file may hold: the allow-list of type names loaded without ``trusted``.

Loading creates only objects of skops's default types and of :data:`TRUSTED_TYPES`;
:func:`untrusted_types` names what else a payload holds, which
:func:`skmm.load` refuses unless the file is trusted.
"""


def _type_name(obj):
    return f"{obj.__module__}.{obj.__name__}"


#: Every type and function a model file may name without ``trusted``, besides skops's own defaults
#: (scikit-learn's estimators, numpy arrays, builtins). Only classes that skmm's estimators hold and
#: one function (the classifier's softmax) are listed: never a function that imports or calls
#: something by a name read from the file. Where a loaded net calls a class (its module, loss,
#: optimizer, batches, callbacks), :mod:`skmm._net_state` also checks that the class is one of
#: skmm's own, by identity.
TRUSTED_TYPES = (
    # skmm's estimators
    "skmm.classifier.MultimodalClassifier",
    "skmm.fusion.MultimodalFusion",
    "skmm.encoders._image.ImageEncoder",
    "skmm.encoders._text.TextEncoder",
    "skmm.encoders._audio.AudioMFCC",
    "skmm.encoders._audio_model.AudioEncoder",
    "skmm.encoders._video.VideoEncoder",
    "skmm.encoders._finetune.FineTuning",
    # a fitted skorch net, stored as data (skmm._net_state)
    "skmm._net_state.NetState",
    "skmm._net_state.TensorState",
    "skmm._net_state.HistoryState",
    "skmm._net_state.CallbackState",
    # what the net is built from
    "skmm.classifier._softmax",
    "skmm.nn._network.FusionNetwork",
    "skmm.nn._loss.FusionLoss",
    "skmm.nn._concat.ConcatFusion",
    "skmm.nn._weighted.WeightedFusion",
    "skmm.nn._gated.GatedFusion",
    "skmm.nn._attention.AttentionFusion",
    "skmm.nn._late.LateFusion",
    "skmm.nn._training.TensorBatches",
    "skmm.nn._training.TrainingProgress",
    "skmm.nn._training.FitCombinationWeights",
    "skorch.callbacks.training.EarlyStopping",
    "skorch.dataset.Dataset",
    "skorch.dataset.ValidSplit",
    "torch.utils.data.dataloader.DataLoader",
    "torch.nn.modules.loss.CrossEntropyLoss",
    "torch.optim.adam.Adam",
    "torch.optim.adamw.AdamW",
    "torch.optim.sgd.SGD",
    # plain values
    "builtins.print",
    "numpy.dtype",
    "pathlib.PurePosixPath",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
)


def trusted_types():
    """The type names skmm's model files may hold beyond skops's defaults, loaded without ``trusted``.

    Give them to any skops-based tool that loads a skmm pipeline, e.g.
    ``skops.io.load(path, trusted=skmm.persistence.trusted_types())`` or
    MLflow's ``mlflow.sklearn.log_model(..., serialization_format="skops",
    skops_trusted_types=skmm.persistence.trusted_types())``. A fitted
    :class:`~skmm.MultimodalClassifier` hands skops (and pickle) its trained
    network as numpy arrays (:mod:`skmm._net_state`), so the list needs no
    torch or skorch type.

    Returns
    -------
    names : list of str

    Examples
    --------
    >>> from skmm.persistence import trusted_types
    >>> "skmm.classifier.MultimodalClassifier" in trusted_types()
    True
    >>> any(name.endswith("._import") for name in trusted_types())
    False
    """
    return list(TRUSTED_TYPES)


def _trusted_names(trusted):
    """``trusted`` (bool or a list of type names or types) as a set of names, or True."""
    if isinstance(trusted, bool):
        return trusted or set()
    if isinstance(trusted, (list, tuple, set)) and all(isinstance(t, (str, type)) for t in trusted):
        return {t if isinstance(t, str) else _type_name(t) for t in trusted}
    raise TypeError(
        f"trusted must be False, True or a list of type names (as skops.io.get_untrusted_types "
        f"gives them), got {trusted!r}."
    )


def untrusted_types(payload):
    """The types and functions named in a skops ``payload`` that :func:`load` refuses by default.

    Trusted are skops's defaults (scikit-learn's estimators, numpy arrays,
    builtins) and the names of :func:`trusted_types`: skmm's estimators, the
    classes its trained network is rebuilt from, and from skorch and torch
    only early stopping, the dataset and data loader classes, the
    cross-entropy loss and the Adam, AdamW and SGD optimizers. No other
    function is trusted, not even one of skmm's. Its skorch net is stored as
    data and rebuilt by skmm (see :mod:`skmm._net_state`), never created by
    skops.

    Parameters
    ----------
    payload : bytes
        The ``model.skops`` member of a model file.

    Returns
    -------
    names : list of str
    """
    import skops.io

    return _not_allowed(skops.io.get_untrusted_types(data=payload))


def _not_allowed(names):
    """The names, among skops's untrusted ``names``, that skmm does not allow either."""
    return [name for name in names if name not in TRUSTED_TYPES]
