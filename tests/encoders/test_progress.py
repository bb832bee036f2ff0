"""The encoders' progress bar: shown for a long encoding, silent with verbose=0."""

import time

import numpy as np
import pytest

from skmm import ImageEncoder, TextEncoder
from skmm.encoders import BaseEncoder


class SlowEncoder(BaseEncoder):
    """An encoder whose every batch takes ``delay`` seconds."""

    def __init__(self, *, delay=0.3, batch_size=1, device="cpu", cache=None, on_error="raise",
                 verbose=1):
        self.delay = delay
        self.batch_size = batch_size
        self.device = device
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    _parameter_constraints = {**BaseEncoder._parameter_constraints, "delay": [float]}

    def _load_bundle(self):
        return None

    def _model_identity(self, bundle):
        return "slow"

    def _output_dim(self, bundle):
        return 2

    def _read(self, value):
        return str(value).encode(), value

    def _encode_batch(self, items, bundle):
        time.sleep(self.delay)
        return np.zeros((len(items), 2), dtype=np.float32)


def test_long_encoding_shows_a_progress_bar(capfd):
    SlowEncoder(delay=0.3).fit_transform(list("abcde"))  # ~1.5 s, over the 1 s delay
    err = capfd.readouterr().err
    assert "SlowEncoder" in err
    assert "row" in err


def test_verbose_0_silences_the_bar(capfd):
    SlowEncoder(delay=0.3, verbose=0).fit_transform(list("abcde"))
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_short_encoding_shows_nothing(capfd):
    SlowEncoder(delay=0.0).fit_transform(list("abcde"))
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("encoder", [ImageEncoder, TextEncoder])
def test_model_encoders_show_progress_by_default(encoder):
    assert encoder().verbose == 1


def test_outside_a_terminal_progress_is_a_few_plain_lines(capfd):
    """A log (or a docs gallery's "Out:" block) gets a line per quarter, not a redrawn bar."""
    SlowEncoder(delay=0.04).fit_transform([str(i) for i in range(50)])  # 50 batches, over 1 s
    err = capfd.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and 1 <= len(lines) <= 4
    assert lines[-1].startswith("SlowEncoder: 50/50 rows (100%) in ")
