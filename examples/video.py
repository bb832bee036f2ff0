"""
Video: one column of clips as two modalities, picture and sound
===============================================================

Run it with ``python examples/video.py`` (needs ``pip install "skmm[video]"``). It works offline
and takes a minute or so on a laptop CPU. It shows:

1. a synthetic table with a column of MP4 clips (a coloured square moving the class's way, most
   with a sound track, some silent),
2. VideoEncoder: sampled frames embedded by ImageEncoder's backbone, and the sound's MFCCs,
3. the same column as two fusion modalities, ``clip_frames`` and ``clip_audio``: a silent clip
   is an absent ``clip_audio`` modality,
4. cross_val_score of the whole pipeline.
"""

import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline

from skmm import MultimodalClassifier, MultimodalFusion, VideoEncoder
from skmm.datasets import make_multimodal_classification

# 1. The clips are written to ./video_data (the same bytes on every run).
X, y = make_multimodal_classification(
    n_samples=60, video=True, noise=0.3, directory="video_data", random_state=0
)
print(X[["video"]].head(3).to_string(max_colwidth=60))
print("labels:", y.value_counts().sort_index().to_dict())

# 2. One encoder, both blocks: the frames' mean embedding, then the sound track's MFCC statistics.
encoder = VideoEncoder(frames=4, verbose=0)
Z = encoder.fit_transform(X["video"])
names = encoder.get_feature_names_out()
frames = np.char.startswith(names.astype(str), "frames_")
silent = np.isnan(Z[:, ~frames]).all(axis=1)
print(f"features: {frames.sum()} frames_* + {(~frames).sum()} audio_*; clips without sound: {silent.sum()}")

# 3. Two modalities from the one column; each part decodes only its own stream.
fusion = MultimodalFusion([
    ("clip_frames", VideoEncoder(part="frames", frames=4, verbose=0), "video"),
    ("clip_audio", VideoEncoder(part="audio", verbose=0), "video"),
])
pipe = Pipeline([
    ("fusion", fusion),
    ("clf", MultimodalClassifier(fusion="gated", max_epochs=40, random_state=0)),
])

# 4. Cross-validation: every clip is decoded and embedded once, the cache serves the other folds.
folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
scores = cross_val_score(pipe, X, y, cv=folds)
print(f"cross-validated accuracy: {scores.mean():.3f} ± {scores.std():.3f}")

pipe.fit(X, y)
modalities = pipe.named_steps["clf"].modalities_
print("modalities:", modalities)
