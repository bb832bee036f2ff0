"""The shared embedding cache: hits, misses, invalidation, bounds, disk store, concurrency, sharing."""

import errno
import hashlib
import multiprocessing
import os
import sqlite3
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import diskcache
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import skmm.cache
from skmm import ImageEncoder, MultimodalClassifier, MultimodalFusion, TextEncoder
from skmm.cache import DiskCache, MemoryCache, clear_memory_cache, resolve_cache
from tiny_models import save_tiny_bert

@pytest.fixture(scope="module")
def bert_a(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("bert_a"), seed=0)


@pytest.fixture(scope="module")
def bert_b(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("bert_b"), seed=1)


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    """Every test starts with an empty process-wide store and no disk folder behind it."""
    monkeypatch.setenv("SKMM_CACHE_DIR", "")
    clear_memory_cache()
    yield
    clear_memory_cache()


@pytest.fixture
def encoded(monkeypatch):
    """Record every row handed to ``_encode_batch`` of the text and image encoders."""
    calls = {"text": [], "image": []}

    def spy(cls, kind):
        original = cls._encode_batch

        def wrapper(self, items, bundle):
            calls[kind].extend(_fingerprint(item) for item in items)
            return original(self, items, bundle)

        monkeypatch.setattr(cls, "_encode_batch", wrapper)

    spy(TextEncoder, "text")
    spy(ImageEncoder, "image")
    return calls


def _fingerprint(item):
    if isinstance(item, str):
        return item
    return hashlib.blake2b(np.ascontiguousarray(item).tobytes(), digest_size=8).hexdigest()


def text_encoder(model, **params):
    return TextEncoder(model=model, verbose=0, **params)


def image_encoder(**params):
    params.setdefault("image_size", 32)
    return ImageEncoder(verbose=0, **params)


def save_png(path, seed, size=40):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return str(path)


TEXTS = ["the red car", "a cat sat on the mat", "the dog ran", "blue bird", "green car"]


# --------------------------------------------------------------------------- hits and misses


def test_second_call_is_served_from_cache(bert_a, encoded):
    first = text_encoder(bert_a).fit_transform(TEXTS)
    second = text_encoder(bert_a).fit_transform(TEXTS[::-1])
    assert len(encoded["text"]) == len(TEXTS)
    np.testing.assert_array_equal(second, first[::-1])


def test_duplicate_rows_within_one_call_are_encoded_once(bert_a, encoded):
    rows = ["the red car", "blue bird", "the red car", None, "blue bird", "the red car"]
    Z = text_encoder(bert_a, cache=None).fit_transform(rows)
    assert Counter(encoded["text"]) == {"the red car": 1, "blue bird": 1}
    np.testing.assert_array_equal(Z[0], Z[2])
    np.testing.assert_array_equal(Z[0], Z[5])
    np.testing.assert_array_equal(Z[1], Z[4])
    assert np.isnan(Z[3]).all()


def test_cache_none_recomputes(bert_a, encoded):
    encoder = text_encoder(bert_a, cache=None)
    first = encoder.fit_transform(TEXTS)
    second = encoder.transform(TEXTS)
    assert len(encoded["text"]) == 2 * len(TEXTS)
    np.testing.assert_allclose(first, second, rtol=1e-6)
    assert len(skmm.cache._MEMORY) == 0


def test_runtime_parameters_share_entries(bert_a, encoded):
    text_encoder(bert_a, batch_size=2).fit_transform(TEXTS)
    text_encoder(bert_a, batch_size=5, on_error="missing").fit_transform(TEXTS)
    assert len(encoded["text"]) == len(TEXTS)


# --------------------------------------------------------------------------- invalidation


