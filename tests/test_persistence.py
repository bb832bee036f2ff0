"""skmm.save / skmm.load / read_metadata: round trip, metadata, atomic writes, refusals."""

import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path

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


def test_load_returns_metadata_from_one_opening(fitted, data, tmp_path, monkeypatch):
    import skmm.persistence._save_load

    path = skmm.save(fitted, tmp_path / "model.skmm")
    opened = []
    original = skmm.persistence._save_load._open  # load looks _open up in its own module
    monkeypatch.setattr(skmm.persistence._save_load, "_open", lambda p: opened.append(p) or original(p))
    loaded, meta = skmm.load(path, return_metadata=True)
    assert len(opened) == 1
    assert meta == read_metadata(path)
    np.testing.assert_array_equal(loaded.predict(data[0]), fitted.predict(data[0]))
    assert not isinstance(skmm.load(path), tuple)


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


# --------------------------------------------------------------------------- files that cannot run code


def craft(target, payload, *, name="model.skops", format_version=2):
    """A model file with a valid checksum around any payload: what an attacker can write."""
    metadata = {
        "format": "skmm-model", "format_version": format_version, "created": "2026-01-01T00:00:00",
        "estimator": "Pipeline", "versions": {"skmm": skmm.__version__}, "input_columns": [],
        "kinds": {}, "modalities": {}, "classes": None,
        "payload": {"name": name, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()},
    }
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr(name, payload)
    return target


class UnpicklingWritesMarker:
    """Unpickling this touches a file: a stand-in for any code an attacker would run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).touch, ())


class SetstateWritesMarker:
    """Creating this from its state touches a file."""

    def __setstate__(self, state):
        Path(state["marker"]).touch()


@pytest.mark.parametrize("trusted", [False, ["pathlib.PosixPath"], True])
def test_a_pickle_payload_never_runs_even_when_trusted(tmp_path, trusted):
    marker = tmp_path / "marker"
    path = craft(tmp_path / "evil.skmm", pickle.dumps(UnpicklingWritesMarker(marker)),
                 name="model.pkl", format_version=1)
    with pytest.raises(ModelFileError, match=r"format version 1 \(a pickle.*Re-fit the model"):
        skmm.load(path, trusted=trusted)
    assert not marker.exists()
    assert read_metadata(path)["format_version"] == 1  # what it is can still be read


def test_skops_payload_with_an_unknown_type_is_refused(tmp_path):
    import skops.io

    marker = tmp_path / "marker"
    state = SetstateWritesMarker()
    state.__dict__["marker"] = str(marker)
    path = craft(tmp_path / "evil.skmm", skops.io.dumps(state))
    name = f"{__name__}.SetstateWritesMarker"
    with pytest.raises(ModelFileError, match=rf"holds types .*'{name}'.*trusted=\['{name}'\]"):
        skmm.load(path)
    assert not marker.exists()
    with pytest.raises(ModelFileError, match="not a fitted scikit-learn estimator"):
        skmm.load(path, trusted=[name])  # the user's explicit trust lets the type load
    assert marker.exists()


def test_a_skorch_net_stored_by_skops_itself_is_refused(fitted, tmp_path):
    """skorch's own __setstate__ unpickles with torch.load: skops must never create a net."""
    import skops.io

    raw_net = fitted.named_steps["clf"].net_  # as another tool would store it: skorch's own state
    path = craft(tmp_path / "raw.skmm", skops.io.dumps(raw_net))
    with pytest.raises(ModelFileError, match=r"holds types .*skmm\.nn\._training\.FusionNetClassifier"):
        skmm.load(path)


def test_skops_stores_the_classifier_as_data(fitted, data):
    """pickle and skops get the trained net as numpy arrays: any skops-based tool can load it."""
    import skops.io

    payload = skops.io.dumps(fitted)
    assert not any("FusionNetClassifier" in name for name in skops.io.get_untrusted_types(data=payload))
    loaded = skops.io.loads(payload, trusted=skmm.persistence.trusted_types())
    np.testing.assert_array_equal(loaded.predict_proba(data[0]), fitted.predict_proba(data[0]))
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(data[0]), fitted.predict_proba(data[0]))
    assert again.named_steps["clf"].history_ is again.named_steps["clf"].net_.history


def test_a_file_holding_no_fitted_estimator_is_refused(tmp_path):
    import skops.io

    number = craft(tmp_path / "int.skmm", skops.io.dumps(3))
    with pytest.raises(ModelFileError, match="holds a builtins.int, not a fitted scikit-learn estimator"):
        skmm.load(number, trusted=True)
    unfitted = craft(tmp_path / "unfitted.skmm", skops.io.dumps(LogisticRegression()))
    with pytest.raises(ModelFileError, match="LogisticRegression that is not fitted"):
        skmm.load(unfitted, trusted=True)


