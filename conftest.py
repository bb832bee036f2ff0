"""Test-session settings shared by the doctests in skmm/ and the tests in tests/."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

# The networks in the tests are tiny: one thread avoids oversubscribing small CI machines.
torch.set_num_threads(1)
