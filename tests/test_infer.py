"""Column-kind inference and the fusion proposed from it."""

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import AudioMFCC, ImageEncoder, MultimodalFusion, TextEncoder, infer_modalities
from skmm.infer import (
    InferenceError,
    column_kinds,
    fusion_from_kinds,
    kind_of_transformer,
    sniff_bytes,
)


def png(colour=(255, 0, 0)):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def wav():
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(160, dtype=np.float32), 16000, format="WAV")
    return buffer.getvalue()


def frame(n=30):
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "photo": [f"img/{i}.PNG" if i % 5 else None for i in range(n)],
        "voice": [f"clips/{i}.wav" for i in range(n)],
        "review": [f"this is review number {i} about a cat" for i in range(n)],
        "price": rng.normal(size=n),
        "count": rng.integers(0, 5, n),
        "colour": rng.choice(["red", "blue", "green"], n),
        "city": rng.choice(["New York", "San Francisco"], n),
        "member": rng.choice([True, False], n),
        "size": pd.Categorical(rng.choice(["S", "M", "L"], n)),
        "label": rng.choice(["a", "b"], n),
    })


def test_column_kinds_of_every_kind():
    assert column_kinds(frame(), target="label") == {
        "photo": "image", "voice": "audio", "review": "text", "price": "numeric",
        "count": "numeric", "colour": "categorical", "city": "categorical",
        "member": "categorical", "size": "categorical",
    }


def test_target_is_excluded_and_kept_when_not_named():
    kinds = column_kinds(frame())
    assert kinds["label"] == "categorical"
    assert "label" not in column_kinds(frame(), "label")


def test_bytes_detected_by_magic_bytes():
    df = pd.DataFrame({"a": [png(), None, png((0, 0, 255))], "b": [wav(), wav(), b""]})
    assert column_kinds(df) == {"a": "image", "b": "audio"}


def test_pil_images_arrays_and_waveforms():
    df = pd.DataFrame({
        "pil": [Image.new("RGB", (2, 2)), Image.new("L", (2, 2))],
        "arr": [np.zeros((2, 2, 3), np.uint8), np.ones((2, 2), np.uint8)],
        "wave": [(np.zeros(10, np.float32), 16000), (np.ones(10, np.float32), 8000)],
    })
    assert column_kinds(df) == {"pil": "image", "arr": "image", "wave": "audio"}


def test_paths_without_extension_sniffed_relative_to_base_dir(tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "one").write_bytes(png())
    (tmp_path / "files" / "two").write_bytes(wav())
    df = pd.DataFrame({"a": ["files/one", "files/one"], "b": ["files/two", "files/two"]})
    assert column_kinds(df, base_dir=tmp_path) == {"a": "image", "b": "audio"}
    # without the folder they are just two identical words: categorical
    assert column_kinds(df) == {"a": "categorical", "b": "categorical"}


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\nxxxx", b"\xff\xd8\xff\xe0", b"GIF89a", b"RIFF\0\0\0\0WEBPVP8 "])
def test_sniff_images(data):
    assert sniff_bytes(data) == "image"


@pytest.mark.parametrize("data", [b"fLaC\0\0", b"OggS\0", b"ID3\x04", b"RIFF\0\0\0\0WAVEfmt ", b"FORM\0\0\0\0AIFF"])
def test_sniff_audio(data):
    assert sniff_bytes(data) == "audio"


def test_infer_modalities_groups_numeric_and_categorical():
    fusion = infer_modalities(frame(), target="label")
    assert isinstance(fusion, MultimodalFusion)
    by_name = {name: (transformer, columns) for name, transformer, columns in fusion.transformers}
    assert list(by_name) == ["photo", "voice", "review", "numeric", "categorical"]
    assert isinstance(by_name["photo"][0], ImageEncoder) and by_name["photo"][1] == "photo"
    assert isinstance(by_name["voice"][0], AudioMFCC)
    assert isinstance(by_name["review"][0], TextEncoder)
    assert by_name["numeric"][1] == ["price", "count"]
    assert isinstance(by_name["numeric"][0], Pipeline)
    assert by_name["categorical"][1] == ["colour", "city", "member", "size"]
    encoder = by_name["categorical"][0]
    assert isinstance(encoder, OneHotEncoder) and encoder.handle_unknown == "ignore"
    assert not hasattr(fusion, "transformers_")  # unfitted


