"""An HTTP API serving a fitted pipeline: Flask routes, run by the waitress WSGI server.

Routes
------
``GET /health``
    ``{"status": "ok"}`` once the model is loaded.
``GET /metadata``
    Input columns with their kinds, modalities, classes and versions.
``POST /predict``
    JSON ``{"rows": [{column: value, ...}, ...]}`` or ``{"row": {...}}``, file
    values (image, audio) as base64 strings; or ``multipart/form-data`` with
    one row: files for file columns, form fields for the others. Answers
    ``{"predictions": [{"label": ..., "probabilities": {class: p, ...}}, ...]}``.
    With ``?explain=true``, each prediction also carries ``"contributions"``:
    ``{modality: value}``, how much each modality added to the predicted class's
    probability against the all-absent baseline (Shapley values; needs the
    ``explain`` extra on the server, else 501).

Errors are JSON ``{"error": "..."}`` with a 4xx status naming the field.

A file column is one whose kind, in the registry :mod:`skmm.kinds`, reads
files or checks uploads (``"image"``, ``"audio"`` and any kind registered with
extensions, a sniff or a ``check_upload``), as the model's metadata says or as
any encoder the column reaches inside the pipeline says. Its values only ever
reach the pipeline as ``bytes`` decoded from the request, checked by the kind's
``check_upload``: a string is base64, never a path; and every prediction runs
inside :func:`skmm.io.paths_refused`, so a request cannot make the server read
its own files.

Limits (rows per request, characters per text, body size; connections and
their timeout for :func:`serve`) bound the work one client can cause.

Predictions are micro-batched (:class:`skmm.serve._batching.MicroBatcher`): each
request's rows are checked and decoded in its own thread, then queued; a few
inference workers with a fixed torch thread budget predict the requests that
arrived together as one batch and hand each request exactly its own rows. A
full queue, or a request not answered within the timeout, gets 503 with a
``Retry-After`` header.

The parts, one module each:

``_limits``
    The server's defaults and limits (body size, rows, text length, connections, batching,
    queue, timeouts) and :func:`default_workers`: their one definition, which ``skmm serve``'s
    options also use. It imports nothing heavy, so ``skmm serve --help`` loads no server.
``_rows``
    Request rows: JSON and multipart bodies checked against the model's input columns and
    decoded into a DataFrame (:class:`~skmm.serve._rows.RowDecoder`), a bad request raising
    :class:`~skmm.serve._rows.RequestError`.
``_batching``
    :class:`~skmm.serve._batching.MicroBatcher`: requests that arrive together are predicted
    as one batch by a few inference workers.
``_app``
    :func:`create_app`, the Flask app (the routes above, their errors, predictions on torch or
    ONNX Runtime), and :func:`serve`, which runs it with waitress.

Importing this package is cheap: the app and the row decoding load on first use.
"""

from .._lazy import lazy_names
from ._limits import *  # noqa: F403 - the defaults, as skmm.serve.DEFAULT_MAX_ROWS etc.

__all__ = ["create_app", "serve"]

#: name -> the module that defines it, imported on first use: patch a name in that module (the
#: one that looks it up), not here
_LAZY = {
    "create_app": "_app",
    "serve": "_app",
    "_json_error_server": "_app",
    "RequestError": "_rows",
    "RowDecoder": "_rows",
    "_served_kinds": "_rows",
}

__getattr__, __dir__ = lazy_names(globals(), _LAZY)
del lazy_names  # not a name of skmm.serve
