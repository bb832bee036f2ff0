"""skmm: multimodal classification (images, text, audio, tabular) as a scikit-learn citizen.

``import skmm`` is cheap: the public names are imported on first use, and torch,
transformers and librosa only when a model is first needed.
"""

from ._lazy import lazy_names
from ._version import __version__
from .exceptions import InputError, InputWarning

#: public name -> the module that defines it
_LAZY = {
    "AudioEncoder": "encoders",
    "AudioMFCC": "encoders",
    "FineTuning": "encoders",
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


__getattr__, __dir__ = lazy_names(globals(), _LAZY)
del lazy_names  # not a name of skmm
