"""Frozen encoders against fine-tuned ones, on the real datasets of the suite.

    python benchmarks/bench_finetune.py [--only debian,openclipart,emoji] [--modes frozen,top,lora] [--cv 5]

Each dataset is built at run time from ``../shared/data/`` (see ``benchmarks/_suite.py``); ``--only``
takes any dataset of the suite, its variant derived from the raw cells as the suite derives it from
the embeddings (``emoji_subgroup``: the finer label; ``openclipart_imbalanced``: the same subsample;
``emoji_image_audio``: those columns only; a noisy variant: each column's cell swapped with another
row's or missing in 30% of the rows; a missing text is an empty one here, as everywhere in this script). The whole
pipeline a user writes -- ``MultimodalFusion`` of skmm's default encoders on every column, then
``MultimodalClassifier()`` -- is cross-validated on ``--cv`` stratified folds (5 by default, as the suite), once with frozen encoders
and once per fine-tuning mode, where every image and text encoder gets ``fine_tune=`` (the top
block(s) of its backbone train on the labels of the training folds, inside each fold). Reported per
dataset and mode: accuracy, macro-F1 and the mean fit time of one fold (on this machine's CPUs).

It also measures what the cache of the frozen blocks saves: for one text and one image column, the
time of one fine-tuning epoch on the cached activations against the same epoch plus the frozen
blocks' forward pass over the training rows (what an epoch costs when the whole backbone runs).

Fold results are kept in ``--results`` (one JSON per dataset, mode and fold), so an interrupted run
goes on where it stopped; ``--fresh`` computes everything again. ``--features DIR`` also keeps each
fold's fused features (training and test rows, one ``.npz`` per dataset, mode and fold), to try other
classifiers on them without fine-tuning again.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _suite  # noqa: E402

DATASETS = ("debian", "openclipart", "emoji")
#: the encoders' fine_tune in each mode: FineTuning's defaults
MODES = {"frozen": None, "top": {"mode": "top"}, "lora": {"mode": "lora"}}


def pipeline(columns, mode, cache):
    """The user's pipeline for ``columns`` [(modality, kind, column)]: each with its default encoder, then the
    default classifier."""
    from skmm import AudioMFCC, FineTuning, ImageEncoder, MultimodalClassifier, MultimodalFusion, TextEncoder

    settings = MODES[mode]

    def tuned():
        return None if settings is None else FineTuning(**settings, random_state=0)

    make = {
        "image": lambda: ImageEncoder(fine_tune=tuned(), cache=cache, verbose=settings is not None),
        "text": lambda: TextEncoder(fine_tune=tuned(), cache=cache, verbose=settings is not None),
        "audio": lambda: AudioMFCC(cache=cache, verbose=0),
    }
    fusion = MultimodalFusion([(name, make[kind](), column) for name, kind, column in columns])
    return make_pipeline(fusion, MultimodalClassifier(random_state=0, verbose=0))


def frame_of(name, data_dir):
    """The rows, labels and columns [(modality, kind, column)] of the suite's dataset ``name``.

    The suite derives its variants from the embeddings (:data:`_suite.SUITE`); here the same functions
    derive them from the raw cells, named ``<modality>__<column>`` as the embeddings' columns are: the
    same rows and modalities, and for a noisy variant, each modality's cell swapped with another row's
    or missing.
    """
    source, label, derive = _suite.SUITE[name]
    frame = _suite.build(source, data_dir)
    cells = pd.DataFrame({f"{modality}__{column}": frame[column] for modality, _, column in _suite.COLUMNS[source]})
    cells, y = derive(cells, frame[label or _suite.LABELS[source]].to_numpy(str))
    columns = [(modality, kind, column) for modality, kind, column in _suite.COLUMNS[source]
               if f"{modality}__{column}" in cells.columns]
    frame = pd.DataFrame({column: cells[f"{modality}__{column}"] for modality, _, column in columns})
    for _, kind, column in columns:
        if kind == "text":
            frame[column] = frame[column].fillna("")
    return frame, y, columns


def cross_validate(name, mode, frame, y, columns, args):
    """Out-of-fold predictions and fit times, one JSON per fold in ``args.results``."""
    folder = Path(args.results) / "finetune"
    folder.mkdir(parents=True, exist_ok=True)
    predicted = np.empty(len(y), dtype=object)
    seconds = []
    folds = StratifiedKFold(args.cv, shuffle=True, random_state=0).split(frame, y)
    for number, (train, test) in enumerate(folds):
        path = folder / f"{name}-{mode}-{args.cv}-{number}.json"
        features = None if args.features is None else Path(args.features) / path.with_suffix(".npz").name
        if path.exists() and (features is None or features.exists()) and not args.fresh:
            done = json.loads(path.read_text())
        else:
            model = pipeline(columns, mode, args.cache)
            start = time.perf_counter()
            model.fit(frame.iloc[train], y[train])
            fit_seconds = time.perf_counter() - start
            done = {"predicted": model.predict(frame.iloc[test]).tolist(), "seconds": fit_seconds}
            if features is not None:
                keep_features(model, frame, train, test, features)
            path.write_text(json.dumps(done))
            print(f"  {name} {mode} fold {number}: fit {fit_seconds:.0f} s", file=sys.stderr, flush=True)
        predicted[test] = done["predicted"]
        seconds.append(done["seconds"])
    return predicted, float(np.mean(seconds))


def keep_features(model, frame, train, test, path):
    """The fold's fused features of its training and test rows, with their column names and row numbers."""
    fusion = model[0]
    train_features, test_features = fusion.transform(frame.iloc[train]), fusion.transform(frame.iloc[test])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, train=train_features.to_numpy(np.float32), test=test_features.to_numpy(np.float32),
             columns=np.asarray(train_features.columns, dtype=str), train_rows=train, test_rows=test)


