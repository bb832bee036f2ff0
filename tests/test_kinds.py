"""The column-kind registry: its built-in entries, and the recipe for adding a kind, proved on a toy.

The toy kind is what a new kind of column (say video) takes: one encoder (a
``BaseEncoder`` subclass declaring ``_kind``), one ``ColumnKind`` registered with
``register_kind``. Inference, the fusion, path resolution, the command line and
the server then handle it with no other change.
"""

import base64
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import skmm
from skmm.encoders import AudioMFCC, BaseEncoder, ImageEncoder, TextEncoder
from skmm.infer import (
    InferenceError,
    column_kinds,
    default_transformer,
    infer_modalities,
    kind_of_transformer,
    resolve_paths,
    sniff_bytes,
)
from skmm.kinds import (
    COLUMN_KINDS,
    ColumnKind,
    get_kind,
    kind_names,
    register_kind,
    unregister_kind,
)

BUILT_IN = ["image", "audio", "video", "text", "numeric", "categorical"]


def png():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def wav():
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(160, dtype=np.float32), 16000, format="WAV")
    return buffer.getvalue()


# --------------------------------------------------------------------------- the toy kind

MAGIC = b"TOY1"


class ToyEncoder(BaseEncoder):
    """Turn a toy file (path or bytes: b"TOY1" then a payload) into 3 features."""

    _kind = "toy"
    _feature_prefix = "toy"
    _decode_in_threads = False

    def __init__(self, *, batch_size=8, device="cpu", cache=None, on_error="raise", verbose=0):
        self.batch_size = batch_size
        self.device = device
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _load_bundle(self):
        return "no model"

    def _model_identity(self, bundle):
        return "toy-v1"

    def _output_dim(self, bundle):
        return 3

    def _read(self, value):
        if isinstance(value, (str, os.PathLike)):
            data = Path(value).read_bytes()
        elif isinstance(value, (bytes, bytearray)):
            data = bytes(value)
        else:
            raise TypeError(f"expected a toy file as a path or bytes, got {type(value).__name__}")
        check_toy(data)
        return data, data

    def _encode_batch(self, items, bundle):
        payloads = [np.frombuffer(data[len(MAGIC):], dtype=np.uint8) for data in items]
        return np.array(
            [[len(p) / 10, p.mean() / 255 if len(p) else 0.0, p[-1] / 255 if len(p) else 0.0]
             for p in payloads],
            dtype=np.float32,
        )


def check_toy(data):
    if not bytes(data).startswith(MAGIC):
        raise ValueError(f"not a toy file (it starts with {bytes(data[:4])!r}, expected {MAGIC!r})")


TOY = ColumnKind(
    "toy",
    ToyEncoder,
    extensions={".toy"},
    sniff=lambda head: head.startswith(MAGIC),
    check_upload=check_toy,
)


@pytest.fixture
def toy_kind():
    register_kind(TOY)
    yield TOY
    unregister_kind("toy")


def toy_bytes(label, i):
    value = 20 if label == "a" else 220
    return MAGIC + bytes([value, (value + 7 * i) % 256, value])


