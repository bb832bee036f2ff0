"""Fit time of the default MultimodalClassifier against a LogisticRegression on the same features.

The features are the embeddings of the real-data suite (``benchmarks/_suite.py``: built and
encoded once, then read from the embedding cache). On each dataset, in turn and ``--repeats``
times, the script fits ``SimpleImputer + StandardScaler + LogisticRegression()`` (C=1, scikit-learn's
defaults, numpy's own threads, as a user writes it) and the classifier with its defaults (one
torch thread, its linear member included), and with torch's own thread count
(``n_threads=None``), on all rows: first as the machine is, then with ``--busy`` background
processes spinning on the CPU (started and stopped here). Times are medians of wall-clock seconds;
the ratio is to the logistic regression of the same dataset and condition, so a machine shared
with other work still gives comparable ratios.

    python benchmarks/bench_train_speed.py [--only NAMES] [--busy 2] [--repeats 1]
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _suite  # noqa: E402
from _busy import busy_processes  # noqa: E402
from bench_fusion import logistic  # noqa: E402


def seconds_to_fit(model, X, y):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return time.perf_counter() - start


def main():
    from skmm import MultimodalClassifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated datasets of the suite: " + ", ".join(_suite.SUITE))
    parser.add_argument("--data-dir", default=os.path.expanduser("~/.cache/skmm-bench/data"))
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/skmm-bench"))
    parser.add_argument("--busy", type=int, default=2, help="background processes of the busy condition")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    names = args.only.split(",") if args.only else list(_suite.SUITE)
    data = {name: _suite.load(name, args.data_dir, args.cache) for name in names}
    models = {
        "LogisticRegression": lambda: logistic(1.0),
        "MultimodalClassifier()": lambda: MultimodalClassifier(random_state=0, verbose=0),
        "n_threads=None": lambda: MultimodalClassifier(n_threads=None, random_state=0, verbose=0),
    }
    seconds_to_fit(models["MultimodalClassifier()"](), *data[names[0]])  # imports and first-use costs
    rows = []
    for busy in (0, args.busy):
        with busy_processes(busy):
            load = os.getloadavg()[0]
            for name, (X, y) in data.items():
                times = {model: [] for model in models}
                for _ in range(args.repeats):
                    for model, make in models.items():
                        times[model].append(seconds_to_fit(make(), X, y))
                reference = np.median(times["LogisticRegression"])
                row = {"busy processes": busy, "dataset": name, "rows x features": f"{len(y)} x {X.shape[1]}",
                       "LR s": round(float(reference), 2), "load": round(load, 1)}
                for model in list(models)[1:]:
                    row[f"{model} s"] = round(float(np.median(times[model])), 2)
                    row[f"{model} ×LR"] = round(float(np.median(times[model]) / reference), 2)
                rows.append(row)
                print(row, file=sys.stderr, flush=True)
    table = pd.DataFrame(rows).set_index(["busy processes", "dataset"])
    print(f"\n{os.cpu_count()} CPUs; median of {args.repeats} fit(s) on all rows, wall-clock seconds")
    print(table.to_markdown() if _has_tabulate() else table.to_string())


def _has_tabulate():
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
