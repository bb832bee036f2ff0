"""Every fusion strategy of MultimodalClassifier against what a user writes by hand, on real data.

The data are about 2,000 Debian desktop applications (a 64x64 icon, the name, the one-line summary and
the long description -> one of 10 categories), built at run time from Debian's AppStream metadata by
``../shared/data/debian_apps.py`` (relative to the repository root; ``--data-script``), or read from a
folder it built before (``--data-dir``). Nothing is committed.

Each column is encoded once with skmm's default encoders (``ImageEncoder``, ``TextEncoder``; every text
column its own modality; the embeddings are cached in ``--cache``), then every model is
cross-validated on the same stratified folds and the same embeddings:

- every ``fusion=`` strategy of ``MultimodalClassifier`` with its defaults;
- what a user writes by hand: ``StandardScaler + LogisticRegression`` on all fused features (C=1, and
  C=0.01, the best of 0.001-1 on this data), one such model per modality, and late fusion (one
  logistic regression per modality, trained on the rows where it is present, probabilities averaged;
  C=1 and C=0.01).

``--noisy`` makes every modality wrong or absent for 30% of the rows, independently: half of them get
another row's embedding, the other half NaN (the encoder's "missing").

``--ablation`` adds the default classifier with each of its defaults changed back, one at a time.

    python benchmarks/bench_fusion.py [--data-dir DIR] [--cv 5] [--noisy] [--ablation] [--only NAMES]
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
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

REPO = Path(__file__).resolve().parents[1]
DATA_SCRIPT = REPO.parent / "shared" / "data" / "debian_apps.py"


def build_dataset(data_dir, data_script, lang):
    """The Debian apps CSV in ``data_dir``, built there by ``data_script`` when it is not yet."""
    csv = Path(data_dir) / "debian_apps.csv"
    if not csv.exists():
        print(f"building the dataset in {data_dir} with {data_script} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(data_script), str(data_dir), "--lang", lang], check=True)
    return pd.read_csv(csv)


def encode(frame, cache):
    """Fused embeddings of icon, name, summary and description with skmm's default encoders."""
    from skmm import ImageEncoder, MultimodalFusion, TextEncoder

    fusion = MultimodalFusion([
        ("image", ImageEncoder(cache=cache), "icon"),
        ("name", TextEncoder(cache=cache), "name"),
        ("summary", TextEncoder(cache=cache), "summary"),
        ("description", TextEncoder(cache=cache), "description"),
    ])
    start = time.perf_counter()
    features = fusion.fit_transform(frame)
    print(f"encoded {len(frame)} rows into {features.shape[1]} features in {time.perf_counter() - start:.0f} s")
    return features


def blocks(columns):
    """``{modality: [its columns]}`` from ``"<modality>__<feature>"`` names."""
    out = {}
    for column in columns:
        out.setdefault(column.split("__", 1)[0], []).append(column)
    return out


def make_noisy(X, rate=0.3, seed=0):
    """Every modality wrong (another row's block) or absent (NaN) for ``rate`` of the rows, independently."""
    rng = np.random.RandomState(seed)
    original, values = X.to_numpy(), X.to_numpy().copy()
    for columns in blocks(X.columns).values():
        index = [X.columns.get_loc(column) for column in columns]
        hit = np.flatnonzero(rng.rand(len(X)) < rate)
        swapped = hit[rng.rand(len(hit)) < 0.5]
        donors = (swapped + rng.randint(1, len(X), len(swapped))) % len(X)
        block = values[:, index]
        block[swapped] = original[donors][:, index]
        block[np.setdiff1d(hit, swapped)] = np.nan
        values[:, index] = block
    return pd.DataFrame(values, columns=X.columns, index=X.index)


def logistic(C=1.0):
    """What a user writes by hand: impute (NaN), standardise, logistic regression."""
    return make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(C=C, max_iter=1000))


class OneModality(ClassifierMixin, BaseEstimator):
    """``estimator`` on the columns of one modality only."""

    def __init__(self, modality, estimator):
        self.modality = modality
        self.estimator = estimator

    def fit(self, X, y):
        self.columns_ = blocks(X.columns)[self.modality]
        self.estimator_ = clone(self.estimator).fit(X[self.columns_], y)
        self.classes_ = self.estimator_.classes_
        return self

    def predict(self, X):
        return self.estimator_.predict(X[self.columns_])


