"""Bad audio never crashes AudioMFCC silently or loses a row: a clear error or an explicit NaN row."""

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile

import skmm
from dirtydata import SR, tone
from skmm.io import decode_audio, read_audio_source

BAD_FILES = {
    "missing.wav": "file not found",
    "empty.wav": "not a readable audio file",
    "no-frames.wav": r"audio has no samples \(empty clip",
    "notes.wav": "not a readable audio file",
    "picture.wav": "not a readable audio file",
    "nan.wav": "audio contains NaN or infinite samples",
    "inf.wav": "audio contains NaN or infinite samples",
}


def decode(value, **params):
    """What an encoder does with one row: read it, then decode it."""
    _, raw = read_audio_source(value)
    return decode_audio(raw, sr=params.pop("sr", SR), **params)


@pytest.mark.parametrize("name, reason", BAD_FILES.items())
def test_bad_file_raises_input_error_naming_row_file_and_reason(audio_encoder, bad_audio, name, reason):
    with pytest.raises(ValueError, match=reason):
        decode(bad_audio[name])
    column = pd.Series([(tone(), SR), str(bad_audio[name])], index=["ok", "bad-clip"])
    with pytest.raises(skmm.InputError, match=rf"row 1 \(index 'bad-clip'\), '.*{name}': .*{reason}"):
        audio_encoder().transform(column)