def toy_frame(n=12):
    labels = np.array(["a", "b"] * (n // 2))
    return pd.DataFrame({
        "blob": [toy_bytes(label, i) for i, label in enumerate(labels)],
        "x": np.linspace(0.0, 1.0, n),
    }), labels


# --------------------------------------------------------------------------- the registry


def test_built_in_kinds_in_inference_order():
    assert list(COLUMN_KINDS) == BUILT_IN
    assert kind_names() == (*BUILT_IN, "drop")


@pytest.mark.parametrize(
    "name, suffix, data, bad, value, not_value, encoder",
    [
        ("image", ".png", png(), b"plain text", Image.new("RGB", (2, 2)), "a.png", ImageEncoder),
        ("audio", ".wav", wav(), png(), (np.zeros(8, np.float32), 16000), np.zeros(8), AudioMFCC),
    ],
)
def test_file_kind_entries(name, suffix, data, bad, value, not_value, encoder):
    kind = get_kind(name)
    assert kind.reads_files and not kind.grouped
    assert suffix in kind.extensions and suffix.upper() not in kind.extensions
    assert kind.sniff(data[:32]) and not kind.sniff(b"hello world")
    kind.check_upload(data)  # a readable file passes
    with pytest.raises(ValueError, match=f"not a readable {name}"):
        kind.check_upload(bad)
    assert kind.accepts_value(value) and not kind.accepts_value(not_value)
    made = kind.default_transformer()
    assert isinstance(made, encoder) and made is not kind.default_transformer()
    assert kind_of_transformer(made) == name


def test_tabular_and_text_entries():
    text, numeric, categorical = get_kind("text"), get_kind("numeric"), get_kind("categorical")
    for kind in (text, numeric, categorical):
        assert not kind.reads_files and kind.check_upload is None and not kind.extensions
    assert isinstance(text.default_transformer(), TextEncoder) and not text.grouped
    assert numeric.grouped and categorical.grouped
    assert numeric.accepts_value(1.5) and numeric.accepts_value(np.int64(2))
    assert not numeric.accepts_value(True)  # a boolean is categorical, not a number
    assert categorical.accepts_value(True) and categorical.accepts_value(np.bool_(False))
    assert isinstance(numeric.default_transformer().steps[-1][1], StandardScaler)
    assert isinstance(categorical.default_transformer(), OneHotEncoder)


def test_a_kind_claims_the_scikit_learn_transformers_made_for_it():
    from sklearn.decomposition import PCA
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import KBinsDiscretizer

    assert kind_of_transformer(TfidfVectorizer()) == "text"
    assert kind_of_transformer(OneHotEncoder()) == "categorical"
    assert kind_of_transformer(StandardScaler()) == "numeric"
    assert kind_of_transformer(PCA()) is None
    binned = ColumnKind("binned", KBinsDiscretizer, grouped=True,
                        claims_transformer=lambda t: isinstance(t, KBinsDiscretizer))
    register_kind(binned)
    try:
        assert kind_of_transformer(KBinsDiscretizer()) == "binned"
    finally:
        unregister_kind("binned")
    assert kind_of_transformer(KBinsDiscretizer()) is None


def test_the_file_kinds_and_only_they_take_uploads():
    assert [kind.name for kind in COLUMN_KINDS.values() if kind.takes_uploads] == ["image", "audio", "video"]


def test_register_twice_is_refused_without_replace(toy_kind):
    assert list(COLUMN_KINDS)[-1] == "toy" and kind_names()[-2:] == ("toy", "drop")
    with pytest.raises(ValueError, match="'toy' is already registered.*replace=True"):
        register_kind(ColumnKind("toy", FunctionTransformer))
    wider = ColumnKind("toy", ToyEncoder, extensions={".toy", ".TOY2"}, sniff=TOY.sniff)
    assert register_kind(wider, replace=True) is wider
    assert get_kind("toy").extensions == {".toy", ".toy2"}
    assert list(COLUMN_KINDS) == [*BUILT_IN, "toy"]  # replaced in place


def test_unregistered_and_unknown_names():
    with pytest.raises(ValueError, match="'hologram'.*registered kinds.*'image'"):
        unregister_kind("hologram")
    with pytest.raises(ValueError, match="'hologram'.*register_kind"):
        get_kind("hologram")
    with pytest.raises(ValueError, match="no default transformer for kind 'drop'"):
        default_transformer("drop")
    df = pd.DataFrame({"clip": ["a.holo", "b.holo"]})
    with pytest.raises(InferenceError, match=r"overrides\['clip'\]='hologram' is not a kind.*'categorical'"):
        infer_modalities(df, overrides={"clip": "hologram"})
    with pytest.raises(TypeError, match="expects a ColumnKind, got str"):
        register_kind("hologram")
    assert list(COLUMN_KINDS) == BUILT_IN


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        ({"name": "drop"}, ValueError, "'drop' is reserved"),
        ({"name": "other"}, ValueError, "'other' is reserved"),
        ({"name": "my video"}, ValueError, "one word"),
        ({"name": "a__b"}, ValueError, "single underscores"),
        ({"default_transformer": FunctionTransformer()}, TypeError, "zero-argument callable"),
        ({"extensions": ".mp4"}, TypeError, "collection of suffixes"),
        ({"extensions": {"mp4"}}, ValueError, "start with a dot.*'mp4'"),
        ({"sniff": b"\x00\x00"}, TypeError, "sniff must be a callable"),
    ],
)
def test_column_kind_checks_its_fields(arguments, error, match):
    fields = {"name": "video", "default_transformer": FunctionTransformer, **arguments}
    with pytest.raises(error, match=match):
        ColumnKind(**fields)


# --------------------------------------------------------------------------- the recipe, on a toy


