"""MultimodalClassifier: every fusion strategy, absent modalities, imbalance, training controls."""

import pickle
import time

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import recall_score
from sklearn.model_selection import GridSearchCV, train_test_split
from skorch.callbacks import Callback

from fusion_task import make_fusion_task
from skmm import MultimodalClassifier
from skmm.nn import FUSIONS

FAST = dict(random_state=0)


class MaxPoolFusion(torch.nn.Module):
    """A user's strategy: element-wise max over the present modalities, then an MLP; no modality weights."""

    def __init__(self, *, shared_dim, n_classes, dropout):
        super().__init__()
        self.head = torch.nn.Sequential(
            torch.nn.Linear(shared_dim, 32), torch.nn.GELU(), torch.nn.Dropout(dropout), torch.nn.Linear(32, n_classes)
        )

    def forward(self, projected, present):
        pooled = projected.masked_fill(~present.unsqueeze(-1), float("-inf")).amax(dim=1)
        return self.head(torch.nan_to_num(pooled, neginf=0.0)), None


class EpochCounter(Callback):
    def initialize(self):
        self.epochs = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.epochs += 1


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
    # a long-trained fused output alone, which learns to lean on every modality (the defaults' strong
    # dropout, per-modality votes and linear member already cover absent modalities in part)
    fused_only = dict(unimodal_loss=0.0, linear_weight=0.0, label_smoothing=0.0, class_weight=None, dropout=0.1,
                      max_epochs=40, lr=3e-3, batch_size=64, random_state=0)
    plain = MultimodalClassifier(**fused_only).fit(X_train, y_train)
    robust = MultimodalClassifier(modality_dropout=0.5, **fused_only).fit(X_train, y_train)
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


def test_a_fusion_class_of_your_own_trains_and_round_trips(split):
    X_train, X_test, y_train, y_test = split
    clf = MultimodalClassifier(fusion=MaxPoolFusion, **FAST).fit(X_train, y_train)
    assert isinstance(clf.net_.module_.strategy, MaxPoolFusion)
    assert clf.score(X_test, y_test) >= 0.7
    assert set(clf.predict(X_test)) <= {"ant", "bee", "cow"}

    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X_test), clf.predict_proba(X_test))
    twin = clone(clf)
    assert twin.get_params()["fusion"] is MaxPoolFusion and not hasattr(twin, "net_")
    np.testing.assert_array_equal(twin.fit(X_train, y_train).predict_proba(X_test), clf.predict_proba(X_test))


class VotingHeads(torch.nn.Module):
    """A user's strategy with both optional hooks: a head per modality, their votes weighted out of fold."""

    calls = []  # what fit_weights was given, per fit

    def __init__(self, *, n_modalities, shared_dim, n_classes):
        super().__init__()
        self.heads = torch.nn.ModuleList(torch.nn.Linear(shared_dim, n_classes) for _ in range(n_modalities))
        self.register_buffer("votes", torch.ones(n_modalities))

    def unimodal_logits(self, projected):
        return torch.stack([head(projected[:, index]) for index, head in enumerate(self.heads)], dim=1)

    def forward(self, projected, present):
        weights = self.votes * present
        weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-12)
        return (weights.unsqueeze(-1) * self.unimodal_logits(projected)).sum(dim=1), weights

    def fit_weights(self, projected, present, target):
        VotingHeads.calls.append(len(target))
        right = self.unimodal_logits(projected).argmax(dim=-1) == target.unsqueeze(1)
        self.votes.copy_((right & present).sum(dim=0) / present.sum(dim=0).clamp(min=1))


def test_a_strategy_s_optional_hooks_train_its_heads_and_weigh_them_on_held_out_rows(split):
    X_train, X_test, y_train, y_test = split
    VotingHeads.calls.clear()
    clf = MultimodalClassifier(fusion=VotingHeads, linear_weight=0, validation_fraction=0.2, **FAST)
    clf.fit(X_train, y_train)
    assert VotingHeads.calls == [round(0.2 * len(y_train))]  # once, on the rows held out of training
    strategy = clf.net_.module_.strategy
    assert not hasattr(clf.net_.module_, "unimodal_heads")  # its own heads, none added
    votes = strategy.votes.numpy()
    assert ((votes > 0.3) & (votes <= 1)).all() and not np.allclose(votes, 1)  # learned, not left at 1
    assert clf.score(X_test, y_test) >= 0.7


