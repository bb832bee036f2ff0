"""Model bundles: what an encoder loads once per process and shares between clones and folds.

A *bundle* is what :meth:`BaseEncoder._load_bundle` returns: the loaded network,
its preprocessing and whatever constants encoding needs (for
:class:`~skmm.AudioMFCC`, the filterbank tables). It is never pickled with the
encoder. (Not to be confused with ``AudioMFCC(backend=...)``, which picks the
library that computes the features.)
"""

import hashlib
import os
import threading
from pathlib import Path

__all__ = ["shared_bundle", "weights_fingerprint"]

_BUNDLES = {}
_BUNDLES_LOCK = threading.Lock()


def shared_bundle(key, factory):
    """Load a bundle once per process and share it between clones and folds.

    A local model folder named in ``key`` is loaded again when its files change
    (names, sizes, modification times): a model saved again in place is never
    served from a stale copy, and the stale copy is released.

    Parameters
    ----------
    key : tuple
        What identifies the bundle (model name or folder, device, settings).
    factory : callable
        Called without arguments to load the bundle when it is not shared yet.

    Returns
    -------
    object
        The bundle ``factory`` returned, now or for an earlier call with ``key``.

    Examples
    --------
    >>> first = shared_bundle(("doc-example",), lambda: object())
    >>> shared_bundle(("doc-example",), lambda: object()) is first
    True
    """
    signature = _folder_signature(key)
    with _BUNDLES_LOCK:
        entry = _BUNDLES.get(key)
        if entry is None or entry[0] != signature:
            _BUNDLES.pop(key, None)  # release the stale bundle before loading the new one
            _BUNDLES[key] = entry = (signature, factory())
        return entry[1]


def _folder_signature(key):
    """Name, size and modification time of every file of the local folders in ``key``."""
    signature = []
    for part in key:
        if isinstance(part, str) and os.path.isdir(part):
            for path in sorted(Path(part).rglob("*")):
                if path.is_file():
                    stat = path.stat()
                    signature.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


def weights_fingerprint(module):
    """A SHA-256 of every parameter and buffer of a torch module."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