def test_trusted_must_be_a_bool_or_type_names(fitted, tmp_path):
    path = skmm.save(fitted, tmp_path / "model.skmm")
    with pytest.raises(TypeError, match="trusted must be False, True or a list of type names"):
        skmm.load(path, trusted="yes")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from tiny_models import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("bert"), seed=0)


def test_skmm_pipeline_round_trips_exactly_without_trust(tiny_bert, tmp_path):
    import skops.io

    from skmm import MultimodalFusion, TextEncoder

    rng = np.random.default_rng(1)
    y = np.array(["cat", "dog", "bird"] * 8)
    X = pd.DataFrame({"text": [f"a {label} number {i}" for i, label in enumerate(y)],
                      "x": rng.normal(size=len(y))})
    fusion = MultimodalFusion([("text", TextEncoder(model=tiny_bert, verbose=0), "text"),
                               ("numbers", "passthrough", ["x"])])
    clf = MultimodalClassifier(fusion="attention", loss="focal", class_weight="balanced",
                               optimizer="adamw", early_stopping=True, max_epochs=4,
                               random_state=0, device="cpu")
    pipe = Pipeline([("fusion", fusion), ("clf", clf)]).fit(X, y)
    path = skmm.save(pipe, tmp_path / "model.skmm")
    with zipfile.ZipFile(path) as archive:
        payload = archive.read("model.skops")
    assert skmm.persistence.untrusted_types(payload) == []
    loaded = skmm.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    clf_loaded = loaded.named_steps["clf"]
    assert clf_loaded.history_ is clf_loaded.net_.history
    assert clf_loaded.history_[:, "train_loss"] == pipe.named_steps["clf"].history_[:, "train_loss"]
    # the rebuilt net trains on as the original would: same weights, optimizer state and history
    original = pickle.loads(pickle.dumps(pipe))
    for model in (original, loaded):
        model.set_params(clf__warm_start=True).fit(X, y)
    assert len(loaded.named_steps["clf"].history_) == len(original.named_steps["clf"].history_) > 4
    np.testing.assert_allclose(loaded.predict_proba(X), original.predict_proba(X), atol=1e-6)
    assert skops.io.get_untrusted_types(data=payload)  # skops alone would refuse: skmm's list decides


# --------------------------------------------------------------------------- damaged files


def flip_byte(path, target, offset):
    content = bytearray(path.read_bytes())
    content[offset] ^= 0xFF
    target.write_bytes(bytes(content))
    return target


def test_every_flipped_byte_gives_model_file_error(tmp_path):
    model = LogisticRegression().fit(pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}), [0, 1, 0, 1])
    path = skmm.save(model, tmp_path / "model.skmm")
    size = path.stat().st_size
    failures = []
    for offset in range(0, size, max(1, size // 400)):
        damaged = flip_byte(path, tmp_path / "damaged.skmm", offset)
        try:
            skmm.load(damaged)
        except (ModelFileError, FileNotFoundError):
            continue
        except Exception as exc:  # anything else escaped
            failures.append((offset, repr(exc)))
    assert failures == []


def test_odd_metadata_types_give_model_file_error(fitted, tmp_path):
    path = skmm.save(fitted, tmp_path / "model.skmm")
    odd = {
        "versions": lambda m: m.update(versions=["skmm", "0.1.0"]),
        "payload": lambda m: m.update(payload="model.skops"),
        "format_version": lambda m: m.update(format_version="2"),
        "kinds": lambda m: m.update(kinds=["photo"]),
        "payload.size": lambda m: m["payload"].update(size="big"),
        "payload.name": lambda m: m["payload"].update(name="../../etc/passwd"),
        "input_columns": lambda m: m.update(input_columns=[1, 2]),
    }
    for field, change in odd.items():
        damaged = rewrite(path, tmp_path / "odd.skmm", metadata=change)
        with pytest.raises(ModelFileError, match=rf"damaged: in metadata.json, {field} should be"):
            skmm.load(damaged)
        with pytest.raises(ModelFileError):
            read_metadata(damaged)


def test_metadata_that_inflates_past_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(skmm.persistence._format, "MAX_METADATA_BYTES", 10_000)
    path = tmp_path / "bomb.skmm"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps({"format": "skmm-model", "pad": " " * 100_000}))
        archive.writestr("model.skops", b"")
    assert path.stat().st_size < 2_000
    reads = []
    original = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: reads.append(a) or original(self, *a, **k))
    with pytest.raises(ModelFileError, match=r"'metadata.json' inflates to 1000\d\d bytes, more than the limit of 10000"):
        read_metadata(path)
    assert reads == []  # refused from the declared size, nothing inflated