class LateLogistic(ClassifierMixin, BaseEstimator):
    """Hand-written late fusion: one logistic regression per modality (on the rows where it is present),
    the probabilities of the modalities present in a row averaged."""

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.models_ = {}
        for modality, columns in blocks(X.columns).items():
            present = X[columns].notna().any(axis=1).to_numpy()
            self.models_[modality] = (columns, logistic(self.C).fit(X.loc[present, columns], y[present]))
        return self

    def predict_proba(self, X):
        total, count = np.zeros((len(X), len(self.classes_))), np.zeros((len(X), 1))
        for columns, model in self.models_.values():
            present = X[columns].notna().any(axis=1).to_numpy()
            if present.any():
                total[present] += model.predict_proba(X.loc[present, columns])
                count[present] += 1
        total[count[:, 0] == 0] = 1.0
        return total / total.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


#: the default classifier with one of its defaults changed back, to show what each contributes
ABLATIONS = {
    "unimodal_loss=0": dict(unimodal_loss=0.0),
    "dropout=0.1": dict(dropout=0.1),
    "max_epochs=30, lr=2e-3": dict(max_epochs=30, lr=2e-3),
    "skmm 0.1's defaults (max_epochs=30, lr=2e-3, dropout=0.1, unimodal_loss=0)": dict(
        max_epochs=30, lr=2e-3, dropout=0.1, unimodal_loss=0.0
    ),
}


def models(columns, ablation=False):
    from skmm import MultimodalClassifier
    from skmm.nn import FUSIONS

    out = {f"MultimodalClassifier(fusion={name!r})": MultimodalClassifier(fusion=name, random_state=0, verbose=0)
           for name in FUSIONS}
    if ablation:
        for name, changed in ABLATIONS.items():
            out[f"MultimodalClassifier({name})"] = MultimodalClassifier(**changed, random_state=0, verbose=0)
    out["LR on all features (C=1)"] = logistic(1.0)
    out["LR on all features (C=0.01)"] = logistic(0.01)
    out["late fusion of per-modality LRs (C=1)"] = LateLogistic(1.0)
    out["late fusion of per-modality LRs (C=0.01)"] = LateLogistic(0.01)
    for modality in blocks(columns):
        out[f"LR on {modality} only"] = OneModality(modality, logistic(1.0))
    return out


def evaluate(model, X, y, folds):
    """Accuracy, macro F1 and fit seconds of every fold."""
    rows = []
    for train, test in folds.split(X, y):
        fitted = clone(model)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of the references
            fitted.fit(X.iloc[train], y[train])
        seconds = time.perf_counter() - start
        predicted = fitted.predict(X.iloc[test])
        rows.append((accuracy_score(y[test], predicted), f1_score(y[test], predicted, average="macro"), seconds))
    return np.array(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="a folder built by the data script (built there if empty)")
    parser.add_argument("--data-script", default=str(DATA_SCRIPT))
    parser.add_argument("--lang", default="en")
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/skmm-bench"), help="embedding cache")
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--noisy", action="store_true")
    parser.add_argument("--only", help="comma-separated substrings of the model names to run")
    parser.add_argument("--ablation", action="store_true",
                        help="also the default classifier with each default changed back (see ABLATIONS)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        frame = build_dataset(args.data_dir or scratch, args.data_script, args.lang)
        X = encode(frame, args.cache)
    y = frame["category"].to_numpy(str)
    if args.noisy:
        X = make_noisy(X)
    folds = StratifiedKFold(args.cv, shuffle=True, random_state=0)
    rows = []
    for name, model in models(X.columns, args.ablation).items():
        if args.only and not any(part in name for part in args.only.split(",")):
            continue
        scores = evaluate(model, X, y, folds)
        mean, std = scores.mean(axis=0), scores.std(axis=0)
        rows.append({"model": name, "accuracy": f"{mean[0]:.3f} ± {std[0]:.3f}",
                     "macro F1": f"{mean[1]:.3f} ± {std[1]:.3f}", "fit s": f"{mean[2]:.1f}"})
        print(rows[-1], file=sys.stderr, flush=True)
    if not rows:
        return
    table = pd.DataFrame(rows).set_index("model")
    variant = "noisy (each modality wrong or absent in 30% of rows)" if args.noisy else "clean"
    print(f"\n{args.cv}-fold cross-validation, {len(X)} Debian apps, {variant}")
    print(table.to_markdown() if _has_tabulate() else table.to_string())


def _has_tabulate():
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
