"""Encoders turning one column of images, texts, audio or video into a float32 matrix (frozen, or fine-tuned)."""

from ._audio import AudioMFCC
from ._audio_model import AudioEncoder
from ._base import BaseEncoder
from ._finetune import FineTuning
from ._image import ImageEncoder
from ._text import TextEncoder
from ._video import VideoEncoder

__all__ = ["AudioEncoder", "AudioMFCC", "BaseEncoder", "FineTuning", "ImageEncoder", "TextEncoder", "VideoEncoder"]
