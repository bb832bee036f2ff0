"""Throughput of AudioMFCC(backend="torch") against a plain librosa per-clip loop.

Both run in this process on the same in-memory 1-second 16 kHz clips, without
the cache, and the ratio of their rates is printed (absolute rates on a shared
machine are noisy; the ratio measured in one run is what to compare)::

    python benchmarks/bench_audio.py --clips 2000 --repeat 3
"""

import argparse
import time

import numpy as np


def make_clips(n_clips, sr=16000, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    clips = []
    for _ in range(n_clips):
        tone = np.sin(2 * np.pi * rng.uniform(100, 2000) * t)
        wave = (0.3 * tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        clips.append((wave, sr))
    return clips


def librosa_loop(clips, n_mfcc=20, n_fft=512, hop_length=160, n_mels=40):
    import librosa

    rows = []
    for wave, sr in clips:
        mfcc = librosa.feature.mfcc(
            y=wave, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels
        )
        rows.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
    return np.stack(rows).astype(np.float32)


def skmm_torch(clips, batch_size):
    from skmm import AudioMFCC

    return AudioMFCC(batch_size=batch_size, cache=None, verbose=0).fit(clips[:1]).transform(clips)


def best_time(function, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    clips = make_clips(args.clips)
    skmm_torch(clips[:64], args.batch_size)  # warm up: imports, filterbank, torch kernels
    librosa_loop(clips[:64])

    reference = librosa_loop(clips[:50])
    ours = skmm_torch(clips[:50], args.batch_size)
    # AudioMFCC interleaves [mfcc0_mean, mfcc0_std, ...]; the loop puts all means first
    ours = np.concatenate([ours[:, 0::2], ours[:, 1::2]], axis=1)
    error = float(np.abs(ours - reference).max())

    t_librosa = best_time(lambda: librosa_loop(clips), args.repeat)
    t_torch = best_time(lambda: skmm_torch(clips, args.batch_size), args.repeat)
    n = len(clips)
    print(f"{n} clips of 1 s at 16 kHz, torch threads={torch.get_num_threads()}, best of {args.repeat}")
    print(f"librosa per-clip loop     : {n / t_librosa:8.0f} clips/s")
    print(f"AudioMFCC(backend='torch'): {n / t_torch:8.0f} clips/s  (batch_size={args.batch_size})")
    print(f"speed-up                  : {t_librosa / t_torch:8.1f}x")
    print(f"max |difference|          : {error:.1e}")


if __name__ == "__main__":
    main()