def test_toy_kind_is_inferred_from_paths_bytes_and_sniffed_files(toy_kind, tmp_path):
    (tmp_path / "files").mkdir()
    for i in range(3):
        (tmp_path / "files" / f"sample{i}").write_bytes(toy_bytes("a", i))
    df = pd.DataFrame({
        "by_suffix": [f"clips/{i}.TOY" for i in range(3)],
        "as_bytes": [toy_bytes("b", i) for i in range(3)],
        "no_suffix": [f"files/sample{i}" for i in range(3)],
        "price": [1.0, 2.0, 3.0],
    })
    assert column_kinds(df, base_dir=tmp_path) == {
        "by_suffix": "toy", "as_bytes": "toy", "no_suffix": "toy", "price": "numeric"
    }
    assert sniff_bytes(toy_bytes("a", 0)) == "toy" and sniff_bytes(png()) == "image"
    fusion = infer_modalities(df, base_dir=tmp_path)
    spec = [(name, type(transformer).__name__, columns) for name, transformer, columns in fusion.transformers]
    assert spec == [  # one modality per toy column, as for images: the kind is not grouped
        ("by_suffix", "ToyEncoder", "by_suffix"),
        ("as_bytes", "ToyEncoder", "as_bytes"),
        ("no_suffix", "ToyEncoder", "no_suffix"),
        ("numeric", "Pipeline", ["price"]),
    ]
    fitted = infer_modalities(df[["as_bytes", "price"]]).fit(df[["as_bytes", "price"]])
    assert list(fitted.get_feature_names_out()[:3]) == ["as_bytes__toy0", "as_bytes__toy1", "as_bytes__toy2"]


def test_toy_kind_mixed_with_images_is_refused_by_name(toy_kind):
    df = pd.DataFrame({"mix": ["a.png", "b.toy", "c.toy"]})
    with pytest.raises(InferenceError, match="'mix'.*1 look like image paths and 2 like toy paths"):
        column_kinds(df)


def test_kind_of_transformer_knows_the_toy_encoder(toy_kind):
    assert kind_of_transformer(ToyEncoder()) == "toy"
    assert kind_of_transformer(Pipeline([("toy", ToyEncoder()), ("scale", StandardScaler())])) == "toy"
    assert default_transformer("toy").get_params() == ToyEncoder().get_params()


def test_resolve_paths_resolves_toy_paths(toy_kind, tmp_path):
    df = pd.DataFrame({"blob": ["files/0.toy", "/abs/1.toy"], "tag": ["files/x", "y"]})
    resolved = resolve_paths(df, {"blob": "toy", "tag": "categorical"}, tmp_path)
    assert resolved["blob"].tolist() == [str(tmp_path / "files" / "0.toy"), "/abs/1.toy"]
    assert resolved["tag"].tolist() == ["files/x", "y"]  # not a file column: left alone


