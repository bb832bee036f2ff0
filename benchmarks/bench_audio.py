"""Throughput of AudioMFCC(backend="torch") against a plain librosa per-clip loop, quiet and busy.

Both run in this process on the same in-memory 1-second 16 kHz clips (a tone in
noise), AudioMFCC without the cache, interleaved for ``--rounds`` rounds. The
loop runs twice: as written (numpy's BLAS on its own threads, which wait on each
other on a busy CPU, as torch's do) and with the BLAS held to one thread, the
fair single-threaded baseline; ratios to both are printed. First
on the machine as it is, then with ``--busy`` background processes spinning on
the CPU (started and stopped here, at most 15 minutes). The ratio of the
medians is what to compare (absolute rates on a shared machine are noisy).
``--breakdown`` first shows where AudioMFCC's time goes (reading and hashing
the rows, decoding, and the torch operators, on one thread)::

    python benchmarks/bench_audio.py [--clips 1000] [--rounds 3] [--busy 1] [--breakdown]

About a minute on two idle cores.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _busy import compare, load  # noqa: E402


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
    """What one writes by hand: librosa's MFCC of each clip, then its mean and std over time."""
    import librosa

    rows = []
    for wave, sr in clips:
        mfcc = librosa.feature.mfcc(
            y=wave, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels
        )
        rows.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
    return np.stack(rows).astype(np.float32)


def single_threaded(function, *args):
    """``function(*args)`` with numpy's BLAS on one thread (librosa's mel product is a BLAS call)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return function(*args)


def encoder(batch_size, n_threads):
    from skmm import AudioMFCC

    return AudioMFCC(batch_size=batch_size, n_threads=n_threads, cache=None, verbose=0)


def breakdown(clips, batch_size):
    """Print where AudioMFCC's time goes on one thread: Python-side steps, then torch operators."""
    from torch.profiler import ProfilerActivity, profile

    from skmm._threads import torch_threads
    from skmm.encoders._encoding import ColumnEncoding

    mfcc = encoder(batch_size, 1).fit(clips[:1])
    mfcc.transform(clips[:batch_size])
    bundle = mfcc._load_bundle()
    start = time.perf_counter()
    encoding = ColumnEncoding(mfcc, clips, None, bundle)
    encoding.read_rows()
    read = time.perf_counter() - start
    start = time.perf_counter()
    waves = [mfcc._decode(raw, bundle) for raw in encoding.raw_of_key.values()]
    decode = time.perf_counter() - start
    with profile(activities=[ProfilerActivity.CPU]) as prof, torch_threads(1):
        start = time.perf_counter()
        for first in range(0, len(waves), batch_size):
            mfcc._encode_batch(waves[first : first + batch_size], bundle)
        features = time.perf_counter() - start
    print(f"\nwhere AudioMFCC's time goes ({len(clips)} clips, one torch thread, load {load()}, "
          f"under the profiler):")
    print(f"  read rows and hash their content (cache keys): {read * 1e3:7.1f} ms")
    print(f"  decode (mono, float32, sample rate check)    : {decode * 1e3:7.1f} ms")
    print(f"  features, batches of {batch_size} (torch)           : {features * 1e3:7.1f} ms")
    print("  torch operators by self CPU time:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--rounds", "--repeat", type=int, default=3, help="interleaved rounds per condition")
    parser.add_argument("--busy", type=int, default=1, help="busy background processes (0: quiet only)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-threads", type=int, default=-1, help="AudioMFCC's n_threads")
    parser.add_argument("--breakdown", action="store_true", help="show where the time goes first")
    args = parser.parse_args()

    import torch

    clips = make_clips(args.clips)
    if args.breakdown:
        breakdown(clips, args.batch_size)
    mfcc = encoder(args.batch_size, args.n_threads).fit(clips[:1])
    mfcc.transform(clips[:64])  # warm up: imports, filterbank, torch kernels
    reference = librosa_loop(clips[:50])
    ours = mfcc.transform(clips[:50])
    # AudioMFCC interleaves [mfcc0_mean, mfcc0_std, ...]; the loop puts all means first
    ours = np.concatenate([ours[:, 0::2], ours[:, 1::2]], axis=1)
    print(f"{args.clips} clips of 1 s at 16 kHz in memory; AudioMFCC(n_threads={args.n_threads}, "
          f"batch_size={args.batch_size}, cache=None); torch's own thread count "
          f"{torch.get_num_threads()}; max |difference| to librosa {np.abs(ours - reference).max():.1e}")
    compare(
        {
            "librosa per-clip loop": lambda: librosa_loop(clips),
            "librosa loop, 1 BLAS thread": lambda: single_threaded(librosa_loop, clips),
            "AudioMFCC": lambda: mfcc.transform(clips),
        },
        baseline="librosa per-clip loop", references=["librosa loop, 1 BLAS thread"],
        rounds=args.rounds, busy=sorted({0, args.busy}),
    )


if __name__ == "__main__":
    main()
