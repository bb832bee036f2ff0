"""The real-data benchmark suite: datasets built at run time, embedded once, and variants of them.

Three builders in ``../shared/data/`` (relative to the repository root) make real datasets that
nobody in this project wrote; each is built into its own folder under ``--data-dir`` the first
time and reused after:

- ``debian_apps.py``: about 2,000 Debian desktop applications, a 64x64 icon, the name, the
  one-line summary and the long description -> 10 categories (``--lang fr`` for a French
  variant, translated where Debian has a translation);
- ``emoji.py``: 1,870 emoji pictures, their English and Spanish (or French) names and espeak-ng
  speaking the name -> 9 Unicode groups (the ``subgroup`` column is a harder label);
- ``openclipart.py``: about 2,800 Open Clip Art pictures and their title + description -> 17
  folders.

Every column is encoded once with skmm's default encoders (ImageEncoder, TextEncoder, AudioMFCC;
every text column its own modality), cached on disk. :data:`SUITE` then derives the datasets the
benchmarks score: the sets as built, a noisy variant of two of them (every modality wrong or absent
in 30% of the rows), imbalanced small subsamples (class sizes from 247 down to 12 rows), a hard
many-class label and modality subsets.
"""

import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

#: builder script, its extra arguments and the CSV it writes, per source folder
SOURCES = {
    "debian": ("debian_apps.py", [], "debian_apps.csv"),
    "debian_fr": ("debian_apps.py", ["--lang", "fr"], "debian_apps.csv"),
    "emoji": ("emoji.py", ["--lang", "es", "--audio"], "emoji.csv"),
    "emoji_fr": ("emoji.py", ["--lang", "fr", "--audio"], "emoji.csv"),
    "openclipart": ("openclipart.py", [], "openclipart.csv"),
}

#: (modality, kind, column) of each source
COLUMNS = {
    "debian": [("image", "image", "icon"), ("name", "text", "name"), ("summary", "text", "summary"),
               ("description", "text", "description")],
    "emoji": [("image", "image", "image"), ("name", "text", "name"), ("name_es", "text", "name_es"),
              ("audio", "audio", "audio")],
    "emoji_fr": [("image", "image", "image"), ("name", "text", "name"), ("name_fr", "text", "name_fr"),
                 ("audio", "audio", "audio")],
    "openclipart": [("image", "image", "image"), ("text", "text", "text")],
}
COLUMNS["debian_fr"] = COLUMNS["debian"]
LABELS = {"debian": "category", "debian_fr": "category", "emoji": "group", "emoji_fr": "group",
          "openclipart": "category"}


