"""Parallel and distributed search: same results as serial, each unique row encoded once across workers."""

import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import skmm
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


@pytest.mark.slow
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


@pytest.fixture(scope="module")
def local_ray():
    """A Ray instance of this machine (2 CPUs, no dashboard) for this module's tests, then shut down.

    Ray's worker processes inherit the environment, not ``sys.path``: PYTHONPATH lets them import
    skmm and the counting encoder; SKMM_CACHE_DIR (conftest.py) points them at the test's cache.
    """
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    import counting_encoder

    paths = [str(Path(counting_encoder.__file__).parent), str(Path(skmm.__file__).parents[1])]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]))
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        register_ray()
        try:
            yield ray
        finally:
            ray.shutdown()


@pytest.mark.slow
def test_ray_backend_encodes_each_row_once(tmp_path, salt, reference, local_ray):
    import joblib

    X, y = _data()
    counter = tmp_path / "ray.txt"
    with joblib.parallel_backend("ray"):
        search = _search(counter, -1, salt=salt).fit(X, y)
    _same_results(search, reference)
    rows, processes = encoded_rows(counter)
    assert sorted(rows) == sorted(set(X["text"]))  # once across all the Ray workers
    assert processes and str(os.getpid()) not in processes  # the refit here found every row stored


def _fitted_fusion(counter, salt):
    X, _ = _data()
    fusion = MultimodalFusion([
        ("text", CountingEncoder(dim=6, salt=salt, counter=str(counter)), "text"),
        ("tabular", StandardScaler(), ["number"]),
    ])
    fusion.fit(X.iloc[:4])
    clear_memory_cache()  # cold caches: the encoding starts from nothing
    DiskCache(default_folder()).clear()
    return fusion, X


def test_encode_partitions_writes_parquet_and_resumes(tmp_path, salt):
    dd = pytest.importorskip("dask.dataframe")
    from skmm.parallel import encode_partitions

    counter = tmp_path / "count.txt"
    fusion, X = _fitted_fusion(counter, salt)
    counter.write_text("")
    files = encode_partitions(fusion, dd.from_pandas(X, npartitions=3), tmp_path / "out", progress=False)
    assert [Path(f).name for f in files] == [f"part-0000{i}.parquet" for i in range(3)]
    written = pd.read_parquet(tmp_path / "out")
    pd.testing.assert_frame_equal(written, fusion.transform(X), check_dtype=False)
    assert sorted(encoded_rows(counter)[0]) == sorted(set(X["text"]))

    # an interrupted run: one partition is missing; it is written again from the cache
    Path(files[1]).unlink()
    clear_memory_cache()
    counter.write_text("")
    encode_partitions(fusion, dd.from_pandas(X, npartitions=3), tmp_path / "out", progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out"), written)
    assert encoded_rows(counter)[0] == []  # nothing encoded again


@pytest.mark.slow
def test_encode_partitions_on_a_cluster(tmp_path, salt):
    dd = pytest.importorskip("dask.dataframe")
    pytest.importorskip("dask.distributed")
    from dask.distributed import Client, LocalCluster

    from skmm.parallel import encode_partitions

    counter = tmp_path / "count.txt"
    fusion, X = _fitted_fusion(counter, salt)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster):
        encode_partitions(fusion, dd.from_pandas(X, npartitions=4), tmp_path / "out", progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out"), fusion.transform(X),
                                  check_dtype=False)


def test_encode_partitions_without_dask_names_the_extra(monkeypatch):
    import sys

    from skmm.parallel import encode_partitions

    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r'pip install "skmm\[dask\]"'):
        encode_partitions(None, None, "unused")


def test_encode_partitions_refuses_a_pandas_frame(tmp_path):
    pytest.importorskip("dask.dataframe")
    from skmm.parallel import encode_partitions

    fusion, X = _fitted_fusion(tmp_path / "count.txt", "x")
    with pytest.raises(TypeError, match="dask.dataframe.from_pandas"):
        encode_partitions(fusion, X, tmp_path / "out")


@pytest.mark.slow
def test_ray_data_encodes_a_dataset_to_parquet(tmp_path, salt, local_ray):
    """Ray Data needs no helper: a fitted fusion's transform maps pandas batches as it is."""
    counter = tmp_path / "count.txt"
    fusion, X = _fitted_fusion(counter, salt)
    counter.write_text("")
    blocks = [X.iloc[start:start + 20] for start in range(0, len(X), 20)]
    dataset = local_ray.data.from_pandas(blocks)
    dataset.map_batches(fusion.transform, batch_format="pandas").write_parquet(str(tmp_path / "out"))

    def by_row(frame):
        return frame.sort_values(list(frame.columns)).reset_index(drop=True)

    written = pd.read_parquet(tmp_path / "out")  # Ray Data writes blocks in no fixed order
    pd.testing.assert_frame_equal(by_row(written), by_row(fusion.transform(X)), check_dtype=False)
    rows, processes = encoded_rows(counter)
    assert sorted(rows) == sorted(set(X["text"]))  # each unique row once, across the Ray workers
    assert str(os.getpid()) not in processes