def test_a_fusion_class_without_weights_gets_ablation_weights(split):
    X_train, X_test, y_train, _ = split
    clf = MultimodalClassifier(fusion=MaxPoolFusion, **FAST).fit(X_train, y_train)
    X_missing = X_test.copy()
    X_missing.loc[X_missing.index[:20], X_missing.columns.str.startswith("audio__")] = np.nan
    weights = clf.modality_weights(X_missing)
    assert list(weights.columns) == ["image", "text", "audio"]
    assert weights.index.equals(X_missing.index)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    assert (weights["audio"].iloc[:20] == 0).all()
    assert (weights.iloc[20:].to_numpy() > 0).all()


def test_grid_search_chooses_between_a_name_and_a_class(split):
    X_train, _, y_train, _ = split
    search = GridSearchCV(
        MultimodalClassifier(max_epochs=15, lr=3e-3, random_state=0),
        {"fusion": ["concat", MaxPoolFusion]},
        cv=3,
    ).fit(X_train, y_train)
    assert list(search.cv_results_["param_fusion"]) == ["concat", MaxPoolFusion]
    assert search.best_score_ > 0.6


@pytest.mark.parametrize(
    "fusion, message",
    [
        (dict, r"or a torch.nn.Module subclass following skmm.nn.FusionStrategy's interface.*got <class 'dict'>"),
        (MaxPoolFusion(shared_dim=4, n_classes=2, dropout=0.0), r"must be a str among .* or an instance of 'type'"),
    ],
)
def test_a_fusion_that_is_not_a_module_class_is_an_error(fusion, message, split):
    X_train, _, y_train, _ = split
    with pytest.raises(TypeError, match=message):
        MultimodalClassifier(fusion=fusion, **FAST).fit(X_train, y_train)


def test_callbacks_run_next_to_early_stopping_and_survive_clone_and_pickle(split):
    X_train, X_test, y_train, _ = split
    counter = EpochCounter()
    clf = MultimodalClassifier(
        max_epochs=4, early_stopping=True, patience=10, callbacks=[("counter", counter)], random_state=0
    ).fit(X_train, y_train)
    callbacks = dict(clf.net_.callbacks_)
    assert callbacks["counter"].epochs == 4
    assert "EarlyStopping" in callbacks
    assert not hasattr(counter, "epochs")  # fit trained a clone; the object given is untouched

    twin = clone(clf)
    assert isinstance(twin.callbacks[0][1], EpochCounter) and twin.callbacks[0][1] is not counter
    assert dict(twin.fit(X_train, y_train).net_.callbacks_)["counter"].epochs == 4
    restored = pickle.loads(pickle.dumps(clf))
    assert dict(restored.net_.callbacks_)["counter"].epochs == 4
    np.testing.assert_array_equal(restored.predict_proba(X_test), clf.predict_proba(X_test))


def test_warm_start_refits_when_the_classes_change(split):
    X_train, _, y_train, _ = split
    clf = MultimodalClassifier(max_epochs=3, warm_start=True, random_state=0).fit(X_train, y_train)
    two_classes = y_train != "cow"
    clf.fit(X_train[two_classes], y_train[two_classes])
    assert clf.classes_.tolist() == ["ant", "bee"]
    assert clf.n_iter_ == 3
    assert clf.predict_proba(X_train).shape == (len(X_train), 2)


def test_warm_start_switched_on_after_a_fit_continues(split):
    X_train, _, y_train, _ = split
    clf = MultimodalClassifier(max_epochs=3, random_state=0).fit(X_train, y_train)
    clf.set_params(warm_start=True).fit(X_train, y_train)
    assert clf.n_iter_ == 6
    assert [row["epoch"] for row in clf.history_] == [1, 2, 3, 4, 5, 6]


