"""The ``skmm`` command line: fit a model on a CSV, predict, serve it over HTTP, run the demo.

::

    skmm fit data.csv --target label --cv 5 --out model.skmm
    skmm predict model.skmm new.csv --out predictions.csv
    skmm serve model.skmm --port 8000
    skmm report model.skmm test.csv --target label --out report.html
    skmm demo

Paths in file columns of a CSV (image, audio, any kind of :mod:`skmm.kinds`
that reads files) are resolved relative to the CSV's folder. Errors go to
stderr with a non-zero exit status.

Only the standard library and the light kind registry load with this module;
pandas, scikit-learn and torch load inside the command that needs them, so
``skmm --help`` stays fast.
"""

import argparse
import contextlib
import os
import sys
from pathlib import Path

from .kinds import kind_names
from .serve import _limits as serving  # the server's defaults (Flask loads only to serve)

__all__ = ["main"]


class CLIError(Exception):
    """A user error: printed without a traceback."""


# --------------------------------------------------------------------------- helpers


#: the only cells read as missing: empty ones. "NA", "null", "None", "nan" stay texts.
NA_VALUES = ("",)


def _read_csv(path):
    """The CSV at ``path`` and its folder; a blank line is a row of missing values, kept in place."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise CLIError(f"data file not found: {str(path)!r}")
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=list(NA_VALUES),
                         skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read {str(path)!r} as CSV: {exc}") from None
    if df.empty:
        raise CLIError(f"{str(path)!r} has no rows.")
    return df, path.resolve().parent


def _check_numbers(df, kinds, path):
    """Numeric columns of ``df`` as floats; a non-number or an infinite value is a CLIError naming it."""
    import numpy as np
    import pandas as pd

    df = df.copy()
    for column, kind in kinds.items():
        if kind != "numeric" or column not in df.columns:
            continue
        numbers = pd.to_numeric(df[column], errors="coerce").astype(float)
        bad = (numbers.isna() & df[column].notna()) | np.isinf(numbers)
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            row = int(df.index[position])  # read_csv numbers the data rows from 0
            raise CLIError(
                f"{path}: column {column!r}, data row {row + 1} (line {row + 2}): "
                f"{str(df[column].iloc[position])[:60]!r} is not a finite number; the column is "
                "numeric (fix the value, or leave the cell empty for a missing value)."
            )
        df[column] = numbers
    return df


def _whole_numbers_as_int(labels):
    """Float labels that are all whole numbers (integers read with a blank cell) as int64."""
    import numpy as np

    if labels.dtype.kind == "f" and np.isfinite(labels).all() and (labels == labels.round()).all():
        return labels.astype(np.int64)
    return labels


def _set_on_error(estimator, policy):
    """Set ``on_error`` of every encoder inside ``estimator`` (a fitted pipeline too)."""
    from .infer import estimators_inside

    if policy is None:
        return estimator
    for inner in estimators_inside(estimator):
        if "on_error" in inner.get_params(deep=False):
            inner.set_params(on_error=policy)
    return estimator


def _parse_overrides(items):
    overrides = {}
    kinds = kind_names()
    for item in items or []:
        column, sep, kind = item.rpartition("=")
        if not sep or not column or kind not in kinds:
            raise CLIError(
                f"--override {item!r}: expected COLUMN=KIND with KIND one of {', '.join(kinds)}."
            )
        overrides[column] = kind
    return overrides


def _parse_models(items):
    """``--model KEY=MODEL`` items as ``{key: model}``; KEY is a kind or a column."""
    models = {}
    for item in items or []:
        key, sep, model = item.partition("=")
        if not sep or not key or not model:
            raise CLIError(
                f"--model {item!r}: expected KIND=MODEL or COLUMN=MODEL, e.g. "
                "--model text=intfloat/multilingual-e5-small or --model photo=google/vit-base-patch16-224."
            )
        models[key] = model
    return models


def _set_models(fusion, kinds, models):
    """Give each encoder the model ``--model`` names for its column (first) or its kind."""
    used = set()
    for _, transformer, columns in fusion.transformers:
        names = [columns] if isinstance(columns, str) else list(columns)
        for key in [*names, *{kinds.get(name) for name in names}]:
            if key in models:
                if "model" not in transformer.get_params(deep=False):
                    raise CLIError(
                        f"--model {key}={models[key]}: the {type(transformer).__name__} of column(s) "
                        f"{names} takes no model (give --override COLUMN=KIND for another encoder)."
                    )
                transformer.set_params(model=models[key])
                used.add(key)
                break
    unknown = sorted(set(models) - used)
    if unknown:
        raise CLIError(
            f"--model {unknown[0]}=...: {unknown[0]!r} is neither a column with an encoder nor the kind of "
            f"one; the columns and kinds are {kinds}."
        )
    return fusion


def _print_kinds(kinds, target, stream):
    width = max(len(str(c)) for c in kinds) if kinds else 0
    print(f"Inferred column kinds (target: {target}):", file=stream)
    for column, kind in kinds.items():
        print(f"  {str(column):<{width}}  {kind}", file=stream)


def _fmt(scores):
    return f"{scores.mean():.3f} ± {scores.std():.3f}"


class _Interrupted(Exception):
    """Training was interrupted by a signal; nothing was saved."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class _SignalInterrupt(KeyboardInterrupt):
    """The KeyboardInterrupt that :class:`_Signals` raises.

    A subclass on purpose: when a plain KeyboardInterrupt leaves code run by
    ``exec`` on a string (a dataclass being created during a lazy import, say),
    CPython marks the process to kill itself with SIGINT at exit, whatever the
    exit status, so ``python -m skmm`` would end by the signal instead of 130.
    CPython checks for the exact class, so a subclass keeps the status.
    """