def test_member_that_lies_about_its_size_is_damaged(fitted, tmp_path):
    path = skmm.save(fitted, tmp_path / "model.skmm")
    content = bytearray(path.read_bytes())
    entry = content.index(b"PK\x01\x02")  # central directory entry of metadata.json (written first)
    size = int.from_bytes(content[entry + 24: entry + 28], "little")
    content[entry + 24: entry + 28] = (size // 2).to_bytes(4, "little")  # claims half its size
    liar = tmp_path / "liar.skmm"
    liar.write_bytes(bytes(content))
    with pytest.raises(ModelFileError, match="damaged"):
        skmm.load(liar)


def test_zip_bomb_payload_is_refused_quickly(tmp_path, monkeypatch):
    monkeypatch.setattr(skmm.persistence._format, "MAX_PAYLOAD_BYTES", 10 * 1024**2)
    bomb = b"\0" * (20 * 1024**2)  # 20 MiB of zeros deflate to about 20 kB
    path = craft(tmp_path / "bomb.skmm", bomb)
    with pytest.raises(ModelFileError, match="inflates to 20971520 bytes, more than the limit"):
        skmm.load(path)
    monkeypatch.setattr(skmm.persistence._format, "MAX_PAYLOAD_BYTES", 1024**3)
    with pytest.raises(ModelFileError, match=r"inflates \d+ bytes to 20971520 \(more than 200 times\)"):
        skmm.load(path)


def test_zip_bomb_inside_the_skops_payload_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(skmm.persistence._format, "MAX_PAYLOAD_BYTES", 1024**2)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", b" " * (4 * 1024**2))
    path = craft(tmp_path / "inner.skmm", inner.getvalue())
    with pytest.raises(ModelFileError, match="'schema.json' inflates to 4194304 bytes"):
        skmm.load(path)


def test_a_net_trained_on_cuda_loads_on_the_cpu(fitted, data, tmp_path, monkeypatch):
    import skops.io
    import torch

    from skmm import _net_state

    encode_net = _net_state._Encoder._net

    def as_if_saved_on_a_gpu(encoder, net):
        state = encode_net(encoder, net)
        state.params["device"] = "cuda"
        return state

    monkeypatch.setattr(_net_state._Encoder, "_net", as_if_saved_on_a_gpu)
    payload = skops.io.dumps(fitted)
    monkeypatch.undo()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = craft(tmp_path / "gpu.skmm", payload)
    with pytest.warns(UserWarning, match="trained on 'cuda'.*loaded on the CPU"):
        loaded = skmm.load(path)
    assert loaded.named_steps["clf"].net_.device == "cpu"
    np.testing.assert_array_equal(loaded.predict_proba(data[0]), fitted.predict_proba(data[0]))
    assert fitted.named_steps["clf"].net_.device == "cpu"  # saving never changes the estimator


def _zip_of(**members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name.replace("_", "."), content)
    return buffer.getvalue()


@pytest.mark.parametrize("payload", [
    b"not a zip at all",
    _zip_of(other_txt=b"x"),
    _zip_of(schema_json=b"{not json"),
    _zip_of(schema_json=b"[" * 100_000 + b"]" * 100_000),
    _zip_of(schema_json=json.dumps({"__class__": "int", "__module__": "builtins",
                                    "__loader__": "NoSuchNode", "protocol": 2})),
], ids=["not-zip", "no-schema", "bad-json", "deep-json", "unknown-node"])
def test_payloads_that_are_not_skops_give_model_file_error(tmp_path, payload):
    path = craft(tmp_path / "odd.skmm", payload)  # a valid checksum: only the content is wrong
    with pytest.raises(ModelFileError, match="damaged|could not be loaded"):
        skmm.load(path)


def _with_net_params(fitted, monkeypatch, **changes):
    """skops bytes of ``fitted`` whose stored net names other classes or functions: a crafted file."""
    import skops.io

    from skmm import _net_state

    encode_net = _net_state._Encoder._net

    def crafted(encoder, net):
        state = encode_net(encoder, net)
        state.params.update(changes)
        return state

    with monkeypatch.context() as patch:
        patch.setattr(_net_state._Encoder, "_net", crafted)
        return skops.io.dumps(fitted)


def test_a_file_cannot_make_loading_import_a_module(fitted, tmp_path, monkeypatch):
    """The attack of the trust review: a function of skmm's that imports by name, as the net's module."""
    import skmm.nn

    (tmp_path / "planted.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    payload = _with_net_params(fitted, monkeypatch, module=skmm.nn._import, module__path="planted:x")
    path = craft(tmp_path / "evil.skmm", payload)
    with pytest.raises(ModelFileError, match=r"holds types .*'skmm\.nn\._import'"):
        skmm.load(path)
    with pytest.raises(ModelFileError, match=r"module= 'skmm\.nn\._import' is not one skmm builds"):
        skmm.load(path, trusted=["skmm.nn._import"])  # even trusted, a function is no network class
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("slot, value", [
    ("module", "print"),
    ("module", "fusion"),
    ("criterion", "batches"),
    ("optimizer", "print"),
    ("iterator_train", "softmax"),
    ("predict_nonlinearity", "print"),
    ("module__fusion", "network"),
])
def test_allow_listed_objects_are_refused_outside_their_slot(fitted, data, tmp_path, monkeypatch, slot, value):
    from skmm.classifier import _softmax
    from skmm.fusion import MultimodalFusion
    from skmm.nn._network import FusionNetwork
    from skmm.nn._training import TensorBatches

    objects = {"print": print, "fusion": MultimodalFusion, "batches": TensorBatches, "softmax": _softmax,
               "network": FusionNetwork}
    path = craft(tmp_path / "odd.skmm", _with_net_params(fitted, monkeypatch, **{slot: objects[value]}))
    with pytest.raises(ModelFileError, match=rf"{slot}= '.*' is not one skmm builds its network from"):
        skmm.load(path)
    np.testing.assert_array_equal(  # an untouched file still loads
        skmm.load(craft(tmp_path / "ok.skmm", _with_net_params(fitted, monkeypatch))).predict(data[0]),
        fitted.predict(data[0]),
    )


def test_trusted_types_are_named_publicly_and_hold_no_function_but_the_softmax():
    names = skmm.persistence.trusted_types()
    assert "skmm.classifier.MultimodalClassifier" in names and "skmm.nn._import" not in names
    functions = {name for name in names if name.rpartition(".")[2].lstrip("_")[:1].islower()}
    assert functions == {"skmm.classifier._softmax", "builtins.print", "numpy.dtype"}


def test_a_model_refuses_weights_other_than_those_it_was_fitted_with(tmp_path):
    """The ecosystem client's finding: new weights behind a model's name moved probabilities silently."""
    from tiny_models import save_tiny_bert

    from skmm import TextEncoder
    from skmm.exceptions import WeightsChangedError, WeightsChangedWarning

    folder = save_tiny_bert(tmp_path / "bert", seed=0)
    X = pd.DataFrame({"note": [f"{'good' if i % 2 else 'bad'} thing number {i}" for i in range(12)]})
    y = np.array(["a", "b"] * 6)
    fusion = skmm.MultimodalFusion([("note", TextEncoder(folder, verbose=0, cache=None), "note")])
    pipe = Pipeline([("fusion", fusion), ("clf", LogisticRegression())]).fit(X, y)
    path = skmm.save(pipe, tmp_path / "model.skmm")
    identity = read_metadata(path)["encoder_models"]["note"]
    assert identity.startswith(f"{folder}@") and len(identity.rpartition("@")[2]) == 64
    np.testing.assert_array_equal(skmm.load(path).predict_proba(X), pipe.predict_proba(X))

    save_tiny_bert(folder, seed=1)  # other weights under the same folder
    for loaded in (skmm.load(path), pickle.loads(pickle.dumps(pipe))):
        with pytest.raises(WeightsChangedError, match=r"TextEncoder was fitted with the model .* and now loads"):
            loaded.predict(X)
    relaxed = skmm.load(path, weights_changed="warn")
    with pytest.warns(WeightsChangedWarning, match="weights_changed='warn'"):
        relaxed.predict(X)
    with pytest.raises(ValueError, match="weights_changed must be 'raise' or 'warn'"):
        skmm.load(path, weights_changed="ignore")


def test_a_save_killed_mid_write_leaves_nothing_behind_the_next_save(fitted, tmp_path):
    import os
    import time

    old = tmp_path / ".model.skmm.k1ll3d.tmp"  # what kill -9 during skmm.save leaves
    old.write_bytes(b"half a model")
    an_hour_ago = time.time() - skmm.persistence.STALE_TEMPORARY_SECONDS - 60
    os.utime(old, (an_hour_ago, an_hour_ago))
    young = tmp_path / ".model.skmm.running.tmp"  # a save running now in another process
    young.write_bytes(b"being written")
    skmm.save(fitted, tmp_path / "model.skmm")
    assert not old.exists() and young.exists()
