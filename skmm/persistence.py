"""Save and load fitted pipelines, with the metadata needed to use and serve them.

A model file is a zip archive holding two members:

* ``metadata.json``: the file format, the versions of skmm, scikit-learn,
  torch and Python that wrote it, the input columns with their kind
  (``"image"``, ``"audio"``, ``"text"``, ``"numeric"``, ``"categorical"``,
  another kind registered in :mod:`skmm.kinds`, or ``"other"``), the
  modalities, the classes, and the size and sha256 of the payload;
* ``model.skops``: the estimator in the `skops <https://skops.readthedocs.io>`_
  format, which stores data, never code: loading creates only objects of
  allow-listed types (see :func:`load`). skmm encoders store their parameters
  only; their model weights are reloaded lazily from the model id or the
  installed package on first use, so loading never downloads anything by itself.
  A :class:`~skmm.MultimodalClassifier` stores its trained network as numpy
  arrays (see :mod:`skmm._net_state`) and rebuilds it on load.

Files of format version 1 (``model.pkl``, a pickle, written by pre-release
builds of skmm 0.1) are refused with a message saying what to do: nothing in
skmm ever unpickles a model file.

Writing is atomic: the archive is written to a temporary file in the target
folder and moved into place with :func:`os.replace`, so a crash never leaves a
half-written model behind and readers see either the old or the new file.

Reading is bounded: every member is checked against a size limit
(:data:`MAX_METADATA_BYTES`, :data:`MAX_PAYLOAD_BYTES`) and a compression ratio
(:data:`MAX_COMPRESSION_RATIO`) before it is inflated, and a damaged file of any
kind raises :class:`~skmm.exceptions.ModelFileError`. The checksum detects
damage, not tampering: what makes a file safe to open is the allow-list.
"""

import hashlib
import io
import json
import os
import platform
import tempfile
import zipfile
import zlib
from datetime import datetime, timezone
from glob import escape as glob_escape
from importlib import metadata as _importlib_metadata
from pathlib import Path

import numpy as np

from ._fitted import describe_inputs, encoder_models
from ._utils import jsonable
from .exceptions import ModelFileError

__all__ = [
    "ModelFileError", "describe_inputs", "load", "read_metadata", "save", "trusted_types", "untrusted_types",
]

FORMAT = "skmm-model"
FORMAT_VERSION = 2
METADATA_NAME = "metadata.json"
PAYLOAD_NAME = "model.skops"
#: the payload of format version 1 (pre-release builds of skmm 0.1), recognised to say it is not read
_OLD_PAYLOAD_NAME = "model.pkl"

#: the most bytes ``metadata.json`` may inflate to
MAX_METADATA_BYTES = 16 * 1024**2
#: the most bytes the payload (and, inside it, all skops members together) may inflate to
MAX_PAYLOAD_BYTES = 4 * 1024**3
#: a member larger than 16 MiB may inflate to at most this many times its compressed size
MAX_COMPRESSION_RATIO = 200


# --------------------------------------------------------------------------- describing a model


def _version(package):
    try:
        return _importlib_metadata.version(package)
    except _importlib_metadata.PackageNotFoundError:
        return None


def versions():
    """Versions of skmm and of the libraries a model file depends on."""
    from ._version import __version__

    return {
        "skmm": __version__,
        "scikit-learn": _version("scikit-learn"),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "python": platform.python_version(),
    }


def build_metadata(estimator, kinds=None):
    """The metadata of a fitted estimator, as written into a model file (without the checksum)."""
    classes = getattr(estimator, "classes_", None)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "estimator": type(estimator).__name__,
        "versions": versions(),
        **describe_inputs(estimator, kinds),
        "classes": None if classes is None else [jsonable(c) for c in np.asarray(classes).tolist()],
        "encoder_models": encoder_models(estimator),
    }


def _check_fitted(estimator):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise NotFittedError(
            f"save expects a fitted estimator, got an unfitted {type(estimator).__name__}; "
            "call fit(X, y) first."
        ) from None
    except TypeError as exc:
        raise TypeError(f"save expects a fitted scikit-learn estimator: {exc}") from None


