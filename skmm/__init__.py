"""skmm: multimodal classification (images, text, audio, tabular) as a scikit-learn citizen."""

from .classifier import MultimodalClassifier
from .encoders import AudioEncoder, AudioMFCC, ImageEncoder, TextEncoder
from .exceptions import InputError, InputWarning
from .fusion import MultimodalFusion
from .infer import infer_modalities
from .persistence import load, save

__version__ = "0.1.0"

__all__ = [
    "AudioEncoder",
    "AudioMFCC",
    "ImageEncoder",
    "InputError",
    "InputWarning",
    "MultimodalClassifier",
    "MultimodalFusion",
    "TextEncoder",
    "__version__",
    "infer_modalities",
    "load",
    "save",
]
