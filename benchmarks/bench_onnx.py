"""ONNX export and ONNX Runtime against torch: export time, equal answers, throughput and one-row latency.

The model is the serving benchmark's: EfficientNet-Lite0 at 224 px on PNG files, all-MiniLM-L6-v2 on
sentences, AudioMFCC on WAV files and a number, fused by the default MultimodalClassifier, fitted
on 100 rows of ``make_multimodal_classification``. Every timed row is a row the model has not seen
and no cache helps (``cache=None`` on both sides): the encoders read and decode the files each time.

Printed: the export time; the largest difference of the probabilities on the unseen rows; then, quiet
and with ``--busy`` background processes spinning (started and stopped here), interleaved rounds of

- each encoder (ImageEncoder, TextEncoder) on ``--n`` unseen rows, torch against ONNX Runtime;
- ``predict_proba`` on ``--n`` unseen rows at once, and on one row at a time (the median row).

Both sides use every CPU: torch through the encoders' own workers and threads, ONNX Runtime
through its intra-op threads.

Run: ``python benchmarks/bench_onnx.py [--n 64] [--rounds 3] [--busy 2]``; a few minutes on two cores.
"""

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _busy import compare  # noqa: E402


def fitted_pipeline(folder, n_train, n_test):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from skmm import AudioMFCC, ImageEncoder, MultimodalClassifier, MultimodalFusion, TextEncoder
    from skmm.datasets import make_multimodal_classification

    X, y = make_multimodal_classification(n_samples=n_train + n_test, directory=folder, random_state=0)
    pipe = Pipeline([
        ("fusion", MultimodalFusion([
            ("image", ImageEncoder(cache=None, verbose=0), "image"),
            ("text", TextEncoder(cache=None, verbose=0), "text"),
            ("audio", AudioMFCC(cache=None, verbose=0), "audio"),
            ("number", StandardScaler(), ["number"]),
        ])),
        ("clf", MultimodalClassifier(verbose=0, random_state=0)),
    ]).fit(X.iloc[:n_train], y.iloc[:n_train])
    return pipe, X.iloc[n_train:].reset_index(drop=True)


def one_row_at_a_time(predict, X):
    """The median seconds of ``predict`` on one row, over every row of ``X``."""
    seconds = []
    for i in range(len(X)):
        start = time.perf_counter()
        predict(X.iloc[i : i + 1])
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=64, help="unseen rows timed")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per condition")
    parser.add_argument("--busy", type=int, default=2, help="busy background processes (0: quiet only)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from skmm.onnx import OnnxModel, export_onnx

    folder = Path(tempfile.mkdtemp(prefix="skmm_bench_onnx_"))
    pipe, X = fitted_pipeline(folder / "data", 100, args.n)
    start = time.perf_counter()
    export_onnx(pipe, folder / "onnx")
    print(f"export: {time.perf_counter() - start:.1f} s")
    model = OnnxModel(folder / "onnx", cache=None)
    difference = np.abs(model.predict_proba(X) - pipe.predict_proba(X)).max()
    print(f"{len(X)} unseen rows: largest difference of the probabilities {difference:.1e}, "
          f"same labels: {bool((model.predict(X) == pipe.predict(X)).all())}")

    fusion = pipe.named_steps["fusion"]
    parts = {part["modality"]: part for part in model.manifest_["parts"]}
    busy = sorted({0, args.busy})
    for name, column in (("image", "image"), ("text", "text")):
        torch_encoder, onnx_encoder = fusion.named_transformers_[name], model._encoder(parts[name])
        column_frame = X[[column]]
        onnx_encoder.transform(column_frame.head(4)), torch_encoder.transform(column_frame.head(4))  # warm-up
        print(f"\n## {type(torch_encoder).__name__} on {len(X)} unseen rows")
        compare({f"torch {name}": lambda e=torch_encoder, c=column_frame: e.transform(c),
                 f"ONNX Runtime {name}": lambda e=onnx_encoder, c=column_frame: e.transform(c)},
                baseline=f"torch {name}", rounds=args.rounds, busy=busy)

    print(f"\n## predict_proba on {len(X)} unseen rows at once")
    compare({"torch": lambda: pipe.predict_proba(X), "ONNX Runtime": lambda: model.predict_proba(X)},
            baseline="torch", rounds=args.rounds, busy=busy)
    print("\n## predict_proba on one unseen row at a time (each round: the median row of all rows)")
    compare({"torch": lambda: one_row_at_a_time(pipe.predict_proba, X),
             "ONNX Runtime": lambda: one_row_at_a_time(model.predict_proba, X)},
            baseline="torch", rounds=args.rounds, busy=busy,
            describe=f" (seconds: all {len(X)} rows one by one)")


if __name__ == "__main__":
    main()
