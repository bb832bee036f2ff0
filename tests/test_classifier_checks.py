"""scikit-learn's estimator checks on MultimodalClassifier (numeric input)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmm import MultimodalClassifier

EXPECTED_FAILURES = {}


@parametrize_with_checks(
    [MultimodalClassifier(max_epochs=30, lr=3e-3, random_state=0)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILURES,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
