"""The argument parser of the ``skmm`` command, its help texts and the cache options every command shares."""

import argparse
import contextlib
import os
import sys

from ..kinds import kind_names
from ..serve import _limits as serving  # the server's defaults (Flask loads only to serve)
from ._commands import _cmd_demo, _cmd_export, _cmd_fit, _cmd_predict, _cmd_report, _cmd_serve


ON_ERROR_HELP = (
    "what an unreadable file or text does: 'raise' stops with an error naming the row "
    "(the default), 'missing' treats it as a missing value and warns"
)
#: what --trust means, said where it is offered
TRUST_HELP = (
    "load the model file even if it holds types outside skmm's allow-list: such a file may "
    "run code when loaded, so use this only for files you wrote or trust"
)

def _version():
    from .._version import __version__

    return __version__


CACHE_HELP = (
    "where embeddings are kept between runs, so that a second command on the same rows encodes "
    "nothing (default: $SKMM_CACHE_DIR, else the per-user cache folder, e.g. ~/.cache/skmm)"
)


def _add_cache_options(command):
    group = command.add_mutually_exclusive_group()
    group.add_argument("--cache", metavar="DIR", help=CACHE_HELP)
    group.add_argument("--no-cache", action="store_true",
                       help="keep embeddings in memory only, for this run")


@contextlib.contextmanager
def _cache_setting(args):
    """``--cache DIR`` / ``--no-cache`` as ``SKMM_CACHE_DIR`` for the command, and say where the cache is.

    Encoders with the default ``cache="memory"`` keep their embeddings in that folder; nothing of
    it is saved in a model file.
    """
    from ..cache import default_folder

    if not hasattr(args, "no_cache"):
        yield
        return
    saved = os.environ.get("SKMM_CACHE_DIR")
    if args.no_cache:
        os.environ["SKMM_CACHE_DIR"] = ""
    elif args.cache:
        os.environ["SKMM_CACHE_DIR"] = os.path.abspath(os.path.expanduser(args.cache))
    try:
        folder = default_folder()
        where = (f"cached in {folder}" if folder is not None else "kept in memory only, for this run")
        print(f"skmm {args.command}: embeddings are {where} (--cache DIR, --no-cache).", file=sys.stderr)
        yield
    finally:
        if saved is None:
            os.environ.pop("SKMM_CACHE_DIR", None)
        else:
            os.environ["SKMM_CACHE_DIR"] = saved


def _default(parameter):
    """The default of a MultimodalClassifier parameter, for help texts that cannot go stale."""
    import inspect

    from ..classifier import MultimodalClassifier

    return inspect.signature(MultimodalClassifier).parameters[parameter].default


