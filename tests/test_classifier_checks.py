"""scikit-learn's estimator checks on MultimodalClassifier (numeric input)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmm import MultimodalClassifier

EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": (
        "mini-batch training: a row of weight 2 and two copies of it fall in other batches, so the models "
        "are close, not equal (tests/test_classifier.py checks that they are equal in one full batch)"
    ),
}


@parametrize_with_checks(
    [MultimodalClassifier(max_epochs=30, lr=3e-3, random_state=0)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILURES,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
