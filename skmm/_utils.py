"""Small helpers shared by the estimators (device choice, value checks)."""

import math
import os
import re

import numpy as np

__all__ = ["resolve_device", "is_missing", "describe_value", "jsonable"]


def resolve_device(device):
    """Turn ``"auto"`` into ``"cuda"`` when a GPU is present, else ``"cpu"``."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this machine; "
            "use device='auto' or device='cpu'."
        )
    return str(device)


def is_missing(value):
    """Return True for None, NaN, pandas NA, and empty or whitespace-only strings/bytes."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value) == 0
    if isinstance(value, np.floating):
        return bool(np.isnan(value))
    try:
        import pandas as pd

        return value is pd.NA or value is pd.NaT
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False


def all_missing_rows(frame):
    """Which rows of a DataFrame have every value missing (:func:`is_missing`): a bool array."""
    return frame.map(is_missing).all(axis=1).to_numpy()


_HEAP_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def describe_value(value, limit=200):
    """A short, printable description of a row value for error messages.

    Long values are cut in the middle, so that a file's name (the end of its
    path) is always shown.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, np.ndarray):
        return f"<array shape={value.shape} dtype={value.dtype}>"
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], np.ndarray):
        return f"<waveform shape={value[0].shape} sr={value[1]!r}>"
    text = repr(os.fspath(value)) if isinstance(value, os.PathLike) else repr(value)
    text = _HEAP_ADDRESS.sub("", text)  # "<PIL.Image.Image ... at 0x7f...>": no memory layout shown
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"


def jsonable(value):
    """``value`` as a JSON scalar: numpy scalars become Python ones, other objects their ``str``."""
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
