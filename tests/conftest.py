"""Fixtures shared by the tests: tiny transformers models saved to folders (fast, offline)."""

import pytest


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory):
    from tiny_models import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_image_model(tmp_path_factory):
    from tiny_models import save_tiny_vit

    return save_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))
