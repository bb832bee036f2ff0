"""TextEncoder: the estimator contract, pooling, ordering, the default offline model."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from skmm import TextEncoder
from skmm.encoders._text import DEFAULT_TEXT_MODEL, resolve_text_model

TEXTS = ["the red car", "a dog sat on the mat", "cat", "the bird ran on the green mat again and again"]


def test_default_model_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    path = resolve_text_model(DEFAULT_TEXT_MODEL)
    assert path != DEFAULT_TEXT_MODEL, "the offline copy of all-MiniLM-L6-v2 should be used"
    expected = SentenceTransformer(str(path), device="cpu").encode(TEXTS)
    Z = TextEncoder(verbose=0, cache=None).fit_transform(TEXTS)
    assert Z.shape == (4, 384) and Z.dtype == np.float32
    np.testing.assert_allclose(Z, expected, atol=1e-5)


def test_length_sorted_batches_return_rows_in_input_order(tiny_text_model):
    one_by_one = np.vstack([TextEncoder(tiny_text_model, batch_size=1, verbose=0, cache=None).fit_transform([t]) for t in TEXTS])
    batched = TextEncoder(tiny_text_model, batch_size=3, verbose=0, cache=None).fit_transform(TEXTS)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_workers_give_the_embeddings_of_one_batch_at_a_time(tiny_text_model):
    import torch

    texts = TEXTS * 3 + ["a", "the mat"]
    before = torch.get_num_threads()
    sequential = TextEncoder(tiny_text_model, batch_size=3, n_threads=1, verbose=0, cache=None).fit_transform(texts)
    workers = TextEncoder(tiny_text_model, batch_size=3, n_threads=2, verbose=0, cache=None).fit_transform(texts)
    np.testing.assert_array_equal(workers, sequential)
    assert torch.get_num_threads() == before


def test_pooling_and_normalisation(tiny_text_model):
    mean = TextEncoder(tiny_text_model, verbose=0).fit_transform(TEXTS)
    cls = TextEncoder(tiny_text_model, pooling="cls", verbose=0).fit_transform(TEXTS)
    raw = TextEncoder(tiny_text_model, normalize=False, verbose=0).fit_transform(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(mean, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(mean, cls)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), mean, atol=1e-5)


def test_missing_and_numeric_rows(tiny_text_model):
    rows = pd.Series(["the cat", None, np.nan, "", "  ", 42, 3.5], index=list("abcdefg"))
    Z = TextEncoder(tiny_text_model, verbose=0).fit_transform(rows)
    assert np.isnan(Z[1:5]).all()
    assert np.isfinite(Z[[0, 5, 6]]).all()
    np.testing.assert_allclose(Z[5], TextEncoder(tiny_text_model, verbose=0).fit_transform(["42"])[0])


def test_estimator_contract(tiny_text_model):
    encoder = TextEncoder(tiny_text_model, max_length=16, verbose=0)
    frame = pd.DataFrame({"review": TEXTS})
    assert encoder.fit(frame) is encoder
    assert encoder.feature_names_in_.tolist() == ["review"]
    assert encoder.get_feature_names_out().tolist()[:2] == ["txt0", "txt1"]
    params = encoder.get_params()
    assert clone(encoder).get_params() == params
    blob = pickle.dumps(encoder)
    assert len(blob) < 10_000
    np.testing.assert_array_equal(pickle.loads(blob).transform(frame), encoder.transform(frame))
    encoder.set_output(transform="pandas")
    assert list(encoder.transform(frame).columns[:1]) == ["txt0"]


def test_a_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(OSError):
        TextEncoder(str(tmp_path / "no-such-model")).fit(TEXTS)


@pytest.mark.parametrize("name", ["{tmp}/no-such-model", "./no-such-model", "models/a/b"])
def test_a_missing_model_folder_says_folder_not_found(tmp_path, name):
    from skmm import ImageEncoder

    name = name.format(tmp=tmp_path)
    for encoder in (TextEncoder(name, verbose=0), ImageEncoder(name, verbose=0)):
        with pytest.raises(FileNotFoundError, match=r"model folder not found: .*no-such-model|model folder not found: 'models/a/b'") as error:
            encoder.fit([None])
        assert "Repo id" not in str(error.value)


def test_a_huge_text_is_cut_before_it_is_tokenised(tiny_text_model, monkeypatch):
    from skmm.encoders._text import CHARS_PER_TOKEN

    encoder = TextEncoder(tiny_text_model, max_length=32, verbose=0, cache=None).fit(TEXTS)
    bundle = encoder._load_bundle()
    seen = []
    tokenizer = bundle.tokenizer

    def spy(items, **options):
        seen.extend(len(item) for item in items)
        return tokenizer(items, **options)

    monkeypatch.setattr(bundle, "tokenizer", spy)
    huge = "the cat sat on the mat " * 500_000  # 11.5 MB
    Z = encoder.transform([huge, huge[: 32 * 10]])
    assert max(seen) <= 32 * CHARS_PER_TOKEN  # not 11.5 million characters
    np.testing.assert_allclose(Z[0], Z[1], atol=1e-6)  # the model saw the same 32 tokens
