"""A content-addressed cache of embeddings, shared by clones, folds and grid-search candidates.

The key of a row is a hash of the encoder's identity (model, a fingerprint of
its weights, every parameter that changes the output) and of the row's content
(the file's bytes, the text, the waveform). A changed file or parameter thus
gives a new key: the cache can never return a stale embedding.

Encoders choose a store with their ``cache`` parameter:

* ``"memory"`` (default): a process-wide, size-bounded LRU store in memory,
  backed by a per-user disk store in the platform's cache folder
  (:func:`default_folder`: ``$SKMM_CACHE_DIR``, else ``$XDG_CACHE_HOME/skmm``,
  else ``~/.cache/skmm``; ``~/Library/Caches/skmm`` on macOS,
  ``%LOCALAPPDATA%\\skmm\\cache`` on Windows). Embeddings thus survive the
  process and are shared with the worker processes of a parallel or
  distributed search (joblib's loky, Dask on one machine): each unique row is
  encoded once per encoder setting across all of them. ``SKMM_CACHE_DIR=""``
  (empty) keeps the store in memory only.
* a folder path: a disk store in that folder (plus the memory store in front).
* ``None``: no caching.

A disk store (:class:`DiskCache`) is one SQLite database in its folder, kept
by the `diskcache` library; skmm stores raw float32 bytes in it, never pickles.

The cache never changes a result and never stops work:

* every entry read is checked (a 1-D float32 vector, all finite, of the width
  the encoder expects when it says so); a bad entry is dropped and computed
  again;
* a disk folder that cannot be written (read-only, full) gives one
  :class:`CacheWarning` and is then only read; one that cannot be opened at
  all, or whose database is damaged beyond repair, gives one and is not used;
* a disk folder that other users can write to (group- or world-writable, or
  owned by another user) is refused with a :class:`CacheWarning`, as ssh
  refuses such a folder for its keys: another user could plant the embedding
  your row gets. The memory store is used alone then. New folders are created
  with mode ``0o700``.

Examples
--------
>>> import numpy as np
>>> from skmm.cache import MemoryCache
>>> store = MemoryCache(max_bytes=1_000)
>>> store.put_many({"a": np.ones(4, dtype=np.float32)})
>>> store.get_many(["a", "b"])["a"]
array([1., 1., 1., 1.], dtype=float32)
"""

import contextlib
import hashlib
import os
import sqlite3
import stat
import sys
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import diskcache
import numpy as np

__all__ = [
    "CacheWarning", "DiskCache", "MemoryCache", "check_folder", "clear_memory_cache", "default_folder",
    "resolve_cache", "row_key",
]

DEFAULT_MEMORY_BYTES = int(os.environ.get("SKMM_CACHE_MEMORY_BYTES", 2 * 1024**3))
DEFAULT_DISK_BYTES = int(os.environ.get("SKMM_CACHE_DISK_BYTES", 20 * 1024**3))
DATABASE = diskcache.core.DBNAME  # the SQLite file in a disk cache's folder
_MISSING = object()


class CacheWarning(UserWarning):
    """A cache folder is refused or cannot be written; results are unchanged, only slower."""


def _all_finite(vector):
    return bool(np.isfinite(vector).all())


def _valid(vector, width, usable=None):
    """Whether ``vector`` is what an encoder stores: a 1-D float32 array of ``width`` that is
    ``usable`` (by default: all finite; an encoder with an optional block may allow it all NaN)."""
    return (
        isinstance(vector, np.ndarray)
        and vector.dtype == np.float32
        and vector.ndim == 1
        and (width is None or vector.shape[0] == width)
        and (usable or _all_finite)(vector)
    )


