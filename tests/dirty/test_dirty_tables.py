"""Dirty tables through MultimodalFusion + MultimodalClassifier: clear errors, one finite row of probabilities per input row."""

import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import skmm
from dirtydata import image_bytes

LABELS = np.array(["cat", "dog", "eel"])


@pytest.fixture
def table(tmp_path):
    """30 rows of photo / review / price with a non-default index; the class shows in every modality."""
    rng = np.random.default_rng(0)
    y = LABELS[np.arange(30) % 3]
    colours = {"cat": (220, 30, 30), "dog": (30, 220, 30), "eel": (30, 30, 220)}
    photos = []
    for i, label in enumerate(y):
        path = tmp_path / f"photo{i}.png"
        pixels = np.clip(np.array(colours[label]) + rng.normal(0, 20, (16, 16, 3)), 0, 255)
        path.write_bytes(image_bytes(Image.fromarray(pixels.astype(np.uint8))))
        photos.append(str(path))
    words = {"cat": "good red", "dog": "bad car", "eel": "the a"}
    frame = pd.DataFrame(
        {
            "photo": photos,
            "review": [f"{words[label]} {i}" for i, label in enumerate(y)],
            "price": rng.normal(size=30) + 3 * (y == "dog"),
        },
        index=[f"item-{i}" for i in range(30)],
    )
    return frame, y


@pytest.fixture
def make_pipeline(tiny_image_model, tiny_text_model):
    def make(on_error="raise", fusion="concat", random_state=0):
        params = {"verbose": 0, "cache": None, "device": "cpu", "on_error": on_error}
        return Pipeline([
            ("fusion", skmm.MultimodalFusion([
                ("image", skmm.ImageEncoder(tiny_image_model, **params), "photo"),
                ("text", skmm.TextEncoder(tiny_text_model, **params), "review"),
                ("tabular", StandardScaler(), ["price"]),
            ])),
            ("clf", skmm.MultimodalClassifier(
                fusion=fusion, max_epochs=5, shared_dim=8, hidden_dims=(8,), attention_heads=2,
                device="cpu", random_state=random_state,
            )),
        ])

    return make


def test_missing_column_error_lists_the_columns_present(make_pipeline, table):
    X, y = table
    with pytest.raises(ValueError, match=r"column\(s\) \['review'\] are not in the data. Columns present: \['photo', 'price'\]"):
        make_pipeline().fit(X.drop(columns="review"), y)
    fitted = make_pipeline().fit(X, y)
    with pytest.raises(ValueError, match=r"\['photo'\] are not in the data. Columns present: \['review', 'price'\]"):
        fitted.predict(X.drop(columns="photo"))


def test_extra_columns_are_ignored(make_pipeline, table):
    X, y = table
    fitted = make_pipeline().fit(X, y)
    extra = X.assign(notes=["whatever"] * len(X), id=np.arange(len(X)))[["id", "notes", *X.columns]]
    np.testing.assert_array_equal(fitted.predict_proba(extra), fitted.predict_proba(X))


def test_a_modality_absent_in_every_training_row_is_a_clear_error(make_pipeline, table):
    X, y = table
    with pytest.raises(ValueError, match=r"modality 'text' is missing \(NaN\) in every training row"):
        make_pipeline().fit(X.assign(review=None), y)
    broken = X.assign(photo=[f"/nowhere/{i}.png" for i in range(len(X))])
    with pytest.warns(skmm.InputWarning, match="30 of 30 rows"), pytest.raises(ValueError, match="modality 'image' is missing"):
        make_pipeline(on_error="missing").fit(broken, y)


def test_bad_row_error_names_the_index_label(make_pipeline, table, tmp_path):
    X, y = table
    X = X.copy()
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    X.loc["item-7", "photo"] = str(tmp_path / "broken.png")
    with pytest.raises(skmm.InputError, match=r"ImageEncoder: row 7 \(index 'item-7'\), '.*broken\.png': not a readable image"):
        make_pipeline().fit(X, y)


