"""Fine-tuning an encoder's backbone: what it learns, what it caches, keeps, saves, and refuses."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmm import FineTuning, ImageEncoder, TextEncoder

WORDS = ["blue", "green", "cat", "dog", "bird", "car", "mat", "sat", "ran", "on"]


def red_or_not(n, seed):
    """Texts of six words; the label says whether one of them is "red"."""
    rng = np.random.default_rng(seed)
    texts, labels = [], rng.integers(0, 2, n)
    for label in labels:
        words = list(rng.choice(WORDS, 6))
        if label:
            words[rng.integers(6)] = "red"
        texts.append(" ".join(words))
    return texts, labels


def tuned(model, mode="top", **params):
    if mode == "lora":
        pytest.importorskip("peft")  # the finetune extra
    settings = {"blocks": 2, "epochs": 4, "lr": 1e-3, "random_state": 0, **params}
    return TextEncoder(model, fine_tune=FineTuning(mode, **settings), n_threads=1, verbose=0, cache="memory")


def count_trunk_rows(patch, encoder_class):
    """The rows ``encoder_class`` runs through its frozen blocks while ``patch`` holds: a list that fills up."""
    rows_run, trunk_batch = [], encoder_class._trunk_batch

    def counted(self, items, bundle, cut):
        rows_run.extend(items)
        return trunk_batch(self, items, bundle, cut)

    patch.setattr(encoder_class, "_trunk_batch", counted)
    return rows_run


def check_reproducible_and_tuned(encoder, again, X, frozen):
    """The same seed gave the same weights; a missing row is NaN; the features are not the frozen model's."""
    for name, weights in encoder.fine_tuned_.items():
        np.testing.assert_array_equal(weights, again.fine_tuned_[name])
    Z = encoder.transform(X + [None])
    assert np.isnan(Z[-1]).all() and np.isfinite(Z[:-1]).all()
    assert not np.allclose(Z[:-1], frozen.fit(X).transform(X), atol=1e-3)


def held_out_accuracy(encoder, train, test):
    """What a linear model on the encoder's features scores on rows the encoder never saw."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    probe.fit(encoder.transform(train[0]), train[1])
    return probe.score(encoder.transform(test[0]), test[1])


@pytest.mark.parametrize("mode", ["top", "lora"])
def test_fine_tuning_keeps_only_the_trained_part_and_is_reproducible(tiny_text_model, mode):
    X, y = red_or_not(120, seed=0)
    first = tuned(tiny_text_model, mode).fit(X, y)
    second = tuned(tiny_text_model, mode).fit(X, y)
    assert first.fine_tuned_.keys() == second.fine_tuned_.keys()
    for name, weights in first.fine_tuned_.items():
        np.testing.assert_array_equal(weights, second.fine_tuned_[name])
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    if mode == "lora":  # only the adapters, not the layers they adapt
        assert all("lora_" in name for name in first.fine_tuned_)
    else:  # the top two layers of the two the tiny model has: every one of their weights
        backbone = first._bundle().network
        assert sum(w.size for w in first.fine_tuned_.values()) == sum(
            p.numel() for p in backbone.encoder.layer.parameters()
        )


def test_held_out_loss_is_never_worse_than_the_frozen_weights(tiny_text_model):
    X, y = red_or_not(160, seed=1)
    encoder = tuned(tiny_text_model, epochs=3).fit(X, y)
    history = encoder.fine_tune_history_
    assert history[0]["epoch"] == 0 and "train_loss" not in history[0]  # the frozen weights, scored
    kept = min(record["valid_loss"] for record in history)
    assert kept <= history[0]["valid_loss"]


def test_the_frozen_blocks_run_once_per_row(tiny_text_model):
    """The frozen activations are computed once per row, in fit; transform and a refit reuse them."""
    X, y = red_or_not(60, seed=2)
    encoder = tuned(tiny_text_model, epochs=1)
    calls = []
    original = TextEncoder._trunk_batch

    def counting(self, items, bundle, cut):
        calls.extend(items)
        return original(self, items, bundle, cut)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TextEncoder, "_trunk_batch", counting)
        encoder.fit(X, y)
        assert sorted(calls) == sorted(set(X))
        encoder.transform(X)
        clone(encoder).set_params(fine_tune__epochs=2).fit(X, y)
    assert sorted(calls) == sorted(set(X)), "the frozen blocks ran again on rows already seen"


def red_car_or_car_red(n, seed):
    """Texts of six words; the label says whether "red" comes before "car" or after it."""
    rng = np.random.default_rng(seed)
    texts, labels = [], rng.integers(0, 2, n)
    for label in labels:
        words = list(rng.choice(WORDS[:2] + WORDS[3:], 4))
        position = rng.integers(0, 5)
        words[position:position] = ["red", "car"] if label else ["car", "red"]
        texts.append(" ".join(words))
    return texts, labels


@pytest.mark.parametrize("mode", ["top", "lora"])
def test_fine_tuned_features_learn_what_the_frozen_ones_miss(tiny_text_model, mode):
    """Word order, which a frozen random model's mean-pooled features barely keep, is learned."""
    train, test = red_car_or_car_red(600, seed=0), red_car_or_car_red(300, seed=1)
    frozen = TextEncoder(tiny_text_model, n_threads=1, verbose=0, cache=None).fit(train[0])
    encoder = tuned(tiny_text_model, mode, epochs=10).fit(*train)
    assert held_out_accuracy(encoder, train, test) > held_out_accuracy(frozen, train, test) + 0.05