def test_constant_and_never_seen_columns_are_standardised_safely(split):
    X_train, X_test, y_train, y_test = split
    X_train = X_train.assign(text__constant=5.0, text__never=np.nan)
    X_test = X_test.assign(text__constant=5.0, text__never=1e6)  # present at predict time only
    clf = MultimodalClassifier(**FAST).fit(X_train, y_train)
    assert clf.scaler_.scale_[-2:].tolist() == [1.0, 1.0]
    assert clf.scaler_.mean_[-2:].tolist() == [5.0, 0.0]
    proba = clf.predict_proba(X_test)
    assert np.isfinite(proba).all()
    assert clf.score(X_test.assign(text__never=np.nan), y_test) >= 0.75


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


def _two_blocks(n=40, seed=0):
    rng = np.random.RandomState(seed)
    return pd.DataFrame({"a__x": rng.randn(n), "b__y": rng.randn(n)})


@pytest.mark.parametrize("dtype", ["Int64", "boolean"])
def test_nullable_labels_keep_their_dtype(dtype):
    labels = [1, 2] if dtype == "Int64" else [True, False]
    y = pd.Series(labels * 20, dtype=dtype)
    clf = MultimodalClassifier(max_epochs=2, random_state=0).fit(_two_blocks(), y)
    assert clf.classes_.tolist() == sorted(labels)
    assert clf.predict(_two_blocks(3, seed=1)).dtype.kind == ("i" if dtype == "Int64" else "b")


def test_predict_log_proba_is_the_log_of_predict_proba(split):
    X_train, X_test, y_train, _ = split
    clf = MultimodalClassifier(max_epochs=3, random_state=0).fit(X_train, y_train)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X_test)), clf.predict_proba(X_test))


def test_early_stopping_on_a_tiny_fold_says_what_to_change():
    y = np.array(["a", "b"] * 3)
    clf = MultimodalClassifier(max_epochs=2, early_stopping=True, random_state=0)
    with pytest.raises(ValueError, match=r"validation_fraction=0.1 of the 6 training rows.*at least 0.33"):
        clf.fit(_two_blocks(6), y)
    clf.set_params(validation_fraction=0.34).fit(_two_blocks(6), y)
    assert clf.n_iter_ >= 1


class ThreadsSeen(Callback):
    """Records torch's thread count at every training epoch."""

    def initialize(self):
        self.seen = set()
        return self

    def on_epoch_end(self, net, **kwargs):
        self.seen.add(torch.get_num_threads())


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_thread_budget_applies_to_fit_and_predict_and_the_callers_setting_is_restored(split, two_threads):
    X_train, X_test, y_train, _ = split
    clf = MultimodalClassifier(max_epochs=3, callbacks=[("threads", ThreadsSeen())], random_state=0, verbose=0)
    clf.fit(X_train, y_train)
    assert dict(clf.net_.callbacks_)["threads"].seen == {1}  # n_threads=1 by default
    assert torch.get_num_threads() == 2

    seen_in_predict = []
    hook = clf.net_.module_.register_forward_hook(lambda *_: seen_in_predict.append(torch.get_num_threads()))
    try:
        clf.predict_proba(X_test)
        clf.modality_weights(X_test)
    finally:
        hook.remove()
    assert set(seen_in_predict) == {1}
    assert torch.get_num_threads() == 2


def test_n_threads_none_keeps_torchs_setting(split, two_threads):
    X_train, _, y_train, _ = split
    clf = MultimodalClassifier(max_epochs=2, n_threads=None, callbacks=[("threads", ThreadsSeen())], verbose=0)
    assert dict(clf.fit(X_train, y_train).net_.callbacks_)["threads"].seen == {2}


def test_thread_budget_holds_when_folds_run_in_parallel_threads(split, two_threads):
    from joblib import parallel_backend
    from sklearn.model_selection import cross_validate

    X_train, _, y_train, _ = split
    clf = MultimodalClassifier(max_epochs=3, callbacks=[("threads", ThreadsSeen())], random_state=0, verbose=0)
    with parallel_backend("threading", n_jobs=2):
        result = cross_validate(clf, X_train, y_train, cv=2, return_estimator=True)
    assert all(dict(fold.net_.callbacks_)["threads"].seen == {1} for fold in result["estimator"])
    assert result["test_score"].min() > 0.5
    assert torch.get_num_threads() == 2


