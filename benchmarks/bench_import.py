"""What ``import skmm`` and ``skmm --help`` cost, against importing scikit-learn's compose and pandas.

skmm needs ``sklearn.compose`` and ``pandas`` anyway, so they are the floor. torch, transformers and
librosa must load only when a model is first used. Each command runs in a fresh interpreter with
``python -X importtime``; the figure is the sum of the top-level imports' cumulative times, so the
interpreter's own start-up is left out of every side. The commands are interleaved, ``--rounds``
times, and medians are compared.

Run: ``python benchmarks/bench_import.py [--rounds 7]``
"""

import argparse
import statistics
import subprocess
import sys

COMMANDS = {
    "import sklearn.compose, pandas": ["-c", "import sklearn.compose, pandas"],
    "import skmm": ["-c", "import skmm"],
    "from skmm import * (every name)": ["-c", "from skmm import *"],
    "skmm --help": [
        "-c",
        "import contextlib, io, sys\n"
        "from skmm.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])",
    ],
}
HEAVY = ("torch", "transformers", "librosa")


def import_seconds(args):
    """Seconds spent importing top-level modules in a fresh interpreter, and the heavy ones it loaded."""
    probe = "\nimport sys\nprint(' '.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    args = [*args[:-1], args[-1] + probe]
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr[-2000:])
    total, heavy = 0, completed.stdout.split()
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit() and not name.startswith(" " * 2):  # top level only
            total += int(cumulative)
    return total / 1e6, heavy


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    times = {name: [] for name in COMMANDS}
    loaded = {}
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            seconds, heavy = import_seconds(command)
            times[name].append(seconds)
            loaded[name] = heavy
    floor = statistics.median(times["import sklearn.compose, pandas"])
    print(f"{'command':<32} {'median s':>9} {'ratio':>6}  heavy modules loaded")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<32} {median:>9.3f} {median / floor:>6.2f}  {', '.join(loaded[name]) or '-'}")


if __name__ == "__main__":
    main()
