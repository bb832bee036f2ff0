"""MultimodalClassifier against what a user writes by hand, on every real dataset of the suite.

    python benchmarks/bench_fusion.py --suite [--data-dir DIR] [--cache DIR] [--cv 5] [--only NAMES]
    python benchmarks/bench_fusion.py --only debian,debian_noisy     # some datasets of the suite
    python benchmarks/bench_fusion.py --suite --bagging              # and bags of networks from several seeds
    python benchmarks/bench_fusion.py --suite --rows 300 --seed 1    # 300-row subsets, networks seeded 1

The datasets are built at run time from ``../shared/data/`` and embedded once with skmm's default
encoders (see ``benchmarks/_suite.py``; nothing is committed, the embeddings are cached). On each
dataset every model is cross-validated on the same stratified folds and the same embeddings:

- ``MultimodalClassifier()`` (the default: ``fusion="concat"``) and every other ``fusion=``
  strategy with the other defaults;
- the references a user writes by hand: ``SimpleImputer + StandardScaler + LogisticRegression`` on
  all features with C in 0.01, 0.1, 1, and late fusion of one such model per modality (trained on
  the rows where the modality is present, probabilities averaged); the *tuned reference* is the
  better of the two at the C that is best for the logistic regression on that dataset (chosen on
  the test folds themselves: a reference no user could beat by tuning);
- one logistic regression per modality at that C: the best single modality;
- the default with batches of 256 rows whatever the size of the data (``batch_size=256``, the
  default before ``batch_size="auto"``);
- the two members of the default's ensemble alone: the network (``linear_weight=0``) and the
  logistic regression it is averaged with (penalty ``linear_alpha`` per row, square-root balanced
  class weights), for ``linear_alpha`` in 1/4, 1/8, 1/16, 1/32.

Then a leave-one-dataset-out table: the ensemble weight and ``linear_alpha`` are chosen on all
datasets but one (largest mean margin over the tuned reference, with every dataset below +1 point
of accuracy or losing macro-F1 penalised) from the out-of-fold probabilities of the two members,
and scored on the one left out, for each dataset in turn.

``--rows N`` scores stratified subsets of ``N`` rows of every dataset instead (classes left with
fewer than 5 rows dropped), to see how the defaults fare on small sets; ``--seed K`` seeds every
skmm model with ``K`` (0 otherwise), to see how much of a margin is the network's seed.

Out-of-fold probabilities are kept in ``--results`` (keyed by the model's parameters and the
folds), so a second run only computes what changed; ``--fresh`` computes everything again.
"""

import argparse
import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _suite  # noqa: E402
from _suite import blocks  # noqa: E402

CS = (0.01, 0.1, 1.0)
ALPHAS = (1 / 4, 1 / 8, 1 / 16, 1 / 32)
WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6)


def logistic(C=1.0):
    """What a user writes by hand: impute (NaN), standardise, logistic regression."""
    return make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(C=C, max_iter=1000))