@pytest.mark.parametrize("params", [{"pooling": "cls"}, {"max_length": 3}, {"normalize": False}])
def test_changed_text_parameter_gives_fresh_embeddings(bert_a, encoded, params):
    rows = ["a cat sat on the mat", "the dog ran on the mat"]
    default = text_encoder(bert_a).fit_transform(rows)
    changed = text_encoder(bert_a, **params).fit_transform(rows)
    recomputed = text_encoder(bert_a, cache=None, **params).fit_transform(rows)
    assert len(encoded["text"]) == 3 * len(rows)
    assert not np.allclose(default, changed)
    np.testing.assert_allclose(changed, recomputed, rtol=1e-5, atol=1e-6)


def test_different_model_gives_fresh_embeddings(bert_a, bert_b, encoded):
    Z_a = text_encoder(bert_a).fit_transform(TEXTS)
    Z_b = text_encoder(bert_b).fit_transform(TEXTS)
    assert len(encoded["text"]) == 2 * len(TEXTS)
    assert not np.allclose(Z_a, Z_b)
    np.testing.assert_allclose(Z_b, text_encoder(bert_b, cache=None).fit_transform(TEXTS), rtol=1e-5)


def test_model_folder_overwritten_in_place_is_reloaded(tmp_path, encoded):
    folder = save_tiny_bert(tmp_path / "model", seed=0)
    before = text_encoder(folder).fit_transform(TEXTS)
    time.sleep(0.01)  # a distinct modification time, even on coarse clocks
    save_tiny_bert(folder, seed=5)
    after = text_encoder(folder).fit_transform(TEXTS)
    assert len(encoded["text"]) == 2 * len(TEXTS)
    assert not np.allclose(before, after)


def test_changed_file_at_same_path_gives_fresh_embedding(tmp_path, encoded):
    path = save_png(tmp_path / "photo.png", seed=0)
    before = image_encoder().fit_transform([path])
    save_png(path, seed=1)
    after = image_encoder().fit_transform([path])
    again = image_encoder().fit_transform([path])
    assert len(encoded["image"]) == 2
    assert not np.allclose(before, after)
    np.testing.assert_array_equal(after, again)


def test_same_bytes_under_two_paths_share_one_entry(tmp_path, encoded):
    first = save_png(tmp_path / "a.png", seed=3)
    second = tmp_path / "b.png"
    second.write_bytes(Path(first).read_bytes())
    Z = image_encoder().fit_transform([first, str(second)])
    assert len(encoded["image"]) == 1
    np.testing.assert_array_equal(Z[0], Z[1])


def test_changed_image_size_gives_fresh_embeddings(tmp_path, encoded):
    paths = [save_png(tmp_path / f"{i}.png", seed=i) for i in range(3)]
    small = image_encoder(image_size=32).fit_transform(paths)
    large = image_encoder(image_size=48).fit_transform(paths)
    assert len(encoded["image"]) == 6
    assert not np.allclose(small, large)


# --------------------------------------------------------------------------- memory store


def test_memory_store_evicts_least_recently_used():
    store = MemoryCache(max_bytes=3 * 16)  # three vectors of four float32
    store.put_many({key: np.full(4, i, dtype=np.float32) for i, key in enumerate("abc")})
    store.get_many(["a"])  # "a" becomes the most recent, "b" the oldest
    store.put_many({"d": np.zeros(4, dtype=np.float32)})
    assert sorted(store.get_many(list("abcd"))) == ["a", "c", "d"]
    assert store._size == 3 * 16


def test_memory_store_entries_are_read_only_copies():
    vector = np.ones(4, dtype=np.float32)
    store = MemoryCache()
    store.put_many({"k": vector})
    vector[:] = 7
    stored = store.get_many(["k"])["k"]
    np.testing.assert_array_equal(stored, np.ones(4))
    with pytest.raises(ValueError, match="read-only"):
        stored[0] = 2


def test_process_store_stays_within_its_bound(bert_a, monkeypatch):
    monkeypatch.setattr(skmm.cache._MEMORY, "max_bytes", 3 * 32 * 4)  # three 32-d vectors
    texts = [f"{word} {letter}" for word in ("the", "a", "red") for letter in "abcd"]
    text_encoder(bert_a).fit_transform(texts)
    assert len(skmm.cache._MEMORY) == 3
    assert skmm.cache._MEMORY._size <= 3 * 32 * 4


