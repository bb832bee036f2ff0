"""The Flask app serving a fitted pipeline, and the waitress server that runs it.

:func:`create_app` wires the routes described in :mod:`skmm.serve` to the row decoding
(:mod:`skmm.serve._rows`), the micro-batcher (:mod:`skmm.serve._batching`) and the
predictions, on torch or on ONNX Runtime; :func:`serve` runs it with waitress, whose own
error answers are JSON as the app's are.
"""

import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import jsonable
from ._limits import (
    DEFAULT_CHANNEL_TIMEOUT,
    DEFAULT_CONNECTION_LIMIT,
    DEFAULT_HOST,
    DEFAULT_MAX_BATCH_ROWS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_ROWS,
    DEFAULT_MAX_TEXT_CHARS,
    DEFAULT_MAX_WAIT_MS,
    DEFAULT_PORT,
    DEFAULT_QUEUE_SIZE,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_THREADS,
    DEFAULT_WORKERS,
    default_workers,
)
from ._rows import RequestError, RowDecoder, _row_from_form, _rows_from_json, _served_kinds

__all__ = ["create_app", "serve"]

logger = logging.getLogger("skmm.serve")


def _import_flask():
    try:
        import flask
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            'skmm serving needs Flask and waitress: pip install "skmm[serve]"'
        ) from exc
    return flask


# --------------------------------------------------------------------------- predictions


def _predict(pipeline, frame):
    from ..exceptions import InputError
    from ..io import paths_refused

    try:
        with paths_refused():
            return _predictions(pipeline, frame)
    except InputError as exc:
        raise RequestError(422, str(exc)) from None


def _predictions(pipeline, frame):
    if not hasattr(pipeline, "predict_proba"):
        return [{"label": jsonable(label)} for label in pipeline.predict(frame)]
    probabilities = np.asarray(pipeline.predict_proba(frame), dtype=float)
    bad = np.flatnonzero(~np.isfinite(probabilities).all(axis=1))
    if len(bad):  # never a made-up label (the skmm classifier cannot give these)
        raise RequestError(
            422, f"row {int(bad[0])}: the model gave no finite probabilities for this row; "
            "check its values for numbers far out of the training range."
        )
    classes = list(pipeline.classes_)
    labels = [classes[i] for i in probabilities.argmax(axis=1)]
    return [
        {
            "label": jsonable(label),
            "probabilities": {str(c): float(p) for c, p in zip(classes, row)},
        }
        for label, row in zip(labels, probabilities)
    ]


def _explain(pipeline, frame):
    """Each row's modality contributions to its predicted class (Shapley values, absent-modality baseline)."""
    from ..exceptions import InputError
    from ..io import paths_refused

    try:
        from ..inspection import modality_contributions

        with paths_refused():
            table = modality_contributions(pipeline, frame)
    except ImportError as exc:
        raise RequestError(501, f"explain=true is not available on this server: {exc}.") from None
    except InputError as exc:
        raise RequestError(422, str(exc)) from None
    except (AttributeError, TypeError, ValueError) as exc:
        # e.g. a TfidfVectorizer cannot take the missing values that make its modality absent
        raise RequestError(
            501, "explain=true needs every modality of the model to accept missing values, "
            f"and one does not ({type(exc).__name__}: {str(exc)[:200]})."
        ) from None
    rows = table.to_dict(orient="records")
    return [{str(name): round(float(value), 6) for name, value in row.items()} for row in rows]


def _quiet(pipeline):
    """Turn off the encoders' progress bars in a pipeline this module loaded itself."""
    from ..encoders import BaseEncoder

    for step in getattr(pipeline, "named_steps", {}).values():
        for transformer in getattr(step, "named_transformers_", {}).values():
            if isinstance(transformer, BaseEncoder):
                transformer.set_params(verbose=0)
    return pipeline