class SlowEpochs(Callback):
    """Makes every epoch last a while, so that a fit takes longer than the progress bar's delay."""

    def on_epoch_end(self, net, **kwargs):
        time.sleep(0.4)


def test_a_long_fit_shows_progress_on_stderr_by_default(split, capsys):
    X_train, _, y_train, _ = split
    MultimodalClassifier(max_epochs=5, callbacks=[SlowEpochs()], random_state=0).fit(X_train, y_train)
    captured = capsys.readouterr()
    assert "MultimodalClassifier" in captured.err and "epoch" in captured.err and "train_loss" in captured.err
    assert captured.out == ""  # skorch's epoch table only at verbose=2


def test_verbose_0_is_silent_and_verbose_2_prints_skorchs_table(split, capsys):
    X_train, _, y_train, _ = split
    MultimodalClassifier(max_epochs=5, callbacks=[SlowEpochs()], verbose=0).fit(X_train, y_train)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    MultimodalClassifier(max_epochs=2, verbose=2).fit(X_train, y_train)
    assert "train_loss" in capsys.readouterr().out


def _signal_and_noise(n_samples, random_state):
    """A weak 4-feature signal modality next to a 200-feature modality of pure noise."""
    rng = np.random.RandomState(random_state)
    y = rng.randint(0, 3, n_samples)
    signal = np.random.RandomState(0).randn(3, 4)[y] + rng.randn(n_samples, 4)
    columns = [f"signal__{i}" for i in range(4)] + [f"noise__{i}" for i in range(200)]
    return pd.DataFrame(np.hstack([signal, rng.randn(n_samples, 200)]).astype(np.float32), columns=columns), y


def test_late_fusion_ignores_a_noise_modality_that_concatenation_overfits():
    X, y = _signal_and_noise(300, random_state=1)
    X_test, y_test = _signal_and_noise(600, random_state=2)
    late = MultimodalClassifier(fusion="late", max_epochs=30, random_state=0, verbose=0).fit(X, y)
    concat = MultimodalClassifier(fusion="concat", max_epochs=30, random_state=0, verbose=0).fit(X, y)
    assert late.score(X_test, y_test) > concat.score(X_test, y_test) + 0.03
    weights = late.modality_weights(X_test).mean()
    assert weights["signal"] > 0.6  # learned on rows the heads did not train on


def test_unimodal_loss_trains_every_modality_to_predict_on_its_own(split):
    X_train, X_test, y_train, y_test = split
    clf = MultimodalClassifier(unimodal_loss=1.0, verbose=0, **FAST).fit(X_train, y_train)
    module = clf.net_.module_.eval()
    with torch.no_grad():
        projected, _ = module.project(torch.as_tensor(clf._prepare(X_test)))
        own = module._unimodal_logits(projected).argmax(dim=-1).numpy()  # (rows, modalities)
    truth = np.searchsorted(clf.classes_, y_test)
    assert min((own[:, m] == truth).mean() for m in range(3)) > 0.45  # chance is 1/3
    assert clf.score(X_test, y_test) >= 0.75