def test_overrides_kinds_transformers_and_drop():
    overrides = {"photo": "drop", "voice": "drop", "review": TfidfVectorizer(), "count": "categorical",
                 "colour": StandardScaler(), "city": "text"}
    fusion = infer_modalities(frame(), "label", overrides=overrides)
    spec = {name: columns for name, _, columns in fusion.transformers}
    assert spec == {"review": "review", "colour": ["colour"], "city": "city",
                    "numeric": ["price"], "categorical": ["count", "member", "size"]}
    assert fusion.transformers[0][1] is overrides["review"]
    kinds = column_kinds(frame(), "label", overrides=overrides)
    assert kinds["photo"] == "drop" and kinds["review"] == "text" and kinds["colour"] == "numeric"


def test_fitted_fusion_runs_on_tabular_and_tfidf_columns():
    df = frame().drop(columns=["photo", "voice"])
    fusion = infer_modalities(df, "label", overrides={"review": TfidfVectorizer()})
    df.loc[3, "price"] = np.nan
    out = fusion.fit_transform(df.drop(columns="label"))
    assert len(out) == len(df) and not out.isna().any().any()
    assert set(fusion.modalities_) == {"review", "numeric", "categorical"}


def test_modality_names_never_collide_or_hold_separator():
    df = pd.DataFrame({"numeric": [f"a long sentence number {i}" for i in range(25)],
                       "x__y": [f"another long sentence {i}" for i in range(25)],
                       "z": np.arange(25.0)})
    names = [name for name, _, _ in infer_modalities(df).transformers]
    assert names == ["numeric_2", "x_y", "numeric"]


@pytest.mark.parametrize(
    "df, match",
    [
        (pd.DataFrame({"empty": [None, np.nan, ""]}), "'empty'.*every value is missing"),
        (pd.DataFrame({"nums": [np.nan, np.nan]}), "'nums'.*every value is missing"),
        (pd.DataFrame({"id": [f"user{i}" for i in range(40)]}), "'id'.*identifier.*'drop'"),
        (pd.DataFrame({"mix": ["a.png", "b.wav", "c.png"]}), "'mix'.*image paths.*audio"),
        (pd.DataFrame({"half": ["a.png", "hello there", "c.png"]}), "'half'.*'hello there'"),
        (pd.DataFrame({"when": pd.date_range("2024-01-01", periods=3)}), "'when'.*dates"),
        (pd.DataFrame({"odd": [b"not a file", b"at all"]}), "'odd'.*bytes"),
        (pd.DataFrame({"types": ["a", 1, 2.5]}), "'types'.*mixed"),
    ],
    ids=["all-missing", "all-nan", "identifier", "image-and-audio", "paths-and-text", "dates",
         "junk-bytes", "mixed-types"],
)
def test_unclassifiable_columns_are_named(df, match):
    with pytest.raises(InferenceError, match=match):
        column_kinds(df)
    with pytest.raises(ValueError, match="overrides"):
        infer_modalities(df)


def test_override_makes_unclassifiable_column_usable():
    df = pd.DataFrame({"id": [f"user{i}" for i in range(40)], "x": np.arange(40.0)})
    assert column_kinds(df, overrides={"id": "drop"}) == {"id": "drop", "x": "numeric"}


def test_bad_arguments():
    df = frame()
    with pytest.raises(InferenceError, match="target='nope'.*expected one of"):
        infer_modalities(df, target="nope")
    with pytest.raises(InferenceError, match="overrides names column 'nope'"):
        infer_modalities(df, overrides={"nope": "text"})
    with pytest.raises(InferenceError, match="target column 'label'"):
        infer_modalities(df, "label", overrides={"label": "drop"})
    with pytest.raises(InferenceError, match=r"overrides\['price'\]='pictures' is not a kind"):
        infer_modalities(df, overrides={"price": "pictures"})
    with pytest.raises(InferenceError, match=r"overrides\['price'\] must be.*int"):
        infer_modalities(df, overrides={"price": 3})
    with pytest.raises(InferenceError, match="no input column left"):
        infer_modalities(df[["price", "label"]], "label", overrides={"price": "drop"})
    with pytest.raises(TypeError, match="pandas DataFrame"):
        infer_modalities(np.zeros((3, 2)))


