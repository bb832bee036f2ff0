"""What the media readers share: the path guard, reading a file, content digests, error reasons.

:func:`paths_refused` makes every ``read_<medium>_source`` refuse a path
instead of opening the file (the server predicts inside it); the readers
open files through :func:`_read_file`, which honours it. ``_streamed_source``
reads a path or bytes of a file its decoder opens itself (audio, video): a path
is identified by ``_file_digest``, a digest of its bytes; ``_array_content`` is
the digest of an in-memory array; ``_reason`` turns a decoding library's exception into the short
reason of skmm's messages.
"""

import contextlib
import contextvars
import hashlib
import os
import re
from pathlib import Path

import numpy as np

#: set while paths must not be opened (the server predicting a request)
_PATHS_REFUSED = contextvars.ContextVar("skmm_paths_refused", default=False)


@contextlib.contextmanager
def paths_refused():
    """Within this block, reading an image, audio or video *path* fails instead of opening the file.

    The server predicts every request inside it, so that no value of a request
    can make it open a file of its own, whatever the pipeline looks like.
    """
    token = _PATHS_REFUSED.set(True)
    try:
        yield
    finally:
        _PATHS_REFUSED.reset(token)


def _read_file(path, kind):
    if _PATHS_REFUSED.get():
        raise ValueError(
            f"a path was given where {kind} file's bytes were expected; this server never "
            "opens paths: send the file itself"
        )
    path = Path(os.fspath(path)).expanduser()
    if not path.exists():
        raise ValueError(f"file not found: '{path}'")
    if path.is_dir():
        raise ValueError(f"'{path}' is a directory, expected {kind} file")
    return path


def _file_digest(path, chunk_size=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return b"file:" + digest.digest()


def _streamed_source(value, kind):
    """``(content, raw)`` of a file its decoder opens itself: a path (its digest, the path) or bytes.

    None for any other value, which the medium's own reader handles.
    """
    if isinstance(value, (str, os.PathLike)):
        path = _read_file(value, kind)
        return _file_digest(path), path
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return data, data
    return None


def _array_content(array, *extra):
    """A digest of an array's dtype, shape and values (no copy when it is contiguous)."""
    array = np.ascontiguousarray(array)
    if array.dtype.hasobject:
        raise TypeError(f"expected an array of numbers, got dtype {array.dtype}")
    digest = hashlib.sha256(repr((array.dtype.str, array.shape, *extra)).encode())
    digest.update(array.reshape(-1).view(np.uint8))
    return b"array:" + digest.digest()


#: what a library's message says of an in-memory file: "<_io.BytesIO object at 0x7f...>"
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def _reason(exc):
    """An exception's message for an error of skmm's, without memory addresses of in-memory files."""
    return _OBJECT_REPR.sub("the data", str(exc)) or type(exc).__name__