def test_prediction_averages_the_fused_output_with_each_present_modality_s_own_vote(split):
    X_train, X_test, y_train, _ = split
    X_test = X_test.copy()
    X_test.iloc[:5, X_test.columns.str.startswith("audio__")] = np.nan  # audio absent from 5 rows
    clf = MultimodalClassifier(verbose=0, **FAST).fit(X_train, y_train)
    module = clf.net_.module_.eval()
    prepared = clf._prepare(X_test)
    with torch.no_grad():
        projected, present = module.project(torch.as_tensor(prepared))
        fused = torch.softmax(module.strategy(projected, present)[0], dim=-1).numpy()
        own = torch.softmax(module._unimodal_logits(projected), dim=-1).numpy()
    present = present.numpy()
    network = (fused + (own * present[:, :, None]).sum(axis=1)) / (1 + present.sum(axis=1, keepdims=True))
    expected = _with_linear_member(clf, prepared, network)
    np.testing.assert_allclose(clf.predict_proba(X_test), expected, rtol=1e-4, atol=1e-6)
    assert present[:5, 2].sum() == 0 and present[5:].all()  # the absent audio had no vote

    fused_only = MultimodalClassifier(unimodal_loss=0.0, verbose=0, **FAST).fit(X_train, y_train)
    assert not hasattr(fused_only.net_.module_, "unimodal_heads")


# ------------------------------------------------------------------ sample weights


def _three_classes(n=150, seed=0):
    rng = np.random.RandomState(seed)
    y = np.array(["a", "b", "c"])[np.arange(n) % 3]
    X = pd.DataFrame({
        "image__x": rng.randn(n) + 2.5 * (y == "b"),
        "text__x": rng.randn(n) + 2.5 * (y == "c"),
    })
    return X, y


@pytest.mark.parametrize(
    "params",
    [{"fusion": "concat"}, {"fusion": "late", "unimodal_loss": 1.0}, {"fusion": "attention", "early_stopping": True}],
)
def test_a_class_whose_rows_all_weigh_zero_is_never_predicted(params):
    X, y = _three_classes()
    unweighted = MultimodalClassifier(max_epochs=20, random_state=0, verbose=0, **params).fit(X, y)
    assert "c" in set(unweighted.predict(X))
    weighted = MultimodalClassifier(max_epochs=20, random_state=0, verbose=0, **params)
    weighted.fit(X, y, sample_weight=np.where(y == "c", 0.0, 1.0))
    assert weighted.classes_.tolist() == ["a", "b", "c"]
    assert "c" not in set(weighted.predict(X))
    assert weighted.predict_proba(X)[:, 2].max() < 0.2


def test_weight_2_on_a_row_is_the_same_as_repeating_it():
    X, y = _three_classes()
    twice = np.where(y == "b", 2.0, 1.0)
    repeated = np.repeat(np.arange(len(y)), twice.astype(int))
    # one batch and no dropout: the weighted mean and the mean over repeated rows are the same loss
    params = dict(max_epochs=20, batch_size=1000, dropout=0.0, random_state=0, verbose=0)
    weighted = MultimodalClassifier(**params).fit(X, y, sample_weight=twice)
    duplicated = MultimodalClassifier(**params).fit(X.iloc[repeated], y[repeated])
    unweighted = MultimodalClassifier(**params).fit(X, y)
    np.testing.assert_allclose(weighted.predict_proba(X), duplicated.predict_proba(X), atol=1e-4)
    assert np.abs(unweighted.predict_proba(X) - duplicated.predict_proba(X)).max() > 0.01
    np.testing.assert_allclose(weighted.scaler_.mean_, duplicated.scaler_.mean_, rtol=1e-5)

    # in mini-batches the two differ (other batches), yet predict alike
    params["batch_size"] = 32
    weighted = MultimodalClassifier(**params).fit(X, y, sample_weight=twice)
    duplicated = MultimodalClassifier(**params).fit(X.iloc[repeated], y[repeated])
    assert (weighted.predict(X) == duplicated.predict(X)).mean() > 0.95
    assert np.abs(weighted.predict_proba(X) - duplicated.predict_proba(X)).mean() < 0.05


class ValidationRows(Callback):
    """Keeps the validation rows' features and weights as skorch's split gives them."""

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        rows = np.asarray(dataset_valid.indices)
        self.weights = dataset_valid.dataset.X["sample_weight"][rows]
        self.first_feature = dataset_valid.dataset.X["X"][rows, 0]


