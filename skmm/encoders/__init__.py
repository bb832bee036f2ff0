"""Frozen encoders turning one column of images, texts, audio or video into a float32 matrix."""

from ._audio import AudioMFCC
from ._audio_model import AudioEncoder
from ._base import BaseEncoder
from ._image import ImageEncoder
from ._text import TextEncoder
from ._video import VideoEncoder

__all__ = ["AudioEncoder", "AudioMFCC", "BaseEncoder", "ImageEncoder", "TextEncoder", "VideoEncoder"]