def test_fit_needs_the_labels(tiny_text_model):
    with pytest.raises(ValueError, match=r"learns from the labels: call fit\(X, y\)"):
        TextEncoder(tiny_text_model, fine_tune="top", verbose=0).fit(["a red car", "a cat"])


def test_blocks_beyond_the_model_are_refused(tiny_text_model):
    with pytest.raises(ValueError, match=r"fine_tune__blocks=5, but .* has 2 blocks; choose 1 to 2"):
        tuned(tiny_text_model, blocks=5).fit(*red_or_not(20, seed=0))


def test_an_unknown_mode_names_the_choices():
    with pytest.raises(ValueError, match="fine_tune"):
        TextEncoder(fine_tune="full", verbose=0).fit(["a", "b"], [0, 1])


def test_an_architecture_without_known_blocks_is_refused(tmp_path):
    """DistilBERT keeps its layers in ``transformer.layer``, where skmm does not look for them."""
    from transformers import BertTokenizerFast, DistilBertConfig, DistilBertModel

    from tiny_models import VOCAB

    BertTokenizerFast(vocab={token: i for i, token in enumerate(VOCAB)}).save_pretrained(tmp_path)
    DistilBertModel(DistilBertConfig(vocab_size=len(VOCAB), dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                                     max_position_embeddings=64)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="cannot be fine-tuned: skmm does not know where the blocks"):
        tuned(str(tmp_path)).fit(*red_or_not(20, seed=0))


def test_missing_rows_are_missing_and_do_not_train(tiny_text_model):
    X, y = red_or_not(60, seed=6)
    X[3] = None
    X[7] = "   "
    encoder = tuned(tiny_text_model, epochs=1).fit(X, y)
    Z = encoder.transform(X)
    assert np.isnan(Z[[3, 7]]).all() and np.isfinite(np.delete(Z, [3, 7], axis=0)).all()


def test_a_refit_without_fine_tuning_forgets_the_trained_weights(tiny_text_model):
    X, y = red_or_not(60, seed=7)
    encoder = tuned(tiny_text_model, epochs=1).fit(X, y)
    encoder.set_params(fine_tune=None).fit(X)
    assert not hasattr(encoder, "fine_tuned_")
    frozen = TextEncoder(tiny_text_model, n_threads=1, verbose=0, cache=None).fit(X)
    np.testing.assert_array_equal(encoder.transform(X), frozen.transform(X))


