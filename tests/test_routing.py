"""sample_weight through a Pipeline, and scikit-learn's metadata routing through the fusion and the classifier."""

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmm import MultimodalClassifier, MultimodalFusion


class WeightRecorder(StandardScaler):
    """A StandardScaler that remembers the sample_weight its fit got."""

    def fit(self, X, y=None, sample_weight=None):
        self.seen_weight_ = sample_weight
        return super().fit(X, y, sample_weight=sample_weight)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    y = np.array(["a", "b", "c"])[np.arange(150) % 3]
    X = pd.DataFrame({"pixels": rng.randn(150) + 2.5 * (y == "b"), "words": rng.randn(150) + 2.5 * (y == "c")})
    return X, y, np.where(y == "c", 0.0, 1.0)  # the weights: class "c" counts for nothing


def make_pipeline(image="passthrough", text="passthrough", **clf_params):
    """Modalities that take no sample_weight (as skmm's encoders) unless given ones that do."""
    return Pipeline([
        ("fusion", MultimodalFusion([("image", image, ["pixels"]), ("text", text, ["words"])])),
        ("clf", MultimodalClassifier(max_epochs=15, random_state=0, verbose=0, **clf_params)),
    ])


def test_sample_weight_reaches_the_classifier_as_clf__sample_weight(data):
    X, y, weight = data
    assert "c" in set(make_pipeline().fit(X, y).predict(X))
    assert "c" not in set(make_pipeline().fit(X, y, clf__sample_weight=weight).predict(X))


def test_routing_reaches_only_the_modalities_that_request_the_weights(data):
    X, y, weight = data
    with sklearn.config_context(enable_metadata_routing=True):
        # a transformer whose fit takes sample_weight must say whether it wants them (scikit-learn's rule)
        pipe = make_pipeline(
            image=WeightRecorder().set_fit_request(sample_weight=True),
            text=WeightRecorder().set_fit_request(sample_weight=False),
        )
        pipe.named_steps["clf"].set_fit_request(sample_weight=True)
        pipe.fit(X, y, sample_weight=weight)
    transformers = pipe.named_steps["fusion"].named_transformers_
    np.testing.assert_array_equal(transformers["image"].seen_weight_, weight)
    assert transformers["text"].seen_weight_ is None
    assert "c" not in set(pipe.predict(X))


def test_a_fusion_whose_modalities_take_no_weights_lets_them_pass_to_the_classifier(data):
    X, y, weight = data
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(text=StandardScaler().set_fit_request(sample_weight=False))
        pipe.named_steps["clf"].set_fit_request(sample_weight=True)
        pipe.fit(X, y, sample_weight=weight)
        assert "c" not in set(pipe.predict(X))


def test_routing_names_the_step_that_did_not_say_whether_it_wants_the_weights(data):
    X, y, weight = data
    with sklearn.config_context(enable_metadata_routing=True):
        with pytest.raises(UnsetMetadataPassedError, match=r"\[sample_weight\].*MultimodalClassifier"):
            make_pipeline().fit(X, y, sample_weight=weight)
        pipe = make_pipeline(image=StandardScaler())
        pipe.named_steps["clf"].set_fit_request(sample_weight=True)
        with pytest.raises(UnsetMetadataPassedError, match=r"StandardScaler.*MultimodalFusion"):
            pipe.fit(X, y, sample_weight=weight)


def test_cross_validate_routes_the_weights_of_each_fold_to_fit_and_score(data):
    X, y, weight = data
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline()
        pipe.named_steps["clf"].set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
        result = cross_validate(
            pipe, X, y, cv=StratifiedKFold(3), params={"sample_weight": weight}, return_estimator=True
        )
    for fold in result["estimator"]:
        assert "c" not in set(fold.predict(X))
    # the rows of "c" (a third of each fold), never predicted, weigh nothing in the score either
    assert result["test_score"].min() > 0.75


def test_grid_search_routes_the_weights_to_every_candidate_and_the_refit(data):
    X, y, weight = data
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline()
        pipe.named_steps["clf"].set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
        search = GridSearchCV(pipe, {"clf__fusion": ["concat", "late"]}, cv=StratifiedKFold(2))
        search.fit(X, y, sample_weight=weight)
    assert "c" not in set(search.predict(X))
    assert search.cv_results_["mean_test_score"].min() > 0.75  # weighted scores: the rows of "c" weigh nothing


def test_calibration_routes_the_weights_to_the_pipeline_it_calibrates(data):
    X, y, weight = data
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline()
        pipe.named_steps["clf"].set_fit_request(sample_weight=True)
        calibrated = CalibratedClassifierCV(pipe, cv=StratifiedKFold(2)).fit(X, y, sample_weight=weight)
    for fold in calibrated.calibrated_classifiers_:
        assert "c" not in set(fold.estimator.predict(X))
    assert calibrated.predict_proba(X).shape == (150, 3)
