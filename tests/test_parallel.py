"""Parallel and distributed search: same results as serial, each unique row encoded once across workers."""

import uuid

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from counting_encoder import CountingEncoder, encoded_rows
from skmm import MultimodalFusion
from skmm.cache import DiskCache, clear_memory_cache, default_folder


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    words = np.array(["red", "green", "blue", "cat", "dog", "owl", "sun", "rain"])
    unique = [" ".join(rng.choice(words, 3)) + f" {i}" for i in range(40)]
    texts = [unique[i % 40] for i in range(n)]  # 40 unique texts, 20 of them twice
    X = pd.DataFrame({"text": texts, "number": rng.normal(size=n)})
    y = pd.Series(rng.integers(0, 2, size=n), name="label")
    return X, y


def _search(counter, n_jobs, salt):
    pipe = Pipeline([
        ("fusion", MultimodalFusion([
            ("text", CountingEncoder(dim=6, salt=salt, counter=str(counter)), "text"),
            ("tabular", StandardScaler(), ["number"]),
        ])),
        ("clf", LogisticRegression()),
    ])
    grid = {"clf__C": [0.01, 0.1, 1.0, 10.0]}  # 4 candidates x 3 folds
    return GridSearchCV(pipe, grid, cv=KFold(3, shuffle=True, random_state=0), n_jobs=n_jobs)


def _same_results(search, reference):
    assert search.best_params_ == reference.best_params_
    for key in ("mean_test_score", "split0_test_score", "split1_test_score", "split2_test_score"):
        np.testing.assert_allclose(search.cv_results_[key], reference.cv_results_[key])


@pytest.fixture
def salt():
    """A fresh encoder setting: no worker process has these embeddings in memory yet."""
    return uuid.uuid4().hex


@pytest.fixture
def reference(tmp_path, salt):
    """The serial search; the caches are emptied after it, so that the next search starts cold."""
    X, y = _data()
    search = _search(tmp_path / "serial.txt", 1, salt=salt).fit(X, y)
    clear_memory_cache()
    DiskCache(default_folder()).clear()
    return search


def test_the_default_cache_is_backed_by_a_private_disk_folder():
    folder = default_folder()
    assert folder is not None and "skmm-test-cache-" in str(folder)  # conftest.py: not the user's


def test_two_worker_processes_encode_each_row_once(tmp_path, salt, reference):
    X, y = _data()
    counter = tmp_path / "parallel.txt"
    search = _search(counter, 2, salt=salt).fit(X, y)
    _same_results(search, reference)
    rows, processes = encoded_rows(counter)
    assert sorted(rows) == sorted(set(X["text"]))  # 40 unique texts, each encoded once in all
    assert len(rows) == X["text"].nunique() == 40
    assert len(processes) >= 1


def test_memory_only_opt_out(tmp_path, monkeypatch, salt, reference):
    """SKMM_CACHE_DIR="" (memory only) is the opt-out: results stay the same, only work is repeated."""
    monkeypatch.setenv("SKMM_CACHE_DIR", "")
    assert default_folder() is None
    X, y = _data()
    counter = tmp_path / "memory-only.txt"
    search = _search(counter, 1, salt=salt).fit(X, y)
    _same_results(search, reference)
    rows, _ = encoded_rows(counter)
    assert sorted(rows) == sorted(set(X["text"]))  # one process: the memory store is enough


def test_dask_cluster_of_two_worker_processes(tmp_path, salt, reference):
    pytest.importorskip("dask.distributed")
    import joblib
    from dask.distributed import Client, LocalCluster

    X, y = _data()
    counter = tmp_path / "dask.txt"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster):
        with joblib.parallel_backend("dask"):
            search = _search(counter, -1, salt=salt).fit(X, y)
    _same_results(search, reference)
    rows, _ = encoded_rows(counter)
    assert sorted(rows) == sorted(set(X["text"]))  # once across both workers