def test_interrupted_fine_tuning_leaves_the_fitted_encoder_as_it_was(tiny_text_model):
    from skmm.encoders import _finetune

    X, y = red_or_not(60, seed=8)
    encoder = tuned(tiny_text_model, epochs=1).fit(X, y)
    before = encoder.transform(X)
    state = {name: weights.copy() for name, weights in encoder.fine_tuned_.items()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_finetune, "_train_epoch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            encoder.set_params(fine_tune__epochs=3).fit(X, y)
    assert all(np.array_equal(state[name], encoder.fine_tuned_[name]) for name in state)
    np.testing.assert_array_equal(encoder.transform(X), before)


def test_out_of_memory_halves_the_batch_and_goes_on(tiny_text_model):
    import torch

    from skmm.encoders._graphs import TextTop

    X, y = red_or_not(60, seed=9)
    original = TextTop.forward

    def small_memory(self, hidden, attention_mask):
        if torch.is_grad_enabled() and len(hidden) > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, hidden, attention_mask)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TextTop, "forward", small_memory)
        with pytest.warns(ResourceWarning, match="goes on with batches of 8 rows"):
            encoder = tuned(tiny_text_model, epochs=1, batch_size=32).fit(X, y)
    assert encoder.fine_tune_history_[-1]["batch_size"] == 8


def test_grid_search_compares_frozen_and_fine_tuned(tiny_text_model):
    pytest.importorskip("peft")
    from skmm import MultimodalClassifier, MultimodalFusion

    X, y = red_or_not(80, seed=10)
    frame = pd.DataFrame({"text": X})
    fusion = MultimodalFusion([("text", tuned(tiny_text_model, epochs=1), "text")])
    pipe = make_pipeline(fusion, MultimodalClassifier(max_epochs=3, verbose=0, random_state=0))
    grid = {"multimodalfusion__text__fine_tune": [None, FineTuning("lora", blocks=1, epochs=1, random_state=0)]}
    search = GridSearchCV(pipe, grid, cv=2).fit(frame, y)
    assert len(search.cv_results_["params"]) == 2
    assert pipe.get_params()["multimodalfusion__text__fine_tune__blocks"] == 2


def test_a_saved_fine_tuned_pipeline_loads_without_trust_and_predicts_the_same(tiny_text_model, tmp_path):
    import skmm
    from skmm import MultimodalClassifier, MultimodalFusion

    X, y = red_or_not(80, seed=11)
    frame = pd.DataFrame({"text": X})
    fusion = MultimodalFusion([("text", tuned(tiny_text_model, "lora", epochs=1), "text")])
    pipe = make_pipeline(fusion, MultimodalClassifier(max_epochs=3, verbose=0, random_state=0)).fit(frame, y)
    path = skmm.save(pipe, tmp_path / "model.skmm")
    loaded = skmm.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(frame), pipe.predict_proba(frame))
    encoder = loaded[0].named_transformers_["text"]
    assert all("lora_" in name for name in encoder.fine_tuned_)


def test_efficientnet_fine_tunes_its_last_blocks_and_exports_them(tmp_path):
    pytest.importorskip("peft")
    pytest.importorskip("onnxruntime")
    from skmm import MultimodalClassifier, MultimodalFusion, export_onnx
    from skmm.onnx import OnnxModel

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 40, 3), dtype=np.uint8) for _ in range(24)]
    labels = np.arange(24) % 2
    encoder = ImageEncoder(fine_tune=FineTuning("lora", blocks=1, epochs=1, validation_fraction=0, random_state=0),
                           image_size=64, n_threads=1, verbose=0)
    frame = pd.DataFrame({"image": images + [None]})
    pipe = make_pipeline(MultimodalFusion([("image", encoder, "image")]),
                         MultimodalClassifier(max_epochs=2, verbose=0, random_state=0))
    pipe.fit(frame.head(24), labels)
    encoder = pipe[0].named_transformers_["image"]
    Z = encoder.transform(frame["image"])
    assert Z.shape == (25, 1280) and np.isnan(Z[-1]).all() and np.isfinite(Z[:-1]).all()
    assert encoder.fine_tuned_ and all("lora_" in name for name in encoder.fine_tuned_)
    exported = OnnxModel(export_onnx(pipe, tmp_path / "model"))  # the adapters merged into the convolutions
    np.testing.assert_allclose(exported.predict_proba(frame.head(24)), pipe.predict_proba(frame.head(24)), atol=1e-4)



