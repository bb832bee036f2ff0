"""skmm.save / skmm.load / read_metadata: round trip, metadata, atomic writes, refusals."""

import io
import json
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import skmm
from skmm import ImageEncoder, MultimodalClassifier, infer_modalities
from skmm.persistence import ModelFileError, read_metadata


def png(rgb):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), rgb).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 16
    y = np.array(["no", "yes"] * (n // 2))
    X = pd.DataFrame({
        "photo": [png((200, 30, 30) if v == "yes" else (30, 30, 200)) for v in y],
        "review": [f"{'great' if v == 'yes' else 'awful'} product number {i}" for i, v in enumerate(y)],
        "price": rng.normal(size=n) + (y == "yes"),
        "colour": rng.choice(["red", "blue"], n),
        "unused": np.arange(n),
    })
    return X, y


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    fusion = infer_modalities(X, overrides={"review": TfidfVectorizer(), "unused": "drop"})
    clf = MultimodalClassifier(max_epochs=3, random_state=0, device="cpu")
    return Pipeline([("fusion", fusion), ("clf", clf)]).fit(X, y)


def test_round_trip_predictions_and_metadata(fitted, data, tmp_path):
    X, _ = data
    path = skmm.save(fitted, tmp_path / "model.skmm")
    assert path == (tmp_path / "model.skmm").absolute()
    loaded = skmm.load(path)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X), atol=1e-6)

    meta = read_metadata(path)
    assert meta["format"] == "skmm-model" and meta["format_version"] == 2
    assert meta["versions"]["skmm"] == skmm.__version__
    import sklearn
    import torch

    assert meta["versions"]["scikit-learn"] == sklearn.__version__
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["input_columns"] == ["photo", "review", "price", "colour"]  # 'unused' is dropped
    assert meta["kinds"] == {"photo": "image", "review": "text", "price": "numeric",
                             "colour": "categorical"}
    assert meta["modalities"] == {"photo": ["photo"], "review": ["review"], "numeric": ["price"],
                                  "categorical": ["colour"]}
    assert meta["classes"] == ["no", "yes"]
    with zipfile.ZipFile(path) as archive:
        payload = archive.read("model.skops")
    import hashlib

    assert meta["payload"] == {"name": "model.skops", "size": len(payload),
                               "sha256": hashlib.sha256(payload).hexdigest()}


def test_encoder_weights_are_not_pickled(fitted, tmp_path):
    path = skmm.save(fitted, tmp_path / "model.skmm")
    assert read_metadata(path)["payload"]["size"] < 5_000_000  # EfficientNet-Lite0 weights alone are ~18 MB
    encoder = skmm.load(path).named_steps["fusion"].named_transformers_["photo"]
    assert isinstance(encoder, ImageEncoder)


def test_kinds_argument_wins(fitted, tmp_path):
    path = skmm.save(fitted, tmp_path / "m.skmm", kinds={"review": "categorical"})
    assert read_metadata(path)["kinds"]["review"] == "categorical"


def test_plain_estimator_without_fusion(tmp_path):
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(X, [0, 1, 0, 1])
    meta = read_metadata(skmm.save(model, tmp_path / "lr.skmm"))
    assert meta["input_columns"] == ["a", "b"] and meta["classes"] == [0, 1]
    assert meta["kinds"] == {"a": "other", "b": "other"}


def test_replaces_existing_file_atomically_and_leaves_no_temporary(fitted, tmp_path):
    path = tmp_path / "model.skmm"
    path.write_bytes(b"old")
    skmm.save(fitted, path)
    assert zipfile.is_zipfile(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.skmm"]


def test_failed_save_keeps_old_file_and_leaves_nothing(data, tmp_path):
    X, y = data
    unpicklable = Pipeline([
        ("f", FunctionTransformer(lambda Z: Z[["price"]])), ("clf", LogisticRegression())
    ]).fit(X, y)
    path = tmp_path / "model.skmm"
    path.write_bytes(b"previous model")
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        skmm.save(unpicklable, path)
    assert path.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.skmm"]


def test_save_refuses_unfitted_and_bad_paths(fitted, tmp_path):
    with pytest.raises(NotFittedError, match="fitted.*call fit"):
        skmm.save(Pipeline([("clf", LogisticRegression())]), tmp_path / "m.skmm")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        skmm.save(fitted, tmp_path / "missing" / "m.skmm")
    with pytest.raises(IsADirectoryError, match="folder"):
        skmm.save(fitted, tmp_path)


def rewrite(path, target, metadata=None, payload=None):
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("metadata.json"))
        body = archive.read("model.skops")
    if metadata is not None:
        metadata(meta)
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("metadata.json", json.dumps(meta))
        archive.writestr("model.skops", body if payload is None else payload(body))
    return target


def test_incompatible_version_is_refused(fitted, tmp_path):
    path = skmm.save(fitted, tmp_path / "model.skmm")
    old = rewrite(path, tmp_path / "old.skmm",
                  metadata=lambda m: m["versions"].update(skmm="9.4.1"))
    with pytest.raises(ModelFileError, match=r"saved by skmm 9\.4\.1.*this is skmm .*skmm==9\.4\.1"):
        skmm.load(old)
    assert read_metadata(old)["versions"]["skmm"] == "9.4.1"  # still inspectable
    newer = rewrite(path, tmp_path / "newer.skmm", metadata=lambda m: m.update(format_version=7))
    with pytest.raises(ModelFileError, match="format version 7"):
        skmm.load(newer)


def test_bad_checksum_is_refused(fitted, tmp_path):
    path = skmm.save(fitted, tmp_path / "model.skmm")
    damaged = rewrite(path, tmp_path / "damaged.skmm",
                      payload=lambda body: body[:-10] + bytes(10))
    with pytest.raises(ModelFileError, match="damaged.*sha256.*expects"):
        skmm.load(damaged)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"just some text\n", "not an skmm model file.*zip archive.*b'just some text"),
        ("zip-without-metadata", "not an skmm model file.*found a zip archive holding"),
        ("wrong-format", "format='skmm-model', found 'other'"),
        ("bad-json", "metadata.json is not valid JSON"),
    ],
)
def test_not_an_skmm_file(tmp_path, content, match):
    path = tmp_path / "file.skmm"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            if content == "zip-without-metadata":
                archive.writestr("something.txt", "hello")
            elif content == "wrong-format":
                archive.writestr("metadata.json", json.dumps({"format": "other"}))
                archive.writestr("model.pkl", b"")
            else:
                archive.writestr("metadata.json", "{not json")
                archive.writestr("model.pkl", b"")
    with pytest.raises(ModelFileError, match=match):
        skmm.load(path)
    with pytest.raises(ValueError):
        read_metadata(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        skmm.load(tmp_path / "nope.skmm")


def test_loading_does_not_touch_the_network(fitted, tmp_path, monkeypatch):
    path = skmm.save(fitted, tmp_path / "model.skmm")
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("network access while loading")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert skmm.load(path).classes_.tolist() == ["no", "yes"]
