"""
Quickstart: one scikit-learn Pipeline for images, texts, audio and numbers
==========================================================================

Run it with ``python examples/quickstart.py``. It works offline and takes a
minute or two on a laptop CPU. It shows:

1. building a Pipeline of MultimodalFusion + MultimodalClassifier,
2. a hold-out score and predictions (also with a modality missing),
3. cross_val_score,
4. GridSearchCV over the fusion strategy and an encoder parameter.

Every image, sentence and clip is encoded once: the embedding cache serves
every later fit, fold and grid-search candidate.
"""

import time

import pandas as pd
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmm import AudioMFCC, ImageEncoder, MultimodalClassifier, MultimodalFusion, TextEncoder
from skmm.datasets import make_multimodal_classification

start = time.perf_counter()

# A synthetic table: PNG paths, sentences, WAV paths, a number; labels cat/dog/bird.
# The files are written to ./quickstart_data (the same bytes on every run).
# Each modality carries part of the label; together they carry most of it.
X, y = make_multimodal_classification(n_samples=150, directory="quickstart_data", random_state=0)
print(X.head(3).to_string(max_colwidth=40))
print("labels:", y.value_counts().sort_index().to_dict())

# 1. The pipeline: one (modality name, transformer, column) triple per modality.
fusion = MultimodalFusion([
    # the demo images are 64 px: encoding them at 128 px instead of 224 loses nothing
    ("image", ImageEncoder(image_size=128, verbose=0), "image"),
    ("text", TextEncoder(verbose=0), "text"),
    ("audio", AudioMFCC(verbose=0), "audio"),
    ("number", StandardScaler(), ["number"]),
])
pipe = Pipeline([
    ("fusion", fusion),
    ("clf", MultimodalClassifier(fusion="concat", random_state=0)),   # the defaults win on real data
])

# 2. Hold-out score. The first fit encodes every row; later fits read the cache.
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
pipe.fit(X_train, y_train)
print(f"hold-out accuracy: {pipe.score(X_test, y_test):.3f}")

# Predictions are the original string labels; a missing value (None) is an absent modality.
new_rows = X_test.head(3).copy()
new_rows.loc[new_rows.index[0], "image"] = None
print("predictions:", list(pipe.predict(new_rows)), "true:", list(y_test.head(3)))

# 3. Cross-validation, like any scikit-learn estimator.
folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
scores = cross_val_score(pipe, X, y, cv=folds)
print(f"cross-validated accuracy: {scores.mean():.3f} ± {scores.std():.3f}")

# 4. Grid search: the fusion strategy of the classifier and the number of MFCCs of the
#    audio encoder (a changed encoder parameter gives new cache keys: no stale embeddings).
grid = GridSearchCV(
    pipe,
    {"clf__fusion": ["concat", "gated"], "fusion__audio__n_mfcc": [13, 20]},
    cv=folds,
)
grid.fit(X, y)
table = pd.DataFrame(grid.cv_results_["params"])
table["mean accuracy"] = grid.cv_results_["mean_test_score"].round(3)
table["std"] = grid.cv_results_["std_test_score"].round(3)
print(table.to_string(index=False))
print(f"best: {grid.best_params_}  accuracy {grid.best_score_:.3f}")
print(f"done in {time.perf_counter() - start:.0f} s")