@pytest.mark.parametrize("mode", ["top", "lora"])
def test_onnx_export_computes_the_fine_tuned_features(tiny_text_model, tmp_path, mode):
    """The exported graph is the network with the trained weights in place (adapters merged)."""
    pytest.importorskip("onnxruntime")
    from skmm import MultimodalClassifier, MultimodalFusion, export_onnx
    from skmm.onnx import OnnxModel

    X, y = red_or_not(60, seed=12)
    frame = pd.DataFrame({"text": X})
    fusion = MultimodalFusion([("text", tuned(tiny_text_model, mode, epochs=2), "text")])
    pipe = make_pipeline(fusion, MultimodalClassifier(max_epochs=2, verbose=0, random_state=0)).fit(frame, y)
    assert pipe[0].named_transformers_["text"].fine_tune_history_[-1]["epoch"] == 2
    exported = OnnxModel(export_onnx(pipe, tmp_path / "model"))
    frozen = make_pipeline(MultimodalFusion([("text", TextEncoder(tiny_text_model, verbose=0), "text")]),
                           MultimodalClassifier(max_epochs=2, verbose=0, random_state=0)).fit(frame, y)
    np.testing.assert_allclose(exported.predict_proba(frame), pipe.predict_proba(frame), atol=1e-4)
    assert not np.allclose(pipe[0].transform(frame), frozen[0].transform(frame), atol=1e-3)


def test_layers_that_do_not_run_on_their_own_are_refused_before_training(tiny_text_model):
    """An architecture whose layers need more than BERT's attention mask gives other features when split.

    It is refused after its first rows, before the frozen blocks run on every row.
    """
    from skmm.encoders import _finetune
    from skmm.encoders._graphs import TextTop

    import torch

    original = TextTop.forward

    def misread(self, hidden, mask):  # as layers missing, say, a relative position bias would
        return original(self, hidden + torch.linspace(0, 1, hidden.shape[-1]), mask)

    def never(*args):
        raise AssertionError("trained on activations the model does not compute")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TextTop, "forward", misread)
        rows_run = count_trunk_rows(patch, TextEncoder)
        patch.setattr(_finetune, "fit_top", never)
        with pytest.raises(ValueError, match="run on their own, do not give its features"):
            tuned(tiny_text_model).fit(*red_or_not(60, seed=13))
    assert 0 < len(rows_run) <= _finetune.SPLIT_CHECK_ROWS


def test_the_split_is_checked_when_the_first_rows_are_missing(tiny_text_model):
    from skmm.encoders import _finetune

    X, y = red_or_not(30, seed=14)
    checked = []
    check_split = _finetune.check_split

    def counted(encoder, values, trunks, bundle, cut, tuning):
        checked.append(sum(trunk is not None for trunk in trunks))
        return check_split(encoder, values, trunks, bundle, cut, tuning)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_finetune, "check_split", counted)
        tuned(tiny_text_model, epochs=1).fit([None] * 10 + X[10:], y)
    assert checked == [0, 20]  # nothing to check among the first rows: checked once all have run


#: the tiny speech models fine-tuned below: where their layers are (transformers has moved AST's), the norm after
#: them (it trains with the last layer; wav2vec2 has one there only with its stable layer norm), and a learning
#: rate at which the random model learns
SPEECH_MODELS = {
    "wav2vec2-padded-with-mask": (("encoder.layers",), ("encoder.layer_norm",), 3e-3),
    "wav2vec2-equal-length-passes": (("encoder.layers",), (), 3e-3),
    "whisper": (("encoder.layers",), ("encoder.layer_norm",), 3e-4),
    "ast": (("layers", "encoder.layer"), ("layernorm",), 3e-4),
}


