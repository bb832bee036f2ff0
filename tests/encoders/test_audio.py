"""Tests of AudioMFCC and AudioEncoder: numerics against librosa, inputs, errors, cache, estimator API."""

import pickle
import tracemalloc

import librosa
import numpy as np
import pytest
import soundfile
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from skmm import AudioEncoder, AudioMFCC, InputError, InputWarning
from skmm.cache import clear_memory_cache
from tiny_models import save_tiny_wav2vec2

SR = 16000
#: torch vs librosa, on every feature of every frame and of the summary (np.allclose semantics),
#: as stated in AudioMFCC's docstring
TOLERANCE = dict(rtol=1e-5, atol=1e-3)
ALL_FEATURES = dict(deltas=True, chroma=True, spectral=True)


def tone(seconds=1.0, sr=SR, freq=440.0, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def mixed_batch():
    """Clips of very different lengths, levels and spectra, to be computed in one padded batch."""
    rng = np.random.default_rng(1)
    chirp = librosa.chirp(fmin=100, fmax=6000, sr=SR, duration=1.5)
    chirp = (chirp + 1e-3 * rng.standard_normal(chirp.size)).astype(np.float32)  # a recording's noise floor
    return [
        tone(1.0),
        tone(0.37, freq=3000, seed=2),
        (1e-3 * rng.standard_normal(2345)).astype(np.float32),  # quiet noise
        chirp,
        tone(0.01, seed=3),  # 160 samples: 2 frames
        np.float32([0.5]),  # a single sample: 1 frame
        np.zeros(4000, dtype=np.float32),  # silence
        tone(2.2, freq=150, noise=0.2, seed=4),
    ]


def encode(clips, **params):
    params = {"cache": None, "verbose": 0, **params}
    return AudioMFCC(**params).fit(clips).transform(clips)


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_memory_cache()
    yield
    clear_memory_cache()


# ------------------------------------------------------------------ numerics: torch vs librosa


@pytest.mark.filterwarnings("ignore:n_fft=.*too large")  # librosa, on the 1- and 160-sample clips
def test_torch_mfcc_frames_match_librosa_mfcc():
    waves = mixed_batch()
    encoder = AudioMFCC(verbose=0).fit(waves[:1])
    frames, valid = encoder._torch_frames(waves, encoder._load_bundle())
    for clip, wave in enumerate(waves):
        expected = librosa.feature.mfcc(y=wave, sr=SR, n_mfcc=20, n_fft=512, hop_length=160, n_mels=40)
        assert int(valid[clip].sum()) == expected.shape[1] == 1 + len(wave) // 160
        np.testing.assert_allclose(frames[clip, :, : expected.shape[1]].numpy(), expected, **TOLERANCE)


def test_torch_frames_match_librosa_with_deltas_chroma_spectral():
    waves = mixed_batch()
    encoder = AudioMFCC(n_mfcc=13, n_mels=64, fmin=50.0, fmax=7000.0, **ALL_FEATURES, verbose=0)
    encoder.fit(waves[:1])
    frames, _ = encoder._torch_frames(waves, encoder._load_bundle())
    for clip, wave in enumerate(waves):
        expected = encoder._librosa_frames(wave)
        got = frames[clip, :, : expected.shape[1]].numpy()
        # rtol covers the spectral rows in Hz (centroid, bandwidth, rolloff reach 8000)
        np.testing.assert_allclose(got, expected, **TOLERANCE, err_msg=f"clip {clip}")


@pytest.mark.parametrize("params", [{}, ALL_FEATURES, {"n_mfcc": 40, "n_fft": 1024, "hop_length": 256}])
def test_torch_backend_matches_librosa_backend(params):
    clips = [(wave, SR) for wave in mixed_batch()]
    fast = encode(clips, batch_size=3, **params)
    reference = encode(clips, backend="librosa", **params)
    np.testing.assert_allclose(fast, reference, **TOLERANCE)


def test_summary_is_mean_and_std_of_librosa_mfcc():
    wave = tone(1.3)
    mfcc = librosa.feature.mfcc(y=wave, sr=SR, n_mfcc=20, n_fft=512, hop_length=160, n_mels=40)
    row = encode([(wave, SR)])[0]
    np.testing.assert_allclose(row[0::2], mfcc.mean(axis=1), **TOLERANCE)
    np.testing.assert_allclose(row[1::2], mfcc.std(axis=1), **TOLERANCE)


def test_result_does_not_depend_on_batch_companions():
    waves = mixed_batch()
    alone = np.vstack([encode([(w, SR)], **ALL_FEATURES) for w in waves])
    together = encode([(w, SR) for w in waves], batch_size=8, **ALL_FEATURES)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ output layout


def test_workers_give_the_features_of_one_batch_at_a_time():
    # n_threads=2: two batches encoded at once, each on one torch thread; n_threads=1: one by one
    clips = [(wave, SR) for wave in mixed_batch()] * 2
    sequential = encode(clips, batch_size=3, n_threads=1, **ALL_FEATURES)
    np.testing.assert_array_equal(encode(clips, batch_size=3, n_threads=2, **ALL_FEATURES), sequential)
    np.testing.assert_allclose(encode(clips, batch_size=3, n_threads=None, **ALL_FEATURES), sequential,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_threads", [1, 2, None])
def test_torch_thread_count_is_restored_after_encoding(n_threads):
    import torch

    before = torch.get_num_threads()
    encode([(tone(seed=i), SR) for i in range(5)], batch_size=2, n_threads=n_threads)
    assert torch.get_num_threads() == before


def test_a_thread_budget_set_around_the_call_holds(monkeypatch):
    import threading

    import torch

    from skmm._threads import torch_threads

    seen = []
    encode_batch = AudioMFCC._encode_batch

    def recording(self, items, bundle):
        seen.append((threading.current_thread(), torch.get_num_threads()))
        return encode_batch(self, items, bundle)

    monkeypatch.setattr(AudioMFCC, "_encode_batch", recording)
    with torch_threads(1):
        encode([(tone(seed=i), SR) for i in range(6)], batch_size=2)  # n_threads=-1
    assert seen == [(threading.current_thread(), 1)] * 3


def test_a_bad_row_among_workers_is_reported_at_its_own_position():
    clips = [(tone(seed=i), SR) for i in range(7)]
    bad = tone()
    bad[3] = np.nan
    clips[5] = (bad, SR)
    with pytest.raises(InputError, match=r"row 5, .*NaN or infinite"):
        encode(clips, batch_size=2, n_threads=2)
    with pytest.warns(InputWarning, match=r"1 of 7 rows"):
        Z = encode(clips, batch_size=2, n_threads=2, on_error="missing")
    assert np.isnan(Z[5]).all() and np.isfinite(np.delete(Z, 5, axis=0)).all()
    np.testing.assert_array_equal(Z[6], encode([clips[6]])[0])


def test_shape_dtype_and_feature_names():
    clips = [(tone(), SR)] * 3
    encoder = AudioMFCC(n_mfcc=13, **ALL_FEATURES, verbose=0, cache=None)
    Z = encoder.fit_transform(clips)
    assert Z.shape == (3, 2 * (13 * 3 + 12 + 5)) == (3, encoder.n_features_out_)
    assert Z.dtype == np.float32
    names = list(encoder.get_feature_names_out())
    assert len(names) == len(set(names)) == Z.shape[1]
    assert names[:4] == ["mfcc0_mean", "mfcc0_std", "mfcc1_mean", "mfcc1_std"]
    for name in ["delta0_mean", "ddelta12_std", "chroma3_std", "centroid_mean", "rms_std"]:
        assert name in names
    # chroma of a 440 Hz tone peaks on A (pitch class 9, C = 0)
    chroma_means = [Z[0, names.index(f"chroma{k}_mean")] for k in range(12)]
    assert int(np.argmax(chroma_means)) == 9


def test_default_output_is_20_mfcc_means_and_stds():
    encoder = AudioMFCC(verbose=0).fit([(tone(), SR)])
    assert encoder.n_features_out_ == 40
    assert encoder.get_feature_names_out()[-1] == "mfcc19_std"


# ------------------------------------------------------------------ inputs


@pytest.fixture
def wav_file(tmp_path):
    path = tmp_path / "clip.wav"
    soundfile.write(path, tone(), SR, subtype="FLOAT")
    return path


def test_every_input_type_gives_the_same_features(wav_file):
    wave = tone()
    rows = [
        str(wav_file),
        wav_file,
        wav_file.read_bytes(),
        (wave, SR),
        {"array": wave, "sampling_rate": SR},
        [wave, SR],
    ]
    Z = encode(rows)
    for row in Z[1:]:
        np.testing.assert_allclose(row, Z[0], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize(
    "fmt, subtype, tolerance",
    [("WAV", "PCM_16", 0.05), ("FLAC", "PCM_24", 1e-3), ("OGG", "VORBIS", 4.0)],
)
def test_file_formats_decode_to_the_same_sound(tmp_path, fmt, subtype, tolerance):
    wave = tone()
    path = tmp_path / f"clip.{fmt.lower()}"
    soundfile.write(path, wave, SR, format=fmt, subtype=subtype)
    got, expected = encode([path, (wave, SR)])
    # MFCC means (dB scale): lossless formats agree closely; lossy Vorbis drops some of the
    # noise floor, which moves mfcc0 by a few dB
    np.testing.assert_allclose(got[0::2][:13], expected[0::2][:13], atol=tolerance)


def test_missing_rows_give_nan_rows_and_others_are_finite(wav_file):
    Z = encode([wav_file, None, np.nan, "", "  ", (tone(), SR)])
    assert np.isnan(Z[1:5]).all()
    assert np.isfinite(Z[[0, 5]]).all()


def test_multichannel_is_mixed_down_to_mono(tmp_path):
    left, right = tone(freq=440), tone(freq=880, seed=1)
    mono = (left + right) / 2
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    rows = [(mono, SR), (np.stack([left, right]), SR), (np.stack([left, right], axis=1), SR), path]
    Z = encode(rows)
    for row in Z[1:]:
        np.testing.assert_allclose(row, Z[0], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("source_sr", [8000, 48000])
def test_other_sample_rates_are_resampled(source_sr):
    native = encode([(tone(sr=SR, noise=0.0), SR)])[0]
    other = encode([(tone(sr=source_sr, noise=0.0), source_sr)])[0]
    # same 1-second 440 Hz tone: same frame count and near-identical cepstrum
    means = slice(0, 26, 2)  # first 13 MFCC means
    np.testing.assert_allclose(other[means], native[means], atol=1.5)
    direct = encode([(librosa.resample(tone(sr=source_sr, noise=0.0), orig_sr=source_sr,
                                       target_sr=SR, res_type="soxr_hq"), SR)])[0]
    np.testing.assert_allclose(other, direct, rtol=1e-5, atol=1e-4)


def test_silent_clip_gives_finite_features():
    silence = np.zeros(SR, dtype=np.float32)
    for backend in ("torch", "librosa"):
        Z = encode([(silence, SR), (np.zeros(1, dtype=np.float32), SR)], backend=backend, **ALL_FEATURES)
        assert np.isfinite(Z).all(), backend


# ------------------------------------------------------------------ a 2-D array: a batch of waveforms


def test_a_2d_array_is_a_batch_of_waveforms_at_sr():
    waves = np.stack([tone(seed=0), tone(freq=880, seed=1), tone(freq=150, seed=2)])
    encoder = AudioMFCC(cache=None, verbose=0)
    Z = encoder.fit_transform(waves)
    assert encoder.n_features_in_ == SR and not hasattr(encoder, "feature_names_in_")
    np.testing.assert_array_equal(Z, encode([(wave, SR) for wave in waves]))
    pcm = (waves * 2**15).astype(np.int16)  # integers are PCM samples, as in a pair
    np.testing.assert_array_equal(encoder.transform(pcm), encode([(wave, SR) for wave in pcm]))


def test_a_row_of_nan_in_a_batch_is_a_missing_clip():
    waves = np.stack([tone(), np.full(SR, np.nan, dtype=np.float32), tone(seed=1)])
    Z = AudioMFCC(cache=None, verbose=0).fit_transform(waves)
    assert np.isnan(Z[1]).all() and np.isfinite(Z[[0, 2]]).all()


def test_a_batch_takes_clips_of_the_length_seen_in_fit():
    encoder = AudioMFCC(verbose=0).fit(np.stack([tone(), tone(seed=1)]))
    with pytest.raises(ValueError, match=f"X has 8000 features, but AudioMFCC is expecting {SR} features"):
        encoder.transform(np.stack([tone(0.5)]))
    with pytest.raises(ValueError, match=f"X is one column, but AudioMFCC was fitted on .* {SR} features"):
        encoder.transform([(tone(), SR)])


def test_a_single_waveform_as_a_1d_array_is_refused_with_a_way_out():
    with pytest.raises(ValueError, match=r"1-D array of numbers: a single waveform\? Reshape your data"):
        AudioMFCC().fit(tone())
    assert np.isnan(encode(np.full(3, np.nan))).all()  # a 1-D array of missing values stays a column


def test_an_object_array_stays_a_column_of_clips(wav_file):
    column = np.empty((2, 1), dtype=object)
    column[:, 0] = [str(wav_file), None]
    encoder = AudioMFCC(cache=None, verbose=0).fit(column)
    Z = encoder.transform(column)
    assert encoder.n_features_in_ == 1 and Z.shape == (2, 40) and np.isnan(Z[1]).all()
    with pytest.raises(ValueError, match=r"an array of shape \(2, 2\) and dtype object.*one waveform per row"):
        encoder.fit(np.hstack([column, column]))


def test_audio_encoder_reads_a_batch_at_the_model_rate(tiny_model):
    waves = np.stack([tone(0.5, seed=0), tone(0.5, seed=1)])
    pairs = [(wave, SR) for wave in waves]
    np.testing.assert_array_equal(
        AudioEncoder(tiny_model, cache=None, verbose=0).fit_transform(waves),
        AudioEncoder(tiny_model, cache=None, verbose=0).fit_transform(pairs),
    )


# ------------------------------------------------------------------ errors


def test_nan_samples_raise_an_error_naming_the_row():
    bad = tone()
    bad[100] = np.nan
    with pytest.raises(InputError, match=r"row 1, .*NaN or infinite"):
        encode([(tone(), SR), (bad, SR)])
    infinite = tone()
    infinite[5] = np.inf
    with pytest.raises(InputError, match=r"row 0, .*NaN or infinite.*on_error='missing'"):
        encode([(infinite, SR)])


def test_on_error_missing_gives_nan_row_and_one_warning():
    bad = tone()
    bad[100] = np.nan
    with pytest.warns(InputWarning, match=r"1 of 3 rows") as record:
        Z = encode([(tone(), SR), (bad, SR), (tone(seed=5), SR)], on_error="missing")
    assert len([w for w in record if issubclass(w.category, InputWarning)]) == 1
    assert np.isnan(Z[1]).all() and np.isfinite(Z[[0, 2]]).all()


def test_empty_inputs_are_errors_naming_the_reason(tmp_path):
    empty_file = tmp_path / "empty.wav"
    empty_file.write_bytes(b"")
    with pytest.raises(InputError, match=r"row 0, .*not a readable audio file"):
        encode([empty_file])
    no_frames = tmp_path / "no_frames.wav"
    soundfile.write(no_frames, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(InputError, match=r"row 0, .*no samples"):
        encode([no_frames])
    with pytest.raises(InputError, match=r"row 0, .*no samples"):
        encode([(np.zeros(0, dtype=np.float32), SR)])


def test_a_file_that_is_not_audio_is_an_input_error(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not a sound")
    with pytest.raises(InputError, match=r"row 0, .*not a readable audio file.*notes\.wav"):
        encode([path])
    with pytest.raises(InputError, match=r"file not found"):
        encode([tmp_path / "missing.wav"])
    with pytest.raises(InputError, match=r"no sample rate"):
        encode([tone()])


def test_long_clip_is_bounded_by_max_duration(tmp_path):
    path = tmp_path / "ten_minutes.wav"
    long = tone(seconds=600.0, noise=0.01)
    soundfile.write(path, long, SR, subtype="PCM_16")
    prefix, _ = soundfile.read(path, frames=SR, dtype="float32")
    encode([(prefix, SR)])  # imports and first-call buffers are not what is measured
    tracemalloc.start()
    from_file = encode([path], max_duration=1.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8_000_000  # only the first second is read: the whole clip as float32 is 38 MB
    np.testing.assert_allclose(from_file, encode([(prefix, SR)]), rtol=1e-6, atol=1e-5)
    from_array = encode([(long, SR)], max_duration=1.0)
    np.testing.assert_allclose(from_array, encode([(long[:SR], SR)]), rtol=1e-6, atol=1e-5)


# ------------------------------------------------------------------ parameters and estimator API


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"n_mfcc": 50, "n_mels": 40}, ValueError, "n_mfcc=50 cannot exceed n_mels=40"),
        ({"fmax": 9000.0}, ValueError, r"fmax <= sr / 2 = 8000 Hz"),
        ({"fmin": 500.0, "fmax": 400.0}, ValueError, "fmin < fmax"),
        ({"backend": "essentia"}, InvalidParameterError, "'backend' parameter"),
        ({"hop_length": 0}, InvalidParameterError, "'hop_length' parameter"),
    ],
)
def test_invalid_parameters_are_rejected_at_fit(params, error, match):
    encoder = AudioMFCC(**params)  # __init__ only stores
    with pytest.raises(error, match=match):
        encoder.fit([(tone(), SR)])


def test_clone_get_params_pickle_and_fit_returns_self():
    encoder = AudioMFCC(n_mfcc=13, deltas=True, cache=None, verbose=0)
    assert clone(encoder).get_params() == encoder.get_params()
    assert AudioMFCC(**encoder.get_params()).get_params() == encoder.get_params()
    clips = [(tone(), SR), (tone(seed=1), SR)]
    assert encoder.fit(clips) is encoder
    Z = encoder.transform(clips)
    blob = pickle.dumps(encoder)
    assert len(blob) < 5_000  # parameters only, no filterbank tables
    np.testing.assert_array_equal(pickle.loads(blob).transform(clips), Z)


def test_dataframe_column_and_index_in_errors():
    pd = pytest.importorskip("pandas")
    bad = tone()
    bad[0] = np.nan
    frame = pd.DataFrame({"voice": [(tone(), SR), (bad, SR)]}, index=["a", "b"])
    encoder = AudioMFCC(cache=None, verbose=0)
    with pytest.raises(InputError, match=r"row 1 \(index 'b'\)"):
        encoder.fit_transform(frame)
    assert list(encoder.feature_names_in_) == ["voice"]


# ------------------------------------------------------------------ cache


def count_batches(monkeypatch, cls):
    calls = []
    original = cls._encode_batch

    def counted(self, items, bundle):
        calls.append(len(items))
        return original(self, items, bundle)

    monkeypatch.setattr(cls, "_encode_batch", counted)
    return calls


def test_second_transform_hits_the_cache(monkeypatch, wav_file):
    calls = count_batches(monkeypatch, AudioMFCC)
    clips = [wav_file, (tone(seed=7), SR)]
    first = AudioMFCC(verbose=0).fit_transform(clips)
    assert sum(calls) == 2
    second = clone(AudioMFCC(verbose=0)).fit_transform(clips)  # a clone shares the cache
    assert sum(calls) == 2
    np.testing.assert_array_equal(first, second)


def test_changed_parameter_or_file_content_is_recomputed(monkeypatch, wav_file):
    calls = count_batches(monkeypatch, AudioMFCC)
    before = AudioMFCC(verbose=0).fit_transform([wav_file])
    fewer = AudioMFCC(n_mfcc=13, verbose=0).fit_transform([wav_file])
    assert len(calls) == 2 and fewer.shape == (1, 26)
    soundfile.write(wav_file, tone(freq=2000), SR, subtype="FLOAT")  # same path, new sound
    after = AudioMFCC(verbose=0).fit_transform([wav_file])
    assert len(calls) == 3
    assert not np.allclose(after, before)


# ------------------------------------------------------------------ AudioEncoder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_wav2vec2(tmp_path_factory.mktemp("tiny_w2v2_mask"), attention_mask=True)


@pytest.fixture(scope="module")
def tiny_model_no_mask(tmp_path_factory):
    return save_tiny_wav2vec2(tmp_path_factory.mktemp("tiny_w2v2_nomask"), attention_mask=False)


def test_audio_encoder_shape_nan_rows_and_determinism(tiny_model, wav_file):
    clips = [wav_file, None, (tone(0.5, sr=8000), 8000), "", (tone(2.0, seed=3), SR)]
    encoder = AudioEncoder(tiny_model, cache=None, verbose=0)
    Z = encoder.fit_transform(clips)
    assert Z.shape == (5, 32) and Z.dtype == np.float32
    assert np.isnan(Z[[1, 3]]).all() and np.isfinite(Z[[0, 2, 4]]).all()
    np.testing.assert_array_equal(encoder.transform(clips), Z)
    assert encoder.get_feature_names_out()[0] == "aud0"


@pytest.mark.parametrize("model", ["tiny_model", "tiny_model_no_mask"])
def test_audio_encoder_embedding_does_not_depend_on_the_batch(model, request):
    folder = request.getfixturevalue(model)
    clips = [(tone(seconds, seed=i), SR) for i, seconds in enumerate([0.3, 1.0, 0.7, 1.0])]
    together = AudioEncoder(folder, batch_size=4, cache=None, verbose=0).fit_transform(clips)
    alone = np.vstack([AudioEncoder(folder, cache=None, verbose=0).fit_transform([c]) for c in clips])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5)


def test_audio_encoder_refuses_a_clip_shorter_than_its_receptive_field(tiny_model):
    # the tiny wav2vec2's convolutions (kernels 10 and 8, strides 5 and 4) need 45 samples
    encoder = AudioEncoder(tiny_model, cache=None, verbose=0)
    with pytest.raises(InputError, match=r"row 1, .*clip of 44 samples is shorter than the 45 samples"):
        encoder.fit_transform([(tone(), SR), (tone()[:44], SR)])
    with pytest.warns(InputWarning, match="1 of 2 rows"):
        Z = encoder.set_params(on_error="missing").fit_transform([(tone()[:44], SR), (tone()[:45], SR)])
    assert np.isnan(Z[0]).all() and np.isfinite(Z[1]).all()


def test_audio_encoder_pooling_errors_pickle_and_cache(tiny_model, monkeypatch):
    clips = [(tone(), SR)]
    mean = AudioEncoder(tiny_model, cache=None, verbose=0).fit_transform(clips)
    peak = AudioEncoder(tiny_model, pooling="max", cache=None, verbose=0).fit_transform(clips)
    assert (peak >= mean - 1e-6).all() and not np.allclose(peak, mean)

    with pytest.raises(ValueError, match=r"sr=8000 but the feature extractor .* 16000 Hz"):
        AudioEncoder(tiny_model, sr=8000, verbose=0).fit(clips)
    with pytest.raises(InvalidParameterError, match="'pooling' parameter"):
        AudioEncoder(tiny_model, pooling="attention").fit(clips)
    bad = tone()
    bad[3] = np.inf
    with pytest.raises(InputError, match=r"row 1, .*NaN or infinite"):
        AudioEncoder(tiny_model, cache=None, verbose=0).fit_transform([clips[0], (bad, SR)])

    encoder = AudioEncoder(tiny_model, verbose=0).fit(clips)
    assert len(pickle.dumps(encoder)) < 5_000  # no weights
    calls = count_batches(monkeypatch, AudioEncoder)
    first = encoder.transform(clips)
    second = clone(encoder).fit(clips).transform(clips)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)


# ------------------------------------------------------------------ CUDA


def _cuda_available():
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(tiny_model):
    clips = [(wave, SR) for wave in mixed_batch()]
    gpu = encode(clips, device="cuda", **ALL_FEATURES)
    reference = encode(clips, backend="librosa", **ALL_FEATURES)
    np.testing.assert_allclose(gpu, reference, rtol=1e-4, atol=1e-3)  # GPU FFT and TF32 round-off
    Z = AudioEncoder(tiny_model, device="cuda", cache=None, verbose=0).fit_transform(clips[:3])
    assert Z.shape == (3, 32) and np.isfinite(Z).all()


def test_a_clip_too_short_for_the_feature_extractor_is_refused_by_name(tmp_path):
    """AST's filterbank needs 15 ms of sound: a shorter clip is a bad row, not a numpy error."""
    from tiny_models import save_tiny_ast

    encoder = AudioEncoder(save_tiny_ast(tmp_path / "ast"), cache=None, verbose=0)
    with pytest.raises(InputError, match=r"row 1, .*clip of 100 samples is shorter than the \d+ samples"):
        encoder.fit_transform([(tone(), SR), (tone()[:100], SR)])
    shortest = encoder._bundle().shortest
    assert shortest == 240  # 15 ms at 16 kHz
    Z = encoder.fit_transform([(tone()[:shortest], SR)])
    assert np.isfinite(Z).all()


def test_a_clip_longer_than_clap_s_window_has_one_embedding(tmp_path):
    """CLAP's extractor would pick a long clip's chunks at random: the clip is cut to the window instead."""
    from tiny_models import save_tiny_clap

    encoder = AudioEncoder(save_tiny_clap(tmp_path / "clap"), cache=None, verbose=0)
    long_clip = (tone(3.0, seed=1), SR)  # three times the tiny model's 1 s window
    first = encoder.fit_transform([long_clip])
    for seed in range(3):
        np.random.seed(seed)  # the global state the extractor draws from
        np.testing.assert_array_equal(encoder.transform([long_clip]), first)
    np.testing.assert_allclose(first, encoder.transform([(long_clip[0][:SR], SR)]), rtol=1e-5, atol=1e-6)
