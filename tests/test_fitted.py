"""One rule finds a fitted model's fusion step, its input columns, their kinds and its modalities."""

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import skmm
from skmm.persistence import read_metadata
from skmm._fitted import describe_inputs, fusion_step, input_kinds, modality_columns
from skmm.inspection import modality_columns as inspected_columns


@pytest.fixture
def table():
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0] * 3, "colour": ["red", "blue", "red", "green"] * 3,
                      "unused": range(12)})
    return X, [0, 1, 1, 0] * 3


def _fusion():
    return skmm.MultimodalFusion([("numbers", StandardScaler(), ["x"]), ("colour", OneHotEncoder(), ["colour"])])


def test_a_search_is_read_through_its_best_estimator(table):
    X, y = table
    search = GridSearchCV(make_pipeline(_fusion(), LogisticRegression()), {"logisticregression__C": [0.1, 1.0]},
                          cv=2).fit(X, y)
    assert fusion_step(search) is search.best_estimator_.steps[0][1]
    assert describe_inputs(search) == {
        "input_columns": ["x", "colour"],
        "kinds": {"x": "numeric", "colour": "categorical"},
        "modalities": {"numbers": ["x"], "colour": ["colour"]},
    }


def test_any_column_transformer_first_gives_the_modalities(table):
    X, y = table
    plain = ColumnTransformer([("numbers", StandardScaler(), ["x"]), ("colour", OneHotEncoder(), [1])])
    model = make_pipeline(plain, LogisticRegression()).fit(X, y)
    assert modality_columns(model) == {"numbers": ["x"], "colour": ["colour"]}
    assert inspected_columns(model, X) == {"numbers": ["x"], "colour": ["colour"]}
    assert input_kinds(model) == {"x": "numeric", "colour": "categorical"}


def test_only_the_first_step_sees_the_raw_columns(table):
    X, y = table
    late = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[["x"]], y)
    assert fusion_step(late) is None and modality_columns(late) is None and input_kinds(late) == {}
    assert describe_inputs(late) == {"input_columns": ["x"], "kinds": {"x": "other"}, "modalities": {"input": ["x"]}}


def test_the_saved_metadata_says_what_the_fitted_model_reads(table, tmp_path):
    X, y = table
    model = make_pipeline(_fusion(), LogisticRegression()).fit(X, y)
    metadata = read_metadata(skmm.save(model, tmp_path / "m.skmm"))
    assert metadata["kinds"] == {"x": "numeric", "colour": "categorical"}
    assert metadata["modalities"] == modality_columns(model)