def _from_bytes(value):
    """The float32 vector whose little-endian bytes are ``value``, or None when they cannot be one."""
    if len(value) % 4:
        return None
    return np.frombuffer(value, dtype="<f4").astype(np.float32, copy=False)


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

    def get_many(self, keys, width=None, usable=None):
        """The stored vectors of ``keys`` (those found), dropping any not ``width`` long."""
        found = {}
        with self._lock:
            for key in keys:
                vector = self._entries.get(key)
                if vector is None:
                    continue
                if width is not None and vector.shape[0] != width:
                    del self._entries[key]
                    self._size -= vector.nbytes
                    continue
                self._entries.move_to_end(key)
                found[key] = vector
        return found

    def put_many(self, items, usable=None):
        """Store ``{key: vector}``; vectors that are not 1-D and ``usable`` (finite) are not stored."""
        with self._lock:
            for key, vector in items.items():
                if key in self._entries:
                    continue
                vector = np.array(vector, dtype=np.float32)
                if not _valid(vector, None, usable):
                    continue
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

    def exclusive(self, name):
        """No lock: one process's memory is not shared (see :meth:`DiskCache.exclusive`)."""
        return contextlib.nullcontext()


class _VectorDisk(diskcache.Disk):
    """diskcache's serialiser, cut down to raw bytes: nothing read from the folder is unpickled.

    Keys are the hex strings of :func:`row_key`; values are the bytes of a
    little-endian float32 vector, kept inside the SQLite file (never in side
    files). Any other entry (a pickled value or key, a value in a file, from
    another program or a planted one) reads as None, i.e. a damaged entry, and
    no file named by the database is ever opened or removed.
    """

    def put(self, key):
        if type(key) is not str:
            raise TypeError(f"skmm cache keys are str, got {type(key).__name__}")
        return key, True

    def get(self, key, raw):
        return key if raw and type(key) is str else None

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        if type(value) is not bytes or read:
            raise TypeError(f"skmm cache values are bytes, got {type(value).__name__}")
        return 0, diskcache.core.MODE_RAW, None, sqlite3.Binary(value)

    def fetch(self, mode, filename, value, read):
        if mode != diskcache.core.MODE_RAW or filename is not None or read:
            return None
        return bytes(value) if isinstance(value, (bytes, memoryview)) else None

    def remove(self, file_path):
        """Nothing: skmm writes no side files, and a path read from the database is not followed."""