def build_parser():
    """The argument parser of the ``skmm`` command."""
    from ..nn import FUSIONS

    parser = argparse.ArgumentParser(
        prog="skmm",
        description="Multimodal classification (images, text, audio, tabular) from a CSV file.",
    )
    parser.add_argument("--version", action="version", version=f"skmm {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fit = commands.add_parser(
        "fit", help="infer column kinds, fit a classifier on a CSV and save it",
        description="Infer what each column holds (image or audio paths, text, numbers, "
        "categories), optionally cross-validate, fit a MultimodalClassifier on all rows and "
        "save it. Relative paths in file columns (image, audio) start at the CSV's folder.",
    )
    fit.add_argument("data", metavar="DATA.csv", help="training data, one row per sample")
    fit.add_argument("--target", required=True, metavar="COL", help="the column to predict")
    fit.add_argument("--out", default="model.skmm", metavar="MODEL",
                     help="where to save the model (default: model.skmm)")
    fit.add_argument("--cv", type=int, metavar="K",
                     help="also report K-fold cross-validated accuracy and macro F1")
    fit.add_argument("--max-epochs", type=int, metavar="N",
                     help=f"training epochs of the network (default: {_default('max_epochs')})")
    fit.add_argument("--fusion", choices=list(FUSIONS), default="concat",
                     help="how modalities are fused (default: concat)")
    fit.add_argument("--override", action="append", metavar="COL=KIND",
                     help=f"force a column's kind ({', '.join(kind_names())}); repeatable")
    fit.add_argument("--model", action="append", metavar="KIND=MODEL",
                     help="the model of every column of a kind, or of one column (COLUMN=MODEL): a "
                     "Hugging Face id or a local folder, e.g. text=intfloat/multilingual-e5-small for "
                     "text that is not English; repeatable")
    fit.add_argument("--fine-tune", action="append", metavar="KIND=MODE",
                     help="fine-tune the backbone of every column of a kind, or of one column (COLUMN=MODE), "
                     "on the labels: MODE 'top' trains its last blocks, 'lora' low-rank adapters on them "
                     "(needs the finetune extra); e.g. text=top; repeatable (default: frozen backbones)")
    fit.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    fit.add_argument("--on-error", choices=("raise", "missing"), default=None, help=ON_ERROR_HELP)
    fit.add_argument("--random-state", type=int, default=0, metavar="SEED",
                     help="seed for the folds and the network (default: 0)")
    fit.add_argument("--report", metavar="REPORT.html",
                     help="also write an HTML report (scores on a held-out share, confusion matrix, "
                     "modality importance, training curve, worst rows); needs the plot extra")
    _add_cache_options(fit)
    fit.set_defaults(handler=_cmd_fit)

    report = commands.add_parser(
        "report", help="write an HTML report of a saved model on labelled data",
        description="Score a saved model on the rows of a labelled CSV (data it was not trained "
        "on) and write one self-contained HTML page: accuracy and per-class recall and F1, the "
        "confusion matrix, modality importance, the training curve and the worst misclassified "
        "rows as they are (images, texts, audio players). Needs the plot extra: "
        'pip install "skmm[plot]".',
    )
    report.add_argument("model", metavar="MODEL", help="a model saved by 'skmm fit'")
    report.add_argument("data", metavar="DATA.csv", help="labelled rows to evaluate")
    report.add_argument("--target", required=True, metavar="COL", help="the column with the labels")
    report.add_argument("--out", default="report.html", metavar="FILE",
                        help="where to write the page (default: report.html)")
    report.add_argument("--trust", action="store_true", help=TRUST_HELP)
    report.add_argument("--on-error", choices=("raise", "missing"), default=None, help=ON_ERROR_HELP)
    report.add_argument("--random-state", type=int, default=0, metavar="SEED",
                        help="seed of the permutations (default: 0)")
    _add_cache_options(report)
    report.set_defaults(handler=_cmd_report)

    predict = commands.add_parser(
        "predict", help="predict the rows of a CSV with a saved model",
        description="Write a CSV with the predicted label ('prediction') and one probability "
        "column per class ('proba_<class>'), in the input's row order.",
    )
    predict.add_argument("model", metavar="MODEL", help="a model saved by 'skmm fit'")
    predict.add_argument("data", metavar="DATA.csv", help="rows to predict")
    predict.add_argument("--out", metavar="FILE", help="output CSV (default: standard output)")
    predict.add_argument("--trust", action="store_true", help=TRUST_HELP)
    predict.add_argument("--on-error", choices=("raise", "missing"), default=None,
                         help=ON_ERROR_HELP)
    _add_cache_options(predict)
    predict.set_defaults(handler=_cmd_predict)

    export = commands.add_parser(
        "export", help="export a saved model to ONNX, for ONNX Runtime or any ONNX consumer",
        description="Write a folder with one ONNX graph per modality (image and text models, "
        "scikit-learn transformers), one for the classifier and manifest.json, which says which "
        "input column feeds which graph and what happens outside the graphs. Needs the onnx extra: "
        'pip install "skmm[onnx]".',
    )
    export.add_argument("model", metavar="MODEL", help="a model saved by 'skmm fit'")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="the format (default: onnx)")
    export.add_argument("--out", required=True, metavar="DIR", help="the folder to write (must not exist)")
    export.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    export.add_argument("--trust", action="store_true", help=TRUST_HELP)
    export.set_defaults(handler=_cmd_export, on_error=None)

    serve = commands.add_parser(
        "serve", help="serve a saved model over HTTP (waitress)",
        description="Serve GET /health, GET /metadata and POST /predict (JSON with base64 "
        "files, or multipart/form-data) with the waitress WSGI server.",
    )
    serve.add_argument("model", metavar="MODEL", help="a model saved by 'skmm fit'")
    serve.add_argument("--host", default=serving.DEFAULT_HOST,
                       help=f"interface (default: {serving.DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=serving.DEFAULT_PORT,
                       help=f"port (default: {serving.DEFAULT_PORT})")
    serve.add_argument("--threads", type=int, default=serving.DEFAULT_THREADS, metavar="N",
                       help="HTTP threads: requests read and answered concurrently; their "
                       f"predictions are batched by the --workers (default: {serving.DEFAULT_THREADS})")
    serve.add_argument("--max-body-mb", type=float, default=serving.DEFAULT_MAX_BODY_BYTES / 1024**2,
                       metavar="N", help="largest request body in MiB (default: "
                       f"{serving.DEFAULT_MAX_BODY_BYTES / 1024**2:g})")
    serve.add_argument("--max-rows", type=int, default=serving.DEFAULT_MAX_ROWS, metavar="N",
                       help=f"most rows per request (default: {serving.DEFAULT_MAX_ROWS})")
    serve.add_argument("--max-text-chars", type=int, default=serving.DEFAULT_MAX_TEXT_CHARS, metavar="N",
                       help=f"longest text value in characters (default: {serving.DEFAULT_MAX_TEXT_CHARS})")
    serve.add_argument("--connection-limit", type=int, default=serving.DEFAULT_CONNECTION_LIMIT,
                       metavar="N", help="open connections kept, idle ones included (default: "
                       f"{serving.DEFAULT_CONNECTION_LIMIT})")
    serve.add_argument("--channel-timeout", type=int, default=serving.DEFAULT_CHANNEL_TIMEOUT,
                       metavar="S", help="seconds before an inactive connection is closed (default: "
                       f"{serving.DEFAULT_CHANNEL_TIMEOUT})")
    serve.add_argument("--workers", type=int, default=serving.DEFAULT_WORKERS, metavar="N",
                       help="inference workers, each predicting one batch of requests at a time "
                       f"(default: one per CPU, at most {serving.MAX_DEFAULT_WORKERS})")
    serve.add_argument("--max-batch-rows", type=int, default=serving.DEFAULT_MAX_BATCH_ROWS, metavar="N",
                       help=f"most rows predicted as one batch (default: {serving.DEFAULT_MAX_BATCH_ROWS})")
    serve.add_argument("--max-wait-ms", type=float, default=serving.DEFAULT_MAX_WAIT_MS, metavar="MS",
                       help="how long a worker waits for more requests to join its batch, "
                       "only while other requests are in the server "
                       f"(default: {serving.DEFAULT_MAX_WAIT_MS:g})")
    serve.add_argument("--queue-size", type=int, default=serving.DEFAULT_QUEUE_SIZE, metavar="N",
                       help="requests waiting for a worker before the server answers 503 "
                       f"(default: {serving.DEFAULT_QUEUE_SIZE})")
    serve.add_argument("--request-timeout", type=float, default=serving.DEFAULT_REQUEST_TIMEOUT,
                       metavar="S", help="seconds a request waits for its answer before the "
                       f"server answers 503 (default: {serving.DEFAULT_REQUEST_TIMEOUT:g})")
    serve.add_argument("--torch-threads", type=int, default=None, metavar="N",
                       help="torch threads of each worker (default: the CPUs shared between "
                       "the workers)")
    serve.add_argument("--runtime", choices=("auto", "torch", "onnx"), default="auto",
                       help="what computes the predictions: ONNX Runtime on the model exported at start-up "
                       "(2-3x faster on a CPU; needs the onnx extra), torch, or auto: ONNX Runtime when the "
                       "extra is installed and the model exports, else torch (default: auto)")
    serve.add_argument("--trust", action="store_true", help=TRUST_HELP)
    _add_cache_options(serve)
    serve.set_defaults(handler=_cmd_serve)

    demo = commands.add_parser(
        "demo", help="run the end-to-end demo on a synthetic multimodal dataset",
        description="Generate a synthetic dataset (PNG images, texts, WAV clips, numbers), "
        "cross-validate the full pipeline against each modality alone, print a table of "
        "accuracy and macro F1 (also written to results.csv), and save the fitted pipeline.",
    )
    demo.add_argument("--output-dir", metavar="DIR", help="where the demo writes its files")
    demo.add_argument("--n-samples", type=int, metavar="N", help="rows in the synthetic dataset")
    demo.add_argument("--cv", type=int, metavar="K", help="cross-validation folds")
    demo.add_argument("--random-state", type=int, metavar="SEED", help="seed (default: 0)")
    demo.add_argument("--verbose", type=int, metavar="LEVEL", help="verbosity (default: 1)")
    demo.set_defaults(handler=_cmd_demo)
    return parser
