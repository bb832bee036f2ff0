"""Progress of long work on stderr: a tqdm bar in a terminal or a notebook, a few plain lines in a log.

A bar redrawn many times a second is what a terminal shows well; written to a file, a CI log or the
"Out:" block of a documentation gallery it becomes hundreds of lines that bury the results. Where
the output is not a terminal, :func:`progress` prints instead one plain line at each quarter of the
work (and none at all for work done within ``delay`` seconds).
"""

import sys
import time

__all__ = ["PlainProgress", "progress"]


def _interactive(stream):
    if "ipykernel" in sys.modules:  # a notebook: tqdm draws a widget
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress(total, *, desc, unit, disable=False, delay=1.0, leave=False, initial=0, file=None):
    """A progress bar over ``total`` units: tqdm in a terminal, :class:`PlainProgress` otherwise.

    Both have ``update(n)``, ``set_postfix(dict, refresh=False)`` and ``close()``.
    """
    file = sys.stderr if file is None else file
    if not disable and not _interactive(file):
        return PlainProgress(total, desc=desc, unit=unit, delay=delay, initial=initial, file=file)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=disable, delay=delay, leave=leave,
                initial=initial, file=file)


class PlainProgress:
    """Progress as a few plain lines: one at each quarter of the work, after ``delay`` seconds.

    Parameters
    ----------
    total : int
        Units of work.
    desc, unit : str
        What is done, and in what units.
    delay : float, default=1.0
        Nothing is printed before the work has run this long.
    lines : int, default=4
        Lines printed over the whole work at most (evenly spaced), the last one when it ends.
    initial : int, default=0
        Units already done.
    file : file object, default=sys.stderr

    Examples
    --------
    >>> import io
    >>> from skmm._progress import PlainProgress
    >>> out = io.StringIO()
    >>> bar = PlainProgress(8, desc="encoding", unit="row", delay=0, file=out)
    >>> for _ in range(8):
    ...     bar.update(1)
    >>> bar.close()
    >>> len(out.getvalue().splitlines())
    4
    """

    def __init__(self, total, *, desc, unit, delay=1.0, lines=4, initial=0, file=None):
        self.total, self.desc, self.unit, self.delay = total, desc, unit, delay
        self.count, self.postfix = initial, {}
        self.file = sys.stderr if file is None else file
        self.start = time.monotonic()
        self.step = max(1, -(-total // max(1, lines)))
        self.next = (initial // self.step + 1) * self.step

    def update(self, n=1):
        self.count += n
        if self.count >= self.next and self.count < self.total:
            self.next = (self.count // self.step + 1) * self.step
            self._line()

    def set_postfix(self, values, refresh=False):
        self.postfix = dict(values)

    def close(self):
        if self.count >= self.total and self.count > 0:
            self._line()
        self.next = float("inf")

    def _line(self):
        elapsed = time.monotonic() - self.start
        if elapsed < self.delay:
            return
        share = self.count / self.total if self.total else 1.0
        text = f"{self.desc}: {self.count}/{self.total} {self.unit}s ({share:.0%}) in {elapsed:.0f} s"
        if 0 < share < 1:
            text += f", about {elapsed * (1 - share) / share:.0f} s left"
        if self.postfix:
            text += ", " + ", ".join(f"{key} {value}" for key, value in self.postfix.items())
        print(text, file=self.file, flush=True)
