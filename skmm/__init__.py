"""skmm: multimodal classification (images, text, audio, tabular) as a scikit-learn citizen."""

from .encoders import AudioMFCC, ImageEncoder, TextEncoder
from .exceptions import InputError, InputWarning

__version__ = "0.1.0"

__all__ = [
    "AudioMFCC",
    "ImageEncoder",
    "InputError",
    "InputWarning",
    "TextEncoder",
    "__version__",
]