def _dump(estimator):
    """The skops bytes of ``estimator``, checked to load back."""
    import skops.io

    try:
        payload = skops.io.dumps(estimator)
        skops.io.loads(payload, trusted=skops.io.get_untrusted_types(data=payload))
    except Exception as exc:
        raise TypeError(
            f"save cannot write this {type(estimator).__name__} so that it loads again "
            f"({type(exc).__name__}: {exc}). Lambdas, and functions or classes defined inside "
            "other functions, cannot be saved: define them at the top level of a module."
        ) from exc
    return payload


def save(pipeline, path, *, kinds=None):
    """Write a fitted pipeline and its metadata to ``path``, atomically.

    The estimator is stored with skops (data, never code) and read back before
    the file is written, so a model that could not be loaded is never saved.

    Parameters
    ----------
    pipeline : fitted estimator
        Usually a ``Pipeline([("fusion", MultimodalFusion(...)), ("clf", ...)])``.
    path : str or path-like
        Where to write; the folder must exist. An existing file is replaced.
    kinds : dict, optional
        ``{column: kind}`` recorded in the metadata, e.g. from
        :func:`skmm.infer.column_kinds`; by default the kinds are read from the
        transformers of the pipeline's first step. A server treats the
        columns of kinds that read files (``"image"``, ``"audio"``, see
        :mod:`skmm.kinds`) as uploaded files.

    Returns
    -------
    path : pathlib.Path
        The absolute path written.

    See Also
    --------
    load, read_metadata

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import Pipeline
    >>> import skmm
    >>> df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "colour": ["r", "b", "r", "b"]})
    >>> pipe = Pipeline([("fusion", skmm.infer_modalities(df)),
    ...                  ("clf", LogisticRegression())]).fit(df, ["a", "b", "a", "b"])
    >>> path = skmm.save(pipe, os.path.join(tempfile.mkdtemp(), "model.skmm"))
    >>> skmm.load(path).predict(df).tolist()
    ['a', 'b', 'a', 'b']
    >>> skmm.persistence.read_metadata(path)["kinds"]
    {'x': 'numeric', 'colour': 'categorical'}
    """
    _check_fitted(pipeline)
    path = Path(os.fspath(path)).expanduser().absolute()
    if path.is_dir():
        raise IsADirectoryError(f"path {str(path)!r} is a folder; give a file name, e.g. model.skmm.")
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot save to {str(path)!r}: the folder {str(path.parent)!r} does not exist."
        )
    payload = _dump(pipeline)
    _remove_stale_temporaries(path)
    metadata = build_metadata(pipeline, kinds)
    metadata["payload"] = {
        "name": PAYLOAD_NAME,
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(METADATA_NAME, json.dumps(metadata, indent=2))
                archive.writestr(PAYLOAD_NAME, payload)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return path


#: a temporary file of a save older than this was left by a process killed while saving
STALE_TEMPORARY_SECONDS = 3600


def _remove_stale_temporaries(path):
    """Delete what saves to ``path`` killed mid-write (``kill -9``, a power cut) left behind.

    A save writes ``.<name>.<random>.tmp`` next to ``path`` and moves it into
    place; one killed before that leaves the file. Those older than
    :data:`STALE_TEMPORARY_SECONDS` are removed (a younger one may belong to a
    save running now in another process).
    """
    import time

    limit = time.time() - STALE_TEMPORARY_SECONDS
    for leftover in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        try:
            if leftover.is_file() and leftover.stat().st_mtime < limit:
                leftover.unlink()
        except OSError:
            pass  # another process removed it, or it is not ours to remove


# --------------------------------------------------------------------------- what a file may hold


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
    skops_trusted_types=skmm.persistence.trusted_types())``. skops stores a
    fitted :class:`~skmm.MultimodalClassifier` only through
    :func:`skmm.persistence.to_skops`, which turns its trained network into
    plain data.

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


# --------------------------------------------------------------------------- reading


#: what zipfile raises on a damaged archive or member
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError,
               NotImplementedError)


def _damaged(path, what, exc):
    return ModelFileError(
        f"{str(path)!r} is damaged: {what} cannot be read ({type(exc).__name__}: {exc}). "
        "Save the model again, or copy the file again from where it came from."
    )


