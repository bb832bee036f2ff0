"""Fixtures for the dirty-data tests: tiny random models and bad files made on the fly."""

import string

import numpy as np
import pytest

from dirtydata import SR, image_bytes, noise_image, tone


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The test machines are shared: one thread is faster than fighting over cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory):
    """A 2-layer, 32-wide BERT with random weights and a small WordPiece vocabulary, saved to a folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "red", "car", "good", "bad"]
    vocab += list(string.ascii_lowercase + string.digits + string.punctuation) + ["##s", "##e"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_image_model(tmp_path_factory):
    """A 1-layer ViT on 32 px images with random weights and its PIL processor, saved to a folder."""
    import torch
    from transformers import ViTConfig, ViTImageProcessorPil, ViTModel

    folder = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64,
    )
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def image_encoder(tiny_image_model):
    """``image_encoder(**params)``: a fitted ImageEncoder on the tiny ViT, without cache."""
    from skmm import ImageEncoder

    def make(**params):
        params = {"verbose": 0, "cache": None, "device": "cpu", **params}
        return ImageEncoder(tiny_image_model, **params).fit([None])

    return make


@pytest.fixture(scope="session")
def text_encoder(tiny_text_model):
    """``text_encoder(**params)``: a fitted TextEncoder on the tiny BERT, without cache."""
    from skmm import TextEncoder

    def make(**params):
        params = {"verbose": 0, "cache": None, "device": "cpu", **params}
        return TextEncoder(tiny_text_model, **params).fit([None])

    return make


@pytest.fixture(scope="session")
def audio_encoder():
    """``audio_encoder(**params)``: a fitted AudioMFCC without cache."""
    from skmm import AudioMFCC

    def make(**params):
        params = {"verbose": 0, "cache": None, "device": "cpu", "n_mfcc": 13, **params}
        return AudioMFCC(**params).fit([None])

    return make


@pytest.fixture
def bad_images(tmp_path):
    """Name → path of unusable image files; every file name says what is wrong with it."""
    png = image_bytes(noise_image())
    jpeg = image_bytes(noise_image(), "JPEG")
    corrupt = bytearray(png)
    corrupt[len(png) // 2 : len(png) // 2 + 40] = b"\xff" * 40
    files = {
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "corrupt.png": bytes(corrupt),
        "notes.png": b"this is a text file, not an image\n",
        "empty.png": b"",
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    paths["missing.png"] = tmp_path / "missing.png"
    paths["folder.png"] = tmp_path / "folder.png"
    paths["folder.png"].mkdir()
    return paths


@pytest.fixture
def bad_audio(tmp_path):
    """Name → path of unusable audio files."""
    import soundfile

    paths = {name: tmp_path / name for name in ("empty.wav", "no-frames.wav", "notes.wav", "picture.wav", "nan.wav", "inf.wav")}
    paths["empty.wav"].write_bytes(b"")
    soundfile.write(paths["no-frames.wav"], np.zeros(0, dtype=np.float32), SR)
    paths["notes.wav"].write_text("this is a text file, not a sound\n")
    paths["picture.wav"].write_bytes(image_bytes(noise_image()))
    nan_clip, inf_clip = tone(), tone()
    nan_clip[100] = np.nan
    inf_clip[200] = -np.inf
    soundfile.write(paths["nan.wav"], nan_clip, SR, subtype="FLOAT")
    soundfile.write(paths["inf.wav"], inf_clip, SR, subtype="FLOAT")
    paths["missing.wav"] = tmp_path / "missing.wav"
    return paths
