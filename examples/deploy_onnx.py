"""
Deploying a model with ONNX
===========================

:func:`skmm.onnx.export_onnx` writes a fitted pipeline as ONNX graphs, one per modality
plus one for the classifier, and a ``manifest.json`` that says which input column feeds
which graph. :class:`skmm.onnx.OnnxModel` predicts from that folder on ONNX Runtime,
without unpickling anything or loading the torch weights; any other ONNX consumer (C#,
Java, C++, Triton) can run the same graphs (``pip install "skmm[onnx]"``).
"""

import json

import numpy as np
import onnxruntime
import torch
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmm import AudioMFCC, ImageEncoder, MultimodalClassifier, MultimodalFusion, TextEncoder
from skmm.datasets import make_multimodal_classification
from skmm.onnx import OnnxModel, export_onnx

torch.set_num_threads(1)
X, y = make_multimodal_classification(n_samples=150, directory="onnx_data", random_state=0)
pipe = Pipeline([
    ("fusion", MultimodalFusion([
        ("image", ImageEncoder(image_size=64, verbose=0), "image"),
        ("text", TextEncoder(verbose=0), "text"),
        ("audio", AudioMFCC(verbose=0), "audio"),
        ("number", StandardScaler(), ["number"]),
    ])),
    ("clf", MultimodalClassifier(max_epochs=40, random_state=0, verbose=0)),
]).fit(X, y)

# %%
# Export: one folder, a graph per modality with a network or a scikit-learn
# transformer, the classifier's graph and the manifest.
folder = export_onnx(pipe, "onnx_data/model", overwrite=True)
manifest = json.loads((folder / "manifest.json").read_text())
for part in manifest["parts"]:
    print(f"{part['columns']} -> {part['graph']}: features {part['features']}, inputs {part.get('inputs')}")
print("classifier:", manifest["classifier"], "classes:", manifest["classes"])

# %%
# Predict from the folder on ONNX Runtime: the same probabilities as the pipeline.
model = OnnxModel(folder)
onnx_proba, torch_proba = model.predict_proba(X), pipe.predict_proba(X)
print("largest difference:", float(np.abs(onnx_proba - torch_proba).max()))
print("same labels:", bool((model.predict(X) == pipe.predict(X)).all()))

# %%
# What another language does with the graphs: here, the classifier's graph run by
# ONNX Runtime directly, on the fused features (float32, NaN where a modality is absent).
session = onnxruntime.InferenceSession(str(folder / "classifier.onnx"))
features = model.transform(X.iloc[:3])  # what the modality graphs and the preprocessing give
print(session.run(["probabilities"], {"features": features})[0].round(3))