class OneModality(ClassifierMixin, BaseEstimator):
    """``estimator`` on the columns of one modality, trained where it is present; the prior elsewhere."""

    def __init__(self, modality, estimator):
        self.modality = modality
        self.estimator = estimator

    def fit(self, X, y):
        self.columns_ = blocks(X.columns)[self.modality]
        present = X[self.columns_].notna().any(axis=1).to_numpy()
        self.estimator_ = clone(self.estimator).fit(X.loc[present, self.columns_], y[present])
        self.classes_ = np.unique(y)
        self.prior_ = np.array([np.mean(y == label) for label in self.classes_])
        return self

    def predict_proba(self, X):
        present = X[self.columns_].notna().any(axis=1).to_numpy()
        proba = np.tile(self.prior_, (len(X), 1))
        if present.any():
            proba[np.ix_(present, np.searchsorted(self.classes_, self.estimator_.classes_))] = (
                self.estimator_.predict_proba(X.loc[present, self.columns_])
            )
        return proba

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class LateLogistic(ClassifierMixin, BaseEstimator):
    """Hand-written late fusion: one logistic regression per modality (on the rows where it is present),
    the probabilities of the modalities present in a row averaged."""

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.models_ = [OneModality(modality, logistic(self.C)).fit(X, y) for modality in blocks(X.columns)]
        return self

    def predict_proba(self, X):
        total, count = np.zeros((len(X), len(self.classes_))), np.zeros((len(X), 1))
        for model in self.models_:
            present = X[model.columns_].notna().any(axis=1).to_numpy()
            total[present] += model.predict_proba(X.loc[present])
            count[present] += 1
        total[count[:, 0] == 0] = 1.0
        return total / total.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class LinearMember(ClassifierMixin, BaseEstimator):
    """The default's linear member alone: penalty ``alpha`` per row, square-root balanced class weights."""

    def __init__(self, alpha=1 / 16):
        self.alpha = alpha

    def fit(self, X, y):
        self.classes_, encoded, counts = np.unique(y, return_inverse=True, return_counts=True)
        weight = np.sqrt(len(y) / (len(counts) * counts))[encoded]
        self.model_ = logistic(1.0 / (self.alpha * len(y)))
        self.model_.fit(X, y, logisticregression__sample_weight=weight)
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


class SeedBag(ClassifierMixin, BaseEstimator):
    """``n_networks`` default classifiers of ``max_epochs`` epochs, seeds 0, 1, ..., probabilities averaged."""

    def __init__(self, n_networks=2, max_epochs=20):
        self.n_networks = n_networks
        self.max_epochs = max_epochs

    def fit(self, X, y):
        from skmm import MultimodalClassifier

        self.members_ = [MultimodalClassifier(max_epochs=self.max_epochs, random_state=seed, verbose=0).fit(X, y)
                         for seed in range(self.n_networks)]
        self.classes_ = self.members_[0].classes_
        return self

    def predict_proba(self, X):
        return np.mean([member.predict_proba(X) for member in self.members_], axis=0)


#: ``--bagging``: (networks, epochs) of the seed bags compared with the default
BAGS = ((2, 20), (2, 10), (3, 7))


def models(modalities, best_C, seed=0):
    from skmm import MultimodalClassifier
    from skmm.nn import FUSIONS

    def skmm_model(**params):
        return MultimodalClassifier(random_state=seed, verbose=0, **params)

    out = {"MultimodalClassifier()": skmm_model()}
    out.update({f"fusion={name!r}": skmm_model(fusion=name) for name in FUSIONS if name != "concat"})
    out["batch_size=256"] = skmm_model(batch_size=256)
    out["network alone (linear_weight=0)"] = skmm_model(linear_weight=0.0)
    out.update({f"linear member alone (alpha=1/{round(1 / a)})": LinearMember(a) for a in ALPHAS})
    out.update({f"LR C={C:g}": logistic(C) for C in CS})
    out.update({f"late fusion of LRs C={C:g}": LateLogistic(C) for C in CS})
    if best_C is not None:
        out.update({f"LR on {m} only (C={best_C:g})": OneModality(m, logistic(best_C)) for m in modalities})
    return out


def _key(model, dataset, cv):
    params = {k: repr(v) for k, v in sorted(model.get_params(deep=True).items())}
    text = json.dumps([type(model).__name__, params, dataset, cv], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cross_validate(model, X, y, cv, results, dataset, fresh=False):
    """Out-of-fold probabilities (columns: sorted labels) and mean fit seconds, from ``results`` if kept."""
    path = Path(results) / f"{dataset}-{_key(model, dataset, cv)}.npz"
    if path.exists() and not fresh:
        kept = np.load(path)
        return kept["proba"], float(kept["seconds"])
    classes = np.unique(y)
    proba, seconds = np.zeros((len(y), len(classes))), []
    for train, test in StratifiedKFold(cv, shuffle=True, random_state=0).split(X, y):
        fitted = clone(model)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of the references, the language warning
            fitted.fit(X.iloc[train], y[train])
        seconds.append(time.perf_counter() - start)
        proba[np.ix_(test, np.searchsorted(classes, fitted.classes_))] = fitted.predict_proba(X.iloc[test])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, proba=proba, seconds=np.mean(seconds))
    return proba, float(np.mean(seconds))


