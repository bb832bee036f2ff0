"""Whatever a row holds, an encoder returns one finite-or-all-NaN row for it, or raises skmm.InputError.

Never another exception type, never a hang (the deadline catches those), never a partly-NaN row.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import skmm
from dirtydata import SR, image_bytes, noise_image, tone

SETTINGS = settings(
    max_examples=40,
    deadline=10_000,  # ms; generous for a shared machine, short enough to catch a hang
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

IMAGE_MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP", b"BM", b"II*\x00", b"MM\x00*", b"\x00\x00\x01\x00"]
AUDIO_MAGIC = [b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"FORM\x00\x00\x00\x00AIFF"]
DTYPES = ["uint8", "uint16", "int8", "int16", "int32", "int64", "float16", "float32", "float64", "bool", "complex64"]


def check_one_row(encoder, value):
    """Encode ``[value]`` with both policies; assert the contract; return the row or None."""
    try:
        raised = encoder.set_params(on_error="raise").transform([value])
    except skmm.InputError:
        raised = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skmm.InputWarning)
        kept = encoder.set_params(on_error="missing").transform([value])
    assert kept.shape == (1, encoder.n_features_out_)
    row = kept[0]
    assert np.isfinite(row).all() or np.isnan(row).all(), "a row is either all finite or all NaN"
    if raised is not None:
        np.testing.assert_array_equal(raised, kept)
    return raised


def mutated(seed):
    """Valid file bytes with a few bytes overwritten, cut short or extended."""
    return st.tuples(
        st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), max_size=8),
        st.integers(1, len(seed)),
        st.binary(max_size=16),
    ).map(lambda args: _mutate(seed, *args))


def _mutate(seed, edits, cut, tail):
    data = bytearray(seed)
    for position, byte in edits:
        data[position] = byte
    return bytes(data[:cut]) + tail


# --------------------------------------------------------------------------- text


@pytest.fixture(scope="module")
def text_enc(text_encoder):
    return text_encoder()


@SETTINGS
@given(text=st.text(max_size=300) | st.text(st.characters(codec=None, categories=["Cs", "Co", "Cc", "Zs", "So"]), max_size=50))
def test_any_text_is_one_row(text_enc, text):
    row = check_one_row(text_enc, text)
    # any str is text: absent when blank, encoded otherwise, never an error
    assert row is not None
    assert np.isnan(row).all() == (not text.strip())


# --------------------------------------------------------------------------- images


@pytest.fixture(scope="module")
def image_enc(image_encoder):
    return image_encoder(max_pixels=4_000_000)


IMAGE_SEEDS = [image_bytes(noise_image((12, 9)), fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]


@SETTINGS
@given(data=st.binary(max_size=2_000) | st.builds(bytes.__add__, st.sampled_from(IMAGE_MAGIC), st.binary(max_size=500)))
def test_random_bytes_posing_as_an_image(image_enc, data):
    check_one_row(image_enc, data)


@SETTINGS
@given(data=st.sampled_from(IMAGE_SEEDS).flatmap(mutated))
def test_damaged_image_files(image_enc, data):
    check_one_row(image_enc, data)


@SETTINGS
@given(array=hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12)))
def test_random_arrays_posing_as_an_image(image_enc, array):
    row = check_one_row(image_enc, array)
    layout_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4))
    dtype_ok = array.dtype.kind in "bf" or array.dtype in (np.uint8, np.uint16)
    if not (layout_ok and dtype_ok):
        assert row is None, "an array of the wrong shape or dtype is an InputError"


# --------------------------------------------------------------------------- audio


@pytest.fixture(scope="module")
def audio_enc(audio_encoder):
    return audio_encoder(max_duration=2.0)


def _wav_bytes():
    import io

    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, tone(0.05), SR, format="WAV")
    flac = io.BytesIO()
    soundfile.write(flac, tone(0.05), SR, format="FLAC")
    return [buffer.getvalue(), flac.getvalue()]


@SETTINGS
@given(data=st.binary(max_size=2_000) | st.builds(bytes.__add__, st.sampled_from(AUDIO_MAGIC), st.binary(max_size=500)))
def test_random_bytes_posing_as_audio(audio_enc, data):
    check_one_row(audio_enc, data)


@SETTINGS
@given(data=st.sampled_from(_wav_bytes()).flatmap(mutated))
def test_damaged_audio_files(audio_enc, data):
    check_one_row(audio_enc, data)


@SETTINGS
@given(
    waveform=hnp.arrays(
        st.sampled_from(DTYPES), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=64),
        elements=None,
    ),
    sample_rate=st.integers(-2, 200_000) | st.sampled_from([8000, 16000, 44100, 48000]),
)
def test_random_arrays_posing_as_a_waveform(audio_enc, waveform, sample_rate):
    row = check_one_row(audio_enc, (waveform, sample_rate))
    if sample_rate <= 0 or waveform.ndim not in (1, 2) or waveform.size == 0 or waveform.dtype.kind in "bc":
        assert row is None


@SETTINGS
@given(
    waveform=hnp.arrays(np.float32, st.integers(1, 4000), elements=st.floats(-1, 1, width=32)),
    sample_rate=st.sampled_from([8000, 16000, 22050, 48000]),
)
def test_valid_waveforms_always_give_finite_features(audio_enc, waveform, sample_rate):
    row = check_one_row(audio_enc, (waveform, sample_rate))
    assert row is not None and np.isfinite(row).all()