# --------------------------------------------------------------------------- disk store


def _stored_keys(folder):
    """The keys in a disk store, read with diskcache itself (not through skmm)."""
    with diskcache.Cache(str(folder)) as plain:
        return sorted(plain)


def _plant(folder, key, value):
    """Write ``value`` under ``key`` with a plain diskcache (bytes raw, anything else pickled)."""
    with diskcache.Cache(str(folder)) as plain:
        plain.set(key, value)


def _read_raw(folder, key):
    with diskcache.Cache(str(folder)) as plain:
        return plain.get(key)


def test_disk_entries_survive_a_new_instance(tmp_path):
    vectors = {f"{i:02x}{'0' * 38}": np.arange(5, dtype=np.float32) * i for i in range(20)}
    DiskCache(tmp_path).put_many(vectors)
    found = DiskCache(tmp_path).get_many(list(vectors) + ["ff" + "0" * 38])
    assert sorted(found) == sorted(vectors)
    for key, vector in vectors.items():
        np.testing.assert_array_equal(found[key], vector)
    assert {path.name for path in tmp_path.iterdir()} <= {"cache.db", "cache.db-wal", "cache.db-shm"}


def test_encoder_disk_cache_survives_the_process_store(bert_a, tmp_path, encoded):
    first = text_encoder(bert_a, cache=str(tmp_path)).fit_transform(TEXTS)
    clear_memory_cache()
    second = text_encoder(bert_a, cache=tmp_path).fit_transform(TEXTS)
    assert len(encoded["text"]) == len(TEXTS)
    np.testing.assert_array_equal(first, second)
    assert len(DiskCache(tmp_path)) == len(TEXTS)


def test_corrupt_disk_entry_is_a_miss_and_gets_rewritten(tmp_path):
    key = "ab" + "1" * 38
    store = DiskCache(tmp_path)
    store.put_many({key: np.ones(3, dtype=np.float32)})
    _plant(tmp_path, key, _read_raw(tmp_path, key)[:5])  # torn by an outside hand
    assert store.get_many([key]) == {}
    assert _stored_keys(tmp_path) == []  # dropped, so that it is computed and written again
    store.put_many({key: np.full(3, 2, dtype=np.float32)})
    np.testing.assert_array_equal(DiskCache(tmp_path).get_many([key])[key], np.full(3, 2))


def test_disk_store_stays_within_its_bound_dropping_the_oldest_entries(tmp_path):
    store = DiskCache(tmp_path, max_bytes=400_000)
    for batch in range(40):  # 40 batches of 25 entries of 2 kB: 2 MB written in all
        store.put_many({_key(batch * 25 + i): np.full(500, batch, dtype=np.float32) for i in range(25)})
    kept = len(store)
    assert 0 < kept < 400_000 // 2_000
    assert (tmp_path / "cache.db").stat().st_size <= 400_000  # (its write-ahead log is SQLite's: ≤ 4 MB)
    newest = [_key(999 - i) for i in range(10)]
    assert sorted(store.get_many(newest, width=500)) == sorted(newest)
    assert store.get_many([_key(i) for i in range(10)]) == {}  # the first ones stored went first


def test_skmm_cache_dir_backs_the_memory_store(bert_a, tmp_path, monkeypatch, encoded):
    monkeypatch.setenv("SKMM_CACHE_DIR", str(tmp_path))
    first = text_encoder(bert_a).fit_transform(TEXTS)
    assert len(_stored_keys(tmp_path)) == len(TEXTS)
    clear_memory_cache()  # as if in a new process
    second = text_encoder(bert_a).fit_transform(TEXTS)
    assert len(encoded["text"]) == len(TEXTS)
    np.testing.assert_array_equal(first, second)