class _Signals:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt, remembering that one came.

    skorch catches a KeyboardInterrupt during training and returns as if
    training had ended; :meth:`check` raises :class:`_Interrupted` afterwards,
    so an interrupted fit never saves an under-trained model. A signal while the
    model is being saved raises inside :func:`skmm.save`, which removes its
    temporary file and leaves any existing model untouched.
    """

    def __init__(self):
        self.received = None
        self.previous = {}

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = self.received or signum
        raise _SignalInterrupt

    def check(self):
        if self.received is not None:
            raise _Interrupted(self.received)

    def __exit__(self, *exc_info):
        import signal

        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if exc_info[0] is not None and issubclass(exc_info[0], KeyboardInterrupt):
            raise _Interrupted(self.received or signal.SIGINT) from None
        return False


# --------------------------------------------------------------------------- commands


def _cmd_fit(args):
    from sklearn.pipeline import Pipeline

    from .classifier import MultimodalClassifier
    from .infer import column_kinds, fusion_from_kinds, resolve_paths

    df, base_dir = _read_csv(args.data)
    if args.target not in df.columns:
        raise CLIError(
            f"--target {args.target!r} is not a column of {args.data}; columns: {list(df.columns)}."
        )
    missing_target = df[args.target].isna()
    if missing_target.any():
        print(f"Dropping {int(missing_target.sum())} rows without a target.", file=sys.stderr)
        df = df.loc[~missing_target]  # the index keeps each row's place in the file
        df[args.target] = _whole_numbers_as_int(df[args.target])
    if df.empty:
        raise CLIError(f"{args.data}: no row has a value in the target column {args.target!r}.")
    overrides = _parse_overrides(args.override)
    kinds = column_kinds(df, args.target, overrides=overrides, base_dir=base_dir)
    _print_kinds(kinds, args.target, sys.stdout)
    fusion = _set_on_error(fusion_from_kinds(kinds), args.on_error)  # overrides are in kinds
    fusion = _set_models(fusion, kinds, _parse_models(args.model))
    X = _check_numbers(df.drop(columns=args.target), kinds, args.data)
    X = resolve_paths(X, kinds, base_dir)
    y = df[args.target]
    classifier = MultimodalClassifier(
        fusion=args.fusion, device=args.device, random_state=args.random_state,
        **({"max_epochs": args.max_epochs} if args.max_epochs is not None else {}),
    )
    pipeline = Pipeline([("fusion", fusion), ("clf", classifier)])

    with _Signals() as signals:
        return _fit_and_save(args, pipeline, X, y, kinds, signals)


def _fit_and_save(args, pipeline, X, y, kinds, signals):
    """Cross-validate and fit ``pipeline``, then save it, unless a signal came meanwhile."""
    import time
    import warnings

    import numpy as np
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_validate

    from .persistence import save

    if args.cv is not None:
        smallest = int(y.value_counts().min())
        if args.cv < 2 or args.cv > smallest:
            raise CLIError(
                f"--cv {args.cv}: expected between 2 and {smallest} folds (the smallest class "
                "has that many rows)."
            )
        # every row encoded once, up front: the folds and the final fit then read the cache, so
        # each fold takes as long as the next and the time left said after the first is right
        print(f"Encoding the {len(X)} rows once (the folds and the final fit reuse them) ...",
              file=sys.stderr, flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the final fit shows them
            clone(pipeline.named_steps["fusion"]).fit_transform(X, y)
        signals.check()
        folds = StratifiedKFold(args.cv, shuffle=True, random_state=args.random_state)
        scores, start = {"test_accuracy": [], "test_f1_macro": []}, time.monotonic()
        for number, (train, test) in enumerate(folds.split(X, y), start=1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                fold = cross_validate(
                    pipeline, X, y, cv=[(train, test)], scoring=("accuracy", "f1_macro"), error_score="raise"
                )
            signals.check()
            for name in scores:
                scores[name].append(float(fold[name][0]))
            elapsed = time.monotonic() - start
            left = elapsed / number * (args.cv - number)
            print(f"fold {number}/{args.cv}: accuracy {scores['test_accuracy'][-1]:.3f} "
                  f"({elapsed:.0f} s, about {left:.0f} s left)", file=sys.stderr, flush=True)
        print(
            f"Cross-validated ({args.cv}-fold) accuracy: {_fmt(np.asarray(scores['test_accuracy']))}, "
            f"macro F1: {_fmt(np.asarray(scores['test_f1_macro']))}"
        )
    print(f"Fitting on all {len(X)} rows ...", file=sys.stderr, flush=True)
    pipeline.fit(X, y)
    signals.check()
    out = save(pipeline, args.out, kinds={c: k for c, k in kinds.items() if k != "drop"})
    print(f"Model fitted on {len(X)} rows, classes {list(pipeline.classes_)}; saved to {out}")
    if args.report is not None:
        from .report import write_report

        # scored on a stratified hold-out by a clone of the pipeline (the encodings are cached)
        page = write_report(clone(pipeline), X, y, args.report, random_state=args.random_state)
        print(f"Report written to {page}")
    return 0


def _load_model(args):
    """The pipeline and metadata of ``args.model``, with ``--trust`` and ``--on-error`` applied."""
    from .persistence import load

    pipeline, metadata = load(args.model, trusted=args.trust, return_metadata=True)
    _set_on_error(pipeline, args.on_error)
    return pipeline, metadata


def _model_input(df, metadata, data, base_dir):
    """The columns of ``df`` the model needs (an error names those missing), numbers checked,
    file paths resolved against ``base_dir``."""
    from .infer import resolve_paths

    columns = metadata["input_columns"]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise CLIError(
            f"{data} lacks column(s) {missing} that the model needs; expected columns: {columns}."
        )
    X = _check_numbers(df[columns], metadata["kinds"], data)
    return resolve_paths(X, metadata["kinds"], base_dir)


def _cmd_report(args):
    from .report import write_report

    pipeline, metadata = _load_model(args)
    df, base_dir = _read_csv(args.data)
    if args.target not in df.columns:
        raise CLIError(
            f"--target {args.target!r} is not a column of {args.data}; columns: {list(df.columns)}."
        )
    df = df.loc[df[args.target].notna()]
    X = _model_input(df, metadata, args.data, base_dir)
    y = _whole_numbers_as_int(df[args.target])
    page = write_report(pipeline, X, y, args.out, random_state=args.random_state)
    print(f"Report on {len(X)} rows written to {page}")
    return 0


def _cmd_predict(args):
    import numpy as np
    import pandas as pd

    pipeline, metadata = _load_model(args)
    df, base_dir = _read_csv(args.data)
    X = _model_input(df, metadata, args.data, base_dir)
    output = pd.DataFrame(index=df.index)
    if hasattr(pipeline, "predict_proba"):
        probabilities = np.asarray(pipeline.predict_proba(X), dtype=float)
        bad = np.flatnonzero(~np.isfinite(probabilities).all(axis=1))
        if len(bad):  # never an empty or made-up row (the skmm classifier cannot give these)
            raise CLIError(
                f"the model gave no finite probabilities for data row {bad[0] + 1}; check its "
                "values for numbers far out of the training range."
            )
        classes = np.asarray(pipeline.classes_)
        output["prediction"] = classes[probabilities.argmax(axis=1)]
        for number, label in enumerate(classes):
            output[f"proba_{label}"] = probabilities[:, number]
    else:
        output["prediction"] = pipeline.predict(X)
    if args.out is None:
        output.to_csv(sys.stdout, index=False)
    else:
        output.to_csv(args.out, index=False)
        print(f"Predictions for {len(output)} rows written to {args.out}", file=sys.stderr)
    return 0


def _cmd_export(args):
    from .onnx import export_onnx

    pipeline, _ = _load_model(args)
    print(f"Exporting {args.model} to ONNX ...", file=sys.stderr)
    folder = export_onnx(pipeline, args.out, overwrite=args.overwrite)
    graphs = sorted(path.name for path in folder.glob("*.onnx"))
    print(f"Exported to {folder}: {', '.join(graphs)} and manifest.json (which column feeds which graph).")
    return 0


def _cmd_serve(args):
    from .serve import serve

    if args.threads < 1:
        raise CLIError(f"--threads {args.threads}: expected at least 1.")
    if args.max_body_mb <= 0:
        raise CLIError(f"--max-body-mb {args.max_body_mb}: expected a positive size.")
    for option in ("max_rows", "max_text_chars", "connection_limit", "channel_timeout",
                   "max_batch_rows", "workers", "queue_size"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            raise CLIError(f"--{option.replace('_', '-')} {getattr(args, option)}: expected at least 1.")
    if not 0 <= args.max_wait_ms <= 1000:
        raise CLIError(f"--max-wait-ms {args.max_wait_ms}: expected 0 to 1000 milliseconds.")
    if not args.request_timeout > 0:
        raise CLIError(f"--request-timeout {args.request_timeout}: expected a positive number of seconds.")
    if args.torch_threads is not None and args.torch_threads < 1:
        raise CLIError(f"--torch-threads {args.torch_threads}: expected at least 1.")
    try:
        serve(
            args.model, host=args.host, port=args.port, threads=args.threads,
            max_body_bytes=int(args.max_body_mb * 1024**2), max_rows=args.max_rows,
            max_text_chars=args.max_text_chars, connection_limit=args.connection_limit,
            channel_timeout=args.channel_timeout, trusted=args.trust,
            max_batch_rows=args.max_batch_rows, max_wait_ms=args.max_wait_ms, workers=args.workers,
            queue_size=args.queue_size, request_timeout=args.request_timeout,
            torch_threads=args.torch_threads, runtime=args.runtime,
        )
    except KeyboardInterrupt:
        return 130
    return 0


def _cmd_demo(args):
    try:
        from .demo import run_demo
    except ImportError as exc:
        raise CLIError(f"the demo is not available in this installation ({exc}).") from None
    options = {
        name: getattr(args, name)
        for name in ("output_dir", "n_samples", "cv", "random_state", "verbose")
        if getattr(args, name) is not None
    }
    run_demo(**options)
    return 0


# --------------------------------------------------------------------------- parser


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
    from ._version import __version__

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
    from .cache import default_folder

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

    from .classifier import MultimodalClassifier

    return inspect.signature(MultimodalClassifier).parameters[parameter].default


def build_parser():
    """The argument parser of the ``skmm`` command."""
    from .nn import FUSIONS

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


def main(argv=None):
    """Run the ``skmm`` command line; return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    status : int
        0 on success, 1 on a user error (message on stderr), 2 on bad usage.
    """
    args = build_parser().parse_args(argv)
    try:
        with _cache_setting(args):
            return args.handler(args)
    except _Interrupted as exc:
        print(f"skmm {args.command}: interrupted; nothing was saved.", file=sys.stderr)
        return 128 + int(exc.signum)
    except (CLIError, ValueError, OSError, ImportError) as exc:
        if os.environ.get("SKMM_DEBUG"):
            raise
        message = str(exc)
        if "on_error='missing'" in message:
            message += " (on the command line: --on-error missing)"
        print(f"skmm {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