def test_rows_held_out_for_early_stopping_keep_their_weights():
    X, y = _three_classes()
    weight = np.arange(len(y), dtype=np.float32) + 1  # row i weighs i + 1
    clf = MultimodalClassifier(
        max_epochs=2, early_stopping=True, validation_fraction=0.2, callbacks=[("rows", ValidationRows())],
        random_state=0, verbose=0,
    ).fit(X, y, sample_weight=weight)
    rows = dict(clf.net_.callbacks_)["rows"]
    assert len(rows.weights) == 30
    standardised_image = (X["image__x"].to_numpy() - clf.scaler_.mean_[0]) / clf.scaler_.scale_[0]
    positions = [int(np.argmin(np.abs(standardised_image - value))) for value in rows.first_feature]
    np.testing.assert_array_equal(rows.weights, weight[positions])


@pytest.mark.parametrize(
    "sample_weight, message",
    [
        (-np.ones(150), "Negative values in data passed to `sample_weight`"),
        (np.r_[np.nan, np.ones(149)], "sample_weight contains NaN"),
        (np.ones(149), r"sample_weight.shape == \(149,\), expected \(150,\)"),
        (np.zeros(150), "sample_weight is zero for every row"),
    ],
)
def test_bad_sample_weight_is_named(sample_weight, message):
    X, y = _three_classes()
    with pytest.raises(ValueError, match=message):
        MultimodalClassifier(max_epochs=1, verbose=0).fit(X, y, sample_weight=sample_weight)


# ------------------------------------------------------------------ randomness


def test_seeded_fits_in_parallel_threads_equal_a_serial_fit():
    from concurrent.futures import ThreadPoolExecutor

    X, y = _three_classes(300)
    # every source of randomness: initialisation, shuffling, dropout (also inside the attention), modality dropout
    params = dict(fusion="attention", dropout=0.3, modality_dropout=0.3, unimodal_loss=0.5, max_epochs=8, verbose=0)

    def fit(random_state):
        return MultimodalClassifier(random_state=random_state, **params).fit(X, y).predict_proba(X)

    serial = fit(0)
    seeds = [0, None, 0, 0, None, 0]  # four seeded fits, and two unseeded ones drawing at the same time
    with ThreadPoolExecutor(len(seeds)) as pool:
        results = list(pool.map(fit, seeds))
    for seed, proba in zip(seeds, results):
        if seed == 0:
            np.testing.assert_array_equal(proba, serial)
        else:
            assert not np.array_equal(proba, serial)


def test_a_seeded_fit_leaves_torchs_global_generator_alone_and_an_unseeded_one_follows_it():
    X, y = _three_classes()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    MultimodalClassifier(max_epochs=2, random_state=0, verbose=0).fit(X, y)
    torch.testing.assert_close(torch.rand(3), expected)

    unseeded = []
    for _ in range(2):
        torch.manual_seed(7)
        unseeded.append(MultimodalClassifier(max_epochs=2, verbose=0).fit(X, y).predict_proba(X))
    np.testing.assert_array_equal(*unseeded)


# ---------------------------------------------------------------------- the predict path's fast route


