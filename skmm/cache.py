"""A content-addressed cache of embeddings, shared by clones, folds and grid-search candidates.

The key of a row is a hash of the encoder's identity (model, a fingerprint of
its weights, every parameter that changes the output) and of the row's content
(the file's bytes, the text, the waveform). A changed file or parameter thus
gives a new key: the cache can never return a stale embedding.

Encoders choose a store with their ``cache`` parameter:

* ``"memory"`` (default): a process-wide, size-bounded LRU store in memory.
  When the environment variable ``SKMM_CACHE_DIR`` is set, a disk store in that
  folder backs it, so that embeddings survive the process and are shared with
  worker processes (``n_jobs > 1``).
* a folder path: a disk store in that folder (plus the memory store in front).
* ``None``: no caching.

Examples
--------
>>> import numpy as np
>>> from skmm.cache import MemoryCache
>>> store = MemoryCache(max_bytes=1_000)
>>> store.put_many({"a": np.ones(4, dtype=np.float32)})
>>> store.get_many(["a", "b"])["a"]
array([1., 1., 1., 1.], dtype=float32)
"""

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

__all__ = ["MemoryCache", "DiskCache", "resolve_cache", "clear_memory_cache", "row_key"]

DEFAULT_MEMORY_BYTES = int(os.environ.get("SKMM_CACHE_MEMORY_BYTES", 2 * 1024**3))
DEFAULT_DISK_BYTES = int(os.environ.get("SKMM_CACHE_DISK_BYTES", 20 * 1024**3))


def row_key(identity, content):
    """Hash an encoder identity (bytes) and a row's content (bytes) into a cache key."""
    digest = hashlib.sha256(identity)
    digest.update(content)
    return digest.hexdigest()


class MemoryCache:
    """A thread-safe LRU store of float32 vectors bounded by ``max_bytes``."""

    def __init__(self, max_bytes=DEFAULT_MEMORY_BYTES):
        self.max_bytes = max_bytes
        self._entries = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get_many(self, keys):
        found = {}
        with self._lock:
            for key in keys:
                vector = self._entries.get(key)
                if vector is not None:
                    self._entries.move_to_end(key)
                    found[key] = vector
        return found

    def put_many(self, items):
        with self._lock:
            for key, vector in items.items():
                if key in self._entries:
                    continue
                vector = np.array(vector, dtype=np.float32)
                vector.setflags(write=False)
                self._entries[key] = vector
                self._size += vector.nbytes
            while self._size > self.max_bytes and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._size -= dropped.nbytes

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._size = 0

    def __len__(self):
        return len(self._entries)


class DiskCache:
    """A folder of ``.npy`` files, one per key, written atomically.

    Several processes may read and write the same folder: each entry is written
    to a temporary file and moved into place with ``os.replace``, so a reader
    sees either nothing or a whole entry. When the folder grows past
    ``max_bytes`` the least recently used entries are removed.
    """

    def __init__(self, folder, max_bytes=DEFAULT_DISK_BYTES):
        self.folder = Path(folder).expanduser()
        self.max_bytes = max_bytes
        self._written_since_prune = 0

    def _path(self, key):
        return self.folder / key[:2] / f"{key}.npy"

    def get_many(self, keys):
        found = {}
        for key in keys:
            path = self._path(key)
            try:
                vector = np.load(path, allow_pickle=False)
                os.utime(path)
            except FileNotFoundError:
                continue
            except (ValueError, OSError, EOFError):
                # damaged from outside (disk full, crash, a copy): drop it so it is written again
                path.unlink(missing_ok=True)
                continue
            if vector.dtype != np.float32 or vector.ndim != 1:
                path.unlink(missing_ok=True)
                continue
            found[key] = vector
        return found

    def put_many(self, items):
        for key, vector in items.items():
            path = self._path(key)
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as stream:
                    np.save(stream, np.asarray(vector, dtype=np.float32), allow_pickle=False)
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            self._written_since_prune += 1
        if self._written_since_prune >= 1000:
            self.prune()

    def prune(self):
        """Remove least recently used entries until the folder fits ``max_bytes``."""
        self._written_since_prune = 0
        entries = []
        for path in self.folder.glob("*/*.npy"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size

    def clear(self):
        for path in self.folder.glob("*/*.npy"):
            path.unlink(missing_ok=True)


class _TieredCache:
    """Memory in front of disk: disk hits are promoted to memory."""

    def __init__(self, memory, disk):
        self.memory, self.disk = memory, disk

    def get_many(self, keys):
        found = self.memory.get_many(keys)
        missing = [key for key in keys if key not in found]
        if missing:
            from_disk = self.disk.get_many(missing)
            self.memory.put_many(from_disk)
            found.update(from_disk)
        return found

    def put_many(self, items):
        self.memory.put_many(items)
        self.disk.put_many(items)


_MEMORY = MemoryCache()
_DISKS = {}
_DISKS_LOCK = threading.Lock()


def _disk(folder):
    folder = str(Path(folder).expanduser().resolve())
    with _DISKS_LOCK:
        if folder not in _DISKS:
            _DISKS[folder] = DiskCache(folder)
        return _DISKS[folder]


def resolve_cache(cache):
    """Return the store for an encoder's ``cache`` parameter (None when off)."""
    if cache is None:
        return None
    if isinstance(cache, str) and cache == "memory":
        folder = os.environ.get("SKMM_CACHE_DIR")
        return _TieredCache(_MEMORY, _disk(folder)) if folder else _MEMORY
    if isinstance(cache, (str, os.PathLike)):
        return _TieredCache(_MEMORY, _disk(cache))
    raise ValueError(
        f"cache must be 'memory', a folder path or None, got {cache!r}"
    )


def clear_memory_cache():
    """Empty the process-wide in-memory store (disk folders are left alone)."""
    _MEMORY.clear()