def test_kind_of_transformer():
    assert kind_of_transformer(Pipeline([("e", ImageEncoder()), ("s", StandardScaler())])) == "image"
    assert kind_of_transformer(AudioMFCC()) == "audio"
    assert kind_of_transformer(TextEncoder()) == "text"
    assert kind_of_transformer(TfidfVectorizer()) == "text"
    assert kind_of_transformer(StandardScaler()) == "numeric"
    assert kind_of_transformer("drop") == "drop"
    assert kind_of_transformer("passthrough") is None


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=False), min_size=1, max_size=30),
       st.lists(st.integers(-5, 5), min_size=1, max_size=30))
def test_numeric_columns_are_always_numeric(floats, ints):
    df = pd.DataFrame({"f": pd.Series(floats, dtype=float)})
    df2 = pd.DataFrame({"i": ints})
    if df["f"].notna().any():
        assert column_kinds(df) == {"f": "numeric"}
    assert column_kinds(df2) == {"i": "numeric"}


def test_fusion_from_kinds_is_infer_modalities_in_two_steps():
    overrides = {"review": TfidfVectorizer(), "voice": "drop"}
    kinds = column_kinds(frame(), "label", overrides=overrides)
    fusion = fusion_from_kinds(kinds, overrides=overrides)
    expected = infer_modalities(frame(), "label", overrides=overrides)
    assert [(n, type(t), c) for n, t, c in fusion.transformers] == [
        (n, type(t), c) for n, t, c in expected.transformers
    ]
    assert fusion.transformers[1][1] is overrides["review"]


def test_fusion_from_kinds_refuses_unknown_kinds_and_empty_input():
    with pytest.raises(InferenceError, match="'clip' has kind 'hologram', which is not registered"):
        fusion_from_kinds({"clip": "hologram", "x": "numeric"})
    with pytest.raises(InferenceError, match=r"overrides names column\(s\) \['nope'\]"):
        fusion_from_kinds({"x": "numeric"}, overrides={"nope": StandardScaler()})
    with pytest.raises(InferenceError, match="no input column left"):
        fusion_from_kinds({"x": "drop"})
    # a transformer makes a column of unregistered kind usable
    fusion = fusion_from_kinds({"clip": "other"}, overrides={"clip": StandardScaler()})
    assert fusion.transformers[0][0] == "clip" and fusion.transformers[0][2] == ["clip"]


def test_the_kinds_and_their_file_suffixes_come_from_the_registry():
    from skmm.infer import default_transformer
    from skmm.kinds import COLUMN_KINDS, kind_names

    assert kind_names() == ("image", "audio", "video", "text", "numeric", "categorical", "drop")
    assert {".png", ".jpg", ".tiff"} <= COLUMN_KINDS["image"].extensions
    assert ".wav" not in COLUMN_KINDS["image"].extensions
    assert {".wav", ".flac", ".mp3"} <= COLUMN_KINDS["audio"].extensions
    assert isinstance(default_transformer("image"), ImageEncoder)


def test_a_column_reaching_a_file_encoder_anywhere_is_of_its_kind():
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion
    from sklearn.preprocessing import FunctionTransformer

    from skmm.infer import kinds_reached

    union = FeatureUnion([("a", ImageEncoder()), ("b", ImageEncoder(image_size=64))])
    assert kind_of_transformer(union) == "image"
    assert kind_of_transformer(Pipeline([("f", FunctionTransformer()), ("e", AudioMFCC())])) == "audio"
    nested = ColumnTransformer([("inner", Pipeline([("u", union)]), ["photo"])])
    assert kind_of_transformer(nested) == "image"
    assert kinds_reached(FeatureUnion([("t", TextEncoder()), ("i", ImageEncoder())])) == ["text", "image"]
    assert kind_of_transformer(FeatureUnion([("t", TextEncoder()), ("i", ImageEncoder())])) == "image"
    assert kind_of_transformer(FunctionTransformer()) is None


@pytest.mark.parametrize("n_rows", [40, 100, 150, 1000])
def test_a_unique_identifier_is_refused_however_long_the_table(n_rows):
    df = pd.DataFrame({"user": [f"user{i}" for i in range(n_rows)], "x": np.arange(n_rows, dtype=float)})
    with pytest.raises(InferenceError, match=rf"'user'.*{n_rows} distinct single-word values in {n_rows} rows"):
        infer_modalities(df)
    many = pd.DataFrame({"colour": [f"c{i % 10}" for i in range(n_rows)]})
    assert column_kinds(many) == {"colour": "categorical"}  # repeated values are categories