def test_bad_rows_with_missing_policy_give_finite_probabilities_for_every_row_in_order(make_pipeline, table, tmp_path):
    X, y = table
    fitted = make_pipeline(on_error="missing").fit(X, y)
    (tmp_path / "notes.png").write_text("not an image")
    dirty = X.astype({"review": object})
    dirty.loc["item-1", "photo"] = str(tmp_path / "notes.png")   # unreadable image
    dirty.loc["item-2", "photo"] = None                            # absent image
    dirty.loc["item-2", "review"] = b"\x00raw"                      # not a text
    dirty.loc["item-3", "price"] = np.nan                          # absent number
    dirty.loc["item-4", ["photo", "review", "price"]] = [None, "", np.nan]  # nothing at all
    dirty = dirty.iloc[::-1]                                       # any order, any index
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        proba = fitted.predict_proba(dirty)
        labels = fitted.predict(dirty)
    assert proba.shape == (len(X), 3)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert set(labels) <= set(LABELS)
    # row by row, the same answer: nothing shifted or lost
    for position in (0, len(X) - 3, len(X) - 5, len(X) - 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", skmm.InputWarning)  # already checked below
            alone = fitted.predict_proba(dirty.iloc[[position]])
        np.testing.assert_allclose(alone[0], proba[position], atol=1e-5)
    messages = [str(w.message) for w in caught]
    assert any("ImageEncoder: 1 of 30 rows" in m and "notes.png" in m for m in messages)
    assert any("TextEncoder: 1 of 30 rows" in m and "item-2" in m for m in messages)
    assert any("1 row(s)" in m and "every modality missing" in m for m in messages)


@pytest.mark.parametrize("fusion", ["concat", "weighted", "gated", "attention", "late"])
def test_rows_with_no_modality_get_the_class_prior_and_a_warning(fusion):
    rng = np.random.default_rng(0)
    y = np.array(["a"] * 30 + ["b"] * 10)
    X = pd.DataFrame({"image__0": rng.normal(size=40), "image__1": rng.normal(size=40), "text__0": rng.normal(size=40)})
    X.iloc[::5, :2] = np.nan  # some rows without image
    clf = skmm.MultimodalClassifier(fusion=fusion, max_epochs=3, attention_heads=2, shared_dim=8, device="cpu", random_state=0).fit(X, y)
    test = pd.DataFrame(np.nan, index=range(3), columns=X.columns)
    test.iloc[1, 2] = 0.5  # one row with text only
    with pytest.warns(skmm.InputWarning, match=r"2 row\(s\) \(positions \[0, 2\]\) have every modality missing; .* class prior"):
        proba = clf.predict_proba(test)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba[[0, 2]], [[0.75, 0.25], [0.75, 0.25]], atol=1e-6)
    with pytest.warns(skmm.InputWarning, match="every modality missing"):
        assert list(clf.predict(test.iloc[[0]])) == ["a"]


def test_labels_never_seen_in_training_never_come_out(make_pipeline, table):
    X, y = table
    fitted = make_pipeline().fit(X[y != "eel"], y[y != "eel"])
    assert list(fitted.classes_) == ["cat", "dog"]
    assert set(fitted.predict(X)) <= {"cat", "dog"}
    assert fitted.predict_proba(X).shape == (len(X), 2)


def test_same_data_and_random_state_give_identical_predictions(make_pipeline, table):
    X, y = table
    X = X.copy()
    X.iloc[::4, 0] = None
    first = make_pipeline(fusion="attention", random_state=3).fit(X, y).predict_proba(X)
    second = make_pipeline(fusion="attention", random_state=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    other = make_pipeline(fusion="attention", random_state=4).fit(X, y).predict_proba(X)
    assert not np.array_equal(first, other)


def test_a_row_with_every_value_missing_gets_the_class_prior_and_a_warning():
    import warnings

    from sklearn.pipeline import Pipeline

    from skmm import MultimodalClassifier, infer_modalities

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=40), "colour": ["x", "y", "z", "w"] * 10})
    y = np.array(["p"] * 30 + ["q"] * 10)
    pipe = Pipeline([("fusion", infer_modalities(X)),
                     ("clf", MultimodalClassifier(max_epochs=3, random_state=0, device="cpu"))])
    pipe.fit(X, y)
    rows = pd.DataFrame({"a": [np.nan, 0.3, np.nan], "colour": [None, "x", "  "]})
    with pytest.warns(skmm.InputWarning, match=r"2 row\(s\) \(positions \[0, 2\]\) have every modality missing"):
        proba = pipe.predict_proba(rows)
    np.testing.assert_allclose(proba[[0, 2]], [[0.75, 0.25], [0.75, 0.25]], atol=1e-6)  # 30 p, 10 q
    fused = pipe[0].transform(rows)
    assert fused.iloc[[0, 2]].isna().all().all() and fused.iloc[1].notna().all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a row with one value present is an ordinary row
        pipe.predict_proba(rows.iloc[[1]])
