"""Tests of skmm.demo.run_demo (it encodes real files: a minute or so)."""

import io

import numpy as np
import pandas as pd
import pytest

import skmm
from skmm.demo import FULL_SETUP, demo_pipelines, format_table, run_demo

SETUPS = [FULL_SETUP, "image only", "text only", "audio only", "number only"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("demo")
    stream = io.StringIO()
    result = run_demo(output_dir=output_dir, n_samples=120, cv=3, random_state=0, stream=stream)
    return output_dir, result, stream.getvalue()


def test_table_lists_every_setup(demo):
    _, result, printed = demo
    assert list(result.results.index) == SETUPS
    assert result.table in printed
    for setup in SETUPS:
        line = next(line for line in printed.splitlines() if line.startswith(setup + "  "))
        assert line.count("±") == 2, line
    assert "[1/5] cross-validating all modalities" in printed
    assert "Model saved to" in printed


def test_scores_are_sane(demo):
    _, result, _ = demo
    results = result.results
    assert {"accuracy_mean", "accuracy_std", "f1_macro_mean", "f1_macro_std", "seconds"} <= set(
        results.columns
    )
    assert results[["accuracy_mean", "f1_macro_mean"]].stack().between(0, 1).all()
    single = results.drop(index=FULL_SETUP)["accuracy_mean"]
    full = results.loc[FULL_SETUP, "accuracy_mean"]
    assert (single > 1 / 3 + 0.05).all(), results
    assert full > single.mean() + 0.1, results
    assert full >= single.max(), results


def test_outputs_are_written_and_model_loads(demo):
    output_dir, result, _ = demo
    assert result.model_path == output_dir / "model.skmm"
    assert result.data_dir == output_dir / "data"
    assert (output_dir / "data" / "images").is_dir() and (output_dir / "data" / "audio").is_dir()
    saved = pd.read_csv(result.results_path, index_col=0)
    assert list(saved.index) == SETUPS

    model = skmm.load(result.model_path)
    X, y = result.X, result.y
    predicted = model.predict(X.head(10))
    assert set(predicted) <= set(y)
    assert np.mean(model.predict(X) == y) > 0.8  # training data, all modalities


def test_verbose_zero_is_silent(tmp_path):
    stream = io.StringIO()
    result = run_demo(output_dir=tmp_path, n_samples=24, cv=2, verbose=0, stream=stream)
    assert stream.getvalue() == ""
    assert result.model_path.exists()


def test_format_table_is_aligned():
    results = pd.DataFrame(
        {"accuracy_mean": [0.9, 0.5], "accuracy_std": [0.01, 0.1],
         "f1_macro_mean": [0.89, 0.45], "f1_macro_std": [0.02, 0.1]},
        index=["all modalities", "image only"],
    )
    lines = format_table(results, chance=0.5).splitlines()
    assert lines[0].split() == ["setup", "accuracy", "macro", "F1"]
    assert lines[2].index("0.900") == lines[3].index("0.500") == lines[0].index("accuracy")
    assert lines[2].index("0.890") == lines[3].index("0.450") == lines[0].index("macro F1")
    assert lines[-1] == "(chance accuracy: 0.500)"


def test_pipelines_share_encoder_parameters():
    pipelines = demo_pipelines()
    full = pipelines[FULL_SETUP].named_steps["fusion"].transformers
    for name, step, _ in full:
        alone = pipelines[f"{name} only"].named_steps["fusion"].transformers[0][1]
        assert alone is not step
        assert alone.get_params() == step.get_params()


@pytest.mark.parametrize(
    "params, match",
    [({"cv": 1}, "cv"), ({"n_samples": 5}, "n_samples"), ({"verbose": "loud"}, "verbose")],
)
def test_invalid_parameters(tmp_path, params, match):
    with pytest.raises(ValueError, match=match):
        run_demo(output_dir=tmp_path, **params)
