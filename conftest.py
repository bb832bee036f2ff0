"""Test-session settings shared by the doctests in skmm/ and the tests in tests/."""

import atexit
import importlib.util
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The default embedding cache (cache="memory") is backed by a disk folder, shared with worker
# processes: the tests get a folder of their own, set before any worker starts (workers inherit
# it), so that neither a user's cache nor another test session's leaks into results or counts.
os.environ["SKMM_CACHE_DIR"] = _TEST_CACHE = tempfile.mkdtemp(prefix="skmm-test-cache-")
atexit.register(shutil.rmtree, _TEST_CACHE, ignore_errors=True)

import torch  # noqa: E402

# The networks in the tests are tiny: one thread avoids oversubscribing small CI machines.
torch.set_num_threads(1)


# Doctests of modules that need an optional extra run only where the extra is installed.
_EXTRAS = {"skmm/plotting.py": "matplotlib", "skmm/report.py": "matplotlib", "skmm/parallel.py": "dask"}
collect_ignore = [path for path, module in _EXTRAS.items() if importlib.util.find_spec(module) is None]
