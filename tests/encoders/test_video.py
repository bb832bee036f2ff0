"""VideoEncoder and the video readers of skmm.io, on clips encoded at run time with PyAV."""

import io
import pickle
import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

av = pytest.importorskip("av")

from skmm import InputError, InputWarning, MultimodalClassifier, MultimodalFusion  # noqa: E402
from skmm.datasets import _write_clip, make_multimodal_classification  # noqa: E402
from skmm.encoders import AudioMFCC, ImageEncoder, VideoEncoder  # noqa: E402
from skmm.encoders import _video  # noqa: E402
from skmm.io import check_video_header, decode_video_audio, decode_video_frames, sample_times  # noqa: E402
from skmm.io._video import _DecodingBudget, _sample_by_seeking  # noqa: E402

FPS = 25


def red_ramp(n=50, width=64, height=48):
    """Frames whose red level tells their index: frame i is (5 i, 40, 200)."""
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    frames[:] = [0, 40, 200]
    frames[..., 0] = (5 * np.arange(n))[:, None, None]
    return frames


def clip_bytes(frames=None, *, fps=FPS, **options):
    buffer = io.BytesIO()
    _write_clip(buffer, red_ramp() if frames is None else frames, fps, **options)
    return buffer.getvalue()


def tone(seconds=2.0, sr=16000):
    return 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * sr)) / sr)


def index_of(frames):
    """The index of each decoded frame of :func:`red_ramp` (lossy coding: nearest multiple of 5)."""
    return np.round(frames[:, :, :, 0].mean((1, 2)) / 5).astype(int).tolist()


def encoder(image_model, **params):
    return VideoEncoder(image_model=image_model, verbose=0, cache=None, **params)


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    "container, codec, bit_rate",
    [("mp4", "libx264", None), ("webm", "libvpx-vp9", None), ("avi", "mpeg4", 4_000_000)],
)
def test_uniform_sampling_takes_the_centre_of_each_segment(container, codec, bit_rate):
    data = clip_bytes(container=container, codec=codec, keyframe_interval=10, bit_rate=bit_rate)
    frames = decode_video_frames(data, frames=5)
    assert frames.shape == (5, 48, 64, 3) and frames.dtype == np.uint8
    assert index_of(frames) == [5, 15, 25, 35, 45]  # 2 s clip: 0.2 s, 0.6 s, ... at 25 fps


def test_sampling_at_a_rate_stops_at_frames():
    data = clip_bytes(keyframe_interval=10)
    assert sample_times(2.0, frames=8, fps=2).tolist() == [0.25, 0.75, 1.25, 1.75]
    # first frame at or after 0.25 s, 0.75 s, ... (frames every 0.04 s)
    assert index_of(decode_video_frames(data, frames=8, fps=2)) == [7, 19, 32, 44]
    assert index_of(decode_video_frames(data, frames=2, fps=2)) == [7, 19]


def test_max_duration_samples_the_beginning_only():
    data = clip_bytes(keyframe_interval=10)
    assert index_of(decode_video_frames(data, frames=2, max_duration=1.0)) == [7, 19]


class CountingContainer:
    """A PyAV container that counts the packets it reads and the seeks it makes."""

    def __init__(self, container):
        self.container, self.packets, self.seeks = container, 0, 0

    def seek(self, *args, **kwargs):
        self.seeks += 1
        return self.container.seek(*args, **kwargs)

    def demux(self, *args, **kwargs):
        for packet in self.container.demux(*args, **kwargs):
            self.packets += 1
            yield packet


def test_sampling_seeks_instead_of_decoding_the_whole_clip():
    frames = np.repeat(red_ramp(10), 25, axis=0)  # 10 s, 250 frames, a keyframe every 0.4 s
    data = clip_bytes(frames, keyframe_interval=10)
    with av.open(io.BytesIO(data)) as container:
        counting = CountingContainer(container)
        stream = container.streams.video[0]
        picked = _sample_by_seeking(counting, stream, np.array([1.25, 5.0, 8.75]), _DecodingBudget(stream))
        assert [round(frame.time, 2) for frame in picked] == [1.28, 5.0, 8.76]
        assert counting.seeks == 3 and counting.packets <= 3 * (10 + 5)  # not 250


