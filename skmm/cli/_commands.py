"""The commands: ``fit``, ``predict``, ``report``, ``export``, ``serve`` and ``demo``, one function each.

Each takes the parsed arguments and returns the exit status; pandas, scikit-learn and torch load
inside the command that needs them.
"""

import sys

from ._input import (
    CLIError,
    _check_numbers,
    _fmt,
    _parse_fine_tuning,
    _parse_models,
    _parse_overrides,
    _print_kinds,
    _read_csv,
    _set_per_column,
    _set_on_error,
    _whole_numbers_as_int,
)
from ._signals import _Signals


def _cmd_fit(args):
    from sklearn.pipeline import Pipeline

    from ..classifier import MultimodalClassifier
    from ..infer import column_kinds, fusion_from_kinds, resolve_paths

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
    fusion = _set_per_column(fusion, kinds, _parse_models(args.model), "model", "model")
    fusion = _set_per_column(fusion, kinds, _parse_fine_tuning(args.fine_tune), "fine-tune", "fine_tune")
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

    from ..persistence import save

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
            _encode_once(pipeline.named_steps["fusion"], X, y)
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
        from ..report import write_report

        # scored on a stratified hold-out by a clone of the pipeline (the encodings are cached)
        page = write_report(clone(pipeline), X, y, args.report, random_state=args.random_state)
        print(f"Report written to {page}")
    return 0


def _encode_once(fusion, X, y):
    """Every row of ``X`` through every encoder of ``fusion`` once, into the cache.

    A frozen encoder caches its embeddings; a fine-tuned one only the
    activations of its frozen blocks, since its top trains anew in each fold.
    """
    from sklearn.base import clone

    from ..encoders._finetune import cache_frozen_blocks

    frozen = clone(fusion)
    for name, encoder, columns in fusion.transformers:
        if getattr(encoder, "fine_tune", None) is not None:
            cache_frozen_blocks(encoder, X[columns])
            frozen.set_params(**{name: "drop"})
    if any(not (isinstance(encoder, str) and encoder == "drop") for _, encoder, _ in frozen.transformers):
        frozen.fit_transform(X, y)


def _load_model(args):
    """The pipeline and metadata of ``args.model``, with ``--trust`` and ``--on-error`` applied."""
    from ..persistence import load

    pipeline, metadata = load(args.model, trusted=args.trust, return_metadata=True)
    _set_on_error(pipeline, args.on_error)
    return pipeline, metadata


def _model_input(df, metadata, data, base_dir):
    """The columns of ``df`` the model needs (an error names those missing), numbers checked,
    file paths resolved against ``base_dir``."""
    from ..infer import resolve_paths

    columns = metadata["input_columns"]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise CLIError(
            f"{data} lacks column(s) {missing} that the model needs; expected columns: {columns}."
        )
    X = _check_numbers(df[columns], metadata["kinds"], data)
    return resolve_paths(X, metadata["kinds"], base_dir)


def _cmd_report(args):
    from ..report import write_report

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
    from ..onnx import export_onnx

    pipeline, _ = _load_model(args)
    print(f"Exporting {args.model} to ONNX ...", file=sys.stderr)
    folder = export_onnx(pipeline, args.out, overwrite=args.overwrite)
    graphs = sorted(path.name for path in folder.glob("*.onnx"))
    print(f"Exported to {folder}: {', '.join(graphs)} and manifest.json (which column feeds which graph).")
    return 0


def _cmd_serve(args):
    from ..serve import serve

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
        from ..demo import run_demo
    except ImportError as exc:
        raise CLIError(f"the demo is not available in this installation ({exc}).") from None
    options = {
        name: getattr(args, name)
        for name in ("output_dir", "n_samples", "cv", "random_state", "verbose")
        if getattr(args, name) is not None
    }
    run_demo(**options)
    return 0