def _skorch_reference(clf, X):
    """Probabilities as predict_proba computed them before its fast route: every check, skorch's loop."""
    from sklearn.utils.validation import validate_data

    from skmm.classifier import _clip

    checked = validate_data(clf, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
    prepared = _clip(clf.scaler_.transform(checked))[:, clf._column_order]
    proba = _with_linear_member(clf, prepared, clf.net_.predict_proba(prepared).astype(np.float64))
    return proba / proba.sum(axis=1, keepdims=True)


def _with_linear_member(clf, prepared, network_proba):
    """The ensemble's probabilities: the network's and the logistic regression's, by ``linear_weight``."""
    linear = clf.linear_.predict_proba(np.nan_to_num(prepared, nan=0.0))
    blended = (1 - clf.linear_weight) * network_proba + clf.linear_weight * linear
    nothing = np.isnan(prepared).all(axis=1)  # no modality: the network's class prior alone
    blended[nothing] = network_proba[nothing]
    return blended


@pytest.mark.parametrize("fusion", ["concat", "attention"])
def test_fast_prediction_equals_skorchs_with_absent_modalities_and_nan(fusion, split, fitted):
    _, X_test, _, _ = split
    X = X_test.iloc[:70].copy()
    X.loc[X.index[:10], X.columns.str.startswith("audio__")] = np.nan  # absent modality
    X.iloc[10:20, 3] = np.nan  # single missing features
    X.iloc[20:22] = np.nan  # nothing present: the class prior
    clf = fitted[fusion]
    with pytest.warns(UserWarning, match="every modality missing"):
        fast = clf.predict_proba(X)
    np.testing.assert_allclose(fast, _skorch_reference(clf, X), rtol=0, atol=1e-6)
    assert fast.shape == (70, len(clf.classes_))  # more rows than one batch of 64
    # a frame whose dtypes need scikit-learn's conversion takes the checked route, same answer
    np.testing.assert_allclose(clf.predict_proba(X.iloc[22:30].astype(object)), fast[22:30], atol=1e-6)


def test_a_missing_renamed_or_reordered_column_still_raises_scikit_learns_error(split, fitted):
    _, X_test, _, _ = split
    clf, X = fitted["concat"], X_test.iloc[:3]
    first = X.columns[0]
    with pytest.raises(ValueError, match="Feature names seen at fit time, yet now missing"):
        clf.predict_proba(X.drop(columns=first))
    with pytest.raises(ValueError, match="Feature names unseen at fit time"):
        clf.predict_proba(X.rename(columns={first: "renamed"}))
    with pytest.raises(ValueError, match="same order"):
        clf.predict_proba(X[X.columns[::-1]])
    with pytest.raises(ValueError, match="infinity"):
        clf.predict_proba(X.replace({X.iloc[0, 0]: np.inf}))


def test_far_out_features_are_still_clipped_with_a_warning(split, fitted):
    import skmm

    _, X_test, _, _ = split
    clf, X = fitted["concat"], X_test.iloc[:4].astype({X_test.columns[0]: np.float64})
    X.iloc[2, 0] = 1e300  # finite in float64, far out of any float32 range
    with pytest.warns(skmm.InputWarning, match="1 row\\(s\\) have features more than .*first at row 2"):
        proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba, _skorch_reference(clf, X), atol=1e-6)


# ------------------------------------------------------------------ the ensemble of a network and a linear model


