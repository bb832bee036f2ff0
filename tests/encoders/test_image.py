"""ImageEncoder: the estimator contract, input types, missing rows, transformers models from a folder."""

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.base import clone

from skmm import ImageEncoder


def _png(path, colour, size=(40, 30), mode="RGB"):
    Image.new(mode, size, colour).save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    return [str(_png(folder / f"{i}.png", (40 * i, 255 - 40 * i, 90))) for i in range(4)]


def test_encodes_paths_to_float32_rows_with_feature_names(images):
    encoder = ImageEncoder(verbose=0).fit(pd.DataFrame({"photo": images}))
    Z = encoder.transform(pd.DataFrame({"photo": images}))
    assert Z.shape == (4, 1280) and Z.dtype == np.float32 and np.isfinite(Z).all()
    assert encoder.n_features_in_ == 1 and encoder.feature_names_in_.tolist() == ["photo"]
    names = encoder.get_feature_names_out()
    assert names[0] == "img0" and len(names) == 1280
    assert not np.allclose(Z[0], Z[3])  # different images, different embeddings


def test_every_input_type_gives_the_same_embedding(images):
    path = images[1]
    data = Path(path).read_bytes()
    pil = Image.open(path).convert("RGB")
    rows = [path, Path(path), data, pil, np.asarray(pil), np.asarray(pil).astype(np.float32) / 255]
    Z = ImageEncoder(verbose=0, cache=None).fit_transform(rows)
    np.testing.assert_allclose(Z, np.repeat(Z[:1], len(rows), axis=0), atol=1e-5)


def test_grey_palette_and_rgba_are_converted(tmp_path):
    grey = _png(tmp_path / "grey.png", 128, mode="L")
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # fully transparent red → white
    white = Image.new("RGB", (40, 30), (255, 255, 255))
    Z = ImageEncoder(verbose=0).fit_transform([str(grey), rgba, white, Image.new("P", (40, 30))])
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z[1], Z[2], atol=1e-5)


@pytest.mark.parametrize("missing", [None, np.nan, "", "   ", b""])
def test_missing_rows_become_nan_rows_in_place(images, missing):
    rows = pd.Series([images[0], missing, images[2]], index=["a", "b", "c"])
    Z = ImageEncoder(verbose=0).fit_transform(rows)
    assert np.isnan(Z[1]).all()
    assert np.isfinite(Z[[0, 2]]).all()


def test_estimator_contract(images):
    encoder = ImageEncoder(batch_size=2, verbose=0)
    assert encoder.fit(images) is encoder
    params = encoder.get_params()
    assert ImageEncoder(**params).get_params() == params
    twin = clone(encoder)
    assert twin.get_params() == params and not hasattr(twin, "n_features_out_")
    blob = pickle.dumps(encoder)
    assert len(blob) < 10_000, "weights must not be pickled with the encoder"
    np.testing.assert_array_equal(pickle.loads(blob).transform(images), encoder.transform(images))


def test_a_transformers_model_from_a_local_folder(tiny_image_model, images):
    encoder = ImageEncoder(model=tiny_image_model, verbose=0).fit(images)
    Z = encoder.transform(images + [None])
    assert Z.shape == (5, 32) and np.isnan(Z[4]).all() and np.isfinite(Z[:4]).all()
    assert encoder.get_feature_names_out()[-1] == "img31"


def test_image_size_changes_the_crop_and_is_refused_for_transformers_models(images, tiny_image_model):
    small = ImageEncoder(image_size=64, verbose=0).fit_transform(images)
    default = ImageEncoder(verbose=0).fit_transform(images)
    assert not np.allclose(small, default)
    with pytest.raises(ValueError, match="image_size=64 only applies to model='efficientnet-lite0'"):
        ImageEncoder(model=tiny_image_model, image_size=64).fit(images)


def test_one_column_only():
    with pytest.raises(ValueError, match="ImageEncoder encodes one column, got a DataFrame with 2 columns"):
        ImageEncoder().fit(pd.DataFrame({"a": [1], "b": [2]}))
    with pytest.raises(ValueError, match="'on_error' parameter of ImageEncoder must be a str among"):
        ImageEncoder(on_error="ignore").fit([None])


def test_workers_give_the_embeddings_of_one_batch_at_a_time(tmp_path):
    import torch

    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        paths.append(str(tmp_path / f"{i}.jpg"))
        Image.fromarray(rng.integers(0, 256, (60 + 10 * i, 80, 3), dtype=np.uint8)).save(paths[-1])
    before = torch.get_num_threads()
    sequential = ImageEncoder(batch_size=2, n_threads=1, verbose=0, cache=None).fit_transform(paths)
    workers = ImageEncoder(batch_size=2, n_threads=2, verbose=0, cache=None).fit_transform(paths)
    np.testing.assert_array_equal(workers, sequential)
    assert torch.get_num_threads() == before
