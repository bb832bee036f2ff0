"""VideoEncoder against a plain loop that decodes every frame with PyAV and embeds the sampled ones.

All take 8 frames per clip, uniformly over the clip, through the same loaded
EfficientNet-Lite0 (ImageEncoder's bundle: same preprocessing, same forward
pass, same torch threads), and mean-pool them; sound is left out of the timed
runs (``part="frames"``; the plain loop ignores it too).

- **plain loop**, as a user would write it: for one clip at a time, decode
  every frame with PyAV (its default settings), take the first frame at or
  after the centre of each of 8 equal segments of the clip (the frames
  VideoEncoder takes), convert them to RGB and crop them, embed the 8 in
  one forward pass.
- **plain, 1 thread**: the same loop with torch limited to one thread (on a
  loaded machine torch's default threads stall each other: this separates
  that effect from the rest).
- **VideoEncoder** (``cache=None``, the default ``seek="exact"``: the same
  frames): seeks to each sampled time (decoding from the keyframe before
  it, skipping B-frames), converts frames at reduced size in FFmpeg's
  scaler, decodes clips in worker threads while the model embeds the
  previous 4 clips (8 frames per forward pass on CPU, torch limited to the
  CPUs the decoding leaves).
- **VideoEncoder(seek="keyframe")**: the keyframe nearest each sampled time
  instead, only keyframes decoded (other frames: an approximation).
- **forward only**: the image model alone on the frames VideoEncoder embeds,
  decoded and prepared beforehand: the limit no video encoder can pass.
- **VideoEncoder, ONNX RT** and **forward only, ONNX RT**: the same two with
  the image model exported to ONNX and run by ONNX Runtime (``--no-onnx``:
  left out); each runtime's VideoEncoder is reported against its own limit.

The clips are 10 s at 25 fps, moving shapes over a gradient with light grain,
a sound track, H.264 (libx264's default preset) with a keyframe exactly every
``--keyframe-interval`` frames (25: one per second, as phones and streaming
encoders do; 250: one per clip, the worst case for seeking). ``--unique``
clips are encoded per setting; the others are copies remuxed with a distinct
title (distinct bytes, the same decoding work), which keeps writing 1080p
clips short. The methods run in this process, interleaved, for ``--rounds``
rounds; medians are reported, as clips per second (wall clock) and as CPU
time per clip (all threads of the process, torch's threads waiting for each
other included). The embeddings are compared with the plain loop's.

The breakdown first times each stage alone, one clip at a time, on one core
(torch and FFmpeg limited to one thread): where the time of each method goes.

Run: ``python benchmarks/bench_video.py`` (16 minutes on 2 cores at load
average 13, half of it writing and decoding 1080p clips), or
``--size 640x360`` (about 4 minutes there), or ``--size 640x360
--keyframe-interval 25 --rounds 2 --no-breakdown`` for a quick look.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

FRAMES = 8
FPS, SECONDS, SR = 25, 10, 16000


# --------------------------------------------------------------------------- clips


def write_clip(path, width, height, keyframe_interval, rng):
    """One 10-second clip of moving shapes over a gradient, with grain and a sound track."""
    import av

    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    colours = rng.uniform(0, 255, (3, 3)).astype(np.float32)
    background = colours[0] * x + colours[1] * y + colours[2] * (1 - x) * (1 - y)
    grain = [rng.normal(0, 3, (height, width, 1)).astype(np.float32) for _ in range(8)]
    scale = height / 360
    shapes = [(rng.uniform(0, width), rng.uniform(0, height), rng.uniform(-6, 6) * scale,
               rng.uniform(-4, 4) * scale, rng.uniform(20, 60) * scale, rng.uniform(0, 255, 3))
              for _ in range(4)]
    options = {"g": str(keyframe_interval), "x264-params": "scenecut=0"}  # keyframes every g frames
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        audio = output.add_stream("aac", rate=SR)
        for t in range(FPS * SECONDS):
            picture = background + grain[t % len(grain)]
            for cx, cy, vx, vy, radius, colour in shapes:
                px, py = (cx + vx * t) % width, (cy + vy * t) % height
                top, bottom = int(max(0, py - radius)), int(min(height, py + radius + 1))
                left, right = int(max(0, px - radius)), int(min(width, px + radius + 1))
                rows, cols = np.ogrid[top:bottom, left:right]
                picture[top:bottom, left:right][(cols - px) ** 2 + (rows - py) ** 2 < radius**2] = colour
            frame = av.VideoFrame.from_ndarray(np.clip(picture, 0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
        seconds = np.arange(SECONDS * SR) / SR
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * seconds)
        wave += 0.05 * rng.normal(size=seconds.size)
        chunk = av.AudioFrame.from_ndarray(wave.astype(np.float32)[None], format="fltp", layout="mono")
        chunk.sample_rate = SR
        for packet in [*audio.encode(chunk), *audio.encode()]:
            output.mux(packet)


def remux_copy(source, target, title):
    """``source``'s streams copied into ``target`` with another title: other bytes, the same frames."""
    import av

    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        out.metadata["title"] = title
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