def _check_member_size(path, info, limit):
    """Refuse a member that would inflate past ``limit`` bytes, or by a zip bomb's ratio."""
    if info.file_size > limit:
        raise ModelFileError(
            f"{str(path)!r} is not a model file skmm can read: its member {info.filename!r} "
            f"inflates to {info.file_size} bytes, more than the limit of {limit} "
            f"(skmm.persistence.MAX_{'METADATA' if info.filename == METADATA_NAME else 'PAYLOAD'}_BYTES)."
        )
    if info.file_size > 16 * 1024**2 and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        raise ModelFileError(
            f"{str(path)!r} is not a model file skmm can read: its member {info.filename!r} "
            f"inflates {info.compress_size} bytes to {info.file_size} (more than "
            f"{MAX_COMPRESSION_RATIO} times), as a zip bomb does."
        )


def _read_member(path, archive, name, limit):
    """The bytes of one member, read in bounded memory (zipfile stops at the declared size)."""
    info = archive.getinfo(name)
    _check_member_size(path, info, limit)
    try:
        with archive.open(info) as stream:
            return stream.read(limit + 1)
    except _ZIP_ERRORS as exc:
        raise _damaged(path, name, exc) from None


#: the metadata fields skmm relies on, with their expected types
_METADATA_FIELDS = {
    "format_version": int,
    "created": str,
    "estimator": str,
    "versions": dict,
    "input_columns": list,
    "kinds": dict,
    "modalities": dict,
    "classes": (list, type(None)),
    "payload": dict,
}


def _check_metadata(path, metadata):
    def refuse(field, expected, value):
        return ModelFileError(
            f"{str(path)!r} is damaged: in {METADATA_NAME}, {field} should be {expected}, found "
            f"{type(value).__name__} {value!r:.80}. Save the model again."
        )

    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise refuse("format_version", "an integer", version)
    if version != FORMAT_VERSION:
        return  # read_metadata shows it; load says what to do
    for field, expected in _METADATA_FIELDS.items():
        value = metadata.get(field)
        if not isinstance(value, expected):
            names = expected if isinstance(expected, tuple) else (expected,)
            raise refuse(field, " or ".join(t.__name__ for t in names), value)
    checks = [
        ("versions", all(isinstance(v, (str, type(None))) for v in metadata["versions"].values()),
         "a dict of version strings"),
        ("input_columns", all(isinstance(c, str) for c in metadata["input_columns"]), "a list of strings"),
        ("kinds", all(isinstance(k, str) for k in metadata["kinds"].values()), "a dict of strings"),
        ("modalities", all(isinstance(c, list) and all(isinstance(n, str) for n in c)
                           for c in metadata["modalities"].values()), "a dict of lists of strings"),
    ]
    for field, ok, expected in checks:
        if not ok:
            raise refuse(field, expected, metadata[field])
    payload = metadata["payload"]
    if payload.get("name") != PAYLOAD_NAME:
        raise refuse("payload.name", repr(PAYLOAD_NAME), payload.get("name"))
    size = payload.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise refuse("payload.size", "a number of bytes", size)
    if not isinstance(payload.get("sha256"), str):
        raise refuse("payload.sha256", "a hex digest", payload.get("sha256"))


def _open(path):
    path = Path(os.fspath(path)).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {str(path)!r}")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder, expected a model file written by skmm.save")
    expected = (
        f"expected a zip archive holding {METADATA_NAME} and {PAYLOAD_NAME}, as written by skmm.save"
    )
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as handle:
            head = handle.read(16)
        raise ModelFileError(
            f"{str(path)!r} is not an skmm model file: {expected}; found a file starting with "
            f"{head!r}."
        )
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as exc:
        raise _damaged(path, "the zip archive", exc) from None
    try:
        names = archive.namelist()
        if METADATA_NAME not in names or not ({PAYLOAD_NAME, _OLD_PAYLOAD_NAME} & set(names)):
            raise ModelFileError(
                f"{str(path)!r} is not an skmm model file: {expected}; found a zip archive holding "
                f"{sorted(names)[:10]}."
            )
        text = _read_member(path, archive, METADATA_NAME, MAX_METADATA_BYTES)
        try:
            metadata = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ModelFileError(
                f"{str(path)!r} is damaged: {METADATA_NAME} is not valid JSON ({type(exc).__name__}: "
                f"{str(exc):.200})."
            ) from None
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
            raise ModelFileError(
                f"{str(path)!r} is not an skmm model file: {METADATA_NAME} should say "
                f"format={FORMAT!r}, found {found!r:.80}."
            )
        _check_metadata(path, metadata)
    except BaseException:
        archive.close()
        raise
    return path, archive, metadata