def test_without_keyframes_in_between_decoding_goes_on_without_seeking():
    data = clip_bytes(keyframe_interval=250)  # one keyframe: seeking again would decode it all again
    with av.open(io.BytesIO(data)) as container:
        counting = CountingContainer(container)
        stream = container.streams.video[0]
        _sample_by_seeking(counting, stream, sample_times(2.0, frames=5), _DecodingBudget(stream))
        assert counting.seeks == 1 and counting.packets <= 50


def test_skipping_frames_before_a_sample_gives_the_frames_of_a_full_decode():
    data = clip_bytes(keyframe_interval=250)  # B-frames (libx264's default), one keyframe
    with av.open(io.BytesIO(data)) as container:
        every = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    sampled = decode_video_frames(data, frames=5)
    for picture, index in zip(sampled, [5, 15, 25, 35, 45]):
        np.testing.assert_array_equal(picture, every[index])


def keyframe_indices(data):
    with av.open(io.BytesIO(data)) as container:
        return [i for i, frame in enumerate(container.decode(video=0)) if frame.key_frame]


@pytest.mark.parametrize(
    "container, codec, bit_rate",
    [("mp4", "libx264", None), ("webm", "libvpx-vp9", None), ("mpegts", "libx264", None),
     ("avi", "mpeg4", 4_000_000)],
)
def test_keyframe_seeking_takes_the_keyframe_nearest_each_sample(container, codec, bit_rate):
    # Matroska's index lists some keyframes only, MP4's lists decoding times, MPEG-TS has none
    data = clip_bytes(container=container, codec=codec, keyframe_interval=10, bit_rate=bit_rate)
    keyframes = np.array(keyframe_indices(data))
    centres = (np.arange(4) + 0.5) * 50 / 4  # 2 s at 25 fps: frames 6.25, 18.75, 31.25, 43.75
    nearest = keyframes[np.abs(keyframes[None, :] - centres[:, None]).argmin(1)].tolist()
    picked = index_of(decode_video_frames(data, frames=4, seek="keyframe"))
    assert picked == nearest and len(set(picked)) == 4
    exact = decode_video_frames(data, frames=4)  # the default: the first frame at or after each time
    assert index_of(exact) == [7, 19, 32, 44]


def test_keyframe_seeking_decodes_only_the_chosen_keyframes(monkeypatch):
    from skmm.io import _video as video_io  # the module that looks _decode_keyframe up

    decoded, real = [], video_io._decode_keyframe

    def counting(*args):
        frames = real(*args)
        decoded.extend(frames)
        return frames

    monkeypatch.setattr(video_io, "_decode_keyframe", counting)
    data = clip_bytes(frames=np.repeat(red_ramp(10), 10, axis=0), keyframe_interval=10)  # 4 s
    decode_video_frames(data, frames=8, seek="keyframe")  # samples 0.5 s apart, keyframes 0.4 s apart
    assert len(decoded) == 8 and all(frame.key_frame for frame in decoded)


def test_keyframe_seeking_on_a_clip_with_one_keyframe_gives_that_frame():
    data = clip_bytes(keyframe_interval=250)
    assert index_of(decode_video_frames(data, frames=4, seek="keyframe")) == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="seek must be 'exact' or 'keyframe', got 'nearest'"):
        decode_video_frames(data, frames=4, seek="nearest")