def test_resolve_cache_rejects_other_values():
    with pytest.raises(ValueError, match="cache must be 'memory', a folder path or None"):
        resolve_cache(3)


# --------------------------------------------------------------------------- concurrent writers

N_KEYS, WIDTH = 40, 20_000  # 80 kB per entry: far more than one write() of a small file


def _key(i):
    return hashlib.blake2b(str(i).encode(), digest_size=20).hexdigest()


def _expected(i):
    return np.full(WIDTH, i, dtype=np.float32) + np.arange(WIDTH, dtype=np.float32)


def _hammer(folder, seed, rounds=3):
    """Write and read the same keys as everyone else; return a list of problems seen."""
    rng = np.random.default_rng(seed)
    store = DiskCache(folder)
    problems = []
    for _ in range(rounds):
        order = rng.permutation(N_KEYS)
        for i in order:
            store.put_many({_key(i): _expected(i)})
            probe = rng.integers(N_KEYS, size=3)
            for j, vector in ((j, store.get_many([_key(j)]).get(_key(j))) for j in probe):
                if vector is not None and not np.array_equal(vector, _expected(j)):
                    problems.append(f"key {j}: wrong content")
    return problems


def _hammer_process(folder, seed, queue):
    try:
        queue.put(_hammer(folder, seed))
    except BaseException as exc:  # report, rather than die silently
        queue.put([repr(exc)])


def _check_folder(folder):
    assert len(_stored_keys(folder)) == N_KEYS
    found = DiskCache(folder).get_many([_key(i) for i in range(N_KEYS)])
    assert len(found) == N_KEYS
    for i in range(N_KEYS):
        np.testing.assert_array_equal(found[_key(i)], _expected(i))


def test_concurrent_processes_never_tear_entries(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_hammer_process, args=(str(tmp_path), seed, queue))
               for seed in range(4)]
    for worker in workers:
        worker.start()
    problems = [problem for _ in workers for problem in queue.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert problems == []
    _check_folder(tmp_path)


def test_concurrent_threads_never_tear_entries(tmp_path):
    results = [None] * 4

    def run(seed):
        results[seed] = _hammer(tmp_path, seed)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [[], [], [], []]
    _check_folder(tmp_path)


def test_concurrent_threads_share_the_memory_store(bert_a, encoded):
    encoder = text_encoder(bert_a).fit(TEXTS)
    expected = text_encoder(bert_a, cache=None).fit_transform(TEXTS)
    encoded["text"].clear()
    clear_memory_cache()
    outputs = [None] * 4

    def run(index):
        outputs[index] = clone(encoder).fit_transform(TEXTS)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for output in outputs:
        np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)
    # threads may race to the first computation, but every later call hits
    assert len(encoded["text"]) <= 4 * len(TEXTS)
    before = len(encoded["text"])
    text_encoder(bert_a).fit_transform(TEXTS)
    assert len(encoded["text"]) == before


# --------------------------------------------------------------------------- sharing


