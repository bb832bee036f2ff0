"""Encoders that count their rows, for bench_parallel.py; worker processes import this module by name.

Every batch encoded appends ``kind n pid`` to the file named by ``SKMM_BENCH_COUNTER``.
"""

import os

from skmm import ImageEncoder, TextEncoder


def _count(kind, items):
    with open(os.environ["SKMM_BENCH_COUNTER"], "a") as stream:
        stream.write(f"{kind} {len(items)} {os.getpid()}\n")


class CountingImageEncoder(ImageEncoder):
    def _encode_batch(self, items, bundle):
        _count("image", items)
        return super()._encode_batch(items, bundle)


class CountingTextEncoder(TextEncoder):
    def _encode_batch(self, items, bundle):
        _count("text", items)
        return super()._encode_batch(items, bundle)
