"""Fixtures shared by the tests: tiny transformers models saved to folders (fast, offline), an empty disk cache."""

import pytest


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory):
    from tiny_models import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_image_model(tmp_path_factory):
    from tiny_models import save_tiny_vit

    return save_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture(scope="session")
def tiny_whisper_model(tmp_path_factory):
    """A 1-layer Whisper whose feature extractor pads every clip to a 1 s window: any clip length works."""
    from tiny_models import save_tiny_whisper

    return save_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper"))


@pytest.fixture(autouse=True)
def _empty_disk_cache():
    """Each test starts with the session's cache folder empty (conftest.py at the root sets it).

    The default cache (``cache="memory"``) is backed by that folder; emptying it
    keeps one test's embeddings out of another's counts, as the process-wide
    memory store alone did before (tests that need a cold cache clear that too).
    """
    from skmm.cache import DiskCache, default_folder

    folder = default_folder()
    if folder is not None:
        DiskCache(folder).clear()
