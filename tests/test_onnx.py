"""skmm.onnx: exported graphs predict what the pipeline predicts, from the folder alone."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import (AudioEncoder, AudioMFCC, ImageEncoder, InputError, InputWarning, MultimodalClassifier,
                  MultimodalFusion, TextEncoder)
from skmm.nn import FUSIONS

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

from skmm.onnx import OnnxModel, export_onnx  # noqa: E402

WORDS = ["red", "blue", "green", "car", "cat", "dog", "bird", "sat", "ran", "mat"]


def frame(n=48, seed=0):
    """Rows of every kind: two images, a text, an audio clip, a number and a category, some missing."""
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (24 + i % 5, 30, 3), dtype=np.uint8) for i in range(n)]
    df = pd.DataFrame({
        "photo": images,
        "sketch": list(images[::-1]),
        "caption": [" ".join(rng.choice(WORDS, 3 + i % 4)) for i in range(n)],
        "clip": [(0.1 * rng.normal(size=4000 + 100 * (i % 3))).astype(np.float32) for i in range(n)],
        "price": rng.normal(size=n),
        "colour": rng.choice(["red", "blue", "green"], n),
    })
    df["clip"] = [(wave, 16000) for wave in df["clip"]]
    df.loc[2, "photo"] = None
    df.loc[3, "caption"] = ""
    df.loc[4, "price"] = np.nan
    df.loc[5] = [None, None, None, None, np.nan, None]  # nothing at all: the class prior
    return df, rng.integers(0, 3, n)


@pytest.fixture(scope="module")
def fitted(tiny_text_model, tiny_image_model):
    df, y = frame()
    fusion = MultimodalFusion([
        ("photo", ImageEncoder(verbose=0), "photo"),
        ("sketch", ImageEncoder(tiny_image_model, verbose=0), "sketch"),
        ("caption", TextEncoder(tiny_text_model, verbose=0), "caption"),
        ("clip", AudioMFCC(verbose=0), "clip"),
        ("price", make_pipeline(SimpleImputer(), StandardScaler()), ["price"]),
        ("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
    ])
    clf = MultimodalClassifier(max_epochs=3, verbose=0, random_state=0)
    pipe = Pipeline([("fusion", fusion), ("clf", clf)]).fit(df, np.array(["cat", "dog", "eel"])[y])
    return pipe, df


@pytest.fixture(scope="module")
def exported(fitted, tmp_path_factory):
    pipe, _ = fitted
    return export_onnx(pipe, tmp_path_factory.mktemp("export") / "model")


def test_every_modality_predicts_as_the_pipeline(fitted, exported):
    pipe, df = fitted
    model = OnnxModel(exported)
    new, _ = frame(n=20, seed=1)  # rows the pipeline never saw, missing values included
    for X in (df, new):
        np.testing.assert_allclose(model.transform(X), pipe[0].transform(X).to_numpy(), atol=1e-4)
        np.testing.assert_allclose(model.predict_proba(X), pipe.predict_proba(X), atol=1e-4)
        assert (model.predict(X) == pipe.predict(X)).all()
    assert list(model.classes_) == ["cat", "dog", "eel"]


def test_manifest_says_which_column_feeds_which_graph(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["input_columns"] == ["photo", "sketch", "caption", "clip", "price", "colour"]
    parts = {part["modality"]: part for part in manifest["parts"]}
    assert parts["photo"]["inputs"] == {"pixels": ["uint8", ["batch", 224, 224, 3]]}
    assert set(parts["caption"]["inputs"]) == {"input_ids", "attention_mask"}
    assert (exported / parts["caption"]["assets"] / "tokenizer.json").is_file()
    assert parts["clip"]["graph"] is None and "AudioMFCC" in parts["clip"]["preprocessing"]
    assert parts["colour"]["inputs"] == {"input": ["string", ["batch", 1]]}
    for part in manifest["parts"]:
        assert part["graph"] is None or (exported / part["graph"]).is_file()
    ends = [part["features"] for part in manifest["parts"]]
    assert ends[0][0] == 0 and ends[-1][1] == manifest["n_features"]
    assert all(a[1] == b[0] for a, b in zip(ends, ends[1:]))


def test_runtime_never_loads_the_torch_models(exported, fitted, monkeypatch):
    from skmm.encoders import _image, _text

    def refuse(*args):
        raise AssertionError("the ONNX runtime loaded a torch model")

    monkeypatch.setattr(_image, "_load_efficientnet", refuse)
    monkeypatch.setattr(_image, "_load_transformers", refuse)
    monkeypatch.setattr(_text, "_load_text_model", refuse)
    pipe, df = fitted
    np.testing.assert_allclose(OnnxModel(exported).predict_proba(df.head(6)), pipe.predict_proba(df.head(6)), atol=1e-4)


@pytest.mark.parametrize("fusion", list(FUSIONS))
@pytest.mark.parametrize("n_classes", [2, 4])
def test_every_fusion_strategy_exports(fusion, n_classes, tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 7)), columns=[f"a__{i}" for i in range(3)] + [f"b__{i}" for i in range(4)])
    X.iloc[:6, :3] = np.nan  # modality a absent
    X.iloc[6:9, :] = np.nan  # every modality absent
    X.iloc[9, 4] = np.nan  # one feature missing
    y = rng.integers(0, n_classes, 80)
    clf = MultimodalClassifier(fusion=fusion, max_epochs=2, verbose=0, random_state=0).fit(X, y)
    model = OnnxModel(export_onnx(clf, tmp_path / "model"))
    np.testing.assert_allclose(model.predict_proba(X), clf.predict_proba(X), atol=1e-4)
    far = X.fillna(0) * 1e9  # clipped to the same range on both sides
    np.testing.assert_allclose(model.predict_proba(far), clf.predict_proba(far), atol=1e-4)


def test_the_network_alone_exports(tmp_path):
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(60, 4)), columns=["a__0", "a__1", "b__0", "b__1"])
    y = rng.integers(0, 3, 60)
    clf = MultimodalClassifier(linear_weight=0, unimodal_loss=0, max_epochs=2, verbose=0, random_state=0).fit(X, y)
    model = OnnxModel(export_onnx(clf, tmp_path / "model"))
    np.testing.assert_allclose(model.predict_proba(X), clf.predict_proba(X), atol=1e-4)


def test_a_bad_row_is_named_as_by_the_encoder(exported, fitted):
    _, df = fitted
    bad = df.head(3).copy()
    bad.at[1, "photo"] = b"not an image"
    with pytest.raises(InputError, match="row 1"):
        OnnxModel(exported).predict_proba(bad)


def test_missing_column_and_wrong_input_are_named(exported, fitted):
    _, df = fitted
    model = OnnxModel(exported)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['caption'\]"):
        model.predict(df.drop(columns="caption"))
    with pytest.raises(TypeError, match="pandas DataFrame"):
        model.predict(df.to_numpy())


def test_existing_folder_is_kept_unless_overwrite(fitted, exported):
    pipe, _ = fitted
    before = (exported / "manifest.json").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_onnx(pipe, exported)
    assert (exported / "manifest.json").read_bytes() == before


def test_interrupted_export_leaves_nothing(fitted, tmp_path, monkeypatch):
    from skmm.onnx import _export

    calls = []
    original = _export._export_module

    def interrupted(module, inputs, outputs, path, opset):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(module, inputs, outputs, path, opset)

    monkeypatch.setattr(_export, "_export_module", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(fitted[0], tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_a_model_with_an_operator_onnx_lacks_is_named_and_leaves_nothing(tmp_path, capfd):
    """DINOv2 with registers resizes its position embeddings with antialiasing, which no opset expresses."""
    import torch
    import transformers as hf

    folder = tmp_path / "dinov2-registers"
    torch.manual_seed(0)
    hf.Dinov2WithRegistersModel(hf.Dinov2WithRegistersConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2,
    )).save_pretrained(folder)
    hf.ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    frame = pd.DataFrame({"picture": [np.full((32, 32, 3), i * 20, dtype=np.uint8) for i in range(8)]})
    pipe = make_pipeline(MultimodalFusion([("picture", ImageEncoder(str(folder), verbose=0), "picture")]),
                         MultimodalClassifier(max_epochs=1, verbose=0, random_state=0)).fit(frame, [0, 1] * 4)
    capfd.readouterr()
    with pytest.raises(ValueError, match=r"'picture' modality's ImageEncoder\(model=.*cannot be written as ONNX"
                                         r".*upsample.*serve the pipeline with skmm"):
        export_onnx(pipe, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    assert len(capfd.readouterr().out) < 1000  # not the whole traced graph


def test_weights_changed_since_fit_are_not_exported(tmp_path):
    from tiny_models import save_tiny_bert

    from skmm.exceptions import WeightsChangedError

    folder = save_tiny_bert(tmp_path / "bert", seed=0)
    X = pd.DataFrame({"note": [f"{WORDS[i % 10]} {WORDS[(3 * i) % 10]} thing" for i in range(12)]})
    fusion = MultimodalFusion([("note", TextEncoder(folder, verbose=0, cache=None), "note")])
    pipe = make_pipeline(fusion, MultimodalClassifier(max_epochs=2, random_state=0)).fit(X, ["a", "b"] * 6)
    save_tiny_bert(folder, seed=1)  # other weights under the same name: the pipeline's features are gone
    with pytest.raises(WeightsChangedError, match="TextEncoder was fitted with the model"):
        export_onnx(pipe, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    save_tiny_bert(folder, seed=0)  # the weights it was fitted with: exported, and equal
    model = OnnxModel(export_onnx(pipe, tmp_path / "model"))
    np.testing.assert_allclose(model.predict_proba(X), pipe.predict_proba(X), atol=1e-4)


def test_what_cannot_be_exported_is_named(fitted):
    pipe, _ = fitted
    with pytest.raises(ValueError, match="MultimodalFusion -> StandardScaler -> MultimodalClassifier"):
        export_onnx(Pipeline([("f", pipe[0]), ("s", StandardScaler()), ("c", pipe[-1])]), "unused")
    with pytest.raises(ValueError, match="got StandardScaler"):
        export_onnx(StandardScaler(), "unused")


def test_a_folder_that_is_not_an_export_is_refused(tmp_path, exported):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        OnnxModel(tmp_path)
    manifest = json.loads((exported / "manifest.json").read_text())
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ValueError, match="newer skmm"):
        OnnxModel(newer)


def text_vectorizer_pipeline(texts):
    from sklearn.feature_extraction.text import TfidfVectorizer

    X = pd.DataFrame({"note": texts, "size": np.arange(len(texts), dtype=float)})
    fusion = MultimodalFusion([("note", TfidfVectorizer(), "note"), ("size", "passthrough", ["size"])])
    clf = MultimodalClassifier(max_epochs=2, verbose=0, random_state=0)
    return Pipeline([("fusion", fusion), ("clf", clf)]).fit(X, np.arange(len(texts)) % 2), X


def test_a_text_vectorizer_exports_when_onnx_tokenizes_as_scikit_learn(tmp_path):
    pipe, X = text_vectorizer_pipeline([" ".join(WORDS[i % 7 : i % 7 + 3]).title() + "!" for i in range(30)])
    model = OnnxModel(export_onnx(pipe, tmp_path / "model"))
    np.testing.assert_allclose(model.predict_proba(X), pipe.predict_proba(X), atol=1e-4)


def test_a_text_vectorizer_with_words_onnx_splits_otherwise_is_refused(tmp_path):
    pipe, _ = text_vectorizer_pipeline(["un café crème", "the red car", "été chaud"] * 10)
    with pytest.raises(ValueError, match="not ASCII.*TextEncoder"):
        export_onnx(pipe, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def run_skl2onnx(model, X):
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString())
    if isinstance(X, pd.DataFrame):  # one input per column, typed as skl2onnx guessed from the frame
        types = {"tensor(double)": np.float64, "tensor(float)": np.float32, "tensor(string)": object}
        feeds = {value.name: X[[value.name]].to_numpy().astype(types[value.type])
                 for value in session.get_inputs()}
    else:
        feeds = {session.get_inputs()[0].name: X}
    return session.run(None, feeds)


def test_skl2onnx_converts_the_classifier_once_registered():
    from skl2onnx import to_onnx

    from skmm.onnx import register_converters

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    clf = MultimodalClassifier(max_epochs=2, verbose=0, random_state=0).fit(X, rng.integers(0, 3, 60))
    register_converters()
    register_converters()  # twice changes nothing
    labels, proba = run_skl2onnx(to_onnx(clf, X[:1], options={"zipmap": False}), X)
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-4)
    assert (labels == clf.predict(X)).all()


def test_skl2onnx_converts_a_pipeline_of_tabular_modalities():
    from skl2onnx import to_onnx

    from skmm.onnx import register_converters

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"height": rng.normal(size=60), "weight": rng.normal(size=60),
                      "colour": rng.choice(["red", "blue", "green"], 60)})
    y = np.array(["cat", "dog"])[rng.integers(0, 2, 60)]
    fusion = MultimodalFusion([("size", StandardScaler(), ["height", "weight"]),
                               ("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"])])
    pipe = Pipeline([("fusion", fusion), ("clf", MultimodalClassifier(max_epochs=2, verbose=0, random_state=0))])
    pipe.fit(X, y)
    register_converters()
    labels, proba = run_skl2onnx(to_onnx(pipe, X[:1], options={"zipmap": False}), X)
    np.testing.assert_allclose(proba, pipe.predict_proba(X), atol=1e-4)
    assert labels.tolist() == pipe.predict(X).tolist()


@pytest.mark.parametrize("part", ["all", "frames", "audio"])
def test_a_video_column_predicts_as_the_pipeline(part, tiny_image_model, tmp_path):
    pytest.importorskip("av")
    import io

    from skmm.datasets import _write_clip
    from skmm.encoders import VideoEncoder

    rng = np.random.default_rng(0)
    clips = []
    for i in range(16):
        frames = np.full((10, 32, 48, 3), (25 * (i % 10), 80, 200 - 10 * i), dtype=np.uint8)
        frames += rng.integers(0, 20, frames.shape, dtype=np.uint8)
        buffer = io.BytesIO()
        sound = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * np.arange(8000) / 16000) if i % 4 else None
        _write_clip(buffer, frames, 10, sound=sound)
        clips.append(buffer.getvalue())
    X = pd.DataFrame({"clip": clips, "size": rng.normal(size=16)})
    X.loc[3, "clip"] = None
    fusion = MultimodalFusion([("clip", VideoEncoder(frames=3, image_model=tiny_image_model, part=part, verbose=0),
                                "clip"), ("size", StandardScaler(), ["size"])])
    pipe = Pipeline([("fusion", fusion), ("clf", MultimodalClassifier(max_epochs=2, verbose=0, random_state=0))])
    pipe.fit(X, np.arange(16) % 2)
    model = OnnxModel(export_onnx(pipe, tmp_path / "model"))
    np.testing.assert_allclose(model.transform(X), pipe[0].transform(X).to_numpy(), atol=1e-4)
    np.testing.assert_allclose(model.predict_proba(X), pipe.predict_proba(X), atol=1e-4)


@pytest.mark.parametrize("change", ["graph", "assets", "params"])
def test_a_tampered_manifest_is_refused(exported, tmp_path, change):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(exported, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    photo = manifest["parts"][0]
    if change == "graph":
        photo["graph"] = "../../secret.onnx"  # never a file outside the folder
    elif change == "assets":
        manifest["parts"][2]["assets"] = "/etc"
    else:
        photo["params"]["max_pixels"] = -1  # checked as ImageEncoder checks it in fit
    (folder / "manifest.json").write_text(json.dumps(manifest))
    if change == "params":
        with pytest.raises(ValueError, match="max_pixels"):
            OnnxModel(folder).predict(frame(n=2)[0])
    else:
        with pytest.raises(ValueError, match="not a file of the folder itself"):
            OnnxModel(folder)


def test_embeddings_of_onnx_runtime_and_torch_never_share_a_cache_entry(fitted, exported):
    pipe, df = fitted
    model = OnnxModel(exported)
    model.predict_proba(df.head(4))
    for part in model.manifest_["parts"]:
        if part["transformer"] in {"ImageEncoder", "TextEncoder"}:
            onnx_identity = model._encoder(part).model_identity_
            torch_identity = pipe[0].named_transformers_[part["modality"]].model_identity_
            assert onnx_identity != torch_identity and onnx_identity.endswith("+onnxruntime")
    again = OnnxModel(exported).predict_proba(df.head(4))  # from the cache: the same answers
    np.testing.assert_allclose(again, pipe.predict_proba(df.head(4)), atol=1e-4)


# ---------------------------------------------------------------------- AudioEncoder

#: (family, pooling) of the tiny audio models exported below
AUDIO_CASES = [("wav2vec2", "mean"), ("wav2vec2", "max"), ("wav2vec2-no-mask", "mean"), ("whisper", "max"),
               ("ast", "mean"), ("clap", "mean")]


def save_tiny_audio_model(family, folder):
    import tiny_models

    if family.startswith("wav2vec2"):
        return tiny_models.save_tiny_wav2vec2(folder, attention_mask=family == "wav2vec2")
    return getattr(tiny_models, f"save_tiny_{family}")(folder)


def voices(family, n=12, seed=0):
    """Tones in noise of 0.2 to 1.5 s (at most CLAP's 1 s window: longer, its extractor picks chunks at random),
    as (waveform, rate) pairs at 16 and 22.05 kHz and WAV bytes; one missing, one too short for wav2vec2."""
    import io

    import soundfile

    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        sr = 22050 if i % 5 == 1 else 16000
        seconds = min(0.2 + 0.12 * i, 1.0 if family == "clap" else 1.5)
        t = np.arange(int(seconds * sr)) / sr
        wave = (0.3 * np.sin(2 * np.pi * (200 + 60 * i) * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)
        if i % 4 == 2:
            buffer = io.BytesIO()
            soundfile.write(buffer, wave, sr, format="WAV")
            clips.append(buffer.getvalue())
        else:
            clips.append((wave, sr))
    X = pd.DataFrame({"voice": clips, "size": rng.normal(size=n)})
    X.at[3, "voice"] = None
    X.at[5, "voice"] = (np.zeros(30, np.float32), 16000)  # shorter than the tiny wav2vec2's 45-sample frame
    return X, np.arange(n) % 2


@pytest.fixture(scope="module", params=AUDIO_CASES, ids=lambda case: "-".join(case))
def audio_export(request, tmp_path_factory):
    family, pooling = request.param
    folder = tmp_path_factory.mktemp(family)
    X, y = voices(family)
    encoder = AudioEncoder(save_tiny_audio_model(family, folder / "hub"), pooling=pooling, batch_size=4,
                           on_error="missing", verbose=0)
    fusion = MultimodalFusion([("voice", encoder, "voice"), ("size", StandardScaler(), ["size"])])
    pipe = Pipeline([("fusion", fusion), ("clf", MultimodalClassifier(max_epochs=2, verbose=0, random_state=0))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)  # the too-short clip, for wav2vec2
        pipe.fit(X, y)
    return family, pipe, X, export_onnx(pipe, folder / "onnx")


def test_an_audio_model_predicts_as_the_pipeline(audio_export, monkeypatch):
    from skmm.encoders import _audio_model

    def refuse(*args):
        raise AssertionError("the ONNX runtime loaded a torch model")

    family, pipe, X, folder = audio_export
    monkeypatch.setattr(_audio_model, "_load_audio_model", refuse)
    model = OnnxModel(folder, cache=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        expected = pipe[0].transform(X).to_numpy()
        np.testing.assert_allclose(model.transform(X), expected, atol=1e-4)
        np.testing.assert_allclose(model.predict_proba(X), pipe.predict_proba(X), atol=1e-4)
    assert np.isnan(expected[3, :-1]).all() and np.isfinite(expected[[0, 1, 2, 4, 6], :-1]).all()


def test_an_audio_manifest_says_what_the_graph_takes(audio_export):
    family, pipe, X, folder = audio_export
    voice = json.loads((folder / "manifest.json").read_text())["parts"][0]
    assert voice["transformer"] == "AudioEncoder" and voice["sampling_rate"] == 16000
    assert (folder / voice["assets"] / "preprocessor_config.json").is_file()
    inputs = {"wav2vec2": {"input_values": ["float32", ["batch", "time"]], "attention_mask": ["int32", ["batch", "time"]]},
              "wav2vec2-no-mask": {"input_values": ["float32", ["batch", "time"]]},
              "whisper": {"input_features": ["float32", ["batch", 16, 100]], "n_samples": ["int64", ["batch"]]},
              "ast": {"input_values": ["float32", ["batch", 100, 16]]},
              "clap": {"input_features": ["float32", ["batch", 4, 65, 64]], "is_longer": ["bool", ["batch", 1]]}}
    assert voice["inputs"] == inputs[family]
    # wav2vec2's convolutions need 45 samples for one frame, AST's filterbank 240 (15 ms)
    assert voice["min_samples"] == {"wav2vec2": 45, "wav2vec2-no-mask": 45, "ast": 240}.get(family, 1)
    assert "resample it to 16000 Hz" in voice["preprocessing"]


def test_a_too_short_clip_is_refused_as_by_the_encoder(audio_export):
    family, pipe, X, folder = audio_export
    if not family.startswith("wav2vec2"):
        pytest.skip("only wav2vec2's convolutions need more than one sample")
    from sklearn.base import clone

    model = OnnxModel(folder, cache=None)
    too_short = r"row 5 .*clip of 30 samples is shorter than the 45 samples"
    with pytest.raises(InputError, match=too_short):
        model._encoder(model.manifest_["parts"][0]).set_params(on_error="raise").transform(X[["voice"]])
    with pytest.raises(InputError, match=too_short):
        clone(pipe[0].named_transformers_["voice"]).set_params(on_error="raise").fit_transform(X[["voice"]])
