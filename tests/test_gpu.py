"""CUDA paths: encoders and classifier on the GPU agree with the CPU, and free their memory.

Skipped where no CUDA device is present.
"""

import gc

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from sklearn.model_selection import GridSearchCV  # noqa: E402

from skmm import ImageEncoder, MultimodalClassifier, TextEncoder  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

TEXTS = ["a red car", "the cat sat on the mat", "ein rotes Auto", "a very long review " * 20]


def cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def images(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (64 + 8 * i, 80, 3), dtype=np.uint8) for i in range(n)]


def test_text_encoder_on_cuda_matches_cpu():
    cpu = TextEncoder(device="cpu", cache=None, verbose=0).fit_transform(TEXTS)
    cuda = TextEncoder(device="cuda", cache=None, verbose=0).fit_transform(TEXTS)
    assert cuda.dtype == np.float32 and cuda.shape == cpu.shape
    # bfloat16 autocast: close, not bit-equal
    assert cosine(cpu, cuda).min() > 0.99
    np.testing.assert_allclose(cuda, cpu, atol=3e-2)


def test_image_encoder_on_cuda_matches_cpu():
    cpu = ImageEncoder(device="cpu", cache=None, verbose=0).fit_transform(images())
    cuda = ImageEncoder(device="cuda", cache=None, verbose=0).fit_transform(images())
    assert cuda.dtype == np.float32 and cuda.shape == cpu.shape
    assert cosine(cpu, cuda).min() > 0.98


def test_auto_device_picks_cuda():
    encoder = TextEncoder(device="auto", verbose=0).fit(TEXTS)
    assert encoder._load_bundle().device == "cuda"


def separable(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(["no", "yes"], n // 2)
    X = pd.DataFrame({
        "image__a": rng.normal(size=n) + 3 * (y == "yes"),
        "text__b": rng.normal(size=n) + 3 * (y == "yes"),
    }).astype(np.float32)
    return X, y


@pytest.mark.parametrize("fusion", ["concat", "attention"])
def test_classifier_trains_on_cuda(fusion):
    X, y = separable()
    cuda = MultimodalClassifier(fusion=fusion, max_epochs=20, device="cuda", random_state=0).fit(X, y)
    cpu = MultimodalClassifier(fusion=fusion, max_epochs=20, device="cpu", random_state=0).fit(X, y)
    assert cuda.device_ == "cuda"
    assert all(p.device.type == "cuda" for p in cuda.net_.module_.parameters())
    proba = cuda.predict_proba(X)
    assert proba.dtype == np.float64 and np.allclose(proba.sum(axis=1), 1)
    assert cuda.score(X, y) > 0.9
    assert np.mean(cuda.predict(X) == cpu.predict(X)) > 0.9
    assert cuda.modality_weights(X.iloc[:3]).shape == (3, 2)


def test_grid_search_on_cuda_releases_gpu_memory():
    X, y = separable()
    gc.collect()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    search = GridSearchCV(
        MultimodalClassifier(max_epochs=3, device="cuda", random_state=0),
        {"fusion": ["concat", "gated", "attention"]},
        cv=3,
        refit=False,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 3
    gc.collect()
    # nothing of the 9 fitted nets stays on the GPU: not in cv_results_, not in a cycle
    assert torch.cuda.memory_allocated() <= before + 1024**2
    assert torch.cuda.memory_reserved() <= before + 64 * 1024**2


def test_refit_best_estimator_keeps_only_its_own_net():
    X, y = separable()
    gc.collect()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    search = GridSearchCV(
        MultimodalClassifier(max_epochs=3, device="cuda", random_state=0),
        {"shared_dim": [8, 16]},
        cv=2,
    ).fit(X, y)
    gc.collect()
    held = torch.cuda.memory_allocated() - before
    parameters = sum(p.numel() * p.element_size() for p in search.best_estimator_.net_.module_.parameters())
    # the refitted model's weights, optimiser state (Adam: 2 per weight) and buffers
    assert held <= 4 * parameters + 1024**2
    del search
    gc.collect()
    assert torch.cuda.memory_allocated() <= before + 1024**2


@pytest.mark.parametrize("mode", ["top", "lora"])
def test_fine_tuning_on_cuda_trains_and_a_cpu_copy_gives_close_features(mode, tmp_path):
    """Fine-tuned on the GPU (bfloat16 autocast), saved, loaded on a CPU: the same embeddings, nearly."""
    import skmm
    from skmm import FineTuning

    texts = [f"{word} number {i}" for i, word in enumerate(["red car", "blue sky", "green tree"] * 20)]
    labels = [text.split()[0] for text in texts]
    encoder = TextEncoder(fine_tune=FineTuning(mode, epochs=2, random_state=0), device="cuda", verbose=0)
    encoder.fit(texts, labels)
    on_cuda = encoder.transform(texts)
    path = skmm.save(encoder, tmp_path / "encoder.skmm")
    on_cpu = skmm.load(path).set_params(device="cpu").transform(texts)
    assert encoder.fine_tune_history_[-1]["batch_size"] == 32
    assert cosine(on_cuda, on_cpu).min() > 0.98
