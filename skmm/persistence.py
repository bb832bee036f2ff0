"""Save and load fitted pipelines, with the metadata needed to use and serve them.

A model file is a zip archive holding two members:

* ``metadata.json``: the file format, the versions of skmm, scikit-learn,
  torch and Python that wrote it, the input columns with their kind
  (``"image"``, ``"audio"``, ``"text"``, ``"numeric"``, ``"categorical"``,
  another kind registered in :mod:`skmm.kinds`, or ``"other"``), the
  modalities, the classes, and the sha256 of the payload;
* ``model.pkl``: the pickled estimator. skmm encoders pickle their parameters
  only; their model weights are reloaded lazily from the model id or the
  installed package on first use, so loading never downloads anything by itself.

Writing is atomic: the archive is written to a temporary file in the target
folder and moved into place with :func:`os.replace`, so a crash never leaves a
half-written model behind and readers see either the old or the new file.

.. warning:: Loading unpickles ``model.pkl``, which can run arbitrary code.
   Only load model files you trust; the checksum detects damage, not tampering.
"""

import hashlib
import json
import os
import pickle
import platform
import tempfile
import zipfile
from datetime import datetime, timezone
from importlib import metadata as _importlib_metadata
from pathlib import Path

import numpy as np

from ._utils import jsonable
from .exceptions import ModelFileError

__all__ = ["ModelFileError", "describe_inputs", "load", "read_metadata", "save"]

FORMAT = "skmm-model"
FORMAT_VERSION = 1
METADATA_NAME = "metadata.json"
PAYLOAD_NAME = "model.pkl"


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


def _fusion_step(estimator):
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline) and estimator.steps:
        estimator = estimator.steps[0][1]
    return estimator if isinstance(estimator, ColumnTransformer) else None


def _column_names(columns, names_in):
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, (int, np.integer)):
        return [str(names_in[columns])] if names_in is not None else []
    if isinstance(columns, slice) or (
        isinstance(columns, np.ndarray) and columns.dtype == bool
    ):
        return [str(c) for c in np.asarray(names_in)[columns]] if names_in is not None else []
    out = []
    for column in list(columns):
        if isinstance(column, (int, np.integer)) and not isinstance(column, bool):
            if names_in is not None:
                out.append(str(names_in[column]))
        else:
            out.append(str(column))
    return out


def describe_inputs(estimator, kinds=None):
    """The input columns a fitted estimator uses, their kinds and its modalities.

    The first step of a :class:`~sklearn.pipeline.Pipeline` (a
    :class:`~skmm.MultimodalFusion` or any ``ColumnTransformer``) tells which
    transformer reads which columns; the transformer's type gives the column's
    kind (see :func:`skmm.infer.kind_of_transformer`), ``"other"`` when it does
    not say. ``kinds`` (e.g. from :func:`skmm.infer.column_kinds`) wins.

    Parameters
    ----------
    estimator : fitted estimator
    kinds : dict, optional
        ``{column: kind}`` taking precedence over what the transformers say.

    Returns
    -------
    description : dict
        ``{"input_columns": [...], "kinds": {...}, "modalities": {...}}``.
    """
    from .infer import kind_of_transformer

    kinds = dict(kinds or {})
    fusion = _fusion_step(estimator)
    names_in = getattr(estimator, "feature_names_in_", None)
    if fusion is None or not hasattr(fusion, "transformers_"):
        columns = [str(c) for c in names_in] if names_in is not None else []
        return {
            "input_columns": columns,
            "kinds": {c: kinds.get(c, "other") for c in columns},
            "modalities": {"input": columns} if columns else {},
        }
    fusion_names = getattr(fusion, "feature_names_in_", None)
    used, found, modalities = set(), {}, {}
    for name, transformer, columns in fusion.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        names = _column_names(columns, fusion_names)
        if not names:
            continue
        modalities[str(name)] = names
        kind = kind_of_transformer(transformer) or "other"
        for column in names:
            used.add(column)
            found.setdefault(column, kind)
    order = [str(c) for c in fusion_names] if fusion_names is not None else sorted(used)
    columns = [c for c in order if c in used]
    return {
        "input_columns": columns,
        "kinds": {c: kinds.get(c, found[c]) for c in columns},
        "modalities": modalities,
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
    }


