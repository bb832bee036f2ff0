"""Importing skmm is cheap: torch, transformers and librosa load only when a model is first used."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "librosa")


def loaded_after(code):
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout.split()


@pytest.mark.parametrize(
    "code",
    [
        "import skmm",
        "from skmm import *",
        "import skmm.nn; list(skmm.nn.FUSIONS)",
        "import skmm.kinds, skmm.infer, skmm.serve, skmm.persistence, skmm.datasets",
        "import contextlib, io\nfrom skmm.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])",
    ],
    ids=["import skmm", "every public name", "fusion names", "light modules", "skmm --help"],
)
def test_no_heavy_backend_on_import(code):
    assert loaded_after(code) == []


def test_a_model_loads_torch_when_first_used():
    code = "import numpy as np\nfrom skmm import AudioMFCC\nAudioMFCC(verbose=0).fit_transform([(np.zeros(1600), 16000)])"
    assert "torch" in loaded_after(code)


def test_public_names_resolve():
    import skmm

    for name in skmm.__all__:
        assert getattr(skmm, name) is not None
    assert set(skmm.__all__) <= set(dir(skmm))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        skmm.nope  # noqa: B018


@pytest.mark.parametrize("module", ["skmm.infer", "skmm.kinds", "skmm.io", "skmm.persistence", "skmm.serve",
                                    "skmm.inspection", "skmm.report", "skmm.nn", "skmm.encoders", "skmm.fusion",
                                    "skmm.cache", "skmm.datasets", "skmm.onnx"])
def test_every_name_a_module_exports_is_there(module):
    import importlib

    imported = importlib.import_module(module)
    missing = [name for name in imported.__all__ if not hasattr(imported, name)]
    assert not missing, f"{module}.__all__ names what it does not have: {missing}"


def test_skmm_serve_help_loads_no_server():
    # the options' defaults come from skmm.serve._limits, which loads neither Flask nor the app
    probe = (
        "import contextlib, io, sys\nfrom skmm.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['serve', '--help'])\n"
        "print(' '.join(m for m in ('flask', 'waitress', 'skmm.serve._app', 'skmm.serve._rows') if m in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split() == []