@pytest.mark.parametrize("keyframe_interval", [10, 250])
def test_decoding_threads_give_the_frames_of_one_thread(keyframe_interval):
    data = clip_bytes(keyframe_interval=keyframe_interval)
    one = decode_video_frames(data, frames=5, threads=1)
    np.testing.assert_array_equal(decode_video_frames(data, frames=5, threads=4), one)
    np.testing.assert_array_equal(decode_video_frames(data, frames=5), one)  # every CPU
    assert index_of(one) == [5, 15, 25, 35, 45]


def test_variable_frame_rate_is_sampled_by_time():
    # frames 0-14 every 20 ms, then frames 15-19 every 350 ms: by index, 4 samples would be 2, 7, 12, 17
    times = [0.02 * i for i in range(15)] + [0.3 + 0.35 * i for i in range(5)]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=50)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for picture, time in zip(red_ramp(20), times):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = round(time * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    with av.open(io.BytesIO(buffer.getvalue())) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base)
    expected = [next(i for i, t in enumerate(times) if t >= target - 5e-4)
                for target in sample_times(duration, frames=4)]
    assert index_of(decode_video_frames(buffer.getvalue(), frames=4)) == expected
    assert expected != [2, 7, 12, 17]


@pytest.mark.parametrize("container", ["matroska", "mpegts"])
def test_containers_without_a_stream_duration_or_an_index_are_sampled(container):
    # Matroska gives only the container's duration; MPEG-TS has no keyframe index to seek with
    frames = decode_video_frames(clip_bytes(container=container, keyframe_interval=250), frames=5)
    assert index_of(frames) == [5, 15, 25, 35, 45]


def test_a_raw_stream_without_timestamps_is_sampled_by_position():
    picked = index_of(decode_video_frames(clip_bytes(container="h264"), frames=5))
    assert picked == sorted(picked) and picked[0] < 10 and picked[-1] > 40  # within one stride of uniform


def test_rotation_metadata_is_applied():
    frames = np.zeros((10, 32, 64, 3), dtype=np.uint8)
    frames[:, :, :32] = (255, 0, 0)  # left half red
    frames[:, :, 32:] = (0, 0, 255)  # right half blue
    upright = decode_video_frames(clip_bytes(frames, rotation=90), frames=1)[0]
    assert upright.shape == (64, 32, 3)  # portrait, as players show it
    # turned a quarter counter-clockwise: the left (red) half ends at the bottom
    assert upright[:16, :, 2].mean() > 200 and upright[-16:, :, 0].mean() > 200
    turned = decode_video_frames(clip_bytes(frames, rotation=180), frames=1)[0]
    assert turned.shape == (32, 64, 3) and turned[:, :16, 2].mean() > 200


def test_one_frame_clip_repeats_its_frame():
    frames = decode_video_frames(clip_bytes(red_ramp(1)), frames=4)
    assert frames.shape == (4, 48, 64, 3) and index_of(frames) == [0, 0, 0, 0]


def test_frames_are_scaled_down_while_decoding():
    frames = decode_video_frames(clip_bytes(), frames=2, size=24)
    assert frames.shape == (2, 24, 32, 3)


def test_huge_frames_are_refused_before_decoding():
    with pytest.raises(ValueError, match=r"64x48 = 3,072 pixels, over max_pixels=1,000"):
        decode_video_frames(clip_bytes(), frames=2, max_pixels=1000)
    with pytest.raises(ValueError, match="over max_pixels"):
        check_video_header(clip_bytes(), max_pixels=1000)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"this is not a video at all", "not a readable video file"),
        (b"\x00\x00\x00\x20ftypisom" + bytes(200), "not a readable video file"),
    ],
)
def test_non_video_bytes_are_refused(data, match):
    with pytest.raises(ValueError, match=match):
        decode_video_frames(data, frames=2)
    with pytest.raises(ValueError, match="not a readable video"):
        check_video_header(data)


def test_an_image_is_not_a_video():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    with pytest.raises(ValueError, match=r"an image \(png\), not a video"):
        decode_video_frames(buffer.getvalue(), frames=2)


