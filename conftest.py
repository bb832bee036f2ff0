"""Test-session settings shared by the doctests in skmm/ and the tests in tests/."""

import importlib.util
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

# The networks in the tests are tiny: one thread avoids oversubscribing small CI machines.
torch.set_num_threads(1)


# Doctests of modules that need an optional extra run only where the extra is installed.
_EXTRAS = {"skmm/plotting.py": "matplotlib", "skmm/report.py": "matplotlib"}
collect_ignore = [path for path, module in _EXTRAS.items() if importlib.util.find_spec(module) is None]
