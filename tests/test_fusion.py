"""MultimodalFusion: a ColumnTransformer whose output names every column's modality."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from skmm import MultimodalFusion, TextEncoder


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "review": ["good red car", "bad blue car", None, "good cat"],
            "price": [1.0, 2.0, 3.0, np.nan],
            "colour": ["red", "blue", "red", "green"],
            "unused": [0, 0, 0, 0],
        },
        index=[10, 11, 12, 13],
    )


def test_output_is_a_frame_with_modality_prefixes(frame, tiny_text_model):
    fusion = MultimodalFusion([
        ("text", TextEncoder(tiny_text_model, verbose=0), "review"),
        ("words", TfidfVectorizer(), "review"),
        ("tabular", StandardScaler(), ["price"]),
        ("category", OneHotEncoder(), ["colour"]),
    ])
    frame = frame.fillna({"review": ""})
    out = fusion.fit_transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert out.index.tolist() == [10, 11, 12, 13]
    prefixes = {column.split("__")[0] for column in out.columns}
    assert prefixes == {"text", "words", "tabular", "category"}
    assert "words__good" in out.columns and "category__colour_red" in out.columns
    assert fusion.modalities_ == {"text": ["review"], "words": ["review"], "tabular": ["price"], "category": ["colour"]}
    np.testing.assert_array_equal(out.to_numpy(), fusion.transform(frame).to_numpy())


def test_missing_text_is_an_absent_modality_block(frame, tiny_text_model):
    fusion = MultimodalFusion([("text", TextEncoder(tiny_text_model, verbose=0), "review")])
    out = fusion.fit_transform(frame)
    assert out.loc[12].isna().all() and out.loc[[10, 11, 13]].notna().all().all()


def test_missing_column_lists_the_columns_present(frame):
    fusion = MultimodalFusion([("tabular", StandardScaler(), ["price", "age"])])
    with pytest.raises(ValueError, match=r"column\(s\) \['age'\] are not in the data.*'review', 'price'"):
        fusion.fit(frame)


def test_remainder_passthrough_is_its_own_modality(frame):
    fusion = MultimodalFusion([("tabular", StandardScaler(), ["price"])], remainder="passthrough")
    out = fusion.fit_transform(frame[["price", "unused"]])
    assert out.columns.tolist() == ["tabular__price", "remainder__unused"]


def test_modality_names_cannot_contain_the_separator(frame):
    # scikit-learn's own check of step names (_BaseComposition._validate_names)
    with pytest.raises(ValueError, match=r"names must not contain __: got \['tab__x'\]"):
        MultimodalFusion([("tab__x", StandardScaler(), ["price"])]).fit(frame)


def test_parameters_are_validated_by_scikit_learn_first(frame):
    with pytest.raises(InvalidParameterError, match="'transformers' parameter of MultimodalFusion"):
        MultimodalFusion("oops").fit(frame)
    with pytest.raises(InvalidParameterError, match="'remainder' parameter of MultimodalFusion"):
        MultimodalFusion([("tabular", StandardScaler(), ["price"])], remainder="keep").fit(frame)


def test_a_modality_that_is_not_a_triple_is_named(frame):
    with pytest.raises(ValueError, match=r"transformers\[1\] must be a \(modality name, transformer, columns\)"):
        MultimodalFusion([("tabular", StandardScaler(), ["price"]), ("oops", StandardScaler())]).fit(frame)


def test_output_names_must_keep_the_modality_prefix(frame):
    fusion = MultimodalFusion([("tabular", StandardScaler(), ["price"])], verbose_feature_names_out=False)
    with pytest.raises(ValueError, match="verbose_feature_names_out must be True.*got False"):
        fusion.fit(frame)


def test_clone_and_nested_params(frame, tiny_text_model):
    fusion = MultimodalFusion([("text", TextEncoder(tiny_text_model, verbose=0), "review")])
    fusion.set_params(text__max_length=8)
    twin = clone(fusion)
    assert twin.get_params()["text__max_length"] == 8
    assert twin.transformers[0][1] is not fusion.transformers[0][1]
