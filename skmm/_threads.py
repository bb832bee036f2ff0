"""A scoped budget of torch CPU threads, shared by training, prediction and encoding.

torch's intra-op thread count is global to the process. Small networks gain nothing from
more than one thread, and on a CPU shared with other work (another process, scikit-learn's
``n_jobs`` folds, a server's request threads) extra threads fight for the same cores and make
each step many times slower. :func:`torch_threads` sets the count for the duration of a block
and restores the caller's setting afterwards.

torch's CPU build uses OpenMP, whose thread count belongs to the calling thread: a budget set
in one thread (a server's worker, a joblib thread) leaves the others alone, and blocks nest.
"""

import contextlib
import contextvars
import os

__all__ = ["available_cpus", "resolve_n_threads", "submit_in_context", "torch_threads"]


def available_cpus():
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def resolve_n_threads(n_threads):
    """Turn an ``n_threads`` parameter into a count: None keeps torch's setting (returns None),
    a positive int is used as is (capped at the available CPUs), -1 means every available CPU."""
    if n_threads is None:
        return None
    if n_threads == -1:
        return available_cpus()
    return max(1, min(int(n_threads), available_cpus()))


@contextlib.contextmanager
def torch_threads(n_threads):
    """Run the block with torch limited to ``n_threads`` intra-op threads (None: leave it alone).

    Examples
    --------
    >>> import torch
    >>> from skmm._threads import torch_threads
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    count = resolve_n_threads(n_threads)
    if count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def submit_in_context(pool, function, *args):
    """``pool.submit(function, *args)``, run in a copy of the caller's context.

    Worker threads do not inherit context variables; the work they do for a
    caller must see the caller's: no paths opened while a server predicts
    (:func:`skmm.io.paths_refused`), the request's deadline
    (:func:`skmm.io.decoding_deadline`).
    """
    return pool.submit(contextvars.copy_context().run, function, *args)