class DiskCache:
    """An on-disk store of float32 vectors bounded by ``max_bytes``, on the `diskcache` library.

    The entries live in one SQLite database in ``folder`` (``cache.db``), which
    several threads and processes may read and write at once: each write is a
    transaction, so a reader sees either nothing or a whole entry. After each
    batch written, the entries stored longest ago are removed until the
    database fits ``max_bytes`` again (by index: no rescan). Entries are raw float32
    bytes, never pickles, and are checked when read: a damaged or planted entry
    is dropped. When the folder cannot be written (read-only, full), one
    :class:`CacheWarning` is given and the store is only read from then on;
    when it cannot even be opened, the store stays empty.

    The store trusts its folder: :func:`resolve_cache` checks it with
    :func:`check_folder` first.
    """

    def __init__(self, folder, max_bytes=DEFAULT_DISK_BYTES):
        self.folder = Path(folder).expanduser()
        self.max_bytes = max_bytes
        self._writable = True
        self._store = None
        self._opened = False
        self._opening = threading.Lock()

    def _database(self):
        """The diskcache store of the folder (opened on first use), or None when it cannot be."""
        with self._opening:
            if not self._opened:
                self._store, self._opened = self._connect(), True
            return self._store

    def _connect(self):
        settings = dict(
            disk=_VectorDisk, size_limit=self.max_bytes, eviction_policy="least-recently-stored",
            statistics=False, tag_index=False, timeout=60,
            # no culling inside a batch's transaction, where the file cannot shrink yet (each
            # write would cull again, emptying a small store): put_many culls after committing
            cull_limit=0,
        )
        for attempt in (1, 2):
            try:
                self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                return diskcache.Cache(str(self.folder), **settings)
            except sqlite3.OperationalError as exc:  # read-only, locked, unreadable
                return self._give_up(exc)
            except sqlite3.DatabaseError as exc:  # not a database: damaged from outside
                if attempt == 2:
                    return self._give_up(exc)
                for name in (DATABASE, DATABASE + "-wal", DATABASE + "-shm"):
                    self._remove(self.folder / name)
            except OSError as exc:
                return self._give_up(exc)

    def _give_up(self, exc):
        warnings.warn(
            f"the skmm cache folder {str(self.folder)!r} cannot be opened ({exc}); embeddings are "
            "computed but not kept on disk. Fix its permissions or choose another folder with the "
            "encoder's cache= parameter or the SKMM_CACHE_DIR environment variable (cache=None "
            "turns caching off).",
            CacheWarning,
            stacklevel=5,
        )
        return None

    @staticmethod
    def _remove(path):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass

    def get_many(self, keys, width=None, usable=None):
        """The stored vectors of ``keys`` (those found); damaged or wrong entries are dropped."""
        store = self._database()
        found = {}
        if store is None:
            return found
        damaged = []
        try:
            for key in keys:
                value = store.get(key, default=_MISSING)
                if value is _MISSING:
                    continue
                vector = None if value is None else _from_bytes(value)
                if not _valid(vector, width, usable):
                    damaged.append(key)
                    continue
                found[key] = vector
        except sqlite3.Error:
            return found  # damaged underneath us: what was read is checked, the rest is computed
        if damaged and self._writable:
            self._delete(store, damaged)
        return found

    def _delete(self, store, keys):
        try:
            with store.transact():
                for key in keys:
                    store.delete(key)
        except (diskcache.Timeout, sqlite3.Error, OSError):
            pass  # written again later, or dropped by the next reader

    def put_many(self, items, usable=None):
        """Store ``{key: vector}``, unless the folder cannot be written (then warn once)."""
        store = self._database()
        if store is None or not self._writable:
            return
        rows = {}
        for key, vector in items.items():
            vector = np.asarray(vector, dtype=np.float32)
            if _valid(vector, None, usable):
                rows[key] = vector.astype("<f4", copy=False).tobytes()
        if not rows:
            return
        try:
            with store.transact():
                for key, value in rows.items():
                    store.set(key, value)
            store.cull()  # back under max_bytes, the entries stored longest ago first
        except (diskcache.Timeout, sqlite3.Error, OSError) as exc:
            self._stop_writing(exc)

    def _stop_writing(self, exc):
        self._writable = False
        warnings.warn(
            f"the skmm cache folder {str(self.folder)!r} cannot be written "
            f"({str(exc) or 'locked by another process for a minute'}); "
            "embeddings are still computed and read from it, but no longer stored there. Free "
            "space or fix its permissions, or choose another folder with the encoder's cache= "
            "parameter or the SKMM_CACHE_DIR environment variable (cache=None turns caching off).",
            CacheWarning,
            stacklevel=3,
        )

    def __len__(self):
        store = self._database()
        return 0 if store is None else len(store)

    def clear(self):
        """Remove every entry."""
        store = self._database()
        if store is not None:
            store.clear()

    @contextlib.contextmanager
    def exclusive(self, name):
        """Hold the folder's lock ``name`` against other processes (and threads) while inside.

        An encoder holds the lock of its identity while it computes what the
        cache lacks, so that two workers never encode the same rows at once:
        the second waits, then finds them stored. The lock is an ``flock`` on a
        file in ``locks/``, released by the system if the holder dies; where
        there is no ``fcntl`` (Windows) or the lock file cannot be opened, the
        work is done unlocked (rows may then be encoded twice, never wrongly).
        """
        handle = self._lock_file(name)
        if handle is None:
            yield
            return
        import fcntl

        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # releases the lock

    def _lock_file(self, name):
        """A descriptor of the lock file ``name``, or None where no lock can be had."""
        try:
            import fcntl  # noqa: F401
        except ImportError:  # Windows
            return None
        try:
            locks = self.folder / "locks"
            locks.mkdir(mode=0o700, parents=True, exist_ok=True)
            return os.open(locks / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None




def check_folder(folder):
    """Why ``folder`` must not hold a disk cache, or None when it may; creates it if missing.

    A new folder is created with mode ``0o700``. A folder that another user owns,
    or that group or others may write to, is refused: whoever can write there
    decides which embedding a row gets (ssh refuses such folders for its keys
    for the same reason).

    Parameters
    ----------
    folder : str or path-like

    Returns
    -------
    reason : str or None

    Examples
    --------
    >>> import os, tempfile
    >>> from skmm.cache import check_folder
    >>> folder = os.path.join(tempfile.mkdtemp(), "cache")
    >>> check_folder(folder) is None, oct(os.stat(folder).st_mode & 0o777)
    (True, '0o700')
    >>> os.chmod(folder, 0o777)
    >>> check_folder(folder)
    'other users can write to it (mode 0o777); make it yours alone: chmod 700 /.../cache'
    """
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError as exc:
        return f"it cannot be created or read ({exc})"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a folder"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return f"it belongs to another user (uid {info.st_uid}, you are {os.getuid()})"
    if hasattr(os, "getuid") and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"other users can write to it (mode {oct(info.st_mode & 0o777)}); make it yours "
            f"alone: chmod 700 {folder}"
        )
    return None