def write_clips(folder, n, width, height, keyframe_interval, unique, seed=0):
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = Path(folder) / f"clip_{width}x{height}_{keyframe_interval}_{i:03d}.mp4"
        if i < unique:
            write_clip(path, width, height, keyframe_interval, rng)
        else:
            remux_copy(paths[i % unique], path, title=f"copy {i}")
        paths.append(str(path))
    return paths


# --------------------------------------------------------------------------- the methods


def plain_loop(paths, bundle):
    """Decode every frame of each clip, embed the 8 sampled ones, one clip at a time."""
    import av

    out = []
    for path in paths:
        with av.open(path) as container:
            stream = container.streams.video[0]
            frames = list(container.decode(stream))
            duration = float(stream.duration * stream.time_base)
        # the first frame at or after the centre of each of 8 equal segments of the clip
        times = np.array([frame.time for frame in frames])
        targets = times[0] + (np.arange(FRAMES) + 0.5) * duration / FRAMES
        index = np.minimum(np.searchsorted(times, targets - 5e-4), len(frames) - 1)
        items = [bundle.preprocess(frames[i].to_image(), bundle.image_size) for i in index]
        out.append(bundle.encode(items).mean(0))
    return np.stack(out)


def decoded_frames(encoder, paths):
    """Each clip's sampled frames, decoded and prepared as VideoEncoder does: the model's input."""
    from skmm.io import read_video_source

    bundle = encoder._load_bundle()
    return [encoder._decode(read_video_source(path)[1], bundle).frames for path in paths]


def forward_only(clips, bundle):
    """The image model alone on frames already decoded: what embedding them costs at the least."""
    return np.stack([bundle.encode(frames).mean(0) for frames in clips])


def image_bundle_on_onnx_runtime(bundle, folder):
    """ImageEncoder's bundle with its forward pass exported to ONNX and run by ONNX Runtime."""
    from types import SimpleNamespace

    from skmm.onnx._export import _export_module
    from skmm.onnx._runtime import _session

    path = Path(folder) / "image.onnx"
    size = bundle.image_size
    _export_module(bundle.graph, [("pixels", np.uint8, ("batch", size, size, 3))], ["features"], path, 17)
    session = _session(path, None, None)
    return SimpleNamespace(**{**vars(bundle), "graph": None,
                              "encode": lambda items: session.run(None, {"pixels": np.stack(items)})[0]})


def on_bundle(encoder, image_bundle):
    """A copy of a fitted VideoEncoder whose frames go through ``image_bundle`` (one batch at a time)."""
    import copy

    video = copy.deepcopy(encoder).set_params(n_threads=None)
    video._runtime_bundle = SimpleNamespace(**{**vars(encoder._load_bundle()), "image": image_bundle})
    return video


