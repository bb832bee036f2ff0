"""An encoder that counts, in a file, every row it encodes: importable by worker processes."""

import hashlib
import os

import numpy as np

from skmm.encoders._base import BaseEncoder


class CountingEncoder(BaseEncoder):
    """Hash each text into ``dim`` features, appending one line per encoded row to ``counter``.

    ``salt`` changes the encoder's identity (and so every cache key): a test
    gives a fresh salt to start from a cold cache in every worker process.
    """

    _feature_prefix = "h"
    _decode_in_threads = False
    _parameter_constraints = {
        **BaseEncoder._parameter_constraints, "dim": [int], "salt": [str], "counter": [None, str],
    }
    _runtime_params = BaseEncoder._runtime_params + ("counter",)

    def __init__(self, *, dim=4, salt="", counter=None, batch_size=8, device="cpu", cache="memory",
                 on_error="raise", verbose=0):
        self.dim = dim
        self.salt = salt
        self.counter = counter
        self.batch_size = batch_size
        self.device = device
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _load_bundle(self):
        return None

    def _model_identity(self, bundle):
        return "counting-v1"

    def _output_dim(self, bundle):
        return self.dim

    def _read(self, value):
        text = str(value)
        return text.encode(), text

    def _encode_batch(self, items, bundle):
        if self.counter is not None:
            with open(self.counter, "a") as stream:  # one short append per batch: atomic enough
                stream.write("".join(f"{os.getpid()} {item}\n" for item in items))
        rows = []
        for item in items:
            digest = hashlib.sha256((self.salt + item).encode()).digest()
            rows.append(np.frombuffer(digest, dtype=np.uint8)[: self.dim] / 255.0)
        return np.asarray(rows, dtype=np.float32)


def encoded_rows(counter):
    """The rows written to ``counter``, one entry per encoding, and the processes that encoded them."""
    with open(counter) as stream:
        lines = [line.rstrip("\n").split(" ", 1) for line in stream if line.strip()]
    return [row for _, row in lines], {pid for pid, _ in lines}
