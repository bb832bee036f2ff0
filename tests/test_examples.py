"""Run every script in examples/ as a user would, and check what it prints."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))  # also the documentation's gallery, run by sphinx-gallery

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
    "plot_fusion_strategies.py": [
        r"fusion\s+mean accuracy\s+std",
        r"(?m)^\s+(concat|weighted|gated|attention|late)\s+0\.[5-9]\d*\s+0\.\d+$",
        r"best strategy: (concat|weighted|gated|attention|late)",
    ],
    "plot_missing_modalities.py": [
        r"modality_dropout=0\s+modality_dropout=0\.3",
        r"(?m)^nothing\s+0\.[6-9]\d*\s+0\.[6-9]\d*$",
        r"(?m)^image\s+0\.\d+\s+0\.\d+$",
        r"predicted without the image, text and audio: (cat|dog|bird)",
    ],
    "plot_explain_prediction.py": [
        r"accuracy\s+0\.[6-9]\d{2}\s+120",
        r"true label: (cat|dog|bird) - predicted: (cat|dog|bird)",
        r"SHAP contributions to the predicted class:\n\s+image\s+text\s+audio\s+number",
        r"attention weights:\n\s+image\s+text\s+audio\s+number",
    ],
    "plot_serving.py": [
        r"GET /health -> \{'status': 'ok'\}",
        r"input columns: \['image', 'text', 'audio', 'number'\] classes: \['bird', 'cat', 'dog'\]",
        r"status: 200",
        r'"label": "(cat|dog|bird)"',
        r"400 row 0: unknown column\(s\) \['picture'\]",
    ],
    "deploy_onnx.py": [
        r"\['image'\] -> 00-image\.onnx: features \[0, 1280\], inputs \{'pixels': \['uint8'",
        r"\['audio'\] -> None",
        r"classes: \['bird', 'cat', 'dog'\]",
        r"largest difference: (\d\.\d+e-(0[5-9]|[1-9]\d)|0\.0)",  # within 1e-4
        r"same labels: True",
    ],
    "plot_fine_tuning.py": [
        r"(?m)^\s+frozen\s+0\.[4-7]\d*\s+0$",
        r"(?m)^\s+top\s+(0\.9\d*|1\.0+)\s+17088$",
        r"(?m)^\s+lora\s+(0\.9\d*|1\.0+)\s+7168$",
        r"epoch\s+valid_loss\s+valid_accuracy\s+train_loss\s+batch_size",
    ],
    "plot_real_data_digits.py": [
        r"picture: test accuracy 0\.[5-9]\d{2}",
        r"ink: test accuracy 0\.[5-9]\d{2}",
        r"picture \+ ink: test accuracy 0\.[7-9]\d{2}",
        r"picture: accuracy drop -?0\.\d{3} when absent, -?0\.\d{3} when permuted",
    ],
    "video.py": [
        r"labels: \{'bird': 20, 'cat': 20, 'dog': 20\}",
        r"features: 1280 frames_\* \+ 40 audio_\*; clips without sound: [1-9]\d*",
        r"cross-validated accuracy: 0\.\d{3} ± 0\.\d{3}",
        r"modalities: \['clip_frames', 'clip_audio'\]",
    ],
}
#: the optional package a script needs (its test is skipped without it)
NEEDS = {"video.py": "av", "deploy_onnx.py": "onnxruntime"}
TIMEOUT = 900


def test_every_example_is_checked():
    assert SCRIPTS, f"no scripts found in {EXAMPLES}"
    assert {script.name for script in SCRIPTS} <= set(EXPECTED) | {"__init__.py"}


@pytest.mark.slow
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
