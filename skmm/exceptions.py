"""Errors and warnings raised by skmm."""

__all__ = ["InputError", "InputWarning"]


class InputError(ValueError):
    """A row of input could not be read or encoded.

    The message names the row's position (and index label when the input was a
    pandas object), the offending file or value, and the reason.  Pass
    ``on_error="missing"`` to the encoder to turn such rows into absent
    modalities (a row of NaN) instead.
    """


class InputWarning(UserWarning):
    """Some rows were unusable and were encoded as missing (``on_error="missing"``)."""