@pytest.fixture(scope="module", params=list(SPEECH_MODELS))
def tiny_speech_model(request, tmp_path_factory):
    """A tiny wav2vec2 whose extractor gives an attention mask (stable layer norm), or none (as wav2vec2-base);
    a Whisper (its encoder's layers: every clip padded to a 1 s window) or an AST, of 2 layers."""
    from tiny_models import save_tiny_ast, save_tiny_wav2vec2, save_tiny_whisper

    folder = tmp_path_factory.mktemp(request.param)
    if request.param.startswith("wav2vec2"):
        return request.param, save_tiny_wav2vec2(folder, attention_mask=request.param.endswith("mask"))
    save = save_tiny_whisper if request.param == "whisper" else save_tiny_ast
    return request.param, save(folder, layers=2, init_std=0.2)


def low_then_high(n, seed):
    """Clips of 0.4 to 0.6 s: a low tone and a high one; the label says whether the low one comes first."""
    rng = np.random.default_rng(seed)
    clips, labels = [], rng.integers(0, 2, n)
    for label in labels:
        t = np.arange(int(rng.integers(3200, 4800))) / 16000
        low, high = np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 1200 * t)
        wave = np.concatenate([low, high] if label else [high, low]) + rng.normal(0, 0.1, 2 * len(t))
        clips.append((wave.astype(np.float32), 16000))
    return clips, labels


def tuned_speech(model, lr=3e-3, **params):
    from skmm import AudioEncoder

    settings = {"blocks": 1, "epochs": 4, "lr": lr, "random_state": 0, **params}
    return AudioEncoder(model, fine_tune=FineTuning("top", **settings), verbose=0)


def test_a_speech_model_fine_tunes_its_last_layers(tiny_speech_model):
    """wav2vec2-style models, Whisper's encoder, AST: the last layer trains, with the norm that follows it."""
    from skmm import AudioEncoder

    kind, model = tiny_speech_model
    paths, after, lr = SPEECH_MODELS[kind]
    X, y = low_then_high(80, seed=0)
    encoder = tuned_speech(model, lr).fit(X, y)
    modules = dict(encoder._bundle().network.named_modules())
    layers = next(modules[path] for path in paths if path in modules)
    trained = list(layers[-1].parameters()) + [p for name in after for p in modules[name].parameters()]
    assert encoder.fine_tune_cut_ == len(layers) - 1 == 1
    assert sum(w.size for w in encoder.fine_tuned_.values()) == sum(p.numel() for p in trained)
    history = encoder.fine_tune_history_
    assert min(record["valid_loss"] for record in history[1:]) < history[0]["valid_loss"]

    again = tuned_speech(model, lr).fit(X, y)
    check_reproducible_and_tuned(encoder, again, X, AudioEncoder(model, verbose=0))


def test_a_fine_tuned_speech_model_saves_and_exports(tiny_speech_model, tmp_path):
    pytest.importorskip("onnxruntime")
    import skmm
    from skmm import MultimodalClassifier, MultimodalFusion, export_onnx
    from skmm.onnx import OnnxModel

    kind, model = tiny_speech_model
    X, y = low_then_high(40, seed=1)
    frame = pd.DataFrame({"clip": X})
    encoder = tuned_speech(model, SPEECH_MODELS[kind][2], validation_fraction=0)  # trained weights, not the frozen
    pipe = make_pipeline(MultimodalFusion([("clip", encoder, "clip")]),
                         MultimodalClassifier(max_epochs=2, verbose=0, random_state=0)).fit(frame, y)
    expected = pipe.predict_proba(frame)
    np.testing.assert_array_equal(skmm.load(skmm.save(pipe, tmp_path / "model.skmm")).predict_proba(frame), expected)
    exported = OnnxModel(export_onnx(pipe, tmp_path / "model"))
    np.testing.assert_allclose(exported.predict_proba(frame), expected, atol=1e-4)