def epoch_speedup(frame, y, column, kind, cache):
    """Seconds of one epoch on cached frozen activations, and of the frozen blocks' forward pass."""
    import torch

    from skmm import FineTuning, ImageEncoder, TextEncoder
    from skmm.encoders._finetune import TrunkRows, TrunkView, _similar_lengths, build_top, check_blocks

    encoder = (TextEncoder if kind == "text" else ImageEncoder)(cache=None, verbose=0)
    tuning = FineTuning("top")
    bundle = encoder._bundle()
    cut = check_blocks(encoder, tuning, bundle)
    start = time.perf_counter()
    trunks = TrunkView(encoder, cut).activations(frame[column].tolist(), None, bundle)
    trunk_seconds = time.perf_counter() - start
    rows = TrunkRows(encoder, bundle, cut, [trunk for trunk in trunks if trunk is not None])
    top = build_top(encoder, bundle, tuning, cut, seed=0)
    optimizer = torch.optim.AdamW([p for p in top.parameters() if p.requires_grad], lr=3e-4)
    order = _similar_lengths(np.arange(len(rows.lengths)), rows.lengths, 32, torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for first in range(0, len(order), 32):
        features = top(*rows(order[first : first + 32]))
        loss = features.square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    epoch_seconds = time.perf_counter() - start
    return epoch_seconds, trunk_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(DATASETS),
                        help="comma-separated datasets of the suite (default: " + ",".join(DATASETS) + "): "
                        + ", ".join(_suite.SUITE))
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: " + ", ".join(MODES))
    parser.add_argument("--data-dir", default=os.path.expanduser("~/.cache/skmm-bench/data"))
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/skmm-bench"), help="embedding cache")
    parser.add_argument("--results", default=os.path.expanduser("~/.cache/skmm-bench/results"))
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--features", metavar="DIR", help="also keep each fold's fused features there")
    parser.add_argument("--no-speedup", action="store_true", help="skip the epoch speed-up measurement")
    args = parser.parse_args()

    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs\n")
    print("| dataset | rows | mode | accuracy | macro-F1 | fit time per fold (s) |")
    print("|:--|--:|:--|--:|--:|--:|")
    for name in args.only.split(","):
        frame, y, columns = frame_of(name, args.data_dir)
        for mode in args.modes.split(","):
            predicted, seconds = cross_validate(name, mode, frame, y, columns, args)
            accuracy = accuracy_score(y, predicted)
            f1 = f1_score(y, predicted, average="macro")
            print(f"| {name} | {len(y):,} | {mode} | {accuracy:.3f} | {f1:.3f} | {seconds:.0f} |", flush=True)
    if args.no_speedup:
        return
    print("\n| column | rows | one epoch, cached frozen blocks (s) | frozen blocks' forward (s) | speed-up |")
    print("|:--|--:|--:|--:|--:|")
    frame, y, _ = frame_of("debian", args.data_dir)
    for column, kind in (("description", "text"), ("icon", "image")):
        epoch, trunk = epoch_speedup(frame, y, column, kind, args.cache)
        print(f"| debian {column} ({kind}) | {len(frame):,} | {epoch:.1f} | {trunk:.1f} | "
              f"{(epoch + trunk) / epoch:.1f}x |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
