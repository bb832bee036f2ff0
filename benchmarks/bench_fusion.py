"""Compare the fusion strategies of MultimodalClassifier with a LogisticRegression on the same features.

The demo dataset (PNG images, sentences, WAV clips, a number) is encoded once with the default
encoders; every classifier is then cross-validated on the same fused features (stratified folds,
with the standardisation fitted inside each fold for the logistic regression).

    python benchmarks/bench_fusion.py [--n-samples 300] [--cv 5]
"""

import argparse
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, recall_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmm import AudioMFCC, ImageEncoder, MultimodalClassifier, MultimodalFusion, TextEncoder
from skmm.datasets import make_multimodal_classification
from skmm.nn import FUSIONS


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=300)
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=60)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        X, y = make_multimodal_classification(n_samples=args.n_samples, directory=folder, random_state=0)
        fusion = MultimodalFusion([
            ("image", ImageEncoder(verbose=0), "image"),
            ("text", TextEncoder(verbose=0), "text"),
            ("audio", AudioMFCC(verbose=0), "audio"),
            ("tabular", StandardScaler(), ["number"]),
        ])
        start = time.perf_counter()
        features = fusion.fit_transform(X)
        print(f"encoded {len(X)} rows into {features.shape[1]} features in {time.perf_counter() - start:.1f} s")

    folds = StratifiedKFold(args.cv, shuffle=True, random_state=0)
    models = {"logistic regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))}
    for fusion_name in FUSIONS:
        models[f"MultimodalClassifier({fusion_name})"] = MultimodalClassifier(
            fusion=fusion_name, max_epochs=args.max_epochs, lr=3e-3, random_state=0
        )
    rows = []
    classes = np.unique(y)
    for name, model in models.items():
        predicted = cross_val_predict(model, features, y, cv=folds)
        recalls = recall_score(y, predicted, labels=classes, average=None)
        rows.append({
            "model": name,
            "accuracy": accuracy_score(y, predicted),
            "macro F1": f1_score(y, predicted, average="macro"),
            **{f"recall {label}": value for label, value in zip(classes, recalls)},
        })
    table = pd.DataFrame(rows).set_index("model")
    print(f"\n{args.cv}-fold cross-validation on {args.n_samples} demo rows")
    print(table.to_markdown(floatfmt=".3f") if _has_tabulate() else table.round(3).to_string())


def _has_tabulate():
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
