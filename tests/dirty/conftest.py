"""Fixtures for the dirty-data tests: encoders on tiny models, and bad files made on the fly.

The tiny models themselves (``tiny_text_model``, ``tiny_image_model``) come from tests/conftest.py.
"""

import numpy as np
import pytest

from dirtydata import SR, image_bytes, noise_image, tone


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