def build(source, data_dir, scripts=SHARED_DATA):
    """The CSV of ``source``, built into ``data_dir/source`` by its script when it is not there yet."""
    script, extra, name = SOURCES[source]
    folder = Path(data_dir) / source
    csv = folder / name
    if not csv.exists():
        print(f"building {source} in {folder} with {script} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(Path(scripts) / script), str(folder), *extra], check=True)
    return pd.read_csv(csv)


def encode(frame, columns, cache):
    """Fused embeddings of ``columns`` [(modality, kind, column)] with skmm's default encoders."""
    from skmm import AudioMFCC, ImageEncoder, MultimodalFusion, TextEncoder

    encoders = {"image": ImageEncoder, "text": TextEncoder, "audio": AudioMFCC}
    frame = frame.copy()
    for _, kind, column in columns:
        if kind == "text":
            frame[column] = frame[column].fillna("")
    fusion = MultimodalFusion([(name, encoders[kind](cache=cache), column) for name, kind, column in columns])
    start = time.perf_counter()
    features = fusion.fit_transform(frame).astype(np.float32)
    print(f"encoded {len(frame)} rows into {features.shape[1]} features in {time.perf_counter() - start:.0f} s",
          file=sys.stderr, flush=True)
    return features


def blocks(columns):
    """``{modality: [its columns]}`` from ``"<modality>__<feature>"`` names."""
    out = {}
    for column in columns:
        out.setdefault(column.split("__", 1)[0], []).append(column)
    return out


def make_noisy(X, rate=0.3, seed=0):
    """Every modality wrong (another row's block) or absent (NaN) for ``rate`` of the rows, independently."""
    rng = np.random.RandomState(seed)
    original, values = X.to_numpy(), X.to_numpy().copy()
    for columns in blocks(X.columns).values():
        index = [X.columns.get_loc(column) for column in columns]
        hit = np.flatnonzero(rng.rand(len(X)) < rate)
        swapped = hit[rng.rand(len(hit)) < 0.5]
        donors = (swapped + rng.randint(1, len(X), len(swapped))) % len(X)
        block = values[:, index]
        block[swapped] = original[donors][:, index]
        block[np.setdiff1d(hit, swapped)] = np.nan
        values[:, index] = block
    return pd.DataFrame(values, columns=X.columns, index=X.index)


def imbalanced(X, y, n_classes, largest=247, smallest=12, seed=0):
    """A subsample of the ``n_classes`` largest classes with sizes from ``largest`` down to ``smallest``."""
    rng = np.random.RandomState(seed)
    labels, counts = np.unique(y, return_counts=True)
    order = labels[np.argsort(-counts, kind="stable")][:n_classes]
    sizes = np.geomspace(largest, smallest, len(order)).round().astype(int)
    keep = np.sort(np.concatenate([
        rng.choice(np.flatnonzero(y == label), min(size, int(np.sum(y == label))), replace=False)
        for label, size in zip(order, sizes)
    ]))
    return X.iloc[keep].reset_index(drop=True), y[keep]


def only(X, modalities):
    return X[[column for column in X.columns if column.split("__", 1)[0] in modalities]]


def with_enough_rows(X, y, k=10):
    labels, counts = np.unique(y, return_counts=True)
    keep = np.isin(y, labels[counts >= k])
    return X[keep].reset_index(drop=True), y[keep]


#: dataset -> (source, label column, how it is derived from the source's embeddings)
SUITE = {
    "debian": ("debian", None, lambda X, y: (X, y)),
    "debian_fr": ("debian_fr", None, lambda X, y: (X, y)),
    "debian_noisy": ("debian", None, lambda X, y: (make_noisy(X), y)),
    "debian_icon_name": ("debian", None, lambda X, y: (only(X, {"image", "name"}), y)),
    "emoji": ("emoji", None, lambda X, y: (X, y)),
    "emoji_noisy": ("emoji", None, lambda X, y: (make_noisy(X), y)),
    "emoji_subgroup": ("emoji", "subgroup", with_enough_rows),
    "emoji_image_audio": ("emoji", None, lambda X, y: (only(X, {"image", "audio"}), y)),
    "emoji_fr_imbalanced": ("emoji_fr", None,
                            lambda X, y: imbalanced(only(X, {"image", "name_fr", "audio"}), y, n_classes=9)),
    "openclipart": ("openclipart", None, lambda X, y: (X, y)),
    "openclipart_imbalanced": ("openclipart", None, lambda X, y: imbalanced(X, y, n_classes=12)),
}
DESCRIPTIONS = {
    "debian": "Debian apps: icon, name, summary, description -> 10 categories",
    "debian_fr": "the same, French text where Debian has it",
    "debian_noisy": "debian, every modality wrong or absent in 30% of rows",
    "debian_icon_name": "debian, icon and name only (weak modalities)",
    "emoji": "emoji: picture, English + Spanish name, spoken name -> 9 groups",
    "emoji_noisy": "emoji, every modality wrong or absent in 30% of rows",
    "emoji_subgroup": "emoji -> subgroup (classes of >= 10 rows)",
    "emoji_image_audio": "emoji, picture and spoken name only",
    "emoji_fr_imbalanced": "emoji, picture + French name + French speech, 9 classes of 247 to 12 rows",
    "openclipart": "Open Clip Art: picture, title + description -> 17 folders",
    "openclipart_imbalanced": "openclipart, 12 classes of 247 to 12 rows",
}


@lru_cache(maxsize=None)
def embedded(source, data_dir, cache):
    frame = build(source, data_dir)
    return frame, encode(frame, COLUMNS[source], cache)


def load(name, data_dir, cache):
    """``(X, y)`` of the suite's dataset ``name``: fused embeddings and string labels."""
    source, label, derive = SUITE[name]
    frame, X = embedded(source, str(data_dir), str(cache))
    y = frame[label or LABELS[source]].to_numpy(str)
    return derive(X, y)