def score(proba, y):
    predicted = np.unique(y)[proba.argmax(axis=1)]
    return accuracy_score(y, predicted), f1_score(y, predicted, average="macro")


def subset(X, y, rows, seed=0):
    """A stratified subset of ``rows`` rows, without the classes left with fewer than 5 (for 5 folds)."""
    if rows >= len(y):
        return X, y
    kept = np.sort(train_test_split(np.arange(len(y)), train_size=rows, stratify=y, random_state=seed)[0])
    return _suite.with_enough_rows(X.iloc[kept].reset_index(drop=True), y[kept], k=5)


def run_dataset(name, args):
    X, y = _suite.load(name, args.data_dir, args.cache)
    description = _suite.DESCRIPTIONS[name]
    if args.rows:
        X, y = subset(X, y, args.rows)
        name, description = f"{name}@{args.rows}", f"{description}, a stratified subset"
    print(f"\n### {name}: {description} ({len(y)} rows, {len(np.unique(y))} classes, "
          f"{X.shape[1]} features)", flush=True)
    probas, seconds = {}, {}
    for label, model in models([], None, args.seed).items():
        probas[label], seconds[label] = cross_validate(model, X, y, args.cv, args.results, name, args.fresh)
        print(f"  {label}: {score(probas[label], y)[0]:.3f}", file=sys.stderr, flush=True)
    best_C = max(CS, key=lambda C: score(probas[f"LR C={C:g}"], y)[0])
    extra = models(list(blocks(X.columns)), best_C, args.seed)
    if args.bagging:
        extra.update({f"bag of {n} x {epochs} epochs": SeedBag(n, epochs) for n, epochs in BAGS})
    for label, model in extra.items():
        if label not in probas:
            probas[label], seconds[label] = cross_validate(model, X, y, args.cv, args.results, name, args.fresh)
    rows = [{"model": label, "accuracy": score(p, y)[0], "macro F1": score(p, y)[1], "fit s": seconds[label]}
            for label, p in probas.items()]
    table = pd.DataFrame(rows).set_index("model")
    print(table.round(3).to_markdown() if _has_tabulate() else table.round(3).to_string())
    return {"y": y, "probas": probas, "seconds": seconds, "best_C": best_C, "table": table}


def reference(result):
    """The tuned reference: the better of LR and late fusion at the best C, accuracy and macro-F1."""
    table, C = result["table"], result["best_C"]
    lr, late = table.loc[f"LR C={C:g}"], table.loc[f"late fusion of LRs C={C:g}"]
    return max(lr["accuracy"], late["accuracy"]), max(lr["macro F1"], late["macro F1"])


def summary(results):
    rows = []
    for name, result in results.items():
        table = result["table"]
        accuracy, f1 = reference(result)
        default = table.loc["MultimodalClassifier()"]
        strategies = table.loc[[label for label in table.index if label.startswith("fusion=")] + ["MultimodalClassifier()"]]
        single = table.loc[[label for label in table.index if " only (C=" in label], "accuracy"]
        rows.append({
            "dataset": name, "rows": len(result["y"]),
            "default acc": default["accuracy"], "tuned reference acc": accuracy,
            "margin (points)": 100 * (default["accuracy"] - accuracy),
            "default macro-F1": default["macro F1"], "reference macro-F1": f1,
            "F1 margin": 100 * (default["macro F1"] - f1),
            "margin, batch_size=256": 100 * (table.loc["batch_size=256", "accuracy"] - accuracy),
            "F1 margin, batch_size=256": 100 * (table.loc["batch_size=256", "macro F1"] - f1),
            "worst strategy acc": strategies["accuracy"].min(), "best single modality acc": single.max(),
            "fit s (default)": default["fit s"], "fit s (LR C=1)": table.loc["LR C=1", "fit s"],
        })
    return pd.DataFrame(rows).set_index("dataset")


