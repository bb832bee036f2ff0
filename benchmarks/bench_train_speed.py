"""Fit time of the default MultimodalClassifier against a LogisticRegression on the same features.

The features are the Debian apps embeddings of ``bench_fusion.py`` (about 2,000 rows: icon, name,
summary, description; built and encoded once, then read from the embedding cache). Each condition
fits, in turn and ``--repeats`` times, ``StandardScaler + LogisticRegression`` and the classifier
with its defaults (one torch thread) and with torch's own thread count (``n_threads=None``), on all
rows, quiet: first as the machine is, then with ``--busy`` background processes spinning on the CPU
(started and stopped here). Times are medians; the ratio is to the logistic regression of the same
condition, so a machine shared with other work still gives comparable ratios.

    python benchmarks/bench_train_speed.py [--data-dir DIR] [--busy 2] [--repeats 3]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fusion import DATA_SCRIPT, build_dataset, encode, logistic  # noqa: E402


def spin(n):
    """``n`` background processes that keep a CPU core busy until they are killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def seconds_to_fit(model, X, y):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return time.perf_counter() - start


def main():
    from skmm import MultimodalClassifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--data-script", default=str(DATA_SCRIPT))
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/skmm-bench"))
    parser.add_argument("--busy", type=int, default=2, help="background processes of the busy condition")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        frame = build_dataset(args.data_dir or scratch, args.data_script, "en")
        X = encode(frame, args.cache)
    y = frame["category"].to_numpy(str)
    models = {
        "LogisticRegression": lambda: logistic(1.0),
        "MultimodalClassifier()": lambda: MultimodalClassifier(random_state=0, verbose=0),
        "MultimodalClassifier(n_threads=None)": lambda: MultimodalClassifier(n_threads=None, random_state=0, verbose=0),
    }
    rows = []
    for busy in (0, args.busy):
        spinners = spin(busy)
        try:
            times = {name: [] for name in models}
            for _ in range(args.repeats):
                for name, make in models.items():
                    times[name].append(seconds_to_fit(make(), X, y))
        finally:
            for process in spinners:
                process.kill()
                process.wait()
        reference = np.median(times["LogisticRegression"])
        for name, values in times.items():
            rows.append({"condition": f"{busy} busy processes", "model": name,
                         "fit s (median)": round(float(np.median(values)), 1),
                         "× LogisticRegression": round(float(np.median(values) / reference), 2)})
            print(rows[-1], file=sys.stderr, flush=True)
    table = pd.DataFrame(rows).set_index(["condition", "model"])
    print(f"\nfit on {len(X)} rows x {X.shape[1]} features, {os.cpu_count()} CPUs")
    print(table.to_string())


if __name__ == "__main__":
    main()
