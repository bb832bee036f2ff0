"""Tests of skmm.datasets.make_multimodal_classification."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
from PIL import Image
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmm.datasets import make_multimodal_classification

COLUMNS = ["image", "text", "audio", "number"]


def _file_bytes(X):
    return [Path(p).read_bytes() for p in [*X["image"], *X["audio"]]]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    return make_multimodal_classification(240, directory=directory, random_state=0)


def test_frame_layout(data):
    X, y = data
    assert list(X.columns) == COLUMNS
    assert X.shape == (240, 4)
    assert X["number"].dtype == np.float64
    assert y.name == "label" and len(y) == 240
    assert X.index.equals(y.index)
    for column in ("image", "audio", "text"):
        assert all(isinstance(value, str) for value in X[column])
    assert all(Path(p).is_absolute() for p in [*X["image"], *X["audio"]])
    assert X["image"].str.endswith(".png").all() and X["audio"].str.endswith(".wav").all()


def test_files_exist_and_decode(data):
    X, _ = data
    for path in X["image"][:10]:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.size == (64, 64) and image.mode == "RGB"
    for path in X["audio"][:10]:
        wave, sample_rate = soundfile.read(path)
        assert sample_rate == 16_000
        assert wave.ndim == 1 and len(wave) == 16_000
        assert 0 < np.abs(wave).max() <= 1


def test_labels_are_balanced_and_readable(data):
    _, y = data
    assert sorted(y.value_counts().items()) == [("bird", 80), ("cat", 80), ("dog", 80)]
    _, y = make_multimodal_classification(
        50, n_classes=6, directory=None, random_state=1
    )
    counts = y.value_counts()
    assert set(counts.index) == {"cat", "dog", "bird", "fish", "frog", "horse"}
    assert counts.max() - counts.min() <= 1


def test_same_seed_same_frame_and_bytes(tmp_path):
    X1, y1 = make_multimodal_classification(15, directory=tmp_path, random_state=7)
    first = _file_bytes(X1)
    X2, y2 = make_multimodal_classification(15, directory=tmp_path, random_state=7)
    pd.testing.assert_frame_equal(X1, X2)
    pd.testing.assert_series_equal(y1, y2)
    assert _file_bytes(X2) == first

    # another folder: same content, same bytes
    X3, y3 = make_multimodal_classification(15, directory=tmp_path / "other", random_state=7)
    pd.testing.assert_frame_equal(X1[["text", "number"]], X3[["text", "number"]])
    pd.testing.assert_series_equal(y1, y3)
    assert _file_bytes(X3) == first


def test_different_seed_differs(tmp_path):
    X1, y1 = make_multimodal_classification(15, directory=tmp_path / "a", random_state=0)
    X2, y2 = make_multimodal_classification(15, directory=tmp_path / "b", random_state=1)
    assert not X1["number"].equals(X2["number"])
    assert list(X1["text"]) != list(X2["text"]) or list(y1) != list(y2)
    assert _file_bytes(X1) != _file_bytes(X2)


def test_random_state_instance_and_none(tmp_path):
    X, _ = make_multimodal_classification(
        6, directory=tmp_path, random_state=np.random.RandomState(0)
    )
    assert len(X) == 6
    X, _ = make_multimodal_classification(6)  # a fresh temporary folder
    assert Path(X["image"][0]).exists()
    assert Path(X["image"][0]).parent.parent != tmp_path


@pytest.mark.parametrize("missing_rate", [0.1, 0.5])
def test_missing_rate(tmp_path, missing_rate):
    n = 40
    X, y = make_multimodal_classification(
        n, directory=tmp_path, missing_rate=missing_rate, random_state=3
    )
    full, y_full = make_multimodal_classification(n, directory=tmp_path, random_state=3)
    expected = round(missing_rate * n)
    for column in ("image", "text", "audio"):
        assert sum(value is None for value in X[column]) == expected
    assert X["number"].isna().sum() == expected
    assert not X.isna().all(axis=1).any(), "no row should lose every modality"
    # the values that are kept, and the labels, do not depend on missing_rate
    kept = X.notna()
    assert (X[kept] == full[kept]).sum().sum() == kept.sum().sum()
    pd.testing.assert_series_equal(y, y_full)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_samples": 2, "n_classes": 3}, "n_samples=2 is smaller than n_classes=3"),
        ({"n_classes": 7}, "n_classes"),
        ({"n_classes": 1}, "n_classes"),
        ({"noise": 1.5}, "noise"),
        ({"missing_rate": -0.1}, "missing_rate"),
        ({"n_samples": 0}, "n_samples"),
    ],
)
def test_invalid_parameters(tmp_path, params, match):
    with pytest.raises(ValueError, match=match):
        make_multimodal_classification(directory=tmp_path, **params)


# --------------------------------------------------------------------------- signal


def _mean_colour(paths):
    return np.array([np.asarray(Image.open(p), dtype=float).reshape(-1, 3).mean(0) for p in paths])


def _spectrum_peak(paths):
    features = []
    for path in paths:
        wave, sample_rate = soundfile.read(path)
        spectrum = np.abs(np.fft.rfft(wave))
        frequencies = np.fft.rfftfreq(len(wave), 1 / sample_rate)
        peak = spectrum[20:].argmax() + 20  # skip the lowest bins (DC, rumble)
        features.append([np.log2(frequencies[peak]), np.log(spectrum[peak] / np.median(spectrum))])
    return np.array(features)


def _cheap_views(X):
    """Cheap, encoder-free features of each modality, with a simple model for each."""
    forest = RandomForestClassifier(n_estimators=100, min_samples_leaf=3, random_state=0)
    return {
        "image": (_mean_colour(X["image"]), make_pipeline(StandardScaler(), LogisticRegression())),
        "text": (X["text"], make_pipeline(TfidfVectorizer(), LogisticRegression(C=10))),
        "audio": (_spectrum_peak(X["audio"]), forest),
        "number": (X[["number"]].to_numpy(), forest),
    }


def test_each_modality_is_weak_and_together_strong(data):
    """Each modality alone beats chance clearly, yet combining them beats every one of them."""
    X, y = data
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    classes = np.unique(y)
    accuracy, log_proba = {}, 0.0
    for name, (features, model) in _cheap_views(X).items():
        proba = cross_val_predict(model, features, y, cv=folds, method="predict_proba")
        accuracy[name] = np.mean(classes[proba.argmax(1)] == y)
        log_proba = log_proba + np.log(np.clip(proba, 1e-3, 1))
    combined = np.mean(classes[log_proba.argmax(1)] == y)

    chance = 1 / 3
    for name, score in accuracy.items():
        assert chance + 0.12 < score < 0.85, (name, accuracy)
    assert combined > max(accuracy.values()) + 0.08, (combined, accuracy)
    assert combined > 0.8, (combined, accuracy)


def test_noise_zero_makes_every_modality_clear(tmp_path):
    X, y = make_multimodal_classification(60, directory=tmp_path, noise=0.0, random_state=0)
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    for name, (features, model) in _cheap_views(X).items():
        score = np.mean(cross_val_predict(model, features, y, cv=folds) == y)
        assert score > 0.8, (name, score)


# --------------------------------------------------------------------------- the video column


@pytest.fixture(scope="module")
def video_data(tmp_path_factory):
    pytest.importorskip("av")
    directory = tmp_path_factory.mktemp("video-data")
    return make_multimodal_classification(24, video=True, noise=0.0, random_state=0, directory=directory)


def test_video_adds_a_column_and_changes_no_other(video_data, tmp_path):
    X, y = video_data
    assert list(X.columns) == [*COLUMNS, "video"]
    assert X["video"].str.endswith(".mp4").all() and all(Path(p).is_file() for p in X["video"])
    plain, plain_y = make_multimodal_classification(24, noise=0.0, random_state=0, directory=tmp_path)
    assert plain_y.equals(y)
    assert plain["text"].equals(X["text"]) and plain["number"].equals(X["number"])
    assert [Path(p).read_bytes() for p in plain["image"]] == [Path(p).read_bytes() for p in X["image"]]


def test_video_clips_decode_and_some_are_silent(video_data):
    from skmm.io import decode_video_audio, decode_video_frames

    X, _ = video_data
    frames = decode_video_frames(X["video"][0], frames=12)
    assert frames.shape == (12, 32, 32, 3)
    sounds = [decode_video_audio(path, sr=16_000) for path in X["video"]]
    silent = sum(sound is None for sound in sounds)
    assert 0 < silent < len(sounds) // 2  # about one clip in four has no sound track
    assert all(abs(len(s) - 16_000) < 2048 for s in sounds if s is not None)  # 1 s


def test_video_motion_and_colour_show_the_class(video_data):
    from skmm.io import decode_video_frames

    X, y = video_data
    directions = {}
    for path, label in zip(X["video"], y):
        frames = decode_video_frames(path, frames=12).astype(float)
        background = np.median(frames.reshape(12, -1, 3), axis=1)[:, None, None, :]
        mask = np.abs(frames - background).sum(-1) > 60  # the square
        rows, cols = np.indices(mask.shape[1:])
        centre = np.array([[cols[m].mean(), rows[m].mean()] for m in mask])
        step = np.sign(np.round(centre[-1] - centre[0]))
        directions.setdefault(label, set()).add(tuple(step))
    assert directions == {"cat": {(1, 0)}, "dog": {(0, 1)}, "bird": {(-1, 0)}}


def test_video_same_seed_same_bytes_and_missing_values(tmp_path):
    pytest.importorskip("av")
    first, _ = make_multimodal_classification(6, video=True, random_state=3, directory=tmp_path / "a")
    again, _ = make_multimodal_classification(6, video=True, random_state=3, directory=tmp_path / "b")
    from skmm.io import decode_video_audio, decode_video_frames

    # the same scenes and sound tracks (H.264's exact bytes vary from run to run on this FFmpeg)
    for path, twin in zip(first["video"], again["video"]):
        frames = decode_video_frames(path, frames=12).astype(int)
        difference = np.abs(frames - decode_video_frames(twin, frames=12).astype(int))
        assert difference.max() <= 16 and difference.mean() < 1.0
        sound = decode_video_audio(path, sr=16000)
        assert (sound is None) == (decode_video_audio(twin, sr=16000) is None)
    holed, _ = make_multimodal_classification(
        10, video=True, missing_rate=0.2, random_state=3, directory=tmp_path / "c"
    )
    assert holed.isna().sum().tolist() == [2, 2, 2, 2, 2]
