"""What the commands read: the CSV, its numeric columns, labels, and the options that set up a pipeline."""

from pathlib import Path

from ..kinds import kind_names


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
    from ..infer import estimators_inside

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


def _parse_per_column(items, option, value_name, examples, check=None):
    """``--OPTION KEY=VALUE`` items as ``{key: value}``; KEY is a kind or a column, ``check`` refuses a value."""
    values = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise CLIError(f"--{option} {item!r}: expected KIND={value_name} or COLUMN={value_name}, e.g. {examples}.")
        if check is not None:
            check(item, value)
        values[key] = value
    return values


def _parse_models(items):
    """``--model KEY=MODEL`` items as ``{key: model}``."""
    return _parse_per_column(
        items, "model", "MODEL",
        "--model text=intfloat/multilingual-e5-small or --model photo=google/vit-base-patch16-224",
    )


def _parse_fine_tuning(items):
    """``--fine-tune KEY=MODE`` items as ``{key: mode}``, MODE one of FineTuning's modes."""
    from ..encoders._finetune import MODES

    def check(item, mode):
        if mode not in MODES:
            raise CLIError(f"--fine-tune {item!r}: expected a mode among {', '.join(MODES)}, found {mode!r}.")

    return _parse_per_column(items, "fine-tune", "MODE", "--fine-tune text=top or --fine-tune photo=lora", check)


def _set_per_column(fusion, kinds, values, option, parameter):
    """Set ``parameter`` of each encoder to what ``--OPTION`` gives its column (first) or its kind.

    An audio column's ``AudioMFCC`` has no model to choose or fine-tune: asked for one, the column
    gets an ``AudioEncoder`` (a pretrained audio model) with the same row settings instead.
    """
    used = set()
    for name, transformer, columns in fusion.transformers:
        names = [columns] if isinstance(columns, str) else list(columns)
        for key in [*names, *{kinds.get(name) for name in names}]:
            if key in values:
                if parameter not in transformer.get_params(deep=False):
                    transformer = _with_a_model(transformer)
                    if transformer is None:
                        raise CLIError(
                            f"--{option} {key}={values[key]}: the encoder of column(s) {names} takes no "
                            f"{parameter} (give --override COLUMN=KIND for another encoder)."
                        )
                    fusion.set_params(**{name: transformer})
                transformer.set_params(**{parameter: values[key]})
                used.add(key)
                break
    unknown = sorted(set(values) - used)
    if unknown:
        raise CLIError(
            f"--{option} {unknown[0]}=...: {unknown[0]!r} is neither a column with an encoder nor the kind "
            f"of one; the columns and kinds are {kinds}."
        )
    return fusion


def _with_a_model(encoder):
    """An ``AudioEncoder`` in place of an ``AudioMFCC``, with its row settings; None for any other encoder."""
    from ..encoders import AudioEncoder, AudioMFCC

    if not isinstance(encoder, AudioMFCC):
        return None
    return AudioEncoder(max_duration=encoder.max_duration, cache=encoder.cache, on_error=encoder.on_error,
                        verbose=encoder.verbose)


def _print_kinds(kinds, target, stream):
    width = max(len(str(c)) for c in kinds) if kinds else 0
    print(f"Inferred column kinds (target: {target}):", file=stream)
    for column, kind in kinds.items():
        print(f"  {str(column):<{width}}  {kind}", file=stream)


def _fmt(scores):
    return f"{scores.mean():.3f} ± {scores.std():.3f}"
