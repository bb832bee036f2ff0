"""
Explaining a prediction
=======================

Which modality mattered? This example fits a pipeline and looks at it three
ways (see :doc:`/inspection` for what each one measures):

1. the training curve and the per-class scores, as for any classifier;
2. :func:`~skmm.inspection.modality_importance`: the drop in test score when
   a modality is made absent or permuted;
3. :func:`~skmm.inspection.modality_shap_values`: what each modality added to
   one row's predicted probability (Shapley values, ``pip install "skmm[explain]"``),
   next to the network's own attention weights.
"""

import time

import matplotlib.pyplot as plt
import torch
from sklearn.metrics import ConfusionMatrixDisplay, classification_report
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmm import AudioMFCC, ImageEncoder, MultimodalClassifier, MultimodalFusion, TextEncoder
from skmm.datasets import make_multimodal_classification
from skmm.inspection import modality_contributions, modality_shap_values
from skmm.plotting import ModalityContributionDisplay, ModalityImportanceDisplay, TrainingCurveDisplay

torch.set_num_threads(1)
start = time.perf_counter()

X, y = make_multimodal_classification(n_samples=300, directory="explain_data", random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, stratify=y, random_state=0)
pipe = Pipeline([
    ("fusion", MultimodalFusion([
        ("image", ImageEncoder(image_size=64, verbose=0), "image"),
        ("text", TextEncoder(verbose=0), "text"),
        ("audio", AudioMFCC(verbose=0), "audio"),
        ("number", StandardScaler(), ["number"]),
    ])),
    ("clf", MultimodalClassifier(fusion="attention", modality_dropout=0.2, early_stopping=True, patience=10,
                                 max_epochs=100, lr=3e-3, random_state=0)),
])
pipe.fit(X_train, y_train)

# %%
# Training curve
# --------------
# With ``early_stopping=True`` a share of the training rows is held out; the
# dashed line marks the epoch whose weights were kept.
TrainingCurveDisplay.from_estimator(pipe)

# %%
# Scores per class
# ----------------
# Confusion matrices and per-class reports are scikit-learn's own.
print(classification_report(y_test, pipe.predict(X_test), digits=3))
ConfusionMatrixDisplay.from_estimator(pipe, X_test, y_test, cmap="Blues")

# %%
# Modality importance over the test set
# -------------------------------------
# In this synthetic data every modality carries part of the label, so every
# modality has a positive drop.
fig, ax = plt.subplots(figsize=(7, 3.5))
ModalityImportanceDisplay.from_estimator(pipe, X_test, y_test, n_repeats=5, random_state=0, ax=ax)
fig.tight_layout()

# %%
# One row, explained
# ------------------
# The SHAP values start from the probability with every modality absent (the
# class prior) and add each modality's contribution up to the prediction.
row = X_test.iloc[[0]]
print(row.to_string(max_colwidth=50))
print("true label:", y_test.iloc[0], "- predicted:", pipe.predict(row)[0])
explanation = modality_shap_values(pipe, row)
fig, ax = plt.subplots(figsize=(7, 3.5))
ModalityContributionDisplay.from_shap_values(explanation, ax=ax)
fig.tight_layout()

# %%
# The same for a few rows as a table (what each modality added to the
# predicted class's probability), next to the attention weights of the fusion
# layer: where the network looked, which need not be what changed its
# prediction.
rows = X_test.head(5)
print("SHAP contributions to the predicted class:")
print(modality_contributions(pipe, rows).round(3).to_string())
print("attention weights:")
print(pipe.named_steps["clf"].modality_weights(pipe.named_steps["fusion"].transform(rows)).round(3).to_string())
print(f"done in {time.perf_counter() - start:.0f} s")