def _modalities_side_by_side(pipeline, n_threads):
    """A copy of ``pipeline`` whose fusion runs a row's modalities in ``n_threads`` threads, or None.

    The copy shares every fitted step (and the encoders' caches) with ``pipeline``, which is left
    as it is; None when there is no fusion step without ``n_jobs`` or a single thread.
    """
    import copy

    from ..fusion import MultimodalFusion

    steps = getattr(pipeline, "steps", None)
    if not isinstance(n_threads, int) or n_threads < 2 or not isinstance(steps, list):
        return None
    changed = []
    for name, step in steps:
        if isinstance(step, MultimodalFusion) and step.n_jobs is None:
            step = copy.copy(step)
            step.n_jobs = n_threads
        changed.append((name, step))
    if all(new is old for (_, new), (_, old) in zip(changed, steps)):
        return None
    side_by_side = copy.copy(pipeline)
    side_by_side.steps = changed
    return side_by_side


def _warm_up(pipeline, columns):
    """Load the encoders' models now rather than on the first request (best effort)."""
    import warnings

    frame = pd.DataFrame({c: [None] for c in columns}).astype(object)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipeline.predict(frame)
    except Exception as exc:  # noqa: BLE001 - a warm-up failure only costs time later
        logger.debug("warm-up prediction failed: %s", exc)

# --------------------------------------------------------------------------- app


def _exported(pipeline, n_threads):
    """The pipeline exported to ONNX in a temporary folder, and an OnnxModel on it: ``(folder, model)``."""
    import tempfile
    from types import SimpleNamespace

    from ..onnx import OnnxModel, export_onnx

    folder = tempfile.TemporaryDirectory(prefix="skmm-serve-onnx-")
    try:
        path = export_onnx(pipeline, Path(folder.name) / "model")
        return SimpleNamespace(folder=folder, model=OnnxModel(path, n_threads=n_threads))
    except BaseException:
        folder.cleanup()
        raise


def _exported_if_possible(pipeline, n_threads):
    """``(_exported(...), None)``, or ``(None, why not)`` when the onnx extra is missing or export fails."""
    try:
        return _exported(pipeline, n_threads), None
    except ImportError as exc:  # export_onnx names the extra to install
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - "auto" serves on torch whatever stops the export
        logger.info("ONNX export failed, serving on torch: %s", exc)
        return None, f"the model cannot be exported to ONNX: {exc}"

