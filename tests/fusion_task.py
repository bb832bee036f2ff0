"""A synthetic task for the classifier: each modality weakly informative, all together strong."""

import numpy as np
import pandas as pd


def make_fusion_task(n_samples=360, *, n_classes=3, modalities=("image", "text", "audio"), width=6,
                     separation=1.0, random_state=0):
    """Each modality carries weak, independent evidence about the class; together they are strong."""
    rng = np.random.RandomState(random_state)
    y = np.arange(n_samples) % n_classes
    rng.shuffle(y)
    frames = []
    for modality in modalities:
        centres = rng.randn(n_classes, width) * separation
        block = centres[y] + rng.randn(n_samples, width)
        frames.append(pd.DataFrame(block, columns=[f"{modality}__f{i}" for i in range(width)]))
    labels = np.array(["ant", "bee", "cow", "doe", "elk"])[y]
    return pd.concat(frames, axis=1).astype(np.float32), labels
