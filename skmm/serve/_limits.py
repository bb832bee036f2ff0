"""The server's defaults and limits: their one definition.

:func:`skmm.serve.create_app`, :func:`skmm.serve.serve` and ``skmm serve``'s options
(:mod:`skmm.cli`) all take their defaults from here. This module imports nothing heavy
(no Flask, numpy or pandas), so ``skmm serve --help`` shows them without loading the server.
"""

__all__ = [
    "DEFAULT_CHANNEL_TIMEOUT",
    "DEFAULT_CONNECTION_LIMIT",
    "DEFAULT_HOST",
    "DEFAULT_MAX_BATCH_ROWS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_MAX_TEXT_CHARS",
    "DEFAULT_MAX_WAIT_MS",
    "DEFAULT_PORT",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_THREADS",
    "DEFAULT_WORKERS",
    "MAX_DEFAULT_WORKERS",
    "default_workers",
]

#: interface :func:`serve` listens on
DEFAULT_HOST = "127.0.0.1"
#: port :func:`serve` listens on
DEFAULT_PORT = 8000
#: waitress threads: requests read, checked and answered concurrently
DEFAULT_THREADS = 16
#: bytes one request body may hold
DEFAULT_MAX_BODY_BYTES = 32 * 1024**2
#: rows one request may hold
DEFAULT_MAX_ROWS = 1000
#: characters one text (or other string) value may hold
DEFAULT_MAX_TEXT_CHARS = 100_000
#: open connections waitress keeps (idle ones included) before it stops accepting
DEFAULT_CONNECTION_LIMIT = 1000
#: seconds an inactive connection stays open
DEFAULT_CHANNEL_TIMEOUT = 30
#: most rows the inference workers predict as one batch
DEFAULT_MAX_BATCH_ROWS = 8
#: milliseconds a worker holding a request waits for others to join its batch (only while other
#: requests are in the server: a lone client's request never waits)
DEFAULT_MAX_WAIT_MS = 20.0
#: inference workers (each runs one batch at a time): None is one per available CPU, at most
#: MAX_DEFAULT_WORKERS (:func:`default_workers`)
DEFAULT_WORKERS = None
MAX_DEFAULT_WORKERS = 4
#: requests waiting for a worker before the server answers 503
DEFAULT_QUEUE_SIZE = 64
#: seconds a request waits for its answer before the server answers 503
DEFAULT_REQUEST_TIMEOUT = 30.0


def default_workers():
    """The inference workers of ``workers=None``: one per available CPU, at most :data:`MAX_DEFAULT_WORKERS`.

    On a small CPU, independent workers of one torch thread each predict more rows per second
    than one worker whose forward passes are spread over every core: the encoders' networks are
    small, and one pass on several threads waits for its slowest thread at each operation
    (docs/performance.md, "Serving").
    """
    from .._threads import available_cpus

    return max(1, min(available_cpus(), MAX_DEFAULT_WORKERS))