def test_whisper_s_top_layers_attend_to_the_padding_of_its_window(tmp_path):
    """Whisper pads every clip to its window, and its layers attend to the padding: the frozen activations kept
    for a clip are the whole window's (the share of the window that holds the clip, pooled, comes first).
    Without the padded frames the top layers would not give the frozen model's features."""
    import torch

    from skmm import AudioEncoder
    from tiny_models import save_tiny_whisper

    X = low_then_high(3, seed=2)[0]
    encoder = AudioEncoder(save_tiny_whisper(tmp_path, layers=2), cache=None, verbose=0).fit(X)
    bundle = encoder._bundle()
    items = [encoder._decode(encoder._read(clip)[1], bundle) for clip in X]
    rows = encoder._trunk_batch(items, bundle, 1)
    n_frames, width = 50, bundle.dim  # the tiny Whisper's 1 s window: 50 frames
    assert [len(row) for row in rows] == [1 + n_frames * width] * 3
    assert [row[0] for row in rows] == [np.ceil(n_frames * len(clip[0]) / 16000) for clip in X]
    top = encoder._top_module(bundle, 1).eval()
    hidden, mask = encoder._top_inputs(rows, bundle, 1)
    with torch.no_grad():
        np.testing.assert_allclose(top(hidden, mask).numpy(), encoder.transform(X), atol=1e-5)
        top.masked = True  # as if the layers saw the clip's own frames only
        assert not np.allclose(top(hidden, mask).numpy(), encoder.transform(X), atol=1e-3)


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")  # torch, in WavLM's attention
@pytest.mark.parametrize("family, reason", [
    ("wavlm", "WavLM's layers hand on a relative position bias"),
    ("clap", "CLAP's audio tower is a Swin transformer"),
])
def test_audio_models_whose_layers_do_not_split_are_refused_with_the_reason(family, reason, tmp_path):
    """Refused at fit, before any clip runs through the frozen layers."""
    import tiny_models

    from skmm import AudioEncoder

    model = getattr(tiny_models, f"save_tiny_{family}")(tmp_path)
    clips = [(np.zeros(8000, dtype=np.float32), 16000)] * 4
    with pytest.MonkeyPatch.context() as patch:
        rows_run = count_trunk_rows(patch, AudioEncoder)
        with pytest.raises(ValueError, match=f"cannot be fine-tuned: {reason}.*use fine_tune=None"):
            AudioEncoder(model, fine_tune="top", verbose=0).fit(clips, [0, 1, 0, 1])
    assert rows_run == []


#: the tiny vision models: where their blocks are (transformers has moved ViT's), and the modules past
#: the blocks (they train with the last block)
VISION_MODELS = {
    "vit": (("layers", "encoder.layer"), ("layernorm", "pooler")),
    "dinov2": (("encoder.layer",), ("layernorm",)),
    "clip": (("vision_model.encoder.layers", "vision_model.vision_model.encoder.layers"),
             ("post_layernorm", "visual_projection")),
    "convnext": (("encoder.stages",), ("layernorm",)),
}


@pytest.fixture(scope="module", params=list(VISION_MODELS))
def tiny_vision_model(request, tmp_path_factory):
    from tiny_models import save_tiny_vision, save_tiny_vit

    folder = tmp_path_factory.mktemp(request.param)
    model = save_tiny_vit(folder) if request.param == "vit" else save_tiny_vision(folder, request.param)
    return request.param, model


def colour_square(n, seed):
    """32 px noise with a saturated square in one corner; the label says whether it is red or blue."""
    rng = np.random.default_rng(seed)
    images, labels = [], rng.integers(0, 2, n)
    for label in labels:
        image = rng.integers(0, 200, (32, 32, 3), dtype=np.uint8)
        row, column = divmod(int(rng.integers(4)), 2)
        image[16 * row : 16 * row + 16, 16 * column : 16 * column + 16, 0 if label else 2] = 255
        images.append(image)
    return images, labels


def tuned_vision(model, mode="top", **params):
    if mode == "lora":
        pytest.importorskip("peft")
    settings = {"blocks": 1, "epochs": 3, "lr": 3e-4, "random_state": 0, **params}
    return ImageEncoder(model, fine_tune=FineTuning(mode, **settings), n_threads=1, verbose=0, cache="memory")


