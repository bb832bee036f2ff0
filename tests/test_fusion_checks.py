"""scikit-learn's estimator checks on MultimodalFusion with numeric transformers.

The checks feed numpy arrays, so the modalities select columns by position.
MultimodalFusion fails what ColumnTransformer itself fails (scikit-learn's own
test suite lists these as known failures of ColumnTransformer), plus one check
that reads ``.dtype`` from the output, which is a DataFrame by design. Its tags
are its transformers' (``allow_nan`` here, from StandardScaler), so the checks
that run are the ones that apply.
"""

from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmm import MultimodalFusion

AS_COLUMN_TRANSFORMER = "a known failure of ColumnTransformer, which MultimodalFusion extends"

EXPECTED_FAILURES = {
    "check_estimator_sparse_array": (
        f"a DIA sparse array cannot be indexed by column (TypeError); {AS_COLUMN_TRANSFORMER}"
    ),
    "check_estimator_sparse_matrix": (
        f"a DIA sparse matrix cannot be indexed by column (TypeError); {AS_COLUMN_TRANSFORMER}"
    ),
    "check_fit1d": f"a 1-D X fails with IndexError, not ValueError; {AS_COLUMN_TRANSFORMER}",
    "check_fit2d_predict1d": (
        "a 1-D X at transform is refused with 'X does not contain any features', not with "
        f"'Reshape your data'; {AS_COLUMN_TRANSFORMER}"
    ),
    "check_transformer_preserve_dtypes": (
        "the output is a DataFrame (its '<modality>__' column names tell MultimodalClassifier "
        "the modalities) whose columns keep StandardScaler's dtype, as the tags say; the check "
        "reads .dtype, which only arrays have"
    ),
}

#: with a modality on column 0, an input without columns is refused before it is validated
EXPECTED_FAILURES_FIRST_COLUMN = {
    **EXPECTED_FAILURES,
    "check_estimators_empty_data_messages": (
        "an input without columns is refused with 'all features must be in [0, -1]' (there is "
        f"no column 0), not with scikit-learn's usual '0 feature(s)'; {AS_COLUMN_TRANSFORMER}"
    ),
}


def expected_failures(fusion):
    if fusion.remainder == "drop":
        return EXPECTED_FAILURES
    return EXPECTED_FAILURES_FIRST_COLUMN


@parametrize_with_checks(
    [
        MultimodalFusion([("numbers", StandardScaler(), slice(0, None))]),
        MultimodalFusion([("first", StandardScaler(), [0])], remainder=StandardScaler()),
    ],
    expected_failed_checks=expected_failures,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_the_tags_say_what_the_modalities_accept():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.utils import get_tags

    from skmm import ImageEncoder, TextEncoder

    numbers = get_tags(MultimodalFusion([("n", StandardScaler(), ["a"])]))
    assert not numbers.input_tags.string and numbers.input_tags.allow_nan
    assert numbers.transformer_tags.preserves_dtype == ["float64", "float32"]
    mixed = get_tags(MultimodalFusion([("n", StandardScaler(), ["a"]), ("c", OneHotEncoder(), ["b"])]))
    assert mixed.input_tags.categorical and mixed.transformer_tags.preserves_dtype == ["float64"]
    media = get_tags(MultimodalFusion([("image", ImageEncoder(), "img"), ("text", TextEncoder(), "txt")]))
    assert media.input_tags.string and media.input_tags.allow_nan
    assert media.transformer_tags.preserves_dtype == []  # the encoders give float32 whatever the input
    assert not get_tags(MultimodalFusion([("t", TfidfVectorizer(), "txt")])).input_tags.allow_nan
