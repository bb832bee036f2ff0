"""Tiny audio transformers saved to folders, shared by the encoder tests (fast, offline)."""

import warnings

import pytest


@pytest.fixture(scope="session")
def tiny_whisper_model(tmp_path_factory):
    """A 1-layer Whisper whose feature extractor pads every clip to a 1 s window: any clip length works."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    folder = tmp_path_factory.mktemp("tiny-whisper")
    torch.manual_seed(0)
    config = WhisperConfig(
        num_mel_bins=16, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_source_positions=50,
        max_target_positions=8, vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        WhisperModel(config).eval().save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=16, chunk_length=1).save_pretrained(folder)
    return str(folder)
