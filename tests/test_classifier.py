"""MultimodalClassifier: every fusion strategy, absent modalities, imbalance, training controls."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score
from sklearn.model_selection import GridSearchCV, train_test_split

from fusion_task import make_fusion_task
from skmm import MultimodalClassifier
from skmm.nn import FUSIONS

FAST = dict(max_epochs=40, lr=3e-3, random_state=0)


@pytest.fixture(scope="module")
def split():
    X, y = make_fusion_task(n_samples=600, separation=0.6)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def fitted(split):
    X_train, _, y_train, _ = split
    return {fusion: MultimodalClassifier(fusion=fusion, **FAST).fit(X_train, y_train) for fusion in FUSIONS}


@pytest.mark.parametrize("fusion", FUSIONS)
def test_fusion_beats_every_single_modality(fusion, split, fitted):
    X_train, X_test, y_train, y_test = split
    fused = fitted[fusion].score(X_test, y_test)
    singles = [
        MultimodalClassifier(fusion=fusion, **FAST)
        .fit(X_train.filter(like=f"{m}__"), y_train)
        .score(X_test.filter(like=f"{m}__"), y_test)
        for m in ("image", "text", "audio")
    ]
    assert fused >= 0.75
    assert fused > max(singles) + 0.05, (fused, singles)


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("absent", [["audio"], ["text", "audio"]])
def test_predicts_sensibly_with_absent_modalities(fusion, absent, split, fitted):
    _, X_test, _, y_test = split
    X_missing = X_test.copy()
    for modality in absent:
        X_missing.loc[:, X_missing.columns.str.startswith(f"{modality}__")] = np.nan
    proba = fitted[fusion].predict_proba(X_missing)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert fitted[fusion].score(X_missing, y_test) > 0.45  # chance is 1/3

    weights = fitted[fusion].modality_weights(X_missing)
    assert list(weights.columns) == ["image", "text", "audio"]
    assert (weights[absent].to_numpy() == 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)


def test_row_with_no_modality_gets_class_prior_and_a_warning(split, fitted):
    X_train, X_test, y_train, _ = split
    empty = X_test.iloc[:2].copy()
    empty.loc[:, :] = np.nan
    with pytest.warns(UserWarning, match="every modality missing.*class prior"):
        proba = fitted["attention"].predict_proba(empty)
    prior = pd.Series(y_train).value_counts(normalize=True)[fitted["attention"].classes_].to_numpy()
    np.testing.assert_allclose(proba, np.tile(prior, (2, 1)), rtol=1e-5)


def test_modality_dropout_helps_when_modalities_are_absent(split):
    X_train, X_test, y_train, y_test = split
    X_missing = X_test.copy()
    X_missing.loc[:, X_missing.columns.str.startswith(("text__", "audio__"))] = np.nan
    plain = MultimodalClassifier(fusion="concat", **FAST).fit(X_train, y_train)
    robust = MultimodalClassifier(fusion="concat", modality_dropout=0.5, **FAST).fit(X_train, y_train)
    assert robust.score(X_missing, y_test) > plain.score(X_missing, y_test) + 0.03


def test_balanced_class_weight_raises_minority_recall():
    rng = np.random.RandomState(0)
    y = np.where(rng.rand(800) < 0.1, "rare", "common")
    X = pd.DataFrame({"tab__a": rng.randn(800) + 1.2 * (y == "rare"), "tab__b": rng.randn(800) + 1.2 * (y == "rare")})
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    recall = {}
    for class_weight in (None, "balanced"):
        clf = MultimodalClassifier(class_weight=class_weight, **FAST).fit(X_train, y_train)
        recall[class_weight] = recall_score(y_test, clf.predict(X_test), pos_label="rare")
    assert recall["balanced"] > recall[None] + 0.2, recall


def test_class_weight_dict_must_name_known_classes(split):
    X_train, _, y_train, _ = split
    with pytest.raises(ValueError, match=r"class_weight names classes \['zebra'\]"):
        MultimodalClassifier(class_weight={"zebra": 2.0}, **FAST).fit(X_train, y_train)


def test_focal_loss_trains_a_useful_model(split):
    X_train, X_test, y_train, y_test = split
    clf = MultimodalClassifier(loss="focal", focal_gamma=2.0, **FAST).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.75


@pytest.mark.parametrize("fusion", FUSIONS)
def test_same_random_state_gives_identical_probabilities(fusion, split, fitted):
    X_train, X_test, y_train, _ = split
    again = MultimodalClassifier(fusion=fusion, **FAST).fit(X_train, y_train)
    np.testing.assert_array_equal(again.predict_proba(X_test), fitted[fusion].predict_proba(X_test))
    other = MultimodalClassifier(fusion=fusion, **{**FAST, "random_state": 1}).fit(X_train, y_train)
    assert not np.array_equal(other.predict_proba(X_test), fitted[fusion].predict_proba(X_test))


@pytest.mark.parametrize("fusion", FUSIONS)
def test_pickle_round_trip_keeps_predictions(fusion, split, fitted):
    _, X_test, _, _ = split
    restored = pickle.loads(pickle.dumps(fitted[fusion]))
    np.testing.assert_array_equal(restored.predict_proba(X_test), fitted[fusion].predict_proba(X_test))
    assert restored.predict(X_test).dtype == fitted[fusion].classes_.dtype


def test_grid_search_picks_a_fusion(split):
    X_train, _, y_train, _ = split
    search = GridSearchCV(
        MultimodalClassifier(max_epochs=15, lr=3e-3, random_state=0),
        {"fusion": ["concat", "late"]},
        cv=3,
    ).fit(X_train, y_train)
    assert search.best_params_["fusion"] in {"concat", "late"}
    assert search.best_score_ > 0.6
    assert search.predict(X_train).tolist()[0] in {"ant", "bee", "cow"}


def test_string_labels_come_back_as_labels(split, fitted):
    _, X_test, _, _ = split
    clf = fitted["concat"]
    assert clf.classes_.tolist() == ["ant", "bee", "cow"]
    assert set(clf.predict(X_test)) <= {"ant", "bee", "cow"}
    assert clf.modalities_ == ["image", "text", "audio"]
    assert clf.modality_sizes_ == [6, 6, 6]
    assert clf.n_features_in_ == 18
    assert list(clf.feature_names_in_[:2]) == ["image__f0", "image__f1"]


def test_interleaved_columns_are_grouped_by_modality(split, fitted):
    X_train, X_test, y_train, _ = split
    shuffled = X_train.columns[np.random.RandomState(0).permutation(X_train.shape[1])]
    clf = MultimodalClassifier(**FAST).fit(X_train[shuffled], y_train)
    assert sorted(clf.modalities_) == ["audio", "image", "text"]
    assert clf.score(X_test[shuffled], _y(split)) >= 0.75


def _y(split):
    return split[3]


def test_plain_array_is_one_modality(split):
    X_train, X_test, y_train, y_test = split
    clf = MultimodalClassifier(**FAST).fit(X_train.to_numpy(), y_train)
    assert clf.modalities_ == ["input"]
    assert clf.score(X_test.to_numpy(), y_test) >= 0.75


def test_early_stopping_stops_and_keeps_validation_history(split):
    X_train, _, y_train, _ = split
    clf = MultimodalClassifier(
        max_epochs=300, lr=1e-2, early_stopping=True, patience=3, validation_fraction=0.2, random_state=0
    ).fit(X_train, y_train)
    assert clf.n_iter_ < 300
    assert "valid_loss" in clf.history_[-1]


def test_warm_start_continues_training(split):
    X_train, _, y_train, _ = split
    clf = MultimodalClassifier(max_epochs=5, warm_start=True, random_state=0).fit(X_train, y_train)
    first_net = clf.net_
    clf.fit(X_train, y_train)
    assert clf.net_ is first_net
    assert clf.n_iter_ == 10
    cold = MultimodalClassifier(max_epochs=5, random_state=0).fit(X_train, y_train)
    cold.fit(X_train, y_train)
    assert cold.n_iter_ == 5


def test_modality_weights_follow_the_informative_modality():
    rng = np.random.RandomState(0)
    y = np.repeat(["a", "b"], 200)
    X = pd.DataFrame({
        "useful__x": rng.randn(400) + 3 * (y == "b"),
        "noise__x": rng.randn(400),
    })
    for fusion in ("weighted", "late", "concat"):
        clf = MultimodalClassifier(fusion=fusion, **FAST).fit(X, y)
        weights = clf.modality_weights(X).mean()
        assert weights["useful"] > weights["noise"], (fusion, weights.to_dict())


def test_a_modality_missing_in_every_training_row_is_an_error(split):
    X_train, _, y_train, _ = split
    X_bad = X_train.copy()
    X_bad.loc[:, X_bad.columns.str.startswith("audio__")] = np.nan
    with pytest.raises(ValueError, match="modality 'audio' is missing \\(NaN\\) in every training row"):
        MultimodalClassifier(**FAST).fit(X_bad, y_train)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"fusion": "attention", "shared_dim": 30, "attention_heads": 4}, "shared_dim=30 must be divisible"),
        ({"hidden_dims": (32, -1)}, "hidden_dims must be a tuple of positive integers"),
        ({"fusion": "sum"}, "'fusion' parameter of MultimodalClassifier must be a str among"),
    ],
)
def test_bad_parameters_are_named(params, message, split):
    X_train, _, y_train, _ = split
    with pytest.raises(ValueError, match=message):
        MultimodalClassifier(**params).fit(X_train, y_train)


def test_labels_unseen_at_fit_never_predicted(split, fitted):
    _, X_test, _, _ = split
    assert set(fitted["late"].predict(X_test)) <= set(fitted["late"].classes_)
