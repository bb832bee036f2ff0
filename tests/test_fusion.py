"""MultimodalFusion: a ColumnTransformer whose output names every column's modality."""

import warnings

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


# ---------------------------------------------------------------------- gaps: FunctionTransformer,
# dtypes, modalities lost on the way to the classifier, polars


def _counting_fusion():
    from counting_encoder import CountingEncoder

    return MultimodalFusion([
        ("text", CountingEncoder(dim=3), "review"),
        ("tabular", StandardScaler(), ["price"]),
    ])


def test_function_transformer_without_feature_names_out(frame):
    from sklearn.preprocessing import FunctionTransformer

    fusion = MultimodalFusion([
        ("log", FunctionTransformer(np.log1p), ["price", "unused"]),
        ("tabular", StandardScaler(), ["price"]),
    ])
    out = fusion.fit_transform(frame)
    assert list(out.columns) == ["log__x0", "log__x1", "tabular__price"]
    np.testing.assert_allclose(out["log__x0"], np.log1p(frame["price"]))
    assert list(fusion.get_feature_names_out()) == list(out.columns)
    assert list(fusion.transform(frame).columns) == list(out.columns)


def test_each_block_keeps_its_dtype(frame):
    fusion = _counting_fusion()
    out = fusion.fit_transform(frame)
    assert out.dtypes.to_dict() == {
        "text__h0": np.float32, "text__h1": np.float32, "text__h2": np.float32,
        "tabular__price": np.float64,
    }
    assert list(out.index) == [10, 11, 12, 13]
    text_only = MultimodalFusion([("text", fusion.transformers[0][1], "review")]).fit(frame)
    assert set(text_only.transform(frame).dtypes) == {np.dtype(np.float32)}


def test_a_step_dropping_the_modality_names_is_warned_about(frame):
    from sklearn.feature_selection import VarianceThreshold
    from sklearn.pipeline import make_pipeline

    from skmm.fusion import ModalityWarning, check_modalities

    for step in (StandardScaler(), VarianceThreshold()):
        between = make_pipeline(_counting_fusion(), step).fit_transform(frame)
        with pytest.warns(ModalityWarning, match=r"made 2 \(text, tabular\).*set_output"):
            assert set(check_modalities(between)) == {"input"}
        kept = make_pipeline(_counting_fusion(), step).set_output(transform="pandas").fit_transform(frame)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ModalityWarning)
            assert check_modalities(kept) == ["text"] * 3 + ["tabular"]


def test_polars_in_polars_out(frame):
    pl = pytest.importorskip("polars")
    from counting_encoder import CountingEncoder

    data = frame.reset_index(drop=True)[["review", "price"]]
    polars_data = pl.from_pandas(data) if _has_pyarrow() else pl.DataFrame(data.to_dict("list"))
    expected = _counting_fusion().fit_transform(data)

    out = _counting_fusion().fit_transform(polars_data)
    pd.testing.assert_frame_equal(out, expected)

    fusion = _counting_fusion().set_output(transform="polars")
    polars_out = fusion.fit_transform(polars_data)
    assert isinstance(polars_out, pl.DataFrame) and polars_out.columns == list(expected.columns)
    np.testing.assert_allclose(polars_out.to_numpy(), expected.to_numpy(), equal_nan=True)

    encoder = CountingEncoder(dim=3).fit(polars_data.select("review"))
    assert list(encoder.feature_names_in_) == ["review"]
    np.testing.assert_array_equal(encoder.transform(polars_data["review"]), expected.iloc[:, :3])
    with pytest.raises(ValueError, match="review"):
        encoder.transform(polars_data.select(pl.col("review").alias("other")))


def test_pyarrow_backed_pandas_columns(frame):
    pytest.importorskip("pyarrow")
    expected = _counting_fusion().fit_transform(frame)
    arrow = frame.astype({"review": "string[pyarrow]", "price": "double[pyarrow]"})
    pd.testing.assert_frame_equal(_counting_fusion().fit_transform(arrow), expected)


def _has_pyarrow():
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


# ---------------------------------------------------------------------- transform's fast route


def _three_modality_fusion(**params):
    from counting_encoder import CountingEncoder

    return MultimodalFusion([
        ("text", CountingEncoder(dim=3), "review"),
        ("tabular", StandardScaler(), ["price"]),
        ("category", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
    ], **params)


@pytest.mark.parametrize("n_jobs", [2, -1])
def test_modalities_in_threads_give_the_sequential_output(frame, n_jobs):
    frame = frame.copy()
    frame.loc[12, ["price", "colour"]] = np.nan, None  # review is None too: nothing present
    sequential = _three_modality_fusion().fit(frame)
    threaded = clone(sequential).set_params(n_jobs=n_jobs).fit(frame)
    expected = sequential.transform(frame)
    for rows in ([0], [2], [0, 1, 2, 3]):
        pd.testing.assert_frame_equal(threaded.transform(frame.iloc[rows]), expected.iloc[rows])
    assert expected.loc[12].isna().all()


def test_a_refit_gives_the_new_output_names(frame):
    fusion = _three_modality_fusion()
    first = fusion.fit_transform(frame).columns.tolist()
    fewer = frame.assign(colour=["red", "red", "blue", "blue"])
    second = fusion.fit(fewer).transform(fewer)
    assert "category__colour_green" in first and "category__colour_green" not in second.columns
    assert second.columns.tolist() == fusion.get_feature_names_out().tolist()


def test_a_pickled_fusion_transforms_as_before(frame):
    import pickle

    fusion = _three_modality_fusion(n_jobs=2).fit(frame)
    restored = pickle.loads(pickle.dumps(fusion))
    pd.testing.assert_frame_equal(restored.transform(frame), fusion.transform(frame))


def test_an_encoder_fitted_in_the_fusion_knows_its_column(frame):
    from counting_encoder import CountingEncoder

    fusion = MultimodalFusion([("text", CountingEncoder(dim=3), "review")]).fit(frame)
    encoder = fusion.named_transformers_["text"]
    assert encoder.feature_names_in_.tolist() == ["review"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reused on the same column, as a frame or a Series: no warning
        np.testing.assert_array_equal(encoder.transform(frame[["review"]]), encoder.transform(frame["review"]))
    with pytest.raises(ValueError, match="review"):
        encoder.transform(frame[["review"]].rename(columns={"review": "title"}))