def create_app(
    pipeline_or_path,
    *,
    max_body_bytes=DEFAULT_MAX_BODY_BYTES,
    max_rows=DEFAULT_MAX_ROWS,
    max_text_chars=DEFAULT_MAX_TEXT_CHARS,
    warm_up=True,
    trusted=False,
    max_batch_rows=DEFAULT_MAX_BATCH_ROWS,
    max_wait_ms=DEFAULT_MAX_WAIT_MS,
    workers=DEFAULT_WORKERS,
    queue_size=DEFAULT_QUEUE_SIZE,
    request_timeout=DEFAULT_REQUEST_TIMEOUT,
    torch_threads=None,
    runtime="auto",
):
    """Return a Flask app serving predictions of a fitted pipeline.

    Parameters
    ----------
    pipeline_or_path : fitted estimator, str or path-like
        A model file written by :func:`skmm.save` (loaded once, here), or a
        fitted pipeline.
    max_body_bytes : int, default=32 MiB
        Larger request bodies are refused with 413.
    max_rows : int, default=1000
        Requests with more rows are refused with 413.
    max_text_chars : int, default=100_000
        A longer string in a text (or any non-file) column is refused with 422.
    warm_up : bool, default=True
        Load the encoders' models before the first request.
    trusted : bool or list of str, default=False
        Passed to :func:`skmm.load` for a model file: by default only types
        skmm knows to be safe are loaded; ``True`` loads anything, which may
        run code: only for files you wrote or trust. See :func:`skmm.load`.
    max_batch_rows : int, default=8
        Most rows predicted together as one batch (a larger request runs alone).
    max_wait_ms : float, default=20.0
        How long an inference worker holding a request waits for others to
        join its batch, and only while other requests are in the server (being
        read, queued or predicted): a lone client's request never waits. 0
        batches only what has already been queued.
    workers : int or None, default=None
        Inference workers, each predicting one batch at a time; None is one per
        available CPU, at most 4 (:func:`default_workers`).
    queue_size : int, default=64
        Requests waiting for a worker; more are answered 503 with ``Retry-After``.
    request_timeout : float, default=30.0
        Seconds a request waits for its answer before it is answered 503.
    torch_threads : int or None, default=None
        torch intra-op threads of each worker; None shares the available
        CPUs between the workers (at least 1 each). A request of one row that
        is alone in the server has its modalities (image, text, audio...)
        encoded side by side, in one thread per available CPU with one torch
        thread each (the :class:`~skmm.MultimodalFusion`'s ``n_jobs``, unless
        it has one).
    runtime : {"auto", "torch", "onnx"}, default="auto"
        What computes the predictions. ``"onnx"`` exports the pipeline with
        :func:`skmm.onnx.export_onnx` into a temporary folder when the app is
        created and predicts with :class:`skmm.onnx.OnnxModel` on ONNX Runtime
        (each worker's runs on ``torch_threads`` threads; 2-3x the rows per
        second of torch on a CPU); the routes, limits, row decoding and
        micro-batching are the same, and ``?explain=true`` still explains with
        the pipeline itself. It needs the ``onnx`` extra, and an error says why
        a model cannot be exported. ``"auto"`` is ``"onnx"`` when the extra is
        installed and the model exports, ``"torch"`` otherwise;
        ``app.config["SKMM_RUNTIME"]`` says which, ``app.config["SKMM_RUNTIME_NOTE"]``
        why not ONNX Runtime.

    Returns
    -------
    app : flask.Flask
        ``app.config["SKMM_METADATA"]`` holds what ``GET /metadata`` returns;
        ``app.config["SKMM_BATCHER"]`` is the :class:`skmm.serve._batching.MicroBatcher`
        whose workers predict: ``app.config["SKMM_BATCHER"].close()`` stops them
        (they also stop when the app is garbage collected).

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import Pipeline
    >>> from skmm import infer_modalities
    >>> from skmm.serve import create_app
    >>> df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    >>> pipe = Pipeline([("fusion", infer_modalities(df)), ("clf", LogisticRegression())])
    >>> app = create_app(pipe.fit(df, ["a", "b", "a", "b"]))
    >>> answer = app.test_client().post("/predict", json={"row": {"x": 1.0}})
    >>> answer.status_code, answer.get_json()["predictions"][0]["label"] in ("a", "b")
    (200, True)
    >>> app.config["SKMM_BATCHER"].close()
    """
    flask = _import_flask()
    import weakref

    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    from ._batching import BatcherBusy, MicroBatcher
    from .._threads import available_cpus
    from .._threads import torch_threads as thread_budget
    from ..persistence import build_metadata, load

    if isinstance(pipeline_or_path, (str, bytes)) or hasattr(pipeline_or_path, "__fspath__"):
        pipeline, metadata = load(pipeline_or_path, trusted=trusted, return_metadata=True)
        pipeline = _quiet(pipeline)
        source = Path(os.fsdecode(pipeline_or_path)).name  # the file name, not where it lives
    else:
        pipeline = pipeline_or_path
        metadata = build_metadata(pipeline)
        source = None
    decoder = RowDecoder(
        metadata["input_columns"], _served_kinds(pipeline, metadata["kinds"]),
        max_rows=max_rows, max_text_chars=max_text_chars,
    )
    public = {
        "model": source,
        "estimator": metadata.get("estimator"),
        "input_columns": metadata["input_columns"],
        "kinds": metadata["kinds"],
        "modalities": metadata.get("modalities"),
        "classes": metadata.get("classes"),
        "versions": metadata.get("versions"),
        "created": metadata.get("created"),
    }
    if workers is None:
        workers = default_workers()
    if torch_threads is None and isinstance(workers, int) and workers >= 1:
        torch_threads = max(1, available_cpus() // workers)  # the CPUs shared between the workers
    # the row of a lone request, with no other request in the server, has its modalities encoded
    # side by side on every CPU (the other workers are idle); batches keep them one after the
    # other, each worker on its own CPUs (side by side, batches were slower: docs/performance.md)
    lone_row_pipeline = _modalities_side_by_side(pipeline, available_cpus()) or pipeline
    if runtime not in ("auto", "torch", "onnx"):
        raise ValueError(f"runtime={runtime!r}: expected 'auto', 'torch' or 'onnx'.")
    exported, runtime_note = None, None
    if runtime == "onnx":
        exported = _exported(pipeline, torch_threads)
    elif runtime == "auto":
        exported, runtime_note = _exported_if_possible(pipeline, torch_threads)
    if exported is not None:
        lone_row_pipeline = exported.model  # one session per graph: nothing to run side by side
    predictor = pipeline if exported is None else exported.model

    def predict_batch(frame):
        alone = len(frame) == 1 and batcher.requests_in_server <= 1
        return _predict(lone_row_pipeline if alone else predictor, frame)

    batcher = MicroBatcher(
        predict_batch,
        max_batch_rows=max_batch_rows,
        max_wait_ms=max_wait_ms, workers=workers, queue_size=queue_size,
        timeout=request_timeout, n_threads=torch_threads,
    )
    if warm_up:
        with thread_budget(torch_threads):
            _warm_up(predictor, decoder.columns)

    app = flask.Flask("skmm.serve")
    app.config.update(
        MAX_CONTENT_LENGTH=max_body_bytes,
        MAX_FORM_MEMORY_SIZE=max_body_bytes,
        SKMM_METADATA=public,
        SKMM_BATCHER=batcher,
        SKMM_RUNTIME="torch" if exported is None else "onnx",
        SKMM_RUNTIME_NOTE=runtime_note,
    )
    weakref.finalize(app, batcher.close)
    if exported is not None:
        weakref.finalize(app, exported.folder.cleanup)
    app.json.sort_keys = False

    def error(status, message):
        return flask.jsonify(error=message), status

    @app.errorhandler(RequestError)
    def _request_error(exc):
        return error(exc.status, exc.message)

    @app.errorhandler(BatcherBusy)
    def _busy(exc):
        response, status = error(503, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response, status

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc):
        size = flask.request.content_length
        found = f"{size} bytes" if size is not None else "larger"
        return error(
            413, f"request body is {found}, over the limit of {max_body_bytes} bytes; "
            "send fewer or smaller files per request (or start the server with a larger "
            "--max-body-mb)."
        )

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        return error(exc.code, f"{exc.name}: {exc.description}")

    @app.errorhandler(Exception)
    def _internal_error(exc):
        logger.exception("prediction failed")
        return error(500, f"internal error while predicting ({type(exc).__name__}); see the server log.")

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/metadata")
    def metadata_route():
        return public

    @app.post("/predict")
    def predict():
        request = flask.request
        if request.content_length is not None and request.content_length > max_body_bytes:
            raise RequestEntityTooLarge()
        with batcher.handling():  # while it is in the server, a worker's batch waits for it
            mimetype = request.mimetype
            if mimetype == "application/json" or mimetype.endswith("+json"):
                rows = _rows_from_json(request.get_data(cache=False))
            elif mimetype == "multipart/form-data":
                rows = _row_from_form(request, decoder)
            else:
                raise RequestError(
                    415,
                    f"Content-Type {mimetype or 'missing'!s}: expected application/json or "
                    "multipart/form-data.",
                )
            frame = decoder.frame(rows)
            predictions = batcher.submit(frame)
        if request.args.get("explain", "").lower() in ("1", "true", "yes"):
            with thread_budget(torch_threads):
                contributions = _explain(pipeline, frame)
            for prediction, modalities in zip(predictions, contributions):
                prediction["contributions"] = modalities
        return {"predictions": predictions}

    return app


def _json_error_server(app, **options):
    """waitress's server, whose own error answers (a body over its limit, a malformed request)
    are JSON ``{"error": ...}`` as the app's are, not waitress's plain text."""
    import waitress
    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    class JSONErrorTask(ErrorTask):
        def execute(self):
            error = self.request.error
            status, headers, _ = error.to_response(self.channel.server.adj.ident)
            message = f"{error.reason}: {error.body}"
            if error.code == 413:
                message = f"request body over the server's limit ({error.body}); send a smaller request"
            body = json.dumps({"error": message}).encode()
            self.status = status
            self.response_headers.extend(
                (name, value) for name, value in headers if name.lower() not in ("content-type", "content-length")
            )
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    channel = type("JSONErrorChannel", (HTTPChannel,), {"error_task_class": JSONErrorTask})
    server = waitress.create_server(app, **options)
    for dispatcher in [server, *getattr(server, "map", {}).values()]:
        if hasattr(dispatcher, "channel_class"):
            dispatcher.channel_class = channel
    return server


def serve(
    path,
    host=DEFAULT_HOST,
    port=DEFAULT_PORT,
    threads=DEFAULT_THREADS,
    *,
    max_body_bytes=DEFAULT_MAX_BODY_BYTES,
    max_rows=DEFAULT_MAX_ROWS,
    max_text_chars=DEFAULT_MAX_TEXT_CHARS,
    connection_limit=DEFAULT_CONNECTION_LIMIT,
    channel_timeout=DEFAULT_CHANNEL_TIMEOUT,
    trusted=False,
    max_batch_rows=DEFAULT_MAX_BATCH_ROWS,
    max_wait_ms=DEFAULT_MAX_WAIT_MS,
    workers=DEFAULT_WORKERS,
    queue_size=DEFAULT_QUEUE_SIZE,
    request_timeout=DEFAULT_REQUEST_TIMEOUT,
    torch_threads=None,
    runtime="auto",
):
    """Serve a model file over HTTP with waitress (a production WSGI server).

    Parameters
    ----------
    path : str or path-like
        A model file written by :func:`skmm.save`; loaded once, at start-up.
    host : str, default="127.0.0.1"
        Interface to listen on; ``"0.0.0.0"`` listens on every interface.
    port : int, default=8000
    threads : int, default=16
        waitress threads: requests read, checked and answered concurrently
        (their predictions are batched by the ``workers``).
    max_body_bytes, max_rows, max_text_chars
        The limits of one request: see :func:`create_app`.
    connection_limit : int, default=1000
        Open connections (idle ones included) waitress keeps before it stops
        accepting new ones; slow or idle clients hold one each.
    channel_timeout : int, default=30
        Seconds after which an inactive connection is closed.
    trusted : bool or list of str, default=False
        Passed to :func:`skmm.load`: by default only types skmm knows to be
        safe are loaded; ``True`` loads anything, which may run code: only for
        files you wrote or trust.
    max_batch_rows, max_wait_ms, workers, queue_size, request_timeout, torch_threads
        How predictions are micro-batched: see :func:`create_app`.
    runtime : {"auto", "torch", "onnx"}, default="auto"
        ONNX Runtime or torch: see :func:`create_app`.
    """
    try:
        import waitress
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('skmm serving needs Flask and waitress: pip install "skmm[serve]"') from exc

    exporting = " exporting it to ONNX," if runtime != "torch" else ""
    print(f"skmm: loading {path},{exporting} and warming up its encoders' models (their first load can take "
          "a minute) ...", file=sys.stderr, flush=True)
    app = create_app(
        path, max_body_bytes=max_body_bytes, max_rows=max_rows, max_text_chars=max_text_chars,
        trusted=trusted, max_batch_rows=max_batch_rows, max_wait_ms=max_wait_ms, workers=workers,
        queue_size=queue_size, request_timeout=request_timeout, torch_threads=torch_threads,
        runtime=runtime,
    )
    batcher = app.config["SKMM_BATCHER"]
    used = "ONNX Runtime" if app.config["SKMM_RUNTIME"] == "onnx" else "torch"
    if app.config["SKMM_RUNTIME_NOTE"]:
        print(f"skmm: predicting with torch: {app.config['SKMM_RUNTIME_NOTE']}", file=sys.stderr, flush=True)
    print(
        f"skmm: serving {path} on http://{host}:{port} with {threads} threads, "
        f"{batcher.workers} inference worker(s) of {batcher.n_threads} {used} thread(s), batches "
        f"of up to {batcher.max_batch_rows} rows (routes: GET /health, GET /metadata, "
        "POST /predict)",
        file=sys.stderr,
        flush=True,
    )
    try:
        waitress.serve(
            app,
            host=host,
            port=port,
            threads=threads,
            # waitress refuses far larger bodies itself; the app answers 413 in JSON below that
            max_request_body_size=max_body_bytes + 1024**2,
            connection_limit=connection_limit,
            channel_timeout=channel_timeout,
            asyncore_use_poll=True,  # select() cannot watch more than 1024 connections
            ident="skmm",
            _server=_json_error_server,
        )
    finally:
        batcher.close()