def test_a_vision_model_fine_tunes_its_last_block_and_what_follows_it(tiny_vision_model):
    """ViT-style layers or ConvNeXt stages: the last one trains, with the final norm, pooler, projection."""
    kind, model = tiny_vision_model
    X, y = colour_square(80, seed=0)
    encoder = tuned_vision(model, epochs=2, validation_fraction=0).fit(X, y)
    network = encoder._bundle().network
    paths, after = VISION_MODELS[kind]
    modules = dict(network.named_modules())
    blocks = next(modules[path] for path in paths if path in modules)
    trained = list(blocks[-1].parameters())
    for name in after:
        path = min((path for path in modules if path == name or path.endswith("." + name)), key=len)
        trained += list(modules[path].parameters())
    assert encoder.fine_tune_cut_ == len(blocks) - 1
    assert sum(w.size for w in encoder.fine_tuned_.values()) == sum(p.numel() for p in trained)
    assert not any("embeddings" in name or "text" in name for name in encoder.fine_tuned_)

    again = tuned_vision(model, epochs=2, validation_fraction=0).fit(X, y)
    check_reproducible_and_tuned(encoder, again, X, ImageEncoder(model, verbose=0))


@pytest.mark.parametrize("mode", ["top", "lora"])
def test_a_fine_tuned_vision_model_saves_and_exports(tiny_vision_model, mode, tmp_path):
    pytest.importorskip("onnxruntime")
    import skmm
    from skmm import MultimodalClassifier, MultimodalFusion, export_onnx
    from skmm.onnx import OnnxModel

    X, y = colour_square(40, seed=1)
    frame = pd.DataFrame({"picture": X})
    encoder = tuned_vision(tiny_vision_model[1], mode, epochs=2, validation_fraction=0)
    pipe = make_pipeline(MultimodalFusion([("picture", encoder, "picture")]),
                         MultimodalClassifier(max_epochs=2, verbose=0, random_state=0)).fit(frame, y)
    expected = pipe.predict_proba(frame)
    np.testing.assert_array_equal(skmm.load(skmm.save(pipe, tmp_path / "model.skmm")).predict_proba(frame), expected)
    np.testing.assert_allclose(OnnxModel(export_onnx(pipe, tmp_path / "onnx")).predict_proba(frame), expected,
                               atol=1e-4)


def test_a_convolutional_model_learns_what_its_frozen_features_miss(tmp_path):
    from tiny_models import save_tiny_vision

    encoder = tuned_vision(save_tiny_vision(tmp_path, "convnext"), epochs=4, lr=1e-3).fit(*colour_square(100, seed=2))
    history = encoder.fine_tune_history_
    assert min(record["valid_loss"] for record in history[1:]) < history[0]["valid_loss"]


def test_vision_stages_that_need_more_than_the_stage_below_are_refused(tmp_path):
    """Swin's stages take the image's dimensions from the encoder's loop: run from the cut, they break."""
    from skmm.encoders import _finetune
    from tiny_models import save_tiny_vision

    def never(*args):
        raise AssertionError("trained a split that does not compute the model's features")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_finetune, "fit_top", never)
        with pytest.raises(ValueError, match="run on their own, do not give its features"):
            tuned_vision(save_tiny_vision(tmp_path, "swin")).fit(*colour_square(20, seed=3))


