"""
Missing modalities
==================

Real rows often lack a modality: no photo, an empty review, a clip that failed
to record. In skmm a missing value (None, NaN, an empty string) in a column
makes that modality *absent* for the row: the encoder returns a row of NaN,
and :class:`~skmm.MultimodalClassifier` masks the modality out of the fusion.
Nothing is imputed.

A model trained on complete rows has never seen an absent modality.
``modality_dropout`` removes modalities at random during training (always
keeping one), so the network learns to predict from whatever is left. This
example measures both on test rows where one modality is removed.
"""

import time

import matplotlib.pyplot as plt
import pandas as pd
import torch
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmm import AudioMFCC, ImageEncoder, MultimodalClassifier, MultimodalFusion, TextEncoder
from skmm.datasets import make_multimodal_classification
from skmm.inspection import make_absent

torch.set_num_threads(1)
start = time.perf_counter()

X, y = make_multimodal_classification(n_samples=300, directory="missing_data", random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, stratify=y, random_state=0)

fusion = MultimodalFusion([
    ("image", ImageEncoder(image_size=64, verbose=0), "image"),
    ("text", TextEncoder(verbose=0), "text"),
    ("audio", AudioMFCC(verbose=0), "audio"),
    ("number", StandardScaler(), ["number"]),
])
plain = Pipeline([("fusion", fusion), ("clf", MultimodalClassifier(max_epochs=60, lr=3e-3, random_state=0))])
with_dropout = clone(plain).set_params(clf__modality_dropout=0.3)

# %%
# Train both, then score each on the complete test rows and with one column
# emptied (``make_absent`` sets it to None, as a missing cell would be).
columns = {"image": "image", "text": "text", "audio": "audio", "number": "number"}
results = {}
for name, pipe in [("modality_dropout=0", plain), ("modality_dropout=0.3", with_dropout)]:
    pipe.fit(X_train, y_train)
    scores = {"nothing": pipe.score(X_test, y_test)}
    for modality, column in columns.items():
        scores[modality] = pipe.score(make_absent(X_test, [column]), y_test)
    results[name] = scores
table = pd.DataFrame(results).rename_axis("modality removed")
print(table.round(3).to_string())

# %%
# Every row still gets a prediction from the modalities it has, and removing
# a modality costs about what that modality contributed. How much modality
# dropout helps depends on the data: compare the two columns above, and tune
# ``clf__modality_dropout`` by cross-validation on rows that look like the
# ones you will predict (``make_multimodal_classification(missing_rate=...)``
# makes such rows).
ax = table.plot.barh(figsize=(6, 3.5))
ax.axvline(1 / 3, color="grey", linestyle=":")
ax.set_xlabel("test accuracy")
ax.invert_yaxis()
ax.legend(loc="lower right", fontsize="small")
plt.tight_layout()

# %%
# A row with *every* modality missing is predicted as the class prior of the
# training data, with a warning.
one_row = X_test.head(1).copy()
one_row.loc[:, ["image", "text", "audio"]] = None
print("predicted without the image, text and audio:", with_dropout.predict(one_row)[0])
print(f"done in {time.perf_counter() - start:.0f} s")
