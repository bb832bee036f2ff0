"""Run every script in examples/ as a user would, and check what it prints."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))

#: lines each script must print (regular expressions searched in its stdout)
EXPECTED = {
    "quickstart.py": [
        r"labels: \{'bird': 50, 'cat': 50, 'dog': 50\}",
        r"hold-out accuracy: 0\.\d{3}",
        r"predictions: \[('(cat|dog|bird)'(, )?){3}\]",
        r"cross-validated accuracy: 0\.\d{3} ± 0\.\d{3}",
        r"clf__fusion\s+fusion__audio__n_mfcc\s+mean accuracy\s+std",
        r"best: \{.*'clf__fusion': '(concat|gated)'.*\}\s+accuracy 0\.\d{3}",
    ],
    "video.py": [
        r"labels: \{'bird': 20, 'cat': 20, 'dog': 20\}",
        r"features: 1280 frames_\* \+ 40 audio_\*; clips without sound: [1-9]\d*",
        r"cross-validated accuracy: 0\.\d{3} ± 0\.\d{3}",
        r"modalities: \['clip_frames', 'clip_audio'\]",
    ],
}
#: the optional package a script needs (its test is skipped without it)
NEEDS = {"video.py": "av"}
TIMEOUT = 900


def test_every_example_is_checked():
    assert SCRIPTS, f"no scripts found in {EXAMPLES}"
    assert {script.name for script in SCRIPTS} <= set(EXPECTED) | {"__init__.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=[script.name for script in SCRIPTS])
def test_example_runs(script, tmp_path):
    if script.name in NEEDS:
        pytest.importorskip(NEEDS[script.name])
    # the examples train small networks: one thread is faster on a shared, busy CPU
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    completed = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    for pattern in EXPECTED.get(script.name, []):
        assert re.search(pattern, completed.stdout), (pattern, completed.stdout)
