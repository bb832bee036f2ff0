"""The scikit-learn contract, tested directly on every encoder with the column it reads.

ImageEncoder and TextEncoder take no numeric array, so scikit-learn's own
checks cannot run on them (see test_estimator_checks.py for the audio
encoders); these tests hold all four encoders to the same properties.
"""

import pickle

import numpy as np
import pandas as pd
import pytest
import soundfile
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from skmm import AudioEncoder, AudioMFCC, ImageEncoder, TextEncoder

ENCODERS = ["image", "text", "audio-mfcc", "audio-model"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("contract")
    rng = np.random.default_rng(0)
    images, clips = [], []
    for i in range(3):
        images.append(str(folder / f"{i}.png"))
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(images[-1])
        clips.append(str(folder / f"{i}.wav"))
        soundfile.write(clips[-1], rng.normal(scale=0.1, size=4000).astype(np.float32), 16000)
    return {"image": images, "audio": clips}


@pytest.fixture(params=ENCODERS)
def case(request, files, tiny_image_model, tiny_text_model, tiny_whisper_model):
    """``(make, rows)``: a factory of unfitted encoders (``make(**params)``) and a column they read."""
    common = {"verbose": 0, "cache": None}
    kinds = {
        "image": (ImageEncoder, {"model": tiny_image_model}, files["image"]),
        "text": (TextEncoder, {"model": tiny_text_model}, ["a red car", "the cat sat", "good dog"]),
        "audio-mfcc": (AudioMFCC, {"n_mfcc": 13}, files["audio"]),
        "audio-model": (AudioEncoder, {"model": tiny_whisper_model}, files["audio"]),
    }
    cls, params, rows = kinds[request.param]
    return (lambda **extra: cls(**{**params, **common, **extra})), rows


def test_fit_returns_self_and_remembers_the_column(case):
    make, rows = case
    encoder = make()
    assert encoder.fit(pd.DataFrame({"a": rows})) is encoder
    assert encoder.n_features_in_ == 1
    assert encoder.feature_names_in_.tolist() == ["a"]
    Z = encoder.transform(pd.DataFrame({"a": rows}))
    assert Z.shape == (len(rows), encoder.n_features_out_) and Z.dtype == np.float32
    assert len(encoder.get_feature_names_out()) == Z.shape[1]


def test_a_column_with_another_name_is_refused(case):
    make, rows = case
    encoder = make().fit(pd.DataFrame({"a": rows}))
    with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- b\n.*yet now missing:\n- a"):
        encoder.transform(pd.DataFrame({"b": rows}))


def test_fitting_on_a_list_forgets_the_column_name(case):
    make, rows = case
    encoder = make().fit(pd.DataFrame({"a": rows})).fit(rows)
    assert not hasattr(encoder, "feature_names_in_") and encoder.n_features_in_ == 1
    index = [f"row{i}" for i in range(len(rows))]
    assert np.isfinite(encoder.transform(pd.Series(rows, index=index))).all()


def test_clone_get_params_round_trip_and_pickle(case):
    make, rows = case
    encoder = make().fit(rows)
    params = encoder.get_params()
    assert type(encoder)(**params).get_params() == params
    twin = clone(encoder)
    assert twin.get_params() == params and not hasattr(twin, "n_features_out_")
    blob = pickle.dumps(encoder)
    assert len(blob) < 10_000, "model weights must not be pickled with the encoder"
    np.testing.assert_array_equal(pickle.loads(blob).transform(rows), encoder.transform(rows))


def test_transform_before_fit_is_refused(case):
    make, rows = case
    with pytest.raises(NotFittedError):
        make().transform(rows)


def test_parameters_are_checked_at_fit_not_in_init(case):
    make, rows = case
    encoder = make(batch_size=0)  # __init__ only stores
    assert encoder.batch_size == 0
    with pytest.raises(InvalidParameterError, match=f"'batch_size' parameter of {type(encoder).__name__}"):
        encoder.fit(rows)


def test_pandas_output_keeps_the_index_and_names_the_features(case):
    make, rows = case
    encoder = make().set_output(transform="pandas")
    index = [f"row{i}" for i in range(len(rows))]
    out = encoder.fit_transform(pd.DataFrame({"a": rows}, index=index))
    assert out.index.tolist() == index
    assert out.columns.tolist() == encoder.get_feature_names_out().tolist()


def test_a_frame_of_several_columns_is_refused(case):
    make, rows = case
    frame = pd.DataFrame({"a": rows, "b": rows})
    with pytest.raises(ValueError, match=r"encodes one column, got a DataFrame with 2 columns \['a', 'b'\]"):
        make().fit(frame)