class _TieredCache:
    """Memory in front of disk: disk hits are promoted to memory."""

    def __init__(self, memory, disk):
        self.memory, self.disk = memory, disk

    def get_many(self, keys, width=None, usable=None):
        found = self.memory.get_many(keys, width, usable)
        missing = [key for key in keys if key not in found]
        if missing:
            from_disk = self.disk.get_many(missing, width, usable)
            self.memory.put_many(from_disk, usable)
            found.update(from_disk)
        return found

    def put_many(self, items, usable=None):
        self.memory.put_many(items, usable)
        self.disk.put_many(items, usable)

    def exclusive(self, name):
        return self.disk.exclusive(name)


_MEMORY = MemoryCache()
_DISKS = {}
_DISKS_LOCK = threading.Lock()


def _disk(folder):
    """The disk store of ``folder``, or None when the folder is refused (warned once)."""
    folder = str(Path(folder).expanduser().resolve())
    with _DISKS_LOCK:
        if folder not in _DISKS:
            reason = check_folder(folder)
            _DISKS[folder] = None if reason else DiskCache(folder)
            if reason:
                warnings.warn(
                    f"skmm does not use the cache folder {folder!r}: {reason}. Embeddings are "
                    "cached in memory only. Choose a folder of your own with the encoder's cache= "
                    "parameter or the SKMM_CACHE_DIR environment variable.",
                    CacheWarning,
                    stacklevel=4,
                )
        return _DISKS[folder]


def _with_disk(folder):
    disk = _disk(folder)
    return _MEMORY if disk is None else _TieredCache(_MEMORY, disk)


def default_folder():
    """The disk folder behind ``cache="memory"``, or None when it is turned off.

    ``$SKMM_CACHE_DIR`` when set (empty: None, memory only); else the
    platform's per-user cache folder: ``$XDG_CACHE_HOME/skmm`` or
    ``~/.cache/skmm`` on Linux, ``~/Library/Caches/skmm`` on macOS,
    ``%LOCALAPPDATA%\\skmm\\cache`` on Windows. The folder is checked by
    :func:`check_folder` before use (created ``0o700``, refused when others can
    write to it) and bounded by ``SKMM_CACHE_DISK_BYTES`` (20 GiB by default),
    the entries stored longest ago removed first.

    Returns
    -------
    folder : pathlib.Path or None

    Examples
    --------
    >>> import os
    >>> from skmm.cache import default_folder
    >>> os.environ["SKMM_CACHE_DIR"], saved = "", os.environ.get("SKMM_CACHE_DIR")
    >>> default_folder() is None
    True
    >>> os.environ["SKMM_CACHE_DIR"] = saved if saved is not None else ""
    """
    folder = os.environ.get("SKMM_CACHE_DIR")
    if folder is not None:
        return Path(folder).expanduser() if folder else None
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "skmm" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "skmm"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "skmm"


def resolve_cache(cache):
    """Return the store for an encoder's ``cache`` parameter (None when off).

    A store has ``get_many(keys, width=None, usable=None)``, returning
    ``{key: vector}`` for the keys found (entries of another ``width``, or not
    ``usable`` — by default not all finite — are dropped),
    ``put_many({key: vector}, usable=None)`` and ``exclusive(name)``, a context
    manager holding a lock shared with other processes using the same folder.
    """
    if cache is None:
        return None
    if isinstance(cache, str) and cache == "memory":
        folder = default_folder()
        return _with_disk(folder) if folder is not None else _MEMORY
    if isinstance(cache, (str, os.PathLike)):
        return _with_disk(cache)
    raise ValueError(
        f"cache must be 'memory', a folder path or None, got {cache!r}"
    )


def clear_memory_cache():
    """Empty the process-wide in-memory store (disk folders are left alone)."""
    _MEMORY.clear()
