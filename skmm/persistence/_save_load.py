"""Saving and loading: :func:`save` writes a model file atomically, :func:`load` reads it back.

A save writes the archive to a temporary file beside the target and moves it
into place with :func:`os.replace`, removing what saves killed mid-write left
behind. A load reads the file through :mod:`skmm.persistence._format`, refuses
types off the allow-list (:mod:`skmm.persistence._trust`) unless trusted, and
checks that the file holds a fitted estimator.
"""

import hashlib
import json
import os
import tempfile
import zipfile
from glob import escape as glob_escape
from pathlib import Path

from ..exceptions import ModelFileError
from ._format import (
    METADATA_NAME,
    PAYLOAD_NAME,
    _check_skops_members,
    _check_versions,
    _damaged,
    _open,
    _read_payload,
    build_metadata,
)
from ._trust import _not_allowed, _trusted_names

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


def _untrusted(path, names):
    return ModelFileError(
        f"{str(path)!r} holds types that skmm does not load unless told to trust the file: "
        f"{names}. Loading them can run code from their modules. If you trust where the file "
        f"comes from, load it with skmm.load(path, trusted={names!r}), or trusted=True "
        "(--trust for skmm predict and skmm serve)."
    )


def _load_skops(path, payload, metadata, trusted):
    import skops.io

    from .._net_state import UntrustedNetError

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
        from ..encoders._base import BaseEncoder
        from ..infer import estimators_inside

        for inner in estimators_inside(estimator):
            if isinstance(inner, BaseEncoder):
                inner._weights_changed = "warn"
    return (estimator, metadata) if return_metadata else estimator
