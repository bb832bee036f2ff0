"""skmm: multimodal classification (images, text, audio, tabular) as a scikit-learn citizen.

``import skmm`` is cheap: the public names are imported on first use, and torch,
transformers and librosa only when a model is first needed.
"""

from importlib import import_module

from ._version import __version__
from .exceptions import InputError, InputWarning

#: public name -> the module that defines it
_LAZY = {
    "AudioEncoder": "encoders",
    "AudioMFCC": "encoders",
    "ImageEncoder": "encoders",
    "TextEncoder": "encoders",
    "VideoEncoder": "encoders",
    "MultimodalClassifier": "classifier",
    "MultimodalFusion": "fusion",
    "infer_modalities": "infer",
    "export_onnx": "onnx",
    "load": "persistence",
    "save": "persistence",
}

__all__ = sorted([*_LAZY, "InputError", "InputWarning", "__version__"])


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'skmm' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted({*globals(), *_LAZY})