def test_a_fitted_toy_pipeline_serves_uploads(toy_kind, tmp_path):
    pytest.importorskip("flask")
    from skmm.serve import create_app

    X, y = toy_frame()
    pipe = Pipeline([("fusion", infer_modalities(X)), ("clf", LogisticRegression())]).fit(X, y)
    path = skmm.save(pipe, tmp_path / "toy.skmm")
    with pytest.raises(skmm.persistence.ModelFileError, match="test_kinds.ToyEncoder"):
        create_app(path, warm_up=False)  # a type from outside skmm needs the user's trust
    client = create_app(path, warm_up=False, trusted=["test_kinds.ToyEncoder"]).test_client()
    assert client.get("/metadata").get_json()["kinds"] == {"blob": "toy", "x": "numeric"}

    rows = [{"blob": base64.b64encode(X["blob"][i]).decode(), "x": float(X["x"][i])} for i in range(4)]
    answer = client.post("/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.get_json()
    labels = [p["label"] for p in answer.get_json()["predictions"]]
    assert labels == pipe.predict(X.iloc[:4]).tolist()

    upload = {"blob": (io.BytesIO(X["blob"][1]), "one.toy"), "x": str(X["x"][1])}
    answer = client.post("/predict", data=upload, content_type="multipart/form-data")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["predictions"][0]["label"] == pipe.predict(X.iloc[[1]])[0]

    bad = {"row": {"blob": base64.b64encode(png()).decode(), "x": 0.5}}
    answer = client.post("/predict", json=bad)
    assert answer.status_code == 422
    assert "'blob'" in answer.get_json()["error"] and "not a toy file" in answer.get_json()["error"]
    upload = {"blob": (io.BytesIO(b"NOPE1234"), "bad.toy"), "x": "0.5"}
    answer = client.post("/predict", data=upload, content_type="multipart/form-data")
    assert answer.status_code == 422 and "'blob'" in answer.get_json()["error"]


def test_cli_fit_accepts_the_toy_kind(toy_kind, tmp_path, monkeypatch, capsys):
    from skmm.cli import main

    data = tmp_path / "data"
    (data / "files").mkdir(parents=True)
    X, y = toy_frame()
    names = []
    for i, blob in enumerate(X["blob"]):
        (data / "files" / f"{i}.bin").write_bytes(blob)
        names.append(f"files/{i}.bin")
    pd.DataFrame({"blob": names, "x": X["x"], "label": y}).to_csv(data / "train.csv", index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths must resolve against the CSV's folder

    model = tmp_path / "toy.skmm"
    status = main(["fit", str(data / "train.csv"), "--target", "label", "--override", "blob=toy",
                   "--max-epochs", "2", "--out", str(model)])
    assert status == 0, capsys.readouterr().err
    assert "  blob  toy\n" in capsys.readouterr().out
    assert skmm.persistence.read_metadata(model)["kinds"] == {"blob": "toy", "x": "numeric"}
    fitted = skmm.load(model, trusted=["test_kinds.ToyEncoder"])  # the toy type lives outside skmm
    encoder = fitted.named_steps["fusion"].named_transformers_["blob"]
    assert isinstance(encoder, ToyEncoder)

    unregister_kind("toy")
    try:
        assert main(["fit", str(data / "train.csv"), "--target", "label", "--override", "blob=toy"]) == 1
        assert "KIND one of image, audio, video, text, numeric, categorical, drop" in capsys.readouterr().err
    finally:
        register_kind(TOY)  # for the fixture's teardown


# --------------------------------------------------------------------------- the video kind (PyAV)


def video_bytes(container="mp4", codec="libx264", n=6, colour=(200, 40, 40)):
    from skmm.datasets import _write_clip

    frames = np.empty((n, 16, 16, 3), dtype=np.uint8)
    frames[:] = colour
    buffer = io.BytesIO()
    _write_clip(buffer, frames, 8, container=container, codec=codec)
    return buffer.getvalue()


def audio_only_matroska():
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as output:
        stream = output.add_stream("libopus", rate=48000)
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.float32), format="fltp", layout="mono")
        chunk.sample_rate = 48000
        for packet in [*stream.encode(chunk), *stream.encode()]:
            output.mux(packet)
    return buffer.getvalue()


