"""VideoEncoder against a plain loop that decodes every frame with PyAV and embeds the sampled ones.

Both take 8 frames per clip, uniformly over the clip, through the same loaded
EfficientNet-Lite0 (ImageEncoder's bundle: same preprocessing, same forward
pass), and mean-pool them; sound is left out of both (``part="frames"``).

- **plain loop**: for one clip at a time, decode every frame with PyAV, take
  the 8 frames at the uniform positions, convert and crop them, embed the 8
  in one forward pass.
- **VideoEncoder** (``cache=None``): seeks to each sampled timestamp (decoding
  from the keyframe before it, skipping non-reference frames), converts
  frames at reduced size, decodes clips in worker threads while the model
  embeds the frames of several clips in one batch.

The clips are 10 s of 640x360 H.264 at 25 fps (moving shapes over a
gradient, light grain), written with PyAV, with a keyframe every
``--keyframe-interval`` frames (25: one per second, as phones and streaming
encoders do; 250: libx264's default, one per clip, the worst case for
seeking). Both run in this process, interleaved, several rounds; medians
are reported, and the ratio of clips per second.

Run: ``python benchmarks/bench_video.py [--clips 16] [--rounds 3] [--keyframe-interval 25 250]``
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

FRAMES = 8
WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 25, 10


def write_clips(folder, n, keyframe_interval, seed=0):
    """``n`` 10-second clips of moving shapes over a gradient; their paths."""
    from skmm.datasets import _write_clip

    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, WIDTH)[None, :, None]
    y = np.linspace(0, 1, HEIGHT)[:, None, None]
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    paths = []
    for i in range(n):
        colours = rng.uniform(0, 255, (3, 3))
        background = colours[0] * x + colours[1] * y + colours[2] * (1 - x) * (1 - y)
        shapes = [(rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(-6, 6), rng.uniform(-4, 4),
                   rng.uniform(20, 60), rng.uniform(0, 255, 3)) for _ in range(4)]
        frames = np.empty((FPS * SECONDS, HEIGHT, WIDTH, 3), dtype=np.uint8)
        for t, frame in enumerate(frames):
            picture = background.copy()
            for cx, cy, vx, vy, radius, colour in shapes:
                inside = (cols - (cx + vx * t) % WIDTH) ** 2 + (rows - (cy + vy * t) % HEIGHT) ** 2 < radius**2
                picture[inside] = colour
            picture += rng.normal(0, 3, (HEIGHT, WIDTH, 1))
            frame[:] = np.clip(picture, 0, 255)
        path = Path(folder) / f"clip_{keyframe_interval}_{i:03d}.mp4"
        _write_clip(path, frames, FPS, keyframe_interval=keyframe_interval)
        paths.append(str(path))
    return paths


def plain_loop(paths, bundle):
    """Decode every frame of each clip, embed the 8 sampled ones, one clip at a time."""
    import av

    out = []
    for path in paths:
        with av.open(path) as container:
            frames = list(container.decode(video=0))
        index = ((np.arange(FRAMES) + 0.5) * len(frames) / FRAMES).astype(int)
        items = [bundle.preprocess(frames[i].to_image(), bundle.image_size) for i in index]
        out.append(bundle.encode(items).mean(0))
    return np.stack(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16, help="clips per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keyframe-interval", type=int, nargs="+", default=[25, 250])
    args = parser.parse_args()

    from skmm import ImageEncoder, VideoEncoder

    bundle = ImageEncoder(device="cpu")._load_bundle()
    with tempfile.TemporaryDirectory() as folder:
        for interval in args.keyframe_interval:
            started = time.perf_counter()
            paths = write_clips(folder, args.clips, interval)
            size = sum(Path(p).stat().st_size for p in paths) / len(paths) / 1e6
            print(f"\nkeyframe every {interval} frames: {args.clips} clips of {SECONDS} s, "
                  f"{WIDTH}x{HEIGHT} @ {FPS} fps, {size:.1f} MB each "
                  f"(written in {time.perf_counter() - started:.0f} s)")
            encoder = VideoEncoder(frames=FRAMES, part="frames", cache=None, device="cpu", verbose=0)
            encoder.fit(paths[:1])
            encoder.transform(paths[:1])
            plain_loop(paths[:1], bundle)  # warm up both
            times = {"plain loop": [], "VideoEncoder": []}
            for _ in range(args.rounds):
                started = time.perf_counter()
                reference = plain_loop(paths, bundle)
                times["plain loop"].append(time.perf_counter() - started)
                started = time.perf_counter()
                ours = encoder.transform(paths)
                times["VideoEncoder"].append(time.perf_counter() - started)
            rate = {name: args.clips / statistics.median(values) for name, values in times.items()}
            for name, value in rate.items():
                print(f"  {name:13s} {value:6.2f} clips/s")
            print(f"  speed-up      {rate['VideoEncoder'] / rate['plain loop']:6.2f}x")
            gap = np.abs(ours - reference).max() / np.abs(reference).max()
            print(f"  largest difference of the embeddings, relative to their range: {gap:.3f}")


if __name__ == "__main__":
    main()
