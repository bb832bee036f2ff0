"""skmm.inspection: which modality mattered, over a data set and for each row."""

import numpy as np
import pandas as pd
import pytest

from signal_task import make_signal_pipeline, make_signal_task
from skmm import InputWarning, MultimodalClassifier
from skmm.inspection import (
    make_absent,
    modality_columns,
    modality_contributions,
    modality_importance,
    modality_shap_values,
)


@pytest.fixture(scope="module")
def fitted(tiny_image_model):
    X_train, y_train = make_signal_task(160, random_state=0)
    X_test, y_test = make_signal_task(80, random_state=1)
    pipe = make_signal_pipeline(tiny_image_model).fit(X_train, y_train)
    return pipe, X_test, y_test


def test_modality_columns_come_from_the_fusion_step(fitted):
    pipe, X, _ = fitted
    assert modality_columns(pipe, X) == {"image": ["photo"], "tabular": ["price"]}


def test_importance_recovers_the_informative_modality(fitted):
    pipe, X, y = fitted
    result = modality_importance(pipe, X, y, n_repeats=4, random_state=0)
    assert result.modalities == ["image", "tabular"]
    assert result.baseline_score > 0.9
    image, tabular = 0, 1
    assert result.absence_importances[image] > 0.3
    assert result.permutation_importances_mean[image] > 0.3
    assert abs(result.absence_importances[tabular]) < 0.05
    assert abs(result.permutation_importances_mean[tabular]) < 0.05
    assert result.permutation_importances.shape == (2, 4)
    np.testing.assert_allclose(result.permutation_importances_std, result.permutation_importances.std(axis=1))


def test_importance_takes_a_scorer_and_is_reproducible(fitted):
    pipe, X, y = fitted
    first = modality_importance(pipe, X, y, scoring="f1_macro", n_repeats=2, random_state=3)
    second = modality_importance(pipe, X, y, scoring="f1_macro", n_repeats=2, random_state=3)
    np.testing.assert_array_equal(first.permutation_importances, second.permutation_importances)
    assert first.permutation_importances_mean[0] > 0.3


def test_importance_of_a_fitted_search_reads_its_best_pipeline(fitted):
    from sklearn.model_selection import GridSearchCV

    pipe, X, y = fitted
    search = GridSearchCV(pipe, {"clf__max_epochs": [20]}, cv=2).fit(X, y)
    assert modality_columns(search, X) == {"image": ["photo"], "tabular": ["price"]}


def test_importance_on_a_classifier_fitted_on_fused_columns():
    rng = np.random.RandomState(0)
    y = np.repeat(["a", "b"], 60)
    X = pd.DataFrame({"image__f0": rng.randn(120) + 4 * (y == "b"), "audio__f0": rng.randn(120)})
    clf = MultimodalClassifier(max_epochs=30, lr=3e-3, random_state=0).fit(X, y)
    result = modality_importance(clf, X, y, n_repeats=2, random_state=0)
    assert result.modalities == ["image", "audio"]
    assert result.absence_importances[0] > 0.3


def test_make_absent_leaves_the_input_alone():
    X = pd.DataFrame({"text": ["hi", "yo"], "price": [1.0, 2.0]})
    absent = make_absent(X, ["text"])
    assert absent["text"].tolist() == [None, None]
    assert X["text"].tolist() == ["hi", "yo"]
    assert absent["price"].tolist() == [1.0, 2.0]


def test_importance_wants_a_dataframe(fitted):
    pipe, X, y = fitted
    with pytest.raises(TypeError, match="X must be a pandas DataFrame"):
        modality_importance(pipe, X.to_numpy(), y)
    with pytest.raises(ValueError, match="n_repeats must be an int >= 1"):
        modality_importance(pipe, X, y, n_repeats=0)


