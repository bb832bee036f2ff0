"""Timing helpers shared by the encoder benchmarks: busy background processes, interleaved rounds.

Each condition (the machine as it is, then with ``n`` busy processes spinning on the CPU,
started and stopped here, each bounded in time) runs every contender in turn, ``rounds``
times; the ratio of the medians to the baseline is what to read on a shared machine.
"""

import contextlib
import os
import statistics
import subprocess
import sys
import time

#: a busy process stops by itself after this long, even if the benchmark is killed
MAX_BUSY_SECONDS = 900


@contextlib.contextmanager
def busy_processes(n, seconds=MAX_BUSY_SECONDS):
    """``n`` background processes that keep a CPU core busy for the block (at most ``seconds``)."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]
    try:
        time.sleep(0.2 if n else 0)  # let them start spinning
        yield
    finally:
        for process in spinners:
            process.kill()
            process.wait()


def load():
    """The 1-minute load average, as a string (``"?"`` where the platform has none)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:  # pragma: no cover
        return "?"


def compare(runs, *, baseline, rounds, busy, describe=None, references=()):
    """Time every ``runs[name]()`` in turn, ``rounds`` times, with each count of ``busy`` processes added.

    Prints, per condition, the median seconds and the ratio of every contender to
    ``baseline`` (and to each of ``references``; above 1: faster), with the
    per-round ratios and the load average before and after. Returns
    ``{condition: {name: median seconds}}``.
    """
    results = {}
    columns = [baseline, *references]
    for n_busy in busy:
        condition = f"{n_busy} busy process{'' if n_busy == 1 else 'es'} added"
        times = {name: [] for name in runs}
        before = load()
        with busy_processes(n_busy):
            for _ in range(rounds):
                for name, run in runs.items():
                    start = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - start)
        medians = {name: statistics.median(values) for name, values in times.items()}
        print(f"\n{condition} (load average {before} before, {load()} after), "
              f"{rounds} interleaved rounds, medians{describe or ''}")
        print(f"{'':<34}{'seconds':>9}" + "".join(f"   vs {name}" for name in columns))
        for name, seconds in medians.items():
            ratios = "".join(f"   {medians[ref] / seconds:>{len(ref) + 2}.2f}x" for ref in columns)
            print(f"{name:<34}{seconds:>9.2f}{ratios}")
        for name in runs:
            if name not in columns:
                for ref in columns:
                    per_round = [b / t for b, t in zip(times[ref], times[name])]
                    print(f"  per-round ratios, {name} vs {ref}: {', '.join(f'{r:.2f}' for r in per_round)}")
        sys.stdout.flush()
        results[condition] = medians
    return results