def _members_and_ensemble(clf, X, y):
    """Held-out accuracy of the network alone, the linear member alone and the ensemble, all from ``clf``."""
    prepared = clf._prepare(X)
    network = clf._network_proba(prepared)
    linear = clf.linear_.predict_proba(np.nan_to_num(prepared, nan=0.0))
    return [np.mean(clf.classes_[p.argmax(axis=1)] == y) for p in (network, linear, clf.predict_proba(X))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_ensemble_beats_both_members_where_the_evidence_is_weak_and_spread(seed):
    """Many weak features, few rows: the network overfits, the linear model is biased; averaged, both gain.

    In batches of 256 rows (20 steps in all): with ``batch_size="auto"``'s 160 steps on these 240 rows
    the network overfits the weak evidence more, and the ensemble lands on the linear member's accuracy
    rather than above it on some seeds (see docs/classifier.md, "Small sets").
    """
    X, y = make_fusion_task(n_samples=1200, separation=0.15, width=40, random_state=seed)
    X_train, X_test, y_train, y_test = train_test_split(X, y, train_size=240, random_state=0, stratify=y)
    network, linear, ensemble = _members_and_ensemble(
        MultimodalClassifier(batch_size=256, **FAST).fit(X_train, y_train), X_test, y_test
    )
    assert ensemble > max(network, linear)


def _xor_task(n=800, seed=0):
    """The class is the sign of x0 * x1 (only a network reads it), plus weak linear evidence in 30 features."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 2, n)
    sign = np.where(y == 1, 1.0, -1.0)
    image = rng.randn(n, 2)
    image[:, 1] = np.abs(image[:, 1]) * np.sign(image[:, 0]) * sign
    flipped = rng.rand(n) < 0.1
    image[flipped, 1] *= -1
    text = rng.randn(n, 30) + 0.2 * sign[:, None] * rng.rand(30)[None, :]
    columns = [f"image__f{i}" for i in range(2)] + [f"text__f{i}" for i in range(30)]
    return pd.DataFrame(np.hstack([image, text]), columns=columns).astype(np.float32), np.array(["no", "yes"])[y]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_ensemble_keeps_most_of_what_only_the_network_reads(seed):
    """An interaction the linear member cannot read: the ensemble keeps most of the network's lead
    (the price of the linear member's weight on such data is a few points, not the lead)."""
    X, y = _xor_task(seed=seed)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    network, linear, ensemble = _members_and_ensemble(
        MultimodalClassifier(**FAST).fit(X_train, y_train), X_test, y_test
    )
    assert network > linear + 0.05
    assert ensemble > linear + 0.04 and ensemble > network - 0.05


def test_the_linear_member_s_penalty_is_per_row_and_a_weight_2_row_counts_twice():
    X, y = make_fusion_task(n_samples=120, random_state=0)
    clf = MultimodalClassifier(linear_alpha=0.25, **FAST).fit(X, y)
    assert clf.linear_.C == pytest.approx(1 / (0.25 * 120))
    weighted = MultimodalClassifier(linear_alpha=0.25, **FAST).fit(X, y, sample_weight=np.r_[2.0, np.ones(119)])
    assert weighted.linear_.C == pytest.approx(1 / (0.25 * 121))


def test_balanced_sqrt_class_weights_are_the_square_root_of_balanced():
    X, y = make_fusion_task(n_samples=120, random_state=0)
    y = np.where(np.arange(120) < 80, "common", y)  # 80 rows of one class, the rest split in three
    fast = dict(max_epochs=1, **FAST)
    balanced = MultimodalClassifier(class_weight="balanced", **fast).fit(X, y).net_.criterion_.base.weight.numpy()
    sqrt = MultimodalClassifier(**fast).fit(X, y).net_.criterion_.base.weight.numpy()
    np.testing.assert_allclose(sqrt, np.sqrt(balanced), rtol=1e-6)
    assert sqrt.max() / sqrt.min() < balanced.max() / balanced.min()


def test_linear_weight_0_is_the_network_alone():
    X, y = make_fusion_task(n_samples=150, random_state=0)
    clf = MultimodalClassifier(linear_weight=0.0, **FAST).fit(X, y)
    assert clf.linear_ is None
    np.testing.assert_allclose(clf.predict_proba(X), clf._network_proba(clf._prepare(X)), rtol=1e-6)


def _steps(clf):
    """Rows of each training step of the first epoch."""
    return [batch["train_batch_size"] for batch in clf.history_[0]["batches"]]


def test_auto_batch_size_gives_every_epoch_eight_steps_on_a_small_set():
    X, y = make_fusion_task(n_samples=200, random_state=0)
    auto = MultimodalClassifier(random_state=0, verbose=0).fit(X, y)
    assert _steps(auto) == [25] * 8  # ceil(200 / 8) rows a step
    fixed = MultimodalClassifier(batch_size=256, random_state=0, verbose=0).fit(X, y)
    assert _steps(fixed) == [200]
    # eight times the steps: the network ends its 20 epochs further down its training loss
    assert auto.history_[-1]["train_loss"] < fixed.history_[-1]["train_loss"]


def test_auto_batch_size_is_256_rows_from_2048_rows_up_and_a_number_is_kept():
    X, y = make_fusion_task(n_samples=3000, width=2, random_state=0)
    assert _steps(MultimodalClassifier(max_epochs=1, random_state=0, verbose=0).fit(X, y)) == [256] * 11 + [184]
    assert _steps(MultimodalClassifier(max_epochs=1, batch_size=1000, verbose=0).fit(X, y)) == [1000] * 3
    # a warm start on fewer rows cuts its steps for its own rows
    clf = MultimodalClassifier(max_epochs=1, warm_start=True, random_state=0, verbose=0).fit(X, y)
    clf.fit(X.iloc[:400], y[:400])
    assert [batch["train_batch_size"] for batch in clf.history_[-1]["batches"]] == [50] * 8