def _margins(results, weight, alpha):
    """Accuracy and macro-F1 margins over the tuned reference of the blend (network, linear member)."""
    out = {}
    for name, result in results.items():
        network = result["probas"]["network alone (linear_weight=0)"]
        linear = result["probas"][f"linear member alone (alpha=1/{round(1 / alpha)})"]
        accuracy, f1 = score((1 - weight) * network + weight * linear, result["y"])
        reference_accuracy, reference_f1 = reference(result)
        out[name] = (accuracy - reference_accuracy, f1 - reference_f1)
    return out


def leave_one_dataset_out(results):
    candidates = {(w, a): _margins(results, w, a) for w in WEIGHTS for a in ALPHAS}

    def objective(margins, names):
        acc = np.array([margins[n][0] for n in names])
        f1 = np.array([margins[n][1] for n in names])
        return acc.mean() + 2 * np.minimum(acc - 0.01, 0).mean() + 2 * np.minimum(f1, 0).mean()

    rows = []
    for held_out in results:
        others = [name for name in results if name != held_out]
        weight, alpha = max(candidates, key=lambda c: objective(candidates[c], others))
        accuracy, f1 = candidates[(weight, alpha)][held_out]
        rows.append({"held out": held_out, "chosen linear_weight": weight, "chosen linear_alpha": f"1/{round(1 / alpha)}",
                     "held-out margin (points)": round(100 * accuracy, 1), "held-out F1 margin": round(100 * f1, 1)})
    return pd.DataFrame(rows).set_index("held out")


def bagging(results):
    """Each seed bag's accuracy and macro-F1 minus the default's (a bag of n networks of E epochs trains
    n * E / 20 times as many epochs as the default: fit times kept from other runs would not compare)."""
    rows = {}
    for name, result in results.items():
        table = result["table"]
        default = table.loc["MultimodalClassifier()"]
        for n, epochs in BAGS:
            bag = table.loc[f"bag of {n} x {epochs} epochs"]
            rows[(name, f"{n} x {epochs}")] = {
                "accuracy": 100 * (bag["accuracy"] - default["accuracy"]),
                "macro F1": 100 * (bag["macro F1"] - default["macro F1"]),
            }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    means = frame.groupby(level=1).mean()
    means.index = [("mean", bag) for bag in means.index]
    return pd.concat([frame, means])


def _has_tabulate():
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="store_true", help="every dataset of the suite (the default)")
    parser.add_argument("--only", help="comma-separated datasets of the suite: " + ", ".join(_suite.SUITE))
    parser.add_argument("--data-dir", default=os.path.expanduser("~/.cache/skmm-bench/data"),
                        help="where the datasets are built (reused when there)")
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/skmm-bench"), help="embedding cache")
    parser.add_argument("--results", default=os.path.expanduser("~/.cache/skmm-bench/results"),
                        help="out-of-fold probabilities kept between runs")
    parser.add_argument("--fresh", action="store_true", help="compute every model again")
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--rows", type=int, help="score stratified subsets of this many rows of each dataset")
    parser.add_argument("--seed", type=int, default=0, help="random_state of every skmm model")
    parser.add_argument("--bagging", action="store_true",
                        help="also bags of default classifiers from different seeds, against the default")
    args = parser.parse_args()

    names = args.only.split(",") if args.only else list(_suite.SUITE)
    results = {name: run_dataset(name, args) for name in names}
    show = (lambda t: t.to_markdown()) if _has_tabulate() else (lambda t: t.to_string())
    print(f"\n### Summary ({args.cv}-fold cross-validation, the same folds for every model)")
    print(show(summary(results).round(3)))
    if len(results) > 2:
        print("\n### Leave one dataset out: the ensemble's weight and penalty chosen on the others")
        print(show(leave_one_dataset_out(results)))
    if args.bagging:
        print("\n### Seed bags against the default (points of accuracy and macro-F1)")
        print(show(bagging(results).round(2)))


if __name__ == "__main__":
    main()
