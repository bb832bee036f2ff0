"""skmm.plotting: every Display draws on the Agg backend, and names the plot extra when matplotlib is missing."""

import sys

import numpy as np
import pandas as pd
import pytest

from skmm import MultimodalClassifier
from skmm.inspection import modality_importance
from skmm.plotting import ModalityContributionDisplay, ModalityImportanceDisplay, TrainingCurveDisplay

matplotlib = pytest.importorskip("matplotlib", reason='the plots need matplotlib: pip install "skmm[plot]"')
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(scope="module")
def task():
    rng = np.random.RandomState(0)
    y = np.repeat(["cat", "dog"], 60)
    X = pd.DataFrame({"image__f0": rng.randn(120) + 4 * (y == "dog"), "text__f0": rng.randn(120)})
    return X, y


@pytest.fixture(scope="module")
def fitted(task):
    X, y = task
    return MultimodalClassifier(max_epochs=20, lr=3e-3, random_state=0).fit(X, y)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_importance_display_draws_one_bar_pair_per_modality(task, fitted):
    X, y = task
    display = ModalityImportanceDisplay.from_estimator(fitted, X, y, n_repeats=2, random_state=0)
    assert [label.get_text() for label in display.ax_.get_yticklabels()] == ["image", "text"]
    assert len(display.ax_.patches) == 4
    widths = [patch.get_width() for patch in display.ax_.patches]
    assert widths[0] > 0.3 and widths[2] > 0.3  # the image carries the label, absent or permuted
    assert display.figure_ is display.ax_.figure


def test_importance_display_draws_on_a_given_axes(task, fitted):
    X, y = task
    result = modality_importance(fitted, X, y, n_repeats=2, random_state=0)
    figure, (left, right) = plt.subplots(1, 2)
    display = ModalityImportanceDisplay.from_importances(result, ax=right)
    assert display.ax_ is right and display.figure_ is figure
    assert "score with every modality" in right.get_title()


def test_contribution_display_walks_from_the_all_absent_prior_to_the_prediction(task, fitted):
    pytest.importorskip("shap")
    X, _ = task
    display = ModalityContributionDisplay.from_estimator(fitted, X, row=70)
    assert display.class_label == "dog"
    assert display.row_label == 70
    np.testing.assert_allclose(display.base_value + display.contributions.sum(), display.prediction, atol=1e-5)
    np.testing.assert_allclose(display.prediction, fitted.predict_proba(X.iloc[[70]])[0, 1], atol=1e-6)
    ends = [patch.get_x() + patch.get_width() for patch in display.ax_.patches]
    assert ends[-1] == pytest.approx(display.prediction, abs=1e-5)
    assert [label.get_text() for label in display.ax_.get_yticklabels()] == ["image", "text"]


def test_contribution_display_rejects_an_unknown_class(task, fitted):
    pytest.importorskip("shap")
    from skmm.inspection import modality_shap_values

    X, _ = task
    result = modality_shap_values(fitted, X.iloc[:1])
    with pytest.raises(ValueError, match=r"target must be one of the classes \['cat', 'dog'\], got 'cow'"):
        ModalityContributionDisplay.from_shap_values(result, target="cow")


def test_training_curve_marks_the_kept_epoch_with_early_stopping(task):
    X, y = task
    clf = MultimodalClassifier(max_epochs=60, lr=3e-2, early_stopping=True, patience=3, random_state=0).fit(X, y)
    display = TrainingCurveDisplay.from_estimator(clf)
    labels = [line.get_label() for line in display.ax_.get_lines()]
    assert labels[:2] == ["train loss", "validation loss"]
    valid = [epoch["valid_loss"] for epoch in clf.history_]
    assert display.best_epoch == int(np.argmin(valid)) + 1
    assert labels[2] == f"best epoch ({display.best_epoch})"
    assert len(display.ax_.get_lines()[0].get_xdata()) == clf.n_iter_


def test_training_curve_of_a_pipeline_without_early_stopping(task, fitted):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = task
    pipe = make_pipeline(FunctionTransformer(), MultimodalClassifier(max_epochs=5, random_state=0)).fit(X, y)
    display = TrainingCurveDisplay.from_estimator(pipe)
    assert [line.get_label() for line in display.ax_.get_lines()] == ["train loss"]
    with pytest.raises(ValueError, match="has no history_"):
        TrainingCurveDisplay.from_estimator(FunctionTransformer())


def test_missing_matplotlib_names_the_extra(monkeypatch, task, fitted):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    X, y = task
    with pytest.raises(ImportError, match=r'pip install "skmm\[plot\]"'):
        TrainingCurveDisplay.from_estimator(fitted)
    with pytest.raises(ImportError, match=r'pip install "skmm\[plot\]"'):
        ModalityImportanceDisplay.from_estimator(fitted, X, y)


def test_import_skmm_does_not_import_matplotlib():
    import subprocess

    code = "import sys, skmm, skmm.plotting, skmm.inspection; print('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