def read_metadata(path):
    """Return the metadata of a model file without loading the model.

    Works on files from other skmm versions too, to see what they need. Runs
    no code from the file: only ``metadata.json`` is read.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    metadata : dict
        ``format``, ``format_version``, ``created``, ``estimator``, ``versions``
        (skmm, scikit-learn, torch, numpy, pandas, python), ``input_columns``,
        ``kinds``, ``modalities``, ``classes`` and ``payload`` (name, size, sha256).

    Raises
    ------
    ModelFileError
        When the file is not an skmm model file, or is damaged.
    """
    _, archive, metadata = _open(path)
    archive.close()
    return metadata


def _major_minor(version):
    return tuple(str(version).split(".")[:2])


def _check_versions(path, metadata):
    from ._version import __version__

    saved_format = metadata["format_version"]
    if saved_format > FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} uses model file format version {saved_format!r}; this skmm "
            f"({__version__}) reads format version {FORMAT_VERSION}. Upgrade skmm."
        )
    if saved_format < FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} uses model file format version {saved_format!r} (a pickle written by a "
            f"pre-release build of skmm), which this skmm ({__version__}) does not read: loading a "
            "pickle can run any code. Re-fit the model with this version and save it with skmm.save."
        )
    saved = metadata["versions"].get("skmm")
    if saved is None or _major_minor(saved) != _major_minor(__version__):
        wanted = ".".join(_major_minor(__version__))
        raise ModelFileError(
            f"{str(path)!r} was saved by skmm {saved}, this is skmm {__version__}: model files "
            f"are read by the skmm version that wrote them (same major.minor, here {wanted}.x). "
            f"Install skmm=={saved} to load it, or re-fit and save the model with this version."
        )


def _read_payload(path, archive, metadata):
    """The payload's bytes, of the size and sha256 the metadata records."""
    expected = metadata["payload"]
    name = expected["name"]
    if name not in archive.namelist():
        raise ModelFileError(f"{str(path)!r} is damaged: it has no {name}, which its metadata names.")
    declared = archive.getinfo(name).file_size
    if declared != expected["size"]:
        raise ModelFileError(
            f"{str(path)!r} is damaged: {name} holds {declared} bytes, the metadata expects "
            f"{expected['size']}. Save the model again."
        )
    payload = _read_member(path, archive, name, MAX_PAYLOAD_BYTES)
    found = hashlib.sha256(payload).hexdigest()
    if found != expected["sha256"]:
        raise ModelFileError(
            f"{str(path)!r} is damaged: {name} has sha256 {found}, the metadata expects "
            f"{expected['sha256']}. The file was changed after skmm.save wrote it; save the model again."
        )
    return payload