# --------------------------------------------------------------------------- writing


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


def save(pipeline, path, *, kinds=None):
    """Write a fitted pipeline and its metadata to ``path``, atomically.

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
    payload = pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL)
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


# --------------------------------------------------------------------------- reading


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
    archive = zipfile.ZipFile(path)
    names = archive.namelist()
    if METADATA_NAME not in names or PAYLOAD_NAME not in names:
        archive.close()
        raise ModelFileError(
            f"{str(path)!r} is not an skmm model file: {expected}; found a zip archive holding "
            f"{sorted(names)[:10]}."
        )
    try:
        metadata = json.loads(archive.read(METADATA_NAME))
    except (ValueError, UnicodeDecodeError) as exc:
        archive.close()
        raise ModelFileError(f"{str(path)!r} is damaged: {METADATA_NAME} is not valid JSON ({exc}).") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        archive.close()
        raise ModelFileError(
            f"{str(path)!r} is not an skmm model file: {METADATA_NAME} should say "
            f"format={FORMAT!r}, found {found!r}."
        )
    return path, archive, metadata


def read_metadata(path):
    """Return the metadata of a model file without loading the model.

    Works on files from other skmm versions too, to see what they need.

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
        When the file is not an skmm model file.
    """
    _, archive, metadata = _open(path)
    archive.close()
    return metadata


def _major_minor(version):
    return tuple(str(version).split(".")[:2])


def load(path, *, return_metadata=False):
    """Load a model written by :func:`save`.

    The file must come from the same skmm major.minor version, and its payload
    must match the recorded sha256. Nothing is downloaded: encoders reload their
    models lazily, from the installed packages or the local Hugging Face cache.

    Parameters
    ----------
    path : str or path-like
    return_metadata : bool, default=False
        Also return the file's metadata (as :func:`read_metadata` gives it),
        read from the same opening of the file.

    Returns
    -------
    estimator : the fitted pipeline that was saved
    metadata : dict
        Only when ``return_metadata=True``: ``(estimator, metadata)`` is returned.

    Raises
    ------
    ModelFileError
        Not an skmm model file, written by an incompatible skmm version, or
        damaged (checksum mismatch). A subclass of ``ValueError``.

    See Also
    --------
    save, read_metadata

    Notes
    -----
    Loading unpickles the model, which can run arbitrary code: only load files
    you trust.

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
    from ._version import __version__

    path, archive, metadata = _open(path)
    with archive:
        saved_format = metadata.get("format_version")
        if not isinstance(saved_format, int) or saved_format > FORMAT_VERSION:
            raise ModelFileError(
                f"{str(path)!r} uses model file format version {saved_format!r}; this skmm "
                f"({__version__}) reads format version {FORMAT_VERSION} and older. Upgrade skmm."
            )
        saved = (metadata.get("versions") or {}).get("skmm")
        if saved is None or _major_minor(saved) != _major_minor(__version__):
            wanted = ".".join(_major_minor(__version__))
            raise ModelFileError(
                f"{str(path)!r} was saved by skmm {saved}, this is skmm {__version__}: model files "
                f"are read by the skmm version that wrote them (same major.minor, here {wanted}.x). "
                f"Install skmm=={saved} to load it, or re-fit and save the model with this version."
            )
        payload = archive.read(PAYLOAD_NAME)
    expected = (metadata.get("payload") or {}).get("sha256")
    found = hashlib.sha256(payload).hexdigest()
    if found != expected:
        raise ModelFileError(
            f"{str(path)!r} is damaged: {PAYLOAD_NAME} has sha256 {found}, the metadata expects "
            f"{expected}. The file was changed after skmm.save wrote it; save the model again."
        )
    try:
        estimator = pickle.loads(payload)
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError) as exc:
        raise ModelFileError(
            f"{str(path)!r} could not be unpickled ({type(exc).__name__}: {exc}); it needs the "
            f"libraries it was saved with: {metadata.get('versions')}."
        ) from None
    return (estimator, metadata) if return_metadata else estimator

