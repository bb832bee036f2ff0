"""
Serving predictions over HTTP
=============================

:func:`skmm.serve.create_app` wraps a fitted pipeline (or a model file written
by :func:`skmm.save`) in a Flask app with ``GET /health``, ``GET /metadata`` and
``POST /predict``. In production, ``skmm serve model.skmm`` runs it behind
waitress; here Flask's test client sends the requests in-process, so the
example needs no network (``pip install "skmm[serve]"``).
"""

import base64
import json
import time
from pathlib import Path

import torch
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import skmm
from skmm import AudioMFCC, ImageEncoder, MultimodalClassifier, MultimodalFusion, TextEncoder
from skmm.datasets import make_multimodal_classification
from skmm.serve import create_app

torch.set_num_threads(1)
start = time.perf_counter()

X, y = make_multimodal_classification(n_samples=150, directory="serving_data", random_state=0)
pipe = Pipeline([
    ("fusion", MultimodalFusion([
        ("image", ImageEncoder(image_size=64, verbose=0), "image"),
        ("text", TextEncoder(verbose=0), "text"),
        ("audio", AudioMFCC(verbose=0), "audio"),
        ("number", StandardScaler(), ["number"]),
    ])),
    ("clf", MultimodalClassifier(max_epochs=40, lr=3e-3, random_state=0)),
]).fit(X, y)

# %%
# Save the model to one file and serve it.
skmm.save(pipe, "serving_data/model.skmm")
client = create_app("serving_data/model.skmm").test_client()
print("GET /health ->", client.get("/health").get_json())
metadata = client.get("/metadata").get_json()
print("input columns:", metadata["input_columns"], "classes:", metadata["classes"])

# %%
# ``POST /predict`` with JSON: images and audio travel as base64 strings,
# ``null`` is a missing value (an absent modality).
def b64(path):
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


first, second = X.iloc[0], X.iloc[1]
rows = [
    {"image": b64(first["image"]), "text": first["text"], "audio": b64(first["audio"]), "number": first["number"]},
    {"image": None, "text": second["text"], "audio": b64(second["audio"]), "number": None},
]
answer = client.post("/predict", json={"rows": rows})
print("status:", answer.status_code)
print(json.dumps(answer.get_json(), indent=1)[:600])
print("true labels:", list(y.iloc[:2]))

# %%
# Errors name the field and the row: here, a column the model does not know.
bad = client.post("/predict", json={"row": {"picture": "..."}})
print(bad.status_code, bad.get_json()["error"][:200])
print(f"done in {time.perf_counter() - start:.0f} s")
