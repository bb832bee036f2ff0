"""The disk store of embeddings at 10^4 to 10^6 entries: skmm's store on diskcache vs a file per entry.

Three stores hold float32 vectors of ``--width`` (384: a MiniLM text embedding) under 64-hex keys:

* ``skmm``: :class:`skmm.cache.DiskCache`, the store on the `diskcache` library (one SQLite file,
  raw float32 bytes, every read checked);
* ``diskcache``: a plain ``diskcache.Cache`` with numpy arrays as values (pickled), the library as
  its documentation shows it: the cost of skmm's checks and raw bytes is the gap to this one;
* ``files``: one ``.npy`` file per entry, written atomically, the whole folder rescanned to prune
  every 1,000 writes: the store of skmm 0.1 (reproduced here as it was).

For each size N a store is filled with N entries (in batches of 256, as encoders write; the file
store without its pruning, which at 10^6 entries would rescan the folder a thousand times), then
timed on what a user's next run does: ``--batches`` batches of 256 unique new rows written
(``put``), as many batches of 256 stored rows read in random order (``get``, warm page cache),
and for the file store one prune scan of the folder (the cost it pays every 1,000 writes). Times
are microseconds per entry, the ratio is files / skmm (above 1: skmm's store is faster).

    python benchmarks/bench_cache.py [--sizes 10000 100000 1000000] [--width 384] [--busy 2]
"""

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _busy import busy_processes  # noqa: E402

BATCH = 256


class FilePerEntryStore:
    """skmm 0.1's disk store: ``folder/ab/abcd….npy``, written via a temporary file and os.replace."""

    def __init__(self, folder, max_bytes=20 * 1024**3, prune_every=1000):
        self.folder, self.max_bytes, self.prune_every = Path(folder), max_bytes, prune_every
        self._written = 0

    def _path(self, key):
        return self.folder / key[:2] / f"{key}.npy"

    def put_many(self, items):
        for key, vector in items.items():
            path = self._path(key)
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(handle, "wb") as stream:
                np.save(stream, vector, allow_pickle=False)
            os.replace(temporary, path)
            self._written += 1
        if self.prune_every and self._written >= self.prune_every:
            self.prune()

    def get_many(self, keys):
        found = {}
        for key in keys:
            try:
                found[key] = np.load(self._path(key), allow_pickle=False)
                os.utime(self._path(key))
            except FileNotFoundError:
                pass
        return found

    def prune(self):
        self._written = 0
        entries = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.folder.glob("*/*.npy")]
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            path.unlink()
            total -= size


class PlainDiskcache:
    """diskcache.Cache as its documentation uses it: arrays pickled, one transaction per batch."""

    def __init__(self, folder):
        import diskcache

        self.cache = diskcache.Cache(str(folder), size_limit=20 * 1024**3)

    def put_many(self, items):
        with self.cache.transact():
            for key, vector in items.items():
                self.cache.set(key, vector)

    def get_many(self, keys):
        return {key: value for key in keys if (value := self.cache.get(key)) is not None}


def skmm_store(folder):
    from skmm.cache import DiskCache

    return DiskCache(folder)


STORES = {"skmm": skmm_store, "diskcache": PlainDiskcache, "files": FilePerEntryStore}


def key(i):
    return hashlib.sha256(str(i).encode()).hexdigest()


def vectors(start, stop, width):
    rng = np.random.default_rng(start)
    block = rng.standard_normal((stop - start, width)).astype(np.float32)
    return {key(i): block[i - start] for i in range(start, stop)}


def per_entry(seconds, count):
    return 1e6 * seconds / count


def measure(name, size, width, batches, root):
    folder = Path(root) / f"{name}-{size}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    store = STORES[name](folder)
    filling = store
    if name == "files":
        filling = FilePerEntryStore(folder, prune_every=0)
    start = time.perf_counter()
    for first in range(0, size, BATCH * 16):
        block = vectors(first, min(first + BATCH * 16, size), width)
        items = list(block.items())
        for at in range(0, len(items), BATCH):
            filling.put_many(dict(items[at:at + BATCH]))
    fill = time.perf_counter() - start
    new = [vectors(size + b * BATCH, size + (b + 1) * BATCH, width) for b in range(batches)]
    start = time.perf_counter()
    for block in new:
        store.put_many(block)
    put = time.perf_counter() - start
    rng = np.random.default_rng(size)
    reads = [[key(int(i)) for i in rng.integers(0, size, BATCH)] for _ in range(batches)]
    start = time.perf_counter()
    for block in reads:
        found = store.get_many(block)
        assert len(found) == len(set(block)), (name, size, len(found))
    get = time.perf_counter() - start
    prune = None
    if name == "files":
        start = time.perf_counter()
        store.prune()
        prune = time.perf_counter() - start
    disk = sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "store": name, "entries": size, "fill µs/entry": per_entry(fill, size),
        "put µs/entry": per_entry(put, batches * BATCH), "get µs/entry": per_entry(get, batches * BATCH),
        "prune scan s": prune, "bytes/entry on disk": disk / (size + batches * BATCH),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--batches", type=int, default=40, help="batches of 256 timed for put and get")
    parser.add_argument("--stores", nargs="+", default=list(STORES), choices=list(STORES))
    parser.add_argument("--busy", type=int, default=0, help="background processes spinning meanwhile")
    parser.add_argument("--folder", help="where the stores are built (default: a temporary folder)")
    args = parser.parse_args()

    root = args.folder or tempfile.mkdtemp(prefix="skmm-bench-cache-")
    rows = []
    with busy_processes(args.busy):
        for size in args.sizes:
            for name in args.stores:
                rows.append(measure(name, size, args.width, args.batches, root))
                print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format="%.1f"), flush=True)
    table = pd.DataFrame(rows)
    print(f"\nwidth {args.width}, {args.busy} busy processes, load average {os.getloadavg()[0]:.1f}")
    print(table.to_string(index=False, float_format="%.1f"))
    if {"skmm", "files"} <= set(args.stores):
        pivot = table.pivot(index="entries", columns="store", values=["put µs/entry", "get µs/entry"])
        for what in ("put", "get"):
            ratio = pivot[f"{what} µs/entry"]["files"] / pivot[f"{what} µs/entry"]["skmm"]
            print(f"{what}: files / skmm = " + ", ".join(f"{n:,}: {r:.1f}×" for n, r in ratio.items()))


if __name__ == "__main__":
    main()