def test_cache_is_shared_by_clones(bert_a, tmp_path, encoded):
    paths = [save_png(tmp_path / f"{i}.png", seed=i) for i in range(4)]
    images = image_encoder()
    Z = images.fit_transform(paths)
    np.testing.assert_array_equal(clone(images).fit_transform(paths), Z)
    text = text_encoder(bert_a)
    T = text.fit_transform(TEXTS)
    np.testing.assert_array_equal(clone(text).fit(TEXTS).transform(TEXTS), T)
    assert len(encoded["image"]) == 4
    assert len(encoded["text"]) == len(TEXTS)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    n = 30
    y = np.array(["cat", "dog", "bird"] * (n // 3))
    words = {"cat": "cat sat", "dog": "dog ran", "bird": "bird"}
    X = pd.DataFrame({
        "image": [save_png(folder / f"{i}.png", seed=i % 24) for i in range(n)],  # 6 repeated images
        "text": [f"the {words[label]} on {'a' if i % 2 else 'the'} mat" for i, label in enumerate(y)],
        "number": rng.normal(size=n) + (y == "cat"),
    })
    X.loc[3, "text"] = None
    return X, y


def make_pipeline(bert):
    fusion = MultimodalFusion([
        ("image", image_encoder(batch_size=8), "image"),
        ("text", text_encoder(bert, batch_size=8), "text"),
        ("tabular", StandardScaler(), ["number"]),
    ])
    return Pipeline([("fusion", fusion), ("clf", MultimodalClassifier(max_epochs=2, random_state=0))])


def test_grid_search_encodes_each_unique_row_once(bert_a, table, encoded):
    X, y = table
    search = GridSearchCV(
        make_pipeline(bert_a),
        {"clf__fusion": ["concat", "gated", "attention"], "clf__lr": [1e-3, 1e-2]},
        cv=KFold(3, shuffle=True, random_state=0),
    )
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 6
    search.predict(X)

    text_counts = Counter(encoded["text"])
    assert set(text_counts) == set(X["text"].dropna())
    assert set(text_counts.values()) == {1}
    image_counts = Counter(encoded["image"])
    assert len(image_counts) == len(set(X["image"].map(lambda p: Path(p).read_bytes())))
    assert set(image_counts.values()) == {1}


def test_grid_search_with_cache_none_encodes_every_fold(bert_a, table, encoded):
    X, y = table
    pipe = make_pipeline(bert_a).set_params(fusion__text__cache=None, fusion__image__cache=None)
    GridSearchCV(pipe, {"clf__lr": [1e-3]}, cv=2).fit(X, y)
    n_unique = X["text"].nunique()
    assert len(encoded["text"]) > 2 * n_unique  # every fit and score encodes again


# --------------------------------------------------------------------------- a cache that cannot lie or stop work


def _entry_key(i):
    return f"{i:02x}" + "0" * 38


@pytest.mark.parametrize(
    "bad",
    [
        np.ones(3, dtype=np.float32).tobytes(),  # another width
        np.array([1.0, np.nan, 0.0, 1.0], dtype=np.float32).tobytes(),
        np.array([1.0, np.inf, 0.0, 1.0], dtype=np.float32).tobytes(),
        np.ones(4, dtype=np.float64).tobytes(),  # eight float32 wide
        b"\x00" * 15,  # not a whole number of float32
        np.arange(4, dtype=np.float32),  # pickled by diskcache: never unpickled by skmm
        "0123456789abcdef",  # a string, not bytes
    ],
    ids=["width", "nan", "inf", "float64", "ragged", "pickled", "str"],
)
def test_bad_disk_entries_are_dropped_when_read(tmp_path, bad):
    store = DiskCache(tmp_path)
    good = np.arange(4, dtype=np.float32)
    store.put_many({_entry_key(0): good})
    _plant(tmp_path, _entry_key(1), bad)  # planted or left by another program: never trusted as it is
    found = store.get_many([_entry_key(0), _entry_key(1)], width=4)
    assert list(found) == [_entry_key(0)]
    np.testing.assert_array_equal(found[_entry_key(0)], good)
    assert _stored_keys(tmp_path) == [_entry_key(0)]  # dropped, so that it is computed and written again


class _RunsCode:
    """A pickle that touches a file when loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_planted_pickle_never_runs_code(tmp_path):
    folder, marker = tmp_path / "cache", tmp_path / "ran"
    _plant(folder, _entry_key(0), _RunsCode(marker))
    assert DiskCache(folder).get_many([_entry_key(0)], width=4) == {}
    assert not marker.exists()


def test_a_planted_entry_in_a_side_file_is_neither_read_nor_followed_on_delete(tmp_path):
    """diskcache keeps large values in files named by the database: skmm opens none, deletes none."""
    folder = tmp_path / "cache"
    with diskcache.Cache(str(folder)) as plain:
        plain.set(_entry_key(0), np.ones(16_384, dtype=np.float32).tobytes())  # 64 kB: a side file
    side_files = [path for path in folder.rglob("*.val")]
    assert len(side_files) == 1
    assert DiskCache(folder).get_many([_entry_key(0)]) == {}
    assert _stored_keys(folder) == []
    assert side_files[0].exists()  # the path came from the database: not skmm's to remove


def test_a_database_damaged_from_outside_is_started_again(bert_a, tmp_path, encoded):
    expected = text_encoder(bert_a, cache=tmp_path).fit_transform(TEXTS)
    skmm.cache._DISKS.clear()  # as if in a new process
    clear_memory_cache()
    for name in ("cache.db-wal", "cache.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / "cache.db").write_bytes(b"not a database" * 100)
    encoded["text"].clear()
    again = text_encoder(bert_a, cache=tmp_path).fit_transform(TEXTS)
    np.testing.assert_allclose(again, expected, rtol=1e-5, atol=1e-6)
    assert len(encoded["text"]) == len(TEXTS)
    assert len(_stored_keys(tmp_path)) == len(TEXTS)  # stored again


def test_memory_store_drops_entries_of_another_width():
    store = MemoryCache()
    store.put_many({"a": np.ones(3, dtype=np.float32), "b": np.ones(4, dtype=np.float32),
                    "nan": np.full(4, np.nan, dtype=np.float32)})
    assert sorted(store.get_many(["a", "b", "nan"], width=4)) == ["b"]
    assert sorted(store.get_many(["a", "b", "nan"])) == ["b"]  # "a" is gone, "nan" was never stored
    assert store._size == 16


def test_planted_non_finite_disk_entries_do_not_change_results(bert_a, tmp_path, encoded):
    expected = text_encoder(bert_a, cache=None).fit_transform(TEXTS)
    text_encoder(bert_a, cache=tmp_path).fit_transform(TEXTS)
    for key in _stored_keys(tmp_path):
        _plant(tmp_path, key, np.full(len(_read_raw(tmp_path, key)) // 4, np.nan, np.float32).tobytes())
    clear_memory_cache()
    encoded["text"].clear()
    again = text_encoder(bert_a, cache=tmp_path).fit_transform(TEXTS)
    np.testing.assert_allclose(again, expected, rtol=1e-5, atol=1e-6)
    assert len(encoded["text"]) == len(TEXTS)  # every planted entry was recomputed
    assert all(np.isfinite(np.frombuffer(_read_raw(tmp_path, key), np.float32)).all()
               for key in _stored_keys(tmp_path))


@pytest.mark.parametrize("error", [
    sqlite3.OperationalError("database or disk is full"),
    sqlite3.OperationalError("attempt to write a readonly database"),
    PermissionError(errno.EACCES, "Permission denied"),
])
def test_unwritable_disk_store_warns_once_and_goes_on(bert_a, tmp_path, monkeypatch, error):
    expected = text_encoder(bert_a, cache=None).fit_transform(TEXTS)
    folder = tmp_path / "cache"
    DiskCache(folder).put_many({_entry_key(0): np.ones(4, dtype=np.float32)})

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(diskcache.Cache, "set", fail)
    with pytest.warns(skmm.cache.CacheWarning) as caught:
        first = text_encoder(bert_a, cache=folder).fit_transform(TEXTS)
        clear_memory_cache()
        second = text_encoder(bert_a, cache=folder).fit_transform(TEXTS[::-1])
    messages = [str(w.message) for w in caught if issubclass(w.category, skmm.cache.CacheWarning)]
    assert len(messages) == 1
    assert str(folder) in messages[0] and "cannot be written" in messages[0]
    assert "cache=" in messages[0] and "SKMM_CACHE_DIR" in messages[0]
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(second, expected[::-1], rtol=1e-5, atol=1e-6)
    # reading goes on: what was stored before is still served
    assert list(skmm.cache._disk(folder).get_many([_entry_key(0)], width=4)) == [_entry_key(0)]


def _refused(folder):
    with pytest.warns(skmm.cache.CacheWarning, match="does not use the cache folder") as caught:
        store = resolve_cache(folder)
    return store, str(caught[0].message)


def test_folder_that_others_can_write_is_refused(bert_a, tmp_path, encoded):
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    store, message = _refused(folder)
    assert store is skmm.cache._MEMORY  # memory only: the folder is neither read nor written
    assert "other users can write to it (mode 0o777)" in message and "chmod 700" in message
    Z = text_encoder(bert_a, cache=folder).fit_transform(TEXTS)
    np.testing.assert_allclose(Z, text_encoder(bert_a, cache=None).fit_transform(TEXTS), rtol=1e-5)
    assert list(folder.iterdir()) == []


def test_group_writable_skmm_cache_dir_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "group"
    folder.mkdir()
    folder.chmod(0o770)
    monkeypatch.setenv("SKMM_CACHE_DIR", str(folder))
    store, message = _refused("memory")
    assert store is skmm.cache._MEMORY and "mode 0o770" in message


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give a folder away")
def test_folder_of_another_user_is_refused(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, 4242, 4242)
    store, message = _refused(folder)
    assert store is skmm.cache._MEMORY and "belongs to another user (uid 4242" in message


def test_new_cache_folders_are_private(tmp_path):
    folder = tmp_path / "new" / "cache"
    store = resolve_cache(folder)
    store.put_many({_entry_key(7): np.ones(4, dtype=np.float32)})
    with store.exclusive("setting"):
        pass
    assert folder.stat().st_mode & 0o777 == 0o700  # nothing inside can be reached by others
    assert (folder / "locks").stat().st_mode & 0o777 == 0o700
    assert (folder / "cache.db").exists()


def test_an_entry_of_the_wrong_width_is_recomputed_not_broadcast(tmp_path):
    from skmm import AudioMFCC

    clip = [(np.sin(np.arange(1600) / 5.0), 16000)]
    encoder = AudioMFCC(n_mfcc=4, n_mels=8, cache=str(tmp_path), verbose=0).fit(clip)
    expected = encoder.transform(clip)
    (key,) = _stored_keys(tmp_path)
    _plant(tmp_path, key, np.ones(3, dtype=np.float32).tobytes())  # planted: wrong length
    from skmm.cache import clear_memory_cache

    clear_memory_cache()
    np.testing.assert_array_equal(encoder.transform(clip), expected)


def test_default_folder_is_the_users_cache_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("SKMM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if os.name == "posix" and os.uname().sysname == "Linux":
        assert skmm.cache.default_folder() == tmp_path / "xdg" / "skmm"
    monkeypatch.setenv("SKMM_CACHE_DIR", str(tmp_path / "mine"))
    assert skmm.cache.default_folder() == tmp_path / "mine"
    monkeypatch.setenv("SKMM_CACHE_DIR", "")
    assert skmm.cache.default_folder() is None and resolve_cache("memory") is skmm.cache._MEMORY


@pytest.mark.skipif(os.name != "posix", reason="the lock is an flock (none on Windows)")
def test_the_encoding_lock_is_held_by_one_process_at_a_time(tmp_path):
    store = resolve_cache(tmp_path)
    with store.exclusive("setting"):
        assert _try_lock(tmp_path) == 3  # the lock was busy
    assert _try_lock(tmp_path) == 0


def _try_lock(folder):
    """Exit status of another process trying the lock without waiting: 3 busy, 0 taken.

    A bare interpreter, not a multiprocessing child that imports this module: on a busy machine
    that start took over 30 s, and a join with a timeout then saw no exit status at all.
    """
    import subprocess

    code = (
        "import fcntl, os, sys\n"
        f"handle = os.open({os.path.join(str(folder), 'locks', 'setting.lock')!r}, os.O_RDWR)\n"
        "try:\n    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n    sys.exit(3)\n"
    )
    return subprocess.run([sys.executable, "-c", code]).returncode