@pytest.mark.parametrize("backend", ["torch", "librosa"])
def test_missing_policy_keeps_every_row_in_order_and_warns_once(audio_encoder, bad_audio, backend):
    rows = [(tone(), SR), *(bad_audio[name] for name in BAD_FILES), None, "", (tone(), SR)]
    encoder = audio_encoder(on_error="missing", backend=backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Z = encoder.transform(rows)
    assert Z.shape == (len(rows), encoder.n_features_out_)
    assert np.isfinite(Z[[0, -1]]).all()
    np.testing.assert_array_equal(Z[0], Z[-1])
    assert np.isnan(Z[1:-1]).all()
    (warning,) = [w for w in caught if issubclass(w.category, skmm.InputWarning)]
    assert f"{len(BAD_FILES)} of {len(rows)} rows could not be encoded" in str(warning.message)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize(
    "clip, reason",
    [
        ((np.zeros(0, np.float32), SR), r"no samples \(empty clip, shape \(0,\)\)"),
        ((np.zeros((2, 0), np.float32), SR), r"no samples \(empty clip, shape \(2, 0\)\)"),
        ((np.array([0.1, np.nan, 0.2]), SR), "NaN or infinite samples"),
        ((np.array([0.1, np.inf]), SR), "NaN or infinite samples"),
        ((np.zeros((2, 3, 4)), SR), r"expected a 1-D or 2-D waveform, got shape \(2, 3, 4\)"),
        ((np.ones(100, dtype=complex), SR), "waveform must be real numbers, got dtype complex128"),
        ((np.ones(100), 0), "positive integer sample rate, got sample_rate=0"),
        ((np.ones(100), 16000.0), "positive integer sample rate, got sample_rate=16000.0"),
        (np.ones(100), "a bare array has no sample rate; pass"),
        ((np.ones(100) * 1e30, SR), "NaN or infinite features"),
    ],
    ids=["empty", "empty-stereo", "nan", "inf", "3-d", "complex", "sr-0", "sr-float", "bare", "huge"],
)
def test_bad_waveforms_are_input_errors(audio_encoder, clip, reason):
    with pytest.raises(skmm.InputError, match=rf"row 1, <.*>: .*{reason}"):
        audio_encoder().transform([(tone(), SR), clip])
    with pytest.warns(skmm.InputWarning, match="1 of 2 rows"):
        Z = audio_encoder(on_error="missing").transform([(tone(), SR), clip])
    assert np.isfinite(Z[0]).all() and np.isnan(Z[1]).all()


@pytest.mark.parametrize("backend", ["torch", "librosa"])
def test_silent_and_tiny_clips_give_finite_features(audio_encoder, tmp_path, backend):
    soundfile.write(tmp_path / "silence.wav", np.zeros(SR, np.float32), SR)
    rows = [tmp_path / "silence.wav", (np.zeros(SR, np.float32), SR), (np.zeros(1, np.float32), SR), (np.full(3, 0.1), SR)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no division by zero on the way
        Z = audio_encoder(backend=backend, deltas=True, chroma=True, spectral=True).transform(rows)
    assert np.isfinite(Z).all()


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_file_is_mixed_down_to_mono(audio_encoder, tmp_path, channels):
    mono = tone()
    path = tmp_path / f"{channels}ch.wav"
    soundfile.write(path, np.tile(mono[:, None], (1, channels)), SR, subtype="FLOAT")
    np.testing.assert_allclose(decode(path), mono, atol=1e-6)
    Z = audio_encoder().transform([path, (mono, SR), (np.tile(mono, (channels, 1)), SR)])
    np.testing.assert_allclose(Z[0], Z[1], atol=1e-4)
    np.testing.assert_allclose(Z[2], Z[1], atol=1e-4)


def test_stereo_with_opposite_channels_is_their_mean(tmp_path):
    left = tone()
    right = tone(freq=880.0)
    soundfile.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), SR, subtype="FLOAT")
    np.testing.assert_allclose(decode(tmp_path / "stereo.wav"), (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize("rate", [8000, 48000])
def test_other_sample_rates_are_resampled(audio_encoder, tmp_path, rate):
    path = tmp_path / f"{rate}.wav"
    soundfile.write(path, tone(sr=rate), rate, subtype="FLOAT")
    waveform = decode(path)
    assert waveform.dtype == np.float32 and len(waveform) == SR
    np.testing.assert_allclose(waveform[100:-100], tone()[100:-100], atol=1e-4)
    Z = audio_encoder().transform([path, (tone(), SR)])
    assert np.isfinite(Z).all()
    assert np.abs(Z[0] - Z[1]).max() < 0.01 * np.abs(Z[1]).max()


def test_integer_waveforms_are_pcm(audio_encoder):
    clip = tone()
    pcm = np.round(clip * 32767).astype(np.int16)
    np.testing.assert_allclose(decode((pcm, SR)), clip, atol=1e-4)
    Z = audio_encoder().transform([(pcm, SR), (clip, SR)])
    np.testing.assert_allclose(Z[0], Z[1], rtol=1e-3, atol=1e-2)


def test_long_file_costs_bounded_memory_and_time(audio_encoder, tmp_path):
    path = tmp_path / "ten-minutes.wav"
    soundfile.write(path, np.tile(np.round(tone() * 32767).astype(np.int16), 600), SR)  # 19 MB of PCM
    decode(path, max_duration=0.1)  # imports and buffers of the first call are not what is measured
    tracemalloc.start()
    waveform = decode(path, max_duration=2.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(waveform) == 2 * SR
    assert peak < 4_000_000  # hashing streams 1 MB chunks; the whole clip as float32 would be 38 MB
    Z = audio_encoder(max_duration=2.0).transform([path, (tone(2.0), SR)])
    np.testing.assert_allclose(Z[0], Z[1], atol=1e-2)


def test_long_waveform_is_cut_before_it_is_converted():
    long_clip = np.zeros((2, 600 * SR), dtype=np.int16)  # ten minutes of stereo PCM, in memory already
    tracemalloc.start()
    waveform = decode((long_clip, SR), max_duration=1.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(waveform) == SR
    assert peak < 1_000_000  # converting it all to float would take 77 MB


def test_the_same_clip_as_bytes_path_and_waveform_agree(audio_encoder, tmp_path):
    path = tmp_path / "clip.wav"
    soundfile.write(path, tone(), SR, subtype="FLOAT")
    Z = audio_encoder().transform([path, str(path), path.read_bytes(), (tone(), SR), {"array": tone(), "sampling_rate": SR}])
    np.testing.assert_allclose(Z, np.broadcast_to(Z[0], Z.shape), atol=1e-4)