def one_thread(function, *args):
    """``function(*args)`` with torch limited to one thread."""
    from skmm._threads import torch_threads

    with torch_threads(1):
        return function(*args)


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


# --------------------------------------------------------------------------- breakdown


def breakdown(paths, bundle):
    """CPU milliseconds per clip of each stage, one thread, the median over ``paths``."""
    import av
    import torch
    from PIL import Image

    from skmm import AudioMFCC
    from skmm.io import decode_video_audio, decode_video_frames, read_video_source

    mfcc = AudioMFCC(verbose=0, cache=None).fit([(np.zeros(SR), SR)])
    tables = mfcc._load_bundle()

    def decode_all(path):
        with av.open(path) as container:
            return list(container.decode(video=0))

    def demux(path):
        with av.open(path) as container:
            return sum(1 for _ in container.demux(video=0))

    def opened(path):
        with av.open(path) as container:
            return container.streams.video[0].codec_context.width

    frames = decode_all(paths[0])
    scaled = decode_video_frames(paths[0], frames=FRAMES, size=224)
    sampled = frames[:: len(frames) // FRAMES][:FRAMES]
    items = [bundle.preprocess(frame.to_image(), bundle.image_size) for frame in sampled]
    stages = {
        "read + hash the file (cache key)": read_video_source,
        "open the container, read headers": opened,
        "demux every packet (no decoding)": demux,
        "plain: decode every frame": decode_all,
        "plain: 8 frames to RGB + crop": lambda p: [bundle.preprocess(f.to_image(), 224) for f in sampled],
        "exact: seek + decode 8 frames, RGB": lambda p: decode_video_frames(
            p, frames=FRAMES, size=224, threads=1),
        "keyframe: decode 8 keyframes, RGB": lambda p: decode_video_frames(
            p, frames=FRAMES, size=224, threads=1, seek="keyframe"),
        "exact: 8 frames to crops (PIL)": lambda p: [
            bundle.preprocess(Image.fromarray(f), 224) for f in scaled],
        "forward, 8 frames in one batch": lambda p: bundle.encode(items),
        "forward, 8 frames (a quarter of 32 at once)": lambda p: bundle.encode(items * 4),
        "sound: decode 10 s to 16 kHz mono": lambda p: decode_video_audio(p, sr=SR, max_duration=30.0),
        "sound: MFCC statistics": lambda p: mfcc._encode_batch([wave], tables),
    }
    wave = decode_video_audio(paths[0], sr=SR)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        costs = {}
        for name, stage in stages.items():
            stage(paths[0])  # warm up
            runs = []
            for path in paths:
                started = time.process_time()
                stage(path)
                runs.append(time.process_time() - started)
            scale = 4 if "of 32" in name else 1
            costs[name] = 1000 * statistics.median(runs) / scale
    finally:
        torch.set_num_threads(before)
    return costs


def show_breakdown(costs):
    for name, value in costs.items():
        print(f"    {name:44s} {value:8.1f} ms")
    forward = costs["forward, 8 frames in one batch"]
    plain = costs["open the container, read headers"] + costs["plain: decode every frame"] + \
        costs["plain: 8 frames to RGB + crop"] + forward
    exact = costs["read + hash the file (cache key)"] + costs["open the container, read headers"] + \
        costs["exact: seek + decode 8 frames, RGB"] + costs["exact: 8 frames to crops (PIL)"] + forward
    keyframe = exact - costs["exact: seek + decode 8 frames, RGB"] + \
        costs["keyframe: decode 8 keyframes, RGB"]
    print(f"    one core, per clip: plain loop {plain:.0f} ms, VideoEncoder {exact:.0f} ms "
          f"({plain / exact:.2f}x), seek='keyframe' {keyframe:.0f} ms ({plain / keyframe:.2f}x); "
          f"the forward pass alone is {forward / plain:.0%} of the plain loop")


# --------------------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=6, help="clips per run (default 6)")
    parser.add_argument("--unique", type=int, default=2,
                        help="clips encoded per setting, the others remuxed copies (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--keyframe-interval", type=int, nargs="+", default=[25, 250],
                        help="frames between keyframes (default 25 250)")
    parser.add_argument("--size", nargs="+", default=["640x360", "1920x1080"],
                        help="frame sizes WIDTHxHEIGHT (default 640x360 1920x1080)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the per-stage timings")
    parser.add_argument("--no-onnx", action="store_true", help="leave ONNX Runtime out")
    args = parser.parse_args()

    import os

    from sklearn.base import clone

    from skmm import ImageEncoder, VideoEncoder

    bundle = ImageEncoder(device="cpu")._load_bundle()
    onnx_bundle = None if args.no_onnx else image_bundle_on_onnx_runtime(bundle, tempfile.mkdtemp())
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.size:
            width, height = map(int, size.split("x"))
            for interval in args.keyframe_interval:
                started = time.perf_counter()
                paths = write_clips(folder, args.clips, width, height, interval, args.unique)
                megabytes = sum(Path(p).stat().st_size for p in paths) / len(paths) / 1e6
                print(f"\n{width}x{height}, keyframe every {interval} frames: {args.clips} clips of "
                      f"{SECONDS} s @ {FPS} fps, {megabytes:.1f} MB each "
                      f"(written in {time.perf_counter() - started:.0f} s)")
                if not args.no_breakdown:
                    show_breakdown(breakdown(paths[: args.unique], bundle))
                encoder = VideoEncoder(frames=FRAMES, part="frames", cache=None, device="cpu", verbose=0)
                fitted = clone(encoder).fit(paths[:1])
                frames = decoded_frames(fitted, paths)  # the frames VideoEncoder embeds, ready for the model
                methods = {  # each takes a list of paths
                    "plain loop": lambda clips: plain_loop(clips, bundle),
                    "plain, 1 thread": lambda clips: one_thread(plain_loop, clips, bundle),
                    "VideoEncoder": fitted.transform,
                    "seek='keyframe'": clone(encoder).set_params(seek="keyframe").fit(paths[:1]).transform,
                    "forward only": lambda clips: forward_only(frames, bundle),
                }
                if onnx_bundle is not None:
                    methods["VideoEncoder, ONNX RT"] = on_bundle(fitted, onnx_bundle).transform
                    methods["forward only, ONNX RT"] = lambda clips: forward_only(frames, onnx_bundle)
                for method in methods.values():  # warm up
                    method(paths[:1])
                walls, cpus, outputs = {name: [] for name in methods}, {name: [] for name in methods}, {}
                for _ in range(args.rounds):
                    for name, method in methods.items():
                        outputs[name], wall, cpu = timed(lambda m=method: m(paths))
                        walls[name].append(wall)
                        cpus[name].append(cpu)
                print(f"    load average {os.getloadavg()[0]:.1f}")
                base_rate = args.clips / statistics.median(walls["plain loop"])
                base_cpu = statistics.median(cpus["plain loop"])
                reference = outputs["plain loop"]
                for name in methods:
                    rate = args.clips / statistics.median(walls[name])
                    cpu = statistics.median(cpus[name])
                    gap = np.abs(outputs[name] - reference).max() / np.abs(reference).max()
                    print(f"  {name:22s} {rate:6.2f} clips/s ({rate / base_rate:4.2f}x)   "
                          f"CPU {1000 * cpu / args.clips:6.0f} ms/clip ({base_cpu / cpu:4.2f}x less)   "
                          f"embeddings differ by {gap:.3f}")
                for runtime, suffix in (("torch", ""), ("ONNX Runtime", ", ONNX RT")):
                    if f"forward only{suffix}" in walls:
                        limit = statistics.median(walls[f"forward only{suffix}"])
                        print(f"  {runtime}: VideoEncoder at {limit / statistics.median(walls['VideoEncoder' + suffix]):.2f}x "
                              "the forward pass alone on the same decoded frames (its limit)")


if __name__ == "__main__":
    main()
