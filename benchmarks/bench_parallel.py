"""A parallel grid search (loky processes, a Dask cluster, Ray) against one cold fit of the pipeline.

Each run starts cold: a fresh cache folder (``SKMM_CACHE_DIR``), new worker
processes (which load the models again, inside the timing) and an empty memory
store in this process. The search is 4 candidates x 3 folds plus the refit;
with the default disk-backed cache, each unique image and text is encoded once
across all workers, so the search costs the encodings of one fit plus 13
classifier trainings. For comparison, the loky search also runs with the
memory-only cache (``SKMM_CACHE_DIR=""``), where every worker encodes again. The script counts the rows
handed to the models in every process (through a counter file) to show it. The Dask and Ray runs start
their cluster (2 worker processes, loopback only) inside the timing, and run where installed
(``pip install "skmm[dask]"``, ``pip install "skmm[ray]"``).

Run: ``python benchmarks/bench_parallel.py [--n 150] [--epochs 5] [--tiny] [--runs loky,memory,dask,ray]``
(``--tiny``: small random-weight models instead of the default ones; ``--runs``: which searches besides
the serial one, e.g. ``--runs ray``). With the default models on a busy 2-core machine (load average
12): about 7 minutes for all runs, 4 for ``--runs dask,ray``.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=150, help="rows of the synthetic dataset")
    parser.add_argument("--epochs", type=int, default=5, help="classifier max_epochs")
    parser.add_argument("--tiny", action="store_true", help="tiny random-weight models (fast)")
    parser.add_argument("--runs", default="loky,memory,dask,ray",
                        help="searches to time besides n_jobs=1: loky, memory (loky, memory-only cache), "
                             "dask, ray (default: all)")
    args = parser.parse_args()
    runs = set(args.runs.split(","))

    from joblib import parallel_backend
    from joblib.externals.loky import get_reusable_executor
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from skmm import MultimodalClassifier, MultimodalFusion
    from skmm.cache import clear_memory_cache
    from skmm.datasets import make_multimodal_classification

    work = Path(tempfile.mkdtemp(prefix="skmm-bench-parallel-"))
    counter = work / "encoded.txt"
    os.environ["SKMM_BENCH_COUNTER"] = str(counter)
    sys.path.insert(0, str(Path(__file__).parent))  # workers import _counting: PYTHONPATH below
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                                             os.environ.get("PYTHONPATH")]))
    from _counting import CountingImageEncoder as ImageEncoder, CountingTextEncoder as TextEncoder

    if args.tiny:
        sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
        from tiny_models import save_tiny_bert, save_tiny_vit

        image = ImageEncoder(model=str(save_tiny_vit(work / "vit")), verbose=0)
        text = TextEncoder(model=str(save_tiny_bert(work / "bert")), verbose=0)
    else:
        image, text = ImageEncoder(verbose=0), TextEncoder(verbose=0)

    X, y = make_multimodal_classification(n_samples=args.n, directory=work / "data", random_state=0)
    X = X.drop(columns="audio")
    pipe = Pipeline([
        ("fusion", MultimodalFusion([
            ("image", image, "image"), ("text", text, "text"),
            ("tabular", StandardScaler(), ["number"]),
        ])),
        ("clf", MultimodalClassifier(max_epochs=args.epochs, random_state=0)),
    ])
    grid = {"clf__fusion": ["concat", "attention"], "clf__lr": [1e-3, 3e-3]}
    cv = StratifiedKFold(3, shuffle=True, random_state=0)

    def cold(name, run, disk=True):
        os.environ["SKMM_CACHE_DIR"] = str(work / f"cache-{name}") if disk else ""
        get_reusable_executor().shutdown(wait=True)  # new workers: empty memory, models not loaded
        clear_memory_cache()
        counter.write_text("")
        start = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - start
        lines = [line.split() for line in counter.read_text().splitlines()]
        rows = {kind: sum(int(n) for k, n, _ in lines if k == kind) for kind in ("image", "text")}
        processes = len({pid for _, _, pid in lines})
        return seconds, rows, processes, result

    clone(pipe).fit(X.iloc[:12], y.iloc[:12])  # load the models here: not part of the single fit

    results = [("one fit of the pipeline", *cold("single", lambda: clone(pipe).fit(X, y)))]
    search = lambda n_jobs: GridSearchCV(clone(pipe), grid, cv=cv, n_jobs=n_jobs)  # noqa: E731
    results.append(("GridSearchCV n_jobs=1", *cold("serial", lambda: search(1).fit(X, y))))
    if "loky" in runs:
        results.append(("GridSearchCV n_jobs=2 (loky)", *cold("loky", lambda: search(2).fit(X, y))))
    if "memory" in runs:
        results.append(("  the same, memory-only cache (SKMM_CACHE_DIR='')",
                        *cold("memory", lambda: search(2).fit(X, y), disk=False)))
    if "dask" in runs:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            print("dask.distributed is not installed: no Dask figure (pip install 'skmm[dask]')")
        else:
            def on_dask():
                with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, Client(cluster):
                    with parallel_backend("dask"):
                        return search(-1).fit(X, y)

            results.append(("GridSearchCV on Dask LocalCluster(2 processes)", *cold("dask", on_dask)))
    if "ray" in runs:
        try:
            import ray
            from ray.util.joblib import register_ray
        except ImportError:
            print("ray is not installed: no Ray figure (pip install 'skmm[ray]')")
        else:
            started = {}

            def on_ray():
                start = time.perf_counter()
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # workers inherit the env
                started["seconds"] = time.perf_counter() - start
                register_ray()
                try:
                    with parallel_backend("ray"):
                        return search(-1).fit(X, y)
                finally:
                    ray.shutdown()

            results.append(("GridSearchCV on Ray (ray.init(num_cpus=2))", *cold("ray", on_ray)))
            print(f"ray.init took {started['seconds']:.1f} s of the Ray search")

    single = results[0][1]
    models = "tiny random-weight ViT + BERT" if args.tiny else "EfficientNet-Lite0 + all-MiniLM-L6-v2"
    print(f"{args.n} rows (64 px PNG, sentence, number), {models} + StandardScaler -> "
          f"MultimodalClassifier(max_epochs={args.epochs}); 4 candidates x 3 folds + refit; "
          f"{os.cpu_count()} CPUs; unique images/texts {X['image'].nunique()}/{X['text'].nunique()}")
    print(f"{'':<50}{'seconds':>9}{'vs one fit':>12}{'rows encoded (img/txt)':>25}{'processes':>11}")
    for name, seconds, rows, processes, _ in results:
        print(f"{name:<50}{seconds:>9.1f}{seconds / single:>11.2f}x"
              f"{rows['image']:>15}/{rows['text']:<9}{processes:>11}")
    scores = {name: round(result.best_score_, 4) for name, *_, result in results[1:]}
    print(f"best scores (must agree): {scores}")


if __name__ == "__main__":
    main()
