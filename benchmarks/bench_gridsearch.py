"""GridSearchCV of a full image + text + numeric pipeline against one single fit of it.

Both start from a cold embedding cache. A single fit encodes every image and
text once and trains the classifier once. The grid search (6 candidates over
classifier parameters x 5 folds, plus the refit) should encode every row once
too, then only train and score classifiers: its cost over the single fit is
31 classifier trainings, 30 scorings and cache look-ups. The script counts
rows handed to the models to show that, and times the pieces.

Run: ``python benchmarks/bench_gridsearch.py [--n 300] [--epochs 10] [--threads 1]``
"""

import argparse
import os
import time
from collections import Counter



def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="rows of the synthetic dataset")
    parser.add_argument("--epochs", type=int, default=10, help="classifier max_epochs")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own); 1 is steadier on a loaded machine")
    args = parser.parse_args()

    import torch
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from skmm import ImageEncoder, MultimodalClassifier, MultimodalFusion, TextEncoder
    from skmm.cache import clear_memory_cache
    from skmm.datasets import make_multimodal_classification

    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ["SKMM_CACHE_DIR"] = ""  # memory cache only (no disk folder behind it): both runs start cold

    rows = Counter()
    for cls in (ImageEncoder, TextEncoder):
        original = cls._encode_batch

        def counting(self, items, backend, _original=original, _name=cls.__name__):
            rows[_name] += len(items)
            return _original(self, items, backend)

        cls._encode_batch = counting

    X, y = make_multimodal_classification(n_samples=args.n, random_state=0)
    X = X.drop(columns="audio")
    pipe = Pipeline([
        ("fusion", MultimodalFusion([
            ("image", ImageEncoder(verbose=0), "image"),
            ("text", TextEncoder(verbose=0), "text"),
            ("tabular", StandardScaler(), ["number"]),
        ])),
        ("clf", MultimodalClassifier(max_epochs=args.epochs, random_state=0)),
    ])
    grid = {"clf__fusion": ["concat", "gated", "attention"], "clf__lr": [1e-3, 3e-3]}
    cv = StratifiedKFold(5, shuffle=True, random_state=0)

    clone(pipe).fit(X.iloc[:12], y.iloc[:12])  # load the models: not part of either timing

    def cold(run):
        clear_memory_cache()
        rows.clear()
        start = time.perf_counter()
        result = run()
        return time.perf_counter() - start, dict(rows), result

    single_1, single_rows, fitted = cold(lambda: clone(pipe).fit(X, y))
    search_time, search_rows, search = cold(lambda: GridSearchCV(clone(pipe), grid, cv=cv).fit(X, y))
    single_2, _, _ = cold(lambda: clone(pipe).fit(X, y))
    single = (single_1 + single_2) / 2

    # the pieces, with a warm cache
    start = time.perf_counter()
    Z = clone(pipe[0]).fit_transform(X, y)
    cached_fusion = time.perf_counter() - start
    start = time.perf_counter()
    clone(pipe[1]).fit(Z, y)
    classifier = time.perf_counter() - start

    print(f"{args.n} rows (64 px PNG image, sentence, number), EfficientNet-Lite0 + all-MiniLM-L6-v2 + "
          f"StandardScaler -> MultimodalClassifier(max_epochs={args.epochs}), CPU, "
          f"torch threads={torch.get_num_threads()}")
    print(f"{'':<44}{'seconds':>9}{'vs single fit':>15}{'rows encoded (img/txt)':>25}")
    n_img, n_txt = X["image"].nunique(), X["text"].nunique()
    print(f"{'single fit, cold cache (mean of 2)':<44}{single:>9.1f}{1:>14.2f}x"
          f"{single_rows.get('ImageEncoder', 0):>13}/{single_rows.get('TextEncoder', 0)}")
    print(f"{'GridSearchCV 6 candidates x 5 folds + refit':<44}{search_time:>9.1f}"
          f"{search_time / single:>14.2f}x"
          f"{search_rows.get('ImageEncoder', 0):>13}/{search_rows.get('TextEncoder', 0)}")
    print(f"unique images/texts in the data: {n_img}/{n_txt}; single fits: {single_1:.1f} s, {single_2:.1f} s")
    print(f"pieces: fusion fit_transform with a warm cache {cached_fusion:.2f} s, "
          f"one classifier fit {classifier:.2f} s; "
          f"31 x (both) = {31 * (cached_fusion + classifier):.1f} s")
    print(f"best: {search.best_params_} score {search.best_score_:.3f}")


if __name__ == "__main__":
    main()