def _check_skops_members(path, payload):
    """Bound what skops will inflate: every member, and all of them together."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as inner:
            infos = inner.infolist()
    except _ZIP_ERRORS as exc:
        raise _damaged(path, PAYLOAD_NAME, exc) from None
    for info in infos:
        _check_member_size(path, info, MAX_PAYLOAD_BYTES)
    total = sum(info.file_size for info in infos)
    if total > MAX_PAYLOAD_BYTES:
        raise ModelFileError(
            f"{str(path)!r} is not a model file skmm can read: {PAYLOAD_NAME} inflates to {total} "
            f"bytes, more than the limit of {MAX_PAYLOAD_BYTES} (skmm.persistence.MAX_PAYLOAD_BYTES)."
        )


def _untrusted(path, names):
    return ModelFileError(
        f"{str(path)!r} holds types that skmm does not load unless told to trust the file: "
        f"{names}. Loading them can run code from their modules. If you trust where the file "
        f"comes from, load it with skmm.load(path, trusted={names!r}), or trusted=True "
        "(--trust for skmm predict and skmm serve)."
    )


def _load_skops(path, payload, metadata, trusted):
    import skops.io

    from ._net_state import UntrustedNetError

    _check_skops_members(path, payload)
    try:
        names = skops.io.get_untrusted_types(data=payload)
        refused = [] if trusted is True else [n for n in _not_allowed(names) if n not in trusted]
    except Exception as exc:
        raise _damaged(path, PAYLOAD_NAME, exc) from None
    if refused:
        raise _untrusted(path, refused)
    try:
        return skops.io.loads(payload, trusted=names)
    except UntrustedNetError as exc:
        raise ModelFileError(
            f"{str(path)!r} cannot be loaded: {exc}. A model file written by skmm.save never holds "
            "this; the file was made or changed by something else. Do not load it."
        ) from None
    except Exception as exc:
        raise ModelFileError(
            f"{str(path)!r} could not be loaded ({type(exc).__name__}: {str(exc):.300}); it needs "
            f"the libraries it was saved with: {metadata['versions']}."
        ) from None


def _check_estimator(path, estimator):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    what = f"a {type(estimator).__module__}.{type(estimator).__name__}"
    if isinstance(estimator, type) or not hasattr(estimator, "fit") or not any(
        hasattr(estimator, method) for method in ("predict", "predict_proba", "transform")
    ):
        raise ModelFileError(
            f"{str(path)!r} holds {what}, not a fitted scikit-learn estimator; a model file "
            "written by skmm.save holds one."
        )
    try:
        check_is_fitted(estimator)
    except (NotFittedError, TypeError) as exc:
        raise ModelFileError(
            f"{str(path)!r} holds {what} that is not fitted ({exc}); save a fitted estimator."
        ) from None


def load(path, *, trusted=False, return_metadata=False, weights_changed="raise"):
    """Load a model written by :func:`save`.

    The file must come from the same skmm major.minor version, and its payload
    must match the recorded size and sha256. Nothing is downloaded: encoders
    reload their models lazily, from the installed packages or the local
    Hugging Face cache.

    Loading a file runs no code from it: only objects of allow-listed types are
    created (scikit-learn's estimators, numpy arrays and builtins, skmm's own
    estimators and what they hold; see :func:`untrusted_types`), and anything
    else is refused unless you trust the file.

    Parameters
    ----------
    path : str or path-like
    trusted : bool or list of str, default=False
        ``False``: load only allow-listed types. A list of type names (as the
        error message or :func:`skops.io.get_untrusted_types` gives them):
        allow these too. ``True``: trust every type the file names. Only
        trust files whose source you trust.
    return_metadata : bool, default=False
        Also return the file's metadata (as :func:`read_metadata` gives it),
        read from the same opening of the file.
    weights_changed : {"raise", "warn"}, default="raise"
        What an encoder does when the weights behind its model's name (a hub
        id or a folder) are not those it was fitted with (each encoder records
        their fingerprint in ``model_identity_``): refuse to encode with
        :class:`~skmm.exceptions.WeightsChangedError`, or use them with a
        :class:`~skmm.exceptions.WeightsChangedWarning`. The check runs when
        the encoder first loads its model.

    Returns
    -------
    estimator : the fitted pipeline that was saved
    metadata : dict
        Only when ``return_metadata=True``: ``(estimator, metadata)`` is returned.

    Raises
    ------
    ModelFileError
        Not an skmm model file, written by an incompatible skmm version, damaged
        (checksum mismatch, broken archive, member too large), holding types
        that are not trusted, or not holding a fitted estimator. A subclass of
        ``ValueError``.

    See Also
    --------
    save, read_metadata

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> import skmm
    >>> df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    >>> path = skmm.save(LogisticRegression().fit(df, [0, 1, 0, 1]),
    ...                  os.path.join(tempfile.mkdtemp(), "model.skmm"))
    >>> model, metadata = skmm.load(path, return_metadata=True)
    >>> type(model).__name__, metadata["input_columns"]
    ('LogisticRegression', ['x'])
    """
    if weights_changed not in ("raise", "warn"):
        raise ValueError(f"weights_changed must be 'raise' or 'warn', got {weights_changed!r}.")
    trusted = _trusted_names(trusted)
    path, archive, metadata = _open(path)
    with archive:
        _check_versions(path, metadata)
        payload = _read_payload(path, archive, metadata)
    estimator = _load_skops(path, payload, metadata, trusted)
    _check_estimator(path, estimator)
    if weights_changed == "warn":
        from .encoders._base import BaseEncoder
        from .infer import estimators_inside

        for inner in estimators_inside(estimator):
            if isinstance(inner, BaseEncoder):
                inner._weights_changed = "warn"
    return (estimator, metadata) if return_metadata else estimator
