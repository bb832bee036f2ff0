"""MultimodalClassifier(accelerator=...): training through Hugging Face Accelerate, on CPU here.

Accelerate's CPU mode trains in one process; the documented multi-GPU script runs on two CPU
processes (torchrun, the gloo backend). GPU tests skip without CUDA.
"""

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import skmm
from skmm import MultimodalClassifier

accelerate = pytest.importorskip("accelerate")

CPU = {"cpu": True}
SCALING = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """accelerate's settings are process-wide (the first Accelerator fixes the device and precision):
    each test starts from none, as a new process would (accelerate's own tests do the same)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _data(n=120, seed=0):
    rng = np.random.RandomState(seed)
    y = np.repeat(["cat", "dog", "owl"], n // 3)
    X = pd.DataFrame({
        "image__a": rng.randn(n) + 2 * (y == "dog"),
        "image__b": rng.randn(n),
        "text__c": rng.randn(n) + 2 * (y == "owl"),
    })
    X.loc[::7, "text__c"] = np.nan  # some rows without text
    return X, y


@pytest.mark.parametrize("params", [
    {"fusion": "concat"},
    {"fusion": "attention", "modality_dropout": 0.2},
    {"fusion": "late", "early_stopping": True, "validation_fraction": 0.25, "class_weight": "balanced"},
])
def test_same_predictions_as_without_accelerate(params):
    X, y = _data()
    settings = dict(max_epochs=6, batch_size=16, random_state=0, verbose=0, **params)
    plain = MultimodalClassifier(**settings).fit(X, y)
    accelerated = MultimodalClassifier(accelerator=CPU, **settings).fit(X, y)
    np.testing.assert_array_equal(accelerated.predict_proba(X), plain.predict_proba(X))
    assert accelerated.n_iter_ == plain.n_iter_
    assert accelerated.device_ == "cpu"


def test_the_fitted_model_keeps_no_accelerate_state(tmp_path):
    from skmm.nn._training import FusionNetClassifier

    X, y = _data()
    clf = MultimodalClassifier(accelerator="auto", max_epochs=3, random_state=0, verbose=0)
    assert clone(clf).get_params()["accelerator"] == "auto"
    clf.fit(X, y)
    assert type(clf.net_) is FusionNetClassifier and not hasattr(clf.net_, "accelerator")
    expected = clf.predict_proba(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), expected)
    skmm.save(clf, tmp_path / "model.skmm")
    np.testing.assert_array_equal(skmm.load(tmp_path / "model.skmm").predict_proba(X), expected)

    # the saved model predicts in a process where accelerate cannot even be imported
    X.to_pickle(tmp_path / "X.pkl")
    code = (
        "import sys; sys.modules['accelerate'] = None\n"
        "import pandas as pd, skmm\n"
        f"model = skmm.load({str(tmp_path / 'model.skmm')!r})\n"
        f"print(model.predict(pd.read_pickle({str(tmp_path / 'X.pkl')!r}))[:5].tolist())\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == str(clf.predict(X)[:5].tolist())


def test_grid_search_clones_the_setting():
    from sklearn.model_selection import GridSearchCV

    X, y = _data()
    clf = MultimodalClassifier(accelerator=CPU, max_epochs=2, random_state=0, verbose=0)
    search = GridSearchCV(clf, {"lr": [1e-3, 1e-2]}, cv=2).fit(X, y)
    assert search.best_estimator_.accelerator == CPU and search.best_estimator_.accelerator is not CPU
    assert clf.accelerator is CPU and CPU == {"cpu": True}  # the setting given is untouched


def test_an_accelerator_instance_is_refused():
    X, y = _data()
    with pytest.raises(ValueError, match=r"'accelerator' parameter .* must be None, a str among \{'auto'\} "
                                         r"or an instance of 'dict'"):
        MultimodalClassifier(accelerator=accelerate.Accelerator(cpu=True), verbose=0).fit(X, y)


def test_warm_start_with_an_accelerator_is_refused():
    X, y = _data()
    with pytest.raises(ValueError, match=r"warm_start=True cannot be combined with accelerator='auto'"):
        MultimodalClassifier(accelerator="auto", warm_start=True, verbose=0).fit(X, y)


def test_missing_accelerate_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "accelerate", None)
    X, y = _data()
    with pytest.raises(ImportError, match=r'pip install "skmm\[accelerate\]"'):
        MultimodalClassifier(accelerator="auto", max_epochs=1, verbose=0).fit(X, y)


def _documented_script():
    """The multi-GPU script of docs/scaling.md."""
    found = re.search(r"## Several GPUs.*?```python\n(.*?)```", SCALING.read_text(), re.S)
    assert found, f"no script in the 'Several GPUs' section of {SCALING}"
    return found.group(1)


def _free_port():
    """A port nobody listens on now (a port derived from the pid can be taken by another server)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_documented_script_on_two_cpu_processes(tmp_path):
    """The script of docs/scaling.md, under torchrun with two CPU processes (DDP over gloo)."""
    script = tmp_path / "train_multi_gpu.py"
    # each process writes its weights' digest to a file of its own: lines the two print to one pipe
    # can interleave on a busy machine
    script.write_text(_documented_script() + (
        "import hashlib, pathlib\n"
        "weights = pipe[-1].net_.module_.state_dict()\n"
        "digest = hashlib.sha256(b''.join(w.cpu().numpy().tobytes() for w in weights.values())).hexdigest()\n"
        "pathlib.Path(f'weights-{accelerator.process_index}.txt').write_text(digest)\n"
    ))
    env = {
        **os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": os.pathsep.join([str(SCALING.parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script)]
    completed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    assert re.search(r"2 processes, test accuracy 0\.\d{3}", completed.stdout), completed.stdout
    digests = [(tmp_path / f"weights-{index}.txt").read_text() for index in (0, 1)]
    assert len(digests[0]) == 64 and digests[0] == digests[1]  # the replicas stayed in sync
    model = skmm.load(tmp_path / "multi_gpu_model.skmm")  # written once, by the main process
    assert model[-1].device_ == "cpu"


torch = pytest.importorskip("torch")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_the_gpu_and_predicts_after_loading(tmp_path):
    X, y = _data()
    clf = MultimodalClassifier(accelerator="auto", max_epochs=3, random_state=0, verbose=0).fit(X, y)
    assert clf.device_.startswith("cuda")
    assert next(clf.net_.module_.parameters()).device.type == "cuda"
    skmm.save(clf, tmp_path / "model.skmm")
    np.testing.assert_allclose(skmm.load(tmp_path / "model.skmm").predict_proba(X), clf.predict_proba(X),
                               atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_mixed_precision_on_the_gpu():
    X, y = _data()
    clf = MultimodalClassifier(accelerator={"mixed_precision": "bf16"}, max_epochs=5, random_state=0,
                               verbose=0).fit(X, y)
    assert clf.score(X, y) > 0.6