def test_video_kind_entry():
    pytest.importorskip("av")
    from skmm.encoders import VideoEncoder

    kind = get_kind("video")
    assert kind.reads_files and not kind.grouped
    assert {".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"} == kind.extensions
    mp4, webm = video_bytes(), video_bytes("webm", "libvpx-vp9")
    assert kind.sniff(mp4[:32]) and kind.sniff(webm[:32])
    assert not kind.sniff(png()[:32]) and not kind.sniff(wav()[:32])
    assert not kind.sniff(b"\x00\x00\x00\x1cftypavif") and not kind.sniff(b"\x00\x00\x00\x20ftypM4A ")
    kind.check_upload(mp4)
    kind.check_upload(webm)
    with pytest.raises(ValueError, match=r"not a readable video \(no video stream in the file \(found audio\)\)"):
        kind.check_upload(audio_only_matroska())  # a WebM holding sound only is not a video
    with pytest.raises(ValueError, match="not a readable video"):
        kind.check_upload(png())
    frames, image = np.zeros((4, 8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)
    assert kind.accepts_value(frames) and not kind.accepts_value(image)
    assert get_kind("image").accepts_value(image) and not get_kind("image").accepts_value(frames)
    made = kind.default_transformer()
    assert isinstance(made, VideoEncoder) and kind_of_transformer(made) == "video"


def test_video_columns_are_told_from_audio_and_images(tmp_path):
    pytest.importorskip("av")
    (tmp_path / "clips").mkdir()
    for i in range(3):
        (tmp_path / "clips" / f"clip{i}").write_bytes(video_bytes())
    df = pd.DataFrame({
        "webm": [f"v/{i}.webm" for i in range(3)],
        "mkv": [f"v/{i}.MKV" for i in range(3)],
        "ogg": [f"a/{i}.ogg" for i in range(3)],
        "opus": [f"a/{i}.opus" for i in range(3)],
        "mp4_bytes": [video_bytes() for _ in range(3)],
        "sniffed": [f"clips/clip{i}" for i in range(3)],
        "frames": [np.zeros((4, 8, 8, 3), np.uint8) for _ in range(3)],
        "pictures": [np.zeros((8, 8, 3), np.uint8) for _ in range(3)],
    })
    assert column_kinds(df, base_dir=tmp_path) == {
        "webm": "video", "mkv": "video", "ogg": "audio", "opus": "audio",
        "mp4_bytes": "video", "sniffed": "video", "frames": "video", "pictures": "image",
    }
    assert sniff_bytes(video_bytes()) == "video" and sniff_bytes(wav()) == "audio"
    fusion = infer_modalities(df[["mp4_bytes", "frames"]])
    assert [type(t).__name__ for _, t, _ in fusion.transformers] == ["VideoEncoder", "VideoEncoder"]


def test_a_fitted_video_pipeline_serves_uploads(tmp_path, tiny_image_model):
    pytest.importorskip("av")
    pytest.importorskip("flask")
    from skmm.encoders import VideoEncoder
    from skmm.fusion import MultimodalFusion
    from skmm.serve import create_app

    colours = [(200, 40, 40), (40, 40, 200)] * 4
    X = pd.DataFrame({"clip": [video_bytes(colour=c) for c in colours], "x": np.linspace(0, 1, 8)})
    y = np.array(["red", "blue"] * 4)
    video = VideoEncoder(image_model=tiny_image_model, frames=2, part="frames", verbose=0)
    fusion = MultimodalFusion([("clip", video, "clip"), ("numeric", StandardScaler(), ["x"])])
    pipe = Pipeline([("fusion", fusion), ("clf", LogisticRegression())]).fit(X, y)
    path = skmm.save(pipe, tmp_path / "video.skmm")
    limit = 2 * max(len(blob) for blob in X["clip"]) + 4096
    client = create_app(path, warm_up=False, max_body_bytes=limit).test_client()
    assert client.get("/metadata").get_json()["kinds"] == {"clip": "video", "x": "numeric"}

    rows = [{"clip": base64.b64encode(X["clip"][i]).decode(), "x": float(X["x"][i])} for i in range(2)]
    answer = client.post("/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.get_json()
    assert [p["label"] for p in answer.get_json()["predictions"]] == pipe.predict(X.iloc[:2]).tolist()

    upload = {"clip": (io.BytesIO(X["clip"][1]), "one.mp4"), "x": str(X["x"][1])}
    answer = client.post("/predict", data=upload, content_type="multipart/form-data")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["predictions"][0]["label"] == pipe.predict(X.iloc[[1]])[0]

    answer = client.post("/predict", json={"row": {"clip": base64.b64encode(png()).decode(), "x": 0.5}})
    assert answer.status_code == 422 and "'clip'" in answer.get_json()["error"]
    assert "not a readable video" in answer.get_json()["error"]
    too_big = {"clip": (io.BytesIO(bytes(limit)), "huge.mp4"), "x": "0.5"}
    answer = client.post("/predict", data=too_big, content_type="multipart/form-data")
    assert answer.status_code == 413  # the upload size limit applies to video files

    # an FFmpeg concat script naming a file of the server's: refused the same whether the file exists
    (tmp_path / "secret.mp4").write_bytes(X["clip"][0])
    errors = []
    for name in ("secret.mp4", "missing.mp4"):
        script = f"ffconcat version 1.0\nfile '{tmp_path / name}'\n".encode()
        answer = client.post("/predict", json={"row": {"clip": base64.b64encode(script).decode(), "x": 0.5}})
        assert answer.status_code == 422 and "not a readable video" in answer.get_json()["error"]
        errors.append(answer.get_json()["error"])
    assert errors[0] == errors[1]


def test_cli_fit_and_predict_on_a_csv_of_video_paths(tmp_path, monkeypatch, capsys):
    pytest.importorskip("av")
    from skmm.cli import main
    from skmm.datasets import make_multimodal_classification

    data = tmp_path / "data"
    X, y = make_multimodal_classification(12, n_classes=2, video=True, noise=0.0, random_state=0,
                                          directory=data)
    relative = [str(Path(p).relative_to(data)) for p in X["video"]]
    pd.DataFrame({"video": relative, "label": y}).to_csv(data / "train.csv", index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths must resolve against the CSV's folder

    model = tmp_path / "video.skmm"
    status = main(["fit", str(data / "train.csv"), "--target", "label", "--max-epochs", "2",
                   "--out", str(model)])
    assert status == 0, capsys.readouterr().err
    assert "  video  video\n" in capsys.readouterr().out
    assert skmm.persistence.read_metadata(model)["kinds"] == {"video": "video"}
    status = main(["predict", str(model), str(data / "train.csv"), "--out", str(tmp_path / "p.csv")])
    assert status == 0, capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 12
