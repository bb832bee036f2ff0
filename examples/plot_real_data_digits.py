"""
Real data: handwritten digits seen two ways
===========================================

The documentation must build offline, so this example uses a real data set
that ships with scikit-learn: the 1,797 8×8 handwritten digits of
:func:`sklearn.datasets.load_digits` (UCI, 43 writers). Each row gets two
modalities:

- ``picture``: the digit as an image, encoded by the default pretrained image
  encoder (EfficientNet-Lite0, trained on photographs, not digits);
- ``ink``: 16 numbers computed from the same scan, the amount of ink in each
  of its 8 rows and 8 columns (a classic hand-made feature).

Both views come from the same scan, so they are not independent evidence as
a photo and a review would be; what the example shows honestly is how skmm
handles a real image column next to numeric columns, and how much a general
image model knows about digits. (For real photographs plus text, the
project's benchmarks use Debian's application icons and descriptions, which
need network access to build.)
"""

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmm import ImageEncoder, MultimodalClassifier, MultimodalFusion
from skmm.inspection import modality_importance

torch.set_num_threads(1)
start = time.perf_counter()

digits = load_digits()
n = 900  # half of the data keeps the example under a minute on a laptop
images = (digits.images[:n] * (255 / 16)).astype(np.uint8)  # 0..16 ink levels as 8-bit grey
X = pd.DataFrame({"picture": pd.Series(list(images), dtype=object)})
ink = np.concatenate([images.sum(axis=2), images.sum(axis=1)], axis=1) / 255
ink_columns = [f"row{i}" for i in range(8)] + [f"col{i}" for i in range(8)]
X[ink_columns] = ink
y = np.array([str(d) for d in digits.target[:n]])
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)

fig, axes = plt.subplots(1, 8, figsize=(8, 1.3))
for ax, image, label in zip(axes, images, y):
    ax.imshow(image, cmap="gray_r")
    ax.set_title(label)
    ax.axis("off")

# %%
# One pipeline with both modalities, and one per modality for comparison.
def make_pipe(modalities):
    parts = {"picture": ("picture", ImageEncoder(image_size=64, verbose=0), "picture"),
             "ink": ("ink", StandardScaler(), ink_columns)}
    return Pipeline([
        ("fusion", MultimodalFusion([parts[name] for name in modalities])),
        ("clf", MultimodalClassifier(max_epochs=60, lr=3e-3, random_state=0)),
    ])


scores = {}
for modalities in [["picture"], ["ink"], ["picture", "ink"]]:
    pipe = make_pipe(modalities).fit(X_train, y_train)
    scores[" + ".join(modalities)] = pipe.score(X_test, y_test)
for name, score in scores.items():
    print(f"{name:>15}: test accuracy {score:.3f}")

# %%
# The fused model's errors, and which modality it leans on.
ConfusionMatrixDisplay.from_estimator(pipe, X_test, y_test, cmap="Blues", colorbar=False)
importance = modality_importance(pipe, X_test, y_test, n_repeats=3, random_state=0)
for name, absent, permuted in zip(importance.modalities, importance.absence_importances,
                                  importance.permutation_importances_mean):
    print(f"{name}: accuracy drop {absent:.3f} when absent, {permuted:.3f} when permuted")
print(f"done in {time.perf_counter() - start:.0f} s")