def test_shap_values_sum_to_prediction_minus_all_absent_baseline(fitted):
    pytest.importorskip("shap")
    pipe, X, _ = fitted
    rows = X.iloc[:6]
    result = modality_shap_values(pipe, rows)
    assert result.shap_values.shape == (6, 2, 2)
    assert result.modalities == ["image", "tabular"]
    np.testing.assert_allclose(result.predictions, pipe.predict_proba(rows), atol=1e-6)
    with pytest.warns(InputWarning, match="every modality missing"):
        all_absent = pipe.predict_proba(make_absent(rows.iloc[:1], ["photo", "price"]))[0]
    np.testing.assert_allclose(result.base_values, all_absent, atol=1e-6)
    np.testing.assert_allclose(result.shap_values.sum(axis=1), result.predictions - result.base_values, atol=1e-5)
    # the picture carries the label: it moves the predicted class's probability far more than the noise
    predicted = result.predictions.argmax(axis=1)
    contribution = result.shap_values[np.arange(6), :, predicted]
    assert (np.abs(contribution[:, 0]) > np.abs(contribution[:, 1])).all()

    table = modality_contributions(pipe, rows)
    assert list(table.columns) == ["image", "tabular"] and table.index.equals(rows.index)
    np.testing.assert_allclose(table.to_numpy(), contribution, atol=1e-9)


def test_shap_without_the_library_names_the_extra(fitted, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "shap", None)
    pipe, X, _ = fitted
    with pytest.raises(ImportError, match=r'pip install "skmm\[explain\]"'):
        modality_shap_values(pipe, X.iloc[:2])


def test_shap_values_per_tabular_column():
    pytest.importorskip("shap")
    rng = np.random.RandomState(0)
    y = np.repeat(["a", "b"], 60)
    X = pd.DataFrame({"image__f0": rng.randn(120), "tabular__signal": rng.randn(120) + 4 * (y == "b"),
                      "tabular__noise": rng.randn(120)})
    clf = MultimodalClassifier(max_epochs=30, lr=3e-3, random_state=0).fit(X, y)
    result = modality_shap_values(clf, X.iloc[[0, 100]], per_column=["tabular"])
    assert result.modalities == ["image", "tabular:tabular__signal", "tabular:tabular__noise"]
    np.testing.assert_allclose(result.shap_values.sum(axis=1), result.predictions - result.base_values, atol=1e-5)
    signal, noise = np.abs(result.shap_values[:, 1, 1]), np.abs(result.shap_values[:, 2, 1])
    assert (signal > noise).all()
    with pytest.raises(ValueError, match=r"per_column names unknown modalities \['audio'\]"):
        modality_shap_values(clf, X.iloc[:1], per_column=["audio"])


def test_shapley_values_from_one_encoding_equal_those_of_absent_raw_inputs(fitted, monkeypatch):
    """A pipeline ending in a classifier is explained from one encoding of the rows: 2**M rows per row
    in one forward pass of the last step; the values are those of making raw inputs absent."""
    pytest.importorskip("shap")
    import skmm.inspection
    from skmm.encoders import BaseEncoder

    pipe, X, _ = fitted
    rows = X.iloc[:5]
    calls = []
    original = BaseEncoder.transform
    monkeypatch.setattr(BaseEncoder, "transform", lambda self, X: calls.append(len(X)) or original(self, X))
    fast = modality_shap_values(pipe, rows)
    assert calls == [5]  # the image encoder ran once, on the 5 rows
    monkeypatch.setattr(skmm.inspection, "_shapley_from_one_encoding", lambda *args: None)
    slow = modality_shap_values(pipe, rows)
    assert len(calls) > 2  # making raw inputs absent runs the encoders for every batch of coalitions
    np.testing.assert_allclose(fast.shap_values, slow.shap_values, atol=1e-6)
    np.testing.assert_allclose(fast.base_values, slow.base_values, atol=1e-6)
    np.testing.assert_allclose(fast.predictions, slow.predictions, atol=1e-6)
