"""Errors and warnings raised by skmm."""

__all__ = [
    "InferenceError", "InputError", "InputWarning", "LanguageWarning", "ModelFileError", "WeightsChangedError",
    "WeightsChangedWarning",
]


class InputError(ValueError):
    """A row of input could not be read or encoded.

    The message names the row's position (and index label when the input was a
    pandas object), the offending file or value, and the reason.  Pass
    ``on_error="missing"`` to the encoder to turn such rows into absent
    modalities (a row of NaN) instead.
    """


class InputWarning(UserWarning):
    """Some rows were unusable and were encoded as missing (``on_error="missing"``)."""


class LanguageWarning(UserWarning):
    """A text column is mostly in a language the text model was not trained on."""


class InferenceError(ValueError):
    """A column could not be classified, or ``target``/``overrides`` do not fit the data."""


class ModelFileError(ValueError):
    """A model file is not an skmm file, is damaged, or was written by an incompatible skmm."""


class WeightsChangedError(ValueError):
    """An encoder's model weights differ from those it was fitted with: its features would too."""


class WeightsChangedWarning(UserWarning):
    """An encoder uses model weights other than those it was fitted with, as its loader allowed."""
