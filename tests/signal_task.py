"""A raw table where only one modality carries the label: the picture. The number is pure noise."""

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmm import ImageEncoder, MultimodalClassifier, MultimodalFusion

COLOURS = {"cat": (200, 40, 40), "dog": (40, 40, 200)}


def make_signal_task(n_samples=160, random_state=0):
    """32 px pictures tinted with the class colour, and a number drawn independently of the class."""
    rng = np.random.RandomState(random_state)
    y = np.array(["cat", "dog"] * (n_samples // 2))
    rng.shuffle(y)
    photos = [
        np.clip(np.array(COLOURS[label]) + rng.randint(-40, 40, size=(32, 32, 3)), 0, 255).astype(np.uint8)
        for label in y
    ]
    X = pd.DataFrame({"photo": pd.Series(photos, dtype=object), "price": rng.randn(n_samples)})
    return X, y


def make_signal_pipeline(image_model, **classifier_params):
    return Pipeline([
        ("fusion", MultimodalFusion([
            ("image", ImageEncoder(image_model, verbose=0), "photo"),
            ("tabular", StandardScaler(), ["price"]),
        ])),
        ("clf", MultimodalClassifier(**{"max_epochs": 30, "lr": 3e-3, "random_state": 0, **classifier_params})),
    ])
