"""skmm: multimodal classification (images, text, audio, tabular) as a scikit-learn citizen."""

from .classifier import MultimodalClassifier
from .encoders import AudioMFCC, ImageEncoder, TextEncoder
from .exceptions import InputError, InputWarning
from .fusion import MultimodalFusion

__version__ = "0.1.0"

__all__ = [
    "AudioMFCC",
    "ImageEncoder",
    "InputError",
    "InputWarning",
    "MultimodalClassifier",
    "MultimodalFusion",
    "TextEncoder",
    "__version__",
]