def test_truncated_mp4_is_refused():
    data = clip_bytes()
    with pytest.raises(ValueError, match="not a readable video"):
        decode_video_frames(data[: len(data) // 2], frames=2)  # the index (moov) is at the end


def test_truncated_webm_is_refused():
    data = clip_bytes(container="webm", codec="libvpx-vp9")
    with pytest.raises(ValueError, match=r"truncated video: its frames stop at 0\.\d+ s"):
        decode_video_frames(data[: len(data) // 2], frames=4)


@pytest.mark.parametrize("seek", ["exact", "keyframe"])
def test_truncated_webm_with_keyframes_is_refused(seek):
    data = clip_bytes(container="webm", codec="libvpx-vp9", keyframe_interval=10)
    with pytest.raises(ValueError, match=r"truncated video: its frames stop at 0\.\d+ s"):
        decode_video_frames(data[: len(data) // 2], frames=4, seek=seek)


def test_an_empty_file_is_refused(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable video file"):
        decode_video_frames(str(tmp_path / "empty.mp4"), frames=2)


def test_a_matroska_file_with_sound_only_is_not_a_video():
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as output:
        stream = output.add_stream("libopus", rate=48000)
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.float32), format="fltp", layout="mono")
        chunk.sample_rate = 48000
        for packet in [*stream.encode(chunk), *stream.encode()]:
            output.mux(packet)
    with pytest.raises(ValueError, match=r"no video stream in the file \(found audio\)"):
        check_video_header(buffer.getvalue())


def test_sound_track_is_decoded_or_absent():
    with_sound = clip_bytes(sound=tone(), sr=16000)
    wave = decode_video_audio(with_sound, sr=16000)
    assert wave.dtype == np.float32 and abs(wave.size - 32000) < 2048 and 0.4 < np.abs(wave).max() < 0.6
    assert decode_video_audio(with_sound, sr=8000, max_duration=0.5).size == 4000
    assert decode_video_audio(clip_bytes(), sr=16000) is None
    webm = clip_bytes(container="webm", codec="libvpx-vp9", sound=tone(), sr=16000)
    assert decode_video_audio(webm, sr=16000).size > 30000


# --------------------------------------------------------------------------- the encoder


def test_frames_block_and_audio_block(tiny_image_model):
    clips = [clip_bytes(sound=tone()), clip_bytes(), None]
    video = encoder(tiny_image_model, frames=4).fit(clips)
    Z = video.transform(clips)
    names = video.get_feature_names_out()
    image_dim = ImageEncoder(tiny_image_model).fit(["x"])._load_bundle().dim
    n_audio = AudioMFCC().fit([(np.zeros(160), 16000)]).n_features_out_
    assert Z.shape == (3, image_dim + n_audio) == (3, video.n_features_out_) and Z.dtype == np.float32
    assert names[0] == "frames_img0_mean" and names[image_dim] == "audio_mfcc0_mean"
    frames, sound = Z[:, :image_dim], Z[:, image_dim:]
    assert np.isfinite(frames[:2]).all() and np.isfinite(sound[0]).all()
    assert np.isnan(sound[1]).all()  # no sound track: an absent audio block, not an error
    assert np.isnan(Z[2]).all()  # a missing row


def test_audio_block_is_audio_mfcc_of_the_sound_track(tiny_image_model):
    data = clip_bytes(sound=tone(), sr=16000)
    mfcc = AudioMFCC(n_mfcc=13, spectral=True, verbose=0, cache=None)
    video = encoder(tiny_image_model, audio=mfcc, part="audio").fit([data])
    expected = mfcc.fit_transform([(decode_video_audio(data, sr=16000, max_duration=30.0), 16000)])
    np.testing.assert_allclose(video.transform([data]), expected, rtol=1e-5, atol=1e-5)
    assert video.get_feature_names_out()[[0, 26]].tolist() == ["audio_mfcc0_mean", "audio_centroid_mean"]


def test_frames_block_is_the_image_backbone_pooled_over_time(tiny_image_model):
    data = clip_bytes()
    pictures = list(decode_video_frames(data, frames=3, size=384))
    per_frame = ImageEncoder(tiny_image_model, verbose=0, cache=None).fit_transform(pictures)
    for pooling, expected in [
        ("mean", per_frame.mean(0)),
        ("meanmax", np.concatenate([per_frame.mean(0), per_frame.max(0)])),
        ("meanstd", np.concatenate([per_frame.mean(0), per_frame.std(0)])),
    ]:
        video = encoder(tiny_image_model, frames=3, part="frames", pooling=pooling).fit([data])
        np.testing.assert_allclose(video.transform([data])[0], expected, rtol=1e-4, atol=1e-5)
    assert video.get_feature_names_out()[-1] == f"frames_img{len(per_frame[0]) - 1}_std"


def test_keyframe_seeking_embeds_the_keyframes(tiny_image_model):
    data = clip_bytes(keyframe_interval=10)
    pictures = list(decode_video_frames(data, frames=4, size=384, seek="keyframe"))
    expected = ImageEncoder(tiny_image_model, verbose=0, cache=None).fit_transform(pictures).mean(0)
    video = encoder(tiny_image_model, frames=4, part="frames", seek="keyframe").fit([data])
    np.testing.assert_allclose(video.transform([data])[0], expected, rtol=1e-4, atol=1e-5)
    exact = encoder(tiny_image_model, frames=4, part="frames").fit([data]).transform([data])[0]
    assert not np.allclose(exact, expected)  # other frames: another cache key, another vector
    with pytest.raises(ValueError, match="'seek' parameter of VideoEncoder must be"):
        encoder(tiny_image_model, seek="nearest").fit([data])


def test_on_cpu_frames_go_through_the_model_in_small_batches_with_a_thread_budget(
    tiny_image_model, monkeypatch
):
    import torch

    video = encoder(tiny_image_model, frames=3, part="frames", device="cpu", batch_size=2, n_threads=1)
    image = video._load_bundle().image
    calls, real = [], image.encode
    monkeypatch.setattr(image, "encode", lambda items: calls.append((len(items), torch.get_num_threads()))
                        or real(items))
    monkeypatch.setattr(_video, "FRAME_BATCH", {"cuda": 64, "cpu": 2})
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        Z = video.fit_transform([clip_bytes(), clip_bytes(red_ramp()[::-1].copy())])
        assert torch.get_num_threads() == 2  # restored after the forward passes
    finally:
        torch.set_num_threads(before)
    assert np.isfinite(Z).all() and calls == [(2, 1), (2, 1), (2, 1)]  # 6 frames, 2 at a time, 1 thread


def test_clips_embedded_by_parallel_workers_equal_one_batch_at_a_time(tiny_image_model):
    clips = [clip_bytes(), clip_bytes(red_ramp()[::-1].copy()), clip_bytes(red_ramp(6))]
    serial = encoder(tiny_image_model, frames=3, part="frames", device="cpu", batch_size=1, n_threads=None)
    parallel = encoder(tiny_image_model, frames=3, part="frames", device="cpu", batch_size=1, n_threads=2)
    np.testing.assert_allclose(parallel.fit_transform(clips), serial.fit_transform(clips), rtol=1e-5, atol=1e-6)


def test_the_image_backbone_is_shared_with_image_encoder(tiny_image_model):
    video_bundle = encoder(tiny_image_model, device="cpu")._load_bundle()
    assert video_bundle.image is ImageEncoder(tiny_image_model, device="cpu")._load_bundle()


def test_frames_as_an_array(tiny_image_model):
    greener = red_ramp(6)
    greener[..., 1] = 220
    clips = pd.Series([red_ramp(6), greener, None])
    Z = encoder(tiny_image_model, frames=2).fit_transform(clips)
    assert np.isfinite(Z[:2, :32]).all() and not np.allclose(Z[0], Z[1], equal_nan=True)
    assert np.isnan(Z[:2, 32:]).all()  # arrays have no sound


def test_part_audio_of_a_silent_clip_is_an_absent_row(tiny_image_model):
    Z = encoder(tiny_image_model, part="audio").fit_transform([clip_bytes(), clip_bytes(sound=tone())])
    assert np.isnan(Z[0]).all() and np.isfinite(Z[1]).all()


def test_audio_false_and_part(tiny_image_model):
    video = encoder(tiny_image_model, audio=False).fit([clip_bytes()])
    assert all(name.startswith("frames_") for name in video.get_feature_names_out())
    with pytest.raises(ValueError, match="part='audio' outputs the sound track.*audio=False"):
        encoder(tiny_image_model, audio=False, part="audio").fit([clip_bytes()])


def test_unreadable_clips_raise_or_become_missing(tiny_image_model, tmp_path):
    good = clip_bytes()
    (tmp_path / "truncated.mp4").write_bytes(good[: len(good) // 2])
    (tmp_path / "notes.mp4").write_text("not a video")
    clips = pd.Series([good, str(tmp_path / "truncated.mp4"), str(tmp_path / "notes.mp4"),
                       str(tmp_path / "absent.mp4")], index=list("abcd"))
    with pytest.raises(InputError, match=r"row 1 \(index 'b'\).*truncated.mp4.*not a readable video"):
        encoder(tiny_image_model).fit(clips).transform(clips[:2])
    with pytest.raises(InputError, match=r"row 3 \(index 'd'\).*absent.mp4.*file not found"):
        encoder(tiny_image_model).fit(clips).transform(clips)
    with pytest.warns(InputWarning, match="3 of 4 rows could not be encoded"):
        Z = encoder(tiny_image_model, on_error="missing").fit(clips).transform(clips)
    assert np.isfinite(Z[0, :32]).all() and np.isnan(Z[1:]).all()


def test_a_second_transform_decodes_nothing(tiny_image_model, monkeypatch):
    calls = []
    real = _video.decode_video_frames
    monkeypatch.setattr(_video, "decode_video_frames", lambda *a, **k: calls.append(1) or real(*a, **k))
    clips = [clip_bytes(), clip_bytes(red_ramp()[::-1].copy()), clip_bytes()]
    video = VideoEncoder(image_model=tiny_image_model, frames=2, verbose=0).fit(clips)
    first = video.transform(clips)
    assert len(calls) == 2  # two distinct clips
    again = clone(video).fit(clips).transform(clips)  # a clone shares the cache
    assert len(calls) == 2
    np.testing.assert_array_equal(first, again)
    video.set_params(frames=3).transform(clips)  # another sampling: another key
    assert len(calls) == 4


def test_estimator_contract(tiny_image_model):
    video = VideoEncoder(frames=3, pooling="meanmax", audio=AudioMFCC(n_mfcc=8), verbose=0)
    assert clone(video).get_params()["audio__n_mfcc"] == 8
    video.set_params(image_model=tiny_image_model)
    column = pd.DataFrame({"clip": [clip_bytes(), clip_bytes(sound=tone())]})
    fitted = video.fit(column)
    assert fitted is video and fitted.feature_names_in_.tolist() == ["clip"]
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(column), fitted.transform(column))
    assert len(restored.get_feature_names_out()) == restored.n_features_out_


def test_two_modalities_from_one_column_through_cross_val_score(tiny_image_model, tmp_path):
    X, y = make_multimodal_classification(
        24, n_classes=2, video=True, noise=0.0, random_state=0, directory=tmp_path
    )
    fusion = MultimodalFusion([
        ("clip_frames", encoder(tiny_image_model, part="frames", frames=4), "video"),
        ("clip_audio", encoder(tiny_image_model, part="audio"), "video"),
        ("number", StandardScaler(), ["number"]),
    ])
    features = fusion.fit_transform(X)
    modalities = {name.split("__")[0] for name in features.columns}
    assert modalities == {"clip_frames", "clip_audio", "number"}
    silent = features.filter(like="clip_audio__").isna().all(axis=1)
    assert 0 < silent.sum() < len(X)  # some clips have no sound track: absent modality
    pipe = Pipeline([("fusion", fusion), ("clf", MultimodalClassifier(max_epochs=3, random_state=0))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scores = cross_val_score(pipe, X, y, cv=2)
    assert scores.shape == (2,) and np.isfinite(scores).all()


# --------------------------------------------------------------------------- hostile clips (security)


@pytest.mark.parametrize("script", [
    b"ffconcat version 1.0\nfile '{name}'\n",
    b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{name}\n#EXT-X-ENDLIST\n",
    b"file '{name}'\n",
], ids=["concat", "hls", "bare-concat"])
def test_bytes_that_name_other_files_never_open_them(script, tmp_path, monkeypatch):
    """The trust review's attack: an FFmpeg concat script (or a playlist) in a video column."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.mp4").write_bytes(clip_bytes())
    errors = []
    for name in (b"secret.mp4", b"missing.mp4"):
        data = script.replace(b"{name}", name)
        with pytest.raises(ValueError) as caught:
            decode_video_frames(data, frames=2)
        errors.append(str(caught.value))
        with pytest.raises(ValueError, match="not a readable video"):
            check_video_header(data)
    # refused by what the bytes are, before anything is opened: nothing tells whether a file exists
    for error in errors:
        assert error.startswith("not a readable video file: bytes starting with") and "No such file" not in error
        assert error.endswith("MPEG-TS or a raw H.264 stream")


def test_a_clip_with_too_few_keyframes_is_refused_within_its_decoding_budget(monkeypatch):
    from skmm.io import _video as video_io  # the module that reads the limits (skmm.io holds copies)

    bomb = clip_bytes(red_ramp(200), keyframe_interval=1000)  # one keyframe, 200 frames
    monkeypatch.setattr(video_io, "MAX_DECODED_PACKETS", 60)
    with pytest.raises(ValueError, match=r"more than 60 packets .*too few keyframes.*seek='keyframe'"):
        decode_video_frames(bomb, frames=4)
    assert decode_video_frames(bomb, frames=4, seek="keyframe").shape[0] == 4  # one keyframe: cheap
    monkeypatch.setattr(video_io, "MAX_DECODED_PACKETS", 10_000)
    monkeypatch.setattr(video_io, "MAX_DECODED_PIXELS", 64 * 48 * 60)  # the same budget in pixels
    with pytest.raises(ValueError, match="pixels"):
        decode_video_frames(bomb, frames=4)


def test_a_header_claiming_an_absurd_frame_rate_is_refused_before_decoding():
    with pytest.raises(ValueError, match=r"claims 2000 frames per second \(limit 1,000"):
        check_video_header(clip_bytes(red_ramp(10), fps=2000))


def test_decoding_stops_at_the_deadline_and_is_not_a_bad_row(tiny_image_model):
    import time

    from skmm.io import DecodingTimeout, decoding_deadline

    with decoding_deadline(time.monotonic() - 1):
        with pytest.raises(DecodingTimeout):
            decode_video_frames(clip_bytes(), frames=2)
        # the encoders' worker threads see the caller's deadline, and on_error="missing" does not
        # turn a stopped decode into a missing row
        clips = [clip_bytes(), clip_bytes(red_ramp(20))]
        with pytest.raises(DecodingTimeout):
            encoder(tiny_image_model, frames=2, n_threads=2, on_error="missing").fit_transform(clips)
    assert decode_video_frames(clip_bytes(), frames=2).shape[0] == 2  # no deadline outside the block
