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

The parts, one module each: ``_input`` (reading the CSV and the options that
set up a pipeline), ``_signals`` (interruptions), ``_commands`` (one function
per command) and ``_parser`` (the arguments and their help).
"""

import os
import sys

from ._input import NA_VALUES, CLIError, _read_csv  # noqa: F401 - NA_VALUES and _read_csv: the CSV rules
from ._parser import _cache_setting, build_parser
from ._signals import _Interrupted, _Signals  # noqa: F401 - _Signals: what interrupts a command

__all__ = ["main"]


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