def test_computing_the_frozen_blocks_stops_only_its_own_thread():
    """Encoders share a model: while one computes its frozen blocks, another thread's whole pass goes through."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from skmm.encoders._graphs import hidden_states_before

    torch.manual_seed(0)
    network, x = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2)), torch.ones(1, 3)
    others = []

    def run():
        with ThreadPoolExecutor(1) as pool:
            others.append(pool.submit(network, x).result())  # a frozen encoder's pass, in a fusion's thread
        network(x)

    with torch.no_grad():
        hidden = hidden_states_before(network[1], run)
        torch.testing.assert_close(hidden, network[0](x))
        torch.testing.assert_close(others[0], network(x))


def test_a_model_whose_block_list_is_never_run_is_refused_clearly(tmp_path):
    """PoolFormer keeps its stages in lists that its encoder loops over: no hook on them ever fires."""
    from tiny_models import save_tiny_vision

    with pytest.raises(ValueError, match="cannot be fine-tuned: skmm does not know where the blocks"):
        tuned_vision(save_tiny_vision(tmp_path, "poolformer")).fit(*colour_square(20, seed=4))


def test_lora_that_breaks_a_layer_is_refused_before_the_frozen_blocks_run_on_every_row(tmp_path):
    """MobileNetV2's convolutions read their own stride, which LoRA's wrappers do not have."""
    from tiny_models import save_tiny_vision

    from skmm.encoders._finetune import SPLIT_CHECK_ROWS

    model = save_tiny_vision(tmp_path, "mobilenetv2")
    with pytest.MonkeyPatch.context() as patch:
        rows_run = count_trunk_rows(patch, ImageEncoder)
        with pytest.raises(ValueError, match="do not run with LoRA adapters.*use fine_tune='top'"):
            tuned_vision(model, "lora").fit(*colour_square(40, seed=5))
    assert len(rows_run) <= SPLIT_CHECK_ROWS
    assert tuned_vision(model, epochs=1).fit(*colour_square(20, seed=5)).fine_tuned_  # "top" trains


def test_bad_rows_are_reported_once_among_all_rows(tiny_image_model, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    X, y = colour_square(40, seed=6)
    X[5] = str(bad)
    encoder = tuned_vision(tiny_image_model, epochs=1, validation_fraction=0)
    encoder.set_params(on_error="missing")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoder.fit(X, y)
    messages = [str(w.message) for w in caught if "could not be encoded" in str(w.message)]
    assert len(messages) == 1 and "1 of 40 rows" in messages[0] and "bad.png" in messages[0]


def test_fine_tuning_parameters_reach_a_mode_given_by_name(tiny_text_model):
    """``fine_tune="top"`` is ``FineTuning("top")``: a grid search over ``fine_tune__blocks`` works on it."""
    encoder = TextEncoder(tiny_text_model, fine_tune="top").set_params(fine_tune__blocks=1, fine_tune__epochs=2)
    assert encoder.get_params()["fine_tune"].get_params() == FineTuning("top", blocks=1, epochs=2).get_params()
    both = TextEncoder(tiny_text_model).set_params(fine_tune="lora", fine_tune__rank=4)
    assert (both.fine_tune.mode, both.fine_tune.rank) == ("lora", 4)
    with pytest.raises(ValueError, match="fine_tune__blocks needs fine_tune set"):
        TextEncoder(tiny_text_model).set_params(fine_tune__blocks=1)
    X, y = red_or_not(40, seed=15)
    search = GridSearchCV(make_pipeline(TextEncoder(tiny_text_model, fine_tune="top", verbose=0, cache="memory"),
                                        LogisticRegression()),
                          {"textencoder__fine_tune__blocks": [1, 2]}, cv=2).fit(X, y)
    assert search.best_params_["textencoder__fine_tune__blocks"] in (1, 2)


@pytest.mark.parametrize("labels, message", [
    (np.array(["a", None] * 10, dtype=object), r"y has no label for 10 rows \(the first at position 1\)"),
    (np.linspace(0, 1, 20), "Unknown label type: continuous"),
], ids=["holes", "continuous"])
def test_fine_tuning_needs_a_class_label_for_every_row(tiny_text_model, labels, message):
    with pytest.raises(ValueError, match=message):
        tuned(tiny_text_model).fit(red_or_not(20, seed=16)[0], labels)


def test_too_few_rows_to_hold_out_is_said(tiny_text_model):
    """Without held-out rows nothing chooses the epoch: the frozen weights cannot be kept, and a warning says so."""
    X, y = red_or_not(6, seed=17)
    with pytest.warns(UserWarning, match="too few rows to hold out fine_tune__validation_fraction=0.15"):
        encoder = tuned(tiny_text_model, epochs=2).fit(X, y)
    assert [record["epoch"] for record in encoder.fine_tune_history_] == [1, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        tuned(tiny_text_model, epochs=1, validation_fraction=0).fit(X, y)  # meant: no warning
