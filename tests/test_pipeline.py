"""The whole model as one scikit-learn Pipeline: images, texts, audio and a number in a DataFrame."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmm import AudioMFCC, ImageEncoder, MultimodalClassifier, MultimodalFusion, TextEncoder
from skmm.datasets import make_multimodal_classification


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_multimodal_classification(n_samples=90, directory=tmp_path_factory.mktemp("mm"), random_state=0)


def make_pipeline(text_model):
    return Pipeline([
        ("fusion", MultimodalFusion([
            ("image", ImageEncoder(image_size=64, verbose=0), "image"),
            ("text", TextEncoder(text_model, verbose=0), "text"),
            ("audio", AudioMFCC(verbose=0), "audio"),
            ("tabular", StandardScaler(), ["number"]),
        ])),
        ("clf", MultimodalClassifier(max_epochs=30, lr=3e-3, random_state=0)),
    ])


def test_cross_val_score_on_files_texts_and_numbers(data, tiny_text_model):
    X, y = data
    scores = cross_val_score(make_pipeline(tiny_text_model), X, y, cv=StratifiedKFold(3))
    assert scores.shape == (3,)
    assert scores.mean() > 0.5  # three balanced classes: chance is 1/3


def test_grid_search_over_a_classifier_and_an_encoder_parameter(data, tiny_text_model):
    X, y = data
    search = GridSearchCV(
        make_pipeline(tiny_text_model),
        {"clf__fusion": ["concat", "attention"], "fusion__audio__n_mfcc": [13, 20]},
        cv=StratifiedKFold(2),
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert set(search.predict(X)) <= set(np.unique(y))
    fitted_fusion = search.best_estimator_.named_steps["fusion"]
    n_mfcc = search.best_params_["fusion__audio__n_mfcc"]
    assert fitted_fusion.named_transformers_["audio"].n_mfcc == n_mfcc


def test_fitted_pipeline_clones_and_pickles(data, tiny_text_model):
    X, y = data
    pipe = make_pipeline(tiny_text_model).fit(X, y)
    clf = pipe.named_steps["clf"]
    assert clf.modalities_ == ["image", "text", "audio", "tabular"]
    assert clf.classes_.tolist() == sorted(set(y))

    twin = clone(pipe)
    assert not hasattr(twin.named_steps["clf"], "net_")
    np.testing.assert_array_equal(twin.fit(X, y).predict_proba(X), pipe.predict_proba(X))

    blob = pickle.dumps(pipe)
    restored = pickle.loads(blob)
    np.testing.assert_array_equal(restored.predict_proba(X), pipe.predict_proba(X))
    assert restored.predict(X.iloc[:5]).tolist() == pipe.predict(X.iloc[:5]).tolist()


def test_rows_with_a_missing_modality_still_get_predictions(data, tiny_text_model):
    X, y = data
    pipe = make_pipeline(tiny_text_model).fit(X, y)
    X_missing = X.iloc[:6].copy()
    X_missing.loc[:, "image"] = None
    X_missing.loc[X_missing.index[:3], "audio"] = None
    proba = pipe.predict_proba(X_missing)
    assert proba.shape == (6, len(set(y))) and np.isfinite(proba).all()


def test_a_step_that_drops_the_modality_names_is_reported_once():
    import warnings

    import pandas as pd

    from skmm.fusion import ModalityWarning

    rng = np.random.RandomState(0)
    y = np.repeat(["a", "b"], 30)
    X = pd.DataFrame({"pixels": rng.randn(60) + (y == "b"), "words": rng.randn(60), "price": rng.randn(60)})
    fusion = MultimodalFusion([("image", "passthrough", ["pixels"]), ("text", "passthrough", ["words", "price"])])
    clf = MultimodalClassifier(max_epochs=2, random_state=0, verbose=0)
    pipe = Pipeline([("fusion", fusion), ("scale", StandardScaler()), ("clf", clf)])
    lost = r"3 columns without '<modality>__' names.*made 2 \(image, text\)"
    with pytest.warns(ModalityWarning, match=lost) as caught:
        pipe.fit(X, y)
    assert len([w for w in caught if w.category is ModalityWarning]) == 1
    assert pipe.named_steps["clf"].modalities_ == ["input"]

    kept = clone(pipe).set_output(transform="pandas")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModalityWarning)
        kept.fit(X, y)
        kept.predict(X)
    assert kept.named_steps["clf"].modalities_ == ["image", "text"]
