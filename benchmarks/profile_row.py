"""Where one fresh row's ``pipeline.predict_proba`` spends its time, in-process.

Loads (or fits, as ``bench_serve.py`` does) the default image + text + audio + numeric +
categorical model and predicts single fresh rows (no cache hit) in a worker thread under the
server's torch thread budget, timing each section with ``time.perf_counter``: every modality's
transformer alone, the rest of ``MultimodalFusion.transform`` (ColumnTransformer, fused frame),
the classifier's input preparation (``_prepare``: checks, scaling, clipping) and its network;
and the whole prediction with the modalities encoded one after the other and side by side
(``MultimodalFusion(n_jobs=threads)``, as ``skmm serve`` runs them), interleaved.
Medians over ``--rows`` rows after two warm-up rows. ``--cprofile`` also prints the functions
with the largest cumulative time over the same rows. A run takes well under a minute::

    python benchmarks/profile_row.py                       # fits a model first (about 30 s)
    python benchmarks/profile_row.py --model model.skmm --rows 20 --cprofile
"""

import argparse
import cProfile
import os
import pstats
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def sections(pipe, frame):
    """Seconds of each section of one ``predict_proba`` on ``frame``."""
    fusion, clf = pipe.named_steps["fusion"], pipe.named_steps["clf"]
    times = {}
    for name, step, columns in fusion.transformers_:
        if isinstance(step, str):
            continue
        t0 = time.perf_counter()
        step.transform(frame[columns])
        times[name] = time.perf_counter() - t0
    # the encoders' in-memory cache now answers for this row: what is left is the fusion's own time
    t0 = time.perf_counter()
    fused = fusion.transform(frame)
    times["fusion total (encoders cached)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    clf._prepare(fused)
    times["classifier _prepare"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    clf.predict_proba(fused)
    times["classifier predict_proba"] = time.perf_counter() - t0
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("::")[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", help="profile this model file instead of fitting one")
    parser.add_argument("--rows", type=int, default=12, help="fresh rows timed")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: the server's, every available CPU)")
    parser.add_argument("--cprofile", action="store_true", help="also print cProfile's top functions")
    args = parser.parse_args(argv)
    os.environ["SKMM_CACHE_DIR"] = ""  # memory-only cache: every row is encoded

    import skmm
    from skmm._threads import available_cpus, torch_threads
    from skmm.encoders import BaseEncoder

    from bench_serve import fit_model, make_rows

    if args.model:
        pipe = skmm.load(args.model)
    else:
        import tempfile

        pipe = fit_model(os.path.join(tempfile.mkdtemp(prefix="skmm-profile-"), "model.skmm"), 40, True)
    for _, step, _ in pipe.named_steps["fusion"].transformers_:
        if isinstance(step, BaseEncoder):
            step.set_params(verbose=0)
    threads = args.threads or available_cpus()
    frame, _ = make_rows(2 * args.rows + 2, seed=time.time_ns() % 2**32)
    rows = [frame.iloc[[i]] for i in range(len(frame))]

    def run(work):
        with torch_threads(threads):
            return work()

    worker = ThreadPoolExecutor(1)  # as the server's inference worker
    fusion = pipe.named_steps["fusion"]

    def timed(row, n_jobs):
        fusion.set_params(n_jobs=n_jobs)
        t0 = time.perf_counter()
        worker.submit(run, lambda: pipe.predict_proba(row)).result()
        return time.perf_counter() - t0

    for row in rows[:2]:
        timed(row, None), timed(row, threads)
    whole = {None: [], threads: []}
    for i in range(args.rows):  # a fresh row for every prediction, the two ways in turn
        order = (None, threads) if i % 2 else (threads, None)
        whole[order[0]].append(timed(rows[2 + 2 * i], order[0]))
        whole[order[1]].append(timed(rows[3 + 2 * i], order[1]))
    fusion.set_params(n_jobs=None)
    parts = []
    fresh, _ = make_rows(args.rows, seed=(time.time_ns() + 1) % 2**32)
    for i in range(len(fresh)):
        parts.append(worker.submit(run, lambda: sections(pipe, fresh.iloc[[i]])).result())
    load = os.getloadavg()[0]
    print(f"{args.rows} fresh rows, {threads} torch thread(s), load average {load:.1f}")
    print(f"  {'predict_proba, modalities in turn':34s} {np.median(whole[None]) * 1e3:7.1f} ms")
    print(f"  {'predict_proba, side by side':34s} {np.median(whole[threads]) * 1e3:7.1f} ms")
    print("sections, modalities in turn:")
    for name in parts[0]:
        print(f"  {name:34s} {np.median([p[name] for p in parts]) * 1e3:7.1f} ms")

    if args.cprofile:
        fresh, _ = make_rows(args.rows, seed=(time.time_ns() + 2) % 2**32)
        profile = cProfile.Profile()

        def profiled():
            with torch_threads(threads):
                profile.enable()
                for i in range(len(fresh)):
                    pipe.predict_proba(fresh.iloc[[i]])
                profile.disable()

        worker.submit(profiled).result()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
