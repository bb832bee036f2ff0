"""The model file format: its constants and size limits, the metadata written, and bounded reading.

A model file is a zip archive of ``metadata.json`` and the skops payload
``model.skops``. :func:`build_metadata` describes a fitted estimator for the
metadata; :func:`read_metadata` and the helpers that :func:`skmm.load` uses
open an archive, check every member against a size limit and a compression
ratio before inflating it, check the metadata's fields and versions, and read
the payload of the recorded size and sha256. Any damage raises
:class:`~skmm.exceptions.ModelFileError`. Nothing here unpacks the payload
(see :mod:`skmm.persistence._save_load`).
"""

import hashlib
import io
import json
import os
import platform
import zipfile
import zlib
from datetime import datetime, timezone
from importlib import metadata as _importlib_metadata
from pathlib import Path

import numpy as np

from .._fitted import describe_inputs, encoder_models
from .._utils import jsonable
from ..exceptions import ModelFileError

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
    from .._version import __version__

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
    from .._version import __version__

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
