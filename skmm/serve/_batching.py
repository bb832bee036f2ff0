"""Dynamic micro-batching: requests that arrive together are predicted as one batch.

A server thread per request running its own small torch forward makes the threads fight for the
cores; production model servers (Triton, TorchServe, Ray Serve) queue the requests instead and let
a few inference workers run what has gathered as one batch. :class:`MicroBatcher` does this for
any ``predict(frame) -> list`` function: :meth:`MicroBatcher.submit` queues one request's rows
and blocks until its own slice of the batch's answers is back.
"""

import contextlib
import math
import queue
import threading
import time
from concurrent.futures import Future

__all__ = ["BatcherBusy", "MicroBatcher"]


class BatcherBusy(Exception):
    """The batcher cannot take or finish the request now (queue full, timed out, shut down).

    ``retry_after`` is a suggested wait in whole seconds before trying again.
    """

    def __init__(self, message, retry_after=1):
        super().__init__(message)
        self.retry_after = retry_after


class _Job:
    __slots__ = ("frame", "future", "deadline")

    def __init__(self, frame, deadline):
        self.frame = frame
        self.future = Future()
        self.deadline = deadline  # time.monotonic() when nobody waits for the answer any more


def _check_count(name, value, *, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"{name}={value!r}: expected an integer of at least {minimum}; "
            f"pass e.g. {name}={max(minimum, 1)}."
        )


def _check_seconds(name, value, *, allow_zero):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not allow_zero):
        expected = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{name}={value!r}: expected {expected}.")


class MicroBatcher:
    """Queue requests and predict the ones that arrive together as one batch.

    Parameters
    ----------
    predict : callable
        ``predict(frame)`` returns one answer per row of the DataFrame ``frame``
        (a sequence that supports slicing, such as a list).
    max_batch_rows : int, default=8
        Most rows in one batch. A request with more rows than this runs alone.
    max_wait_ms : float, default=2.0
        How long a worker that holds a request waits for more to join its batch,
        at most. It waits only while other requests are in the server (see
        :meth:`handling`), so a lone client's request never waits. 0 runs what
        has already been queued.
    workers : int, default=1
        Inference threads, each running one batch at a time.
    queue_size : int, default=64
        Requests waiting at most; :meth:`submit` refuses more with :class:`BatcherBusy`.
    timeout : float, default=30.0
        Seconds :meth:`submit` waits for its answer before giving up with :class:`BatcherBusy`
        (a request still queued then is dropped, not predicted).
    n_threads : int or None, default=None
        torch intra-op threads of each worker while it predicts (see
        :func:`skmm._threads.torch_threads`); None leaves torch's setting alone.

    Notes
    -----
    If predicting a batch raises, each of its requests is predicted again alone, so that only
    the request at fault gets the error. Workers start with the first request;
    :meth:`close` (or leaving a ``with`` block) stops them.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmm.serve._batching import MicroBatcher
    >>> def predict(frame):
    ...     if (frame["x"] < 0).any():
    ...         raise ValueError("negative x")
    ...     return list(frame["x"] * 10)
    >>> with MicroBatcher(predict, max_batch_rows=8, max_wait_ms=5) as batcher:
    ...     batcher.submit(pd.DataFrame({"x": [1, 2]}))
    [10, 20]
    >>> MicroBatcher(predict, max_batch_rows=0)
    Traceback (most recent call last):
    ...
    ValueError: max_batch_rows=0: expected an integer of at least 1; pass e.g. max_batch_rows=1.
    """

    def __init__(self, predict, *, max_batch_rows=8, max_wait_ms=2.0, workers=1, queue_size=64,
                 timeout=30.0, n_threads=None):
        _check_count("max_batch_rows", max_batch_rows)
        _check_seconds("max_wait_ms", max_wait_ms, allow_zero=True)
        _check_count("workers", workers)
        _check_count("queue_size", queue_size)
        _check_seconds("timeout", timeout, allow_zero=False)
        if n_threads is not None and n_threads != -1:
            _check_count("n_threads", n_threads)
        self.predict = predict
        self.max_batch_rows = max_batch_rows
        self.max_wait_ms = max_wait_ms
        self.workers = workers
        self.queue_size = queue_size
        self.timeout = timeout
        self.n_threads = n_threads
        self._queue = queue.Queue(maxsize=queue_size)
        self._threads = []
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()
        self._handling = 0  # requests in the server: being read, queued, predicted or answered
        self._handling_lock = threading.Lock()

    # ----------------------------------------------------------------------- public

    @contextlib.contextmanager
    def handling(self):
        """Count one request as in the server for the block (read, checked, submitted, answered).

        A worker holding a batch waits for more requests (at most ``max_wait_ms``) only while
        others are in the server: under concurrent load its batch fills up with requests
        being read or about to be sent again, while a lone client's request runs at once.
        """
        with self._handling_lock:
            self._handling += 1
        try:
            yield
        finally:
            with self._handling_lock:
                self._handling -= 1

    @property
    def requests_in_server(self):
        """How many requests are inside :meth:`handling` blocks now."""
        return self._handling

    def submit(self, frame):
        """Predict the rows of ``frame`` within a batch; return their answers, in order.

        Raises
        ------
        BatcherBusy
            The queue is full, the answer took longer than ``timeout``, or the batcher is closed.
        Exception
            Whatever ``predict`` raised on this request's rows alone.
        """
        if self._stopping.is_set():
            raise BatcherBusy("the server is shutting down; send the request again later.")
        self._start()
        job = _Job(frame, time.monotonic() + self.timeout)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise BatcherBusy(
                f"the server is busy: {self.queue_size} requests are already waiting (the "
                "server's --queue-size); send the request again after the Retry-After seconds."
            ) from None
        try:
            return job.future.result(timeout=self.timeout)
        except TimeoutError:
            job.future.cancel()  # still queued: never predicted; already running: answer dropped
            raise BatcherBusy(
                f"no answer within {self.timeout:g} s (the server's --request-timeout): the server "
                "is overloaded; send the request again later.",
                retry_after=max(1, math.ceil(self.timeout / 2)),
            ) from None

    def close(self, timeout=10.0):
        """Stop the workers (a batch already running finishes); refuse queued requests."""
        self._stopping.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        self._refuse_queued()

    @property
    def running(self):
        """Whether any worker thread is alive."""
        return any(thread.is_alive() for thread in self._threads)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # ----------------------------------------------------------------------- workers

    def _start(self):
        if self._threads:
            return
        with self._start_lock:
            if self._threads:
                return
            threads = [
                threading.Thread(target=self._work, name=f"skmm-batcher-{i}", daemon=True)
                for i in range(self.workers)
            ]
            for thread in threads:
                thread.start()
            self._threads = threads

    def _refuse_queued(self):
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(
                    BatcherBusy("the server is shutting down; send the request again later.")
                )

    def _next(self, timeout):
        try:
            return self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _next_for_batch(self, deadline, batched):
        """A queued request, or one queued before ``deadline`` while requests other than the
        ``batched`` ones are in the server (see :meth:`handling`)."""
        job = self._next(0)
        while job is None and self._handling > batched and time.monotonic() < deadline:
            job = self._next(min(deadline - time.monotonic(), 0.001))
        return job

    def _work(self):
        from .._threads import torch_threads

        held = None  # a request that did not fit in the previous batch
        with torch_threads(self.n_threads):
            while not self._stopping.is_set():
                first = held or self._next(0.1)
                held = None
                if first is None:
                    continue
                batch, rows = [first], len(first.frame)
                deadline = time.monotonic() + self.max_wait_ms / 1000
                while rows < self.max_batch_rows:
                    job = self._next_for_batch(deadline, len(batch))
                    if job is None:
                        break
                    if rows + len(job.frame) > self.max_batch_rows:
                        held = job
                        break
                    batch.append(job)
                    rows += len(job.frame)
                self._run([job for job in batch if job.future.set_running_or_notify_cancel()])
        if held is not None and held.future.set_running_or_notify_cancel():
            held.future.set_exception(
                BatcherBusy("the server is shutting down; send the request again later.")
            )

    def _run(self, jobs):
        from ..io import decoding_deadline

        if len(jobs) > 1:
            import pandas as pd

            frame = pd.concat([job.frame for job in jobs], ignore_index=True)
            try:
                # decoding stops once no request of the batch waits for its answer any more
                with decoding_deadline(max(job.deadline for job in jobs)):
                    answers = self.predict(frame)
                if len(answers) != len(frame):
                    raise RuntimeError(f"predict gave {len(answers)} answers for {len(frame)} rows")
            except Exception:  # noqa: BLE001 - retried one request at a time below
                pass
            else:
                start = 0
                for job in jobs:
                    stop = start + len(job.frame)
                    job.future.set_result(answers[start:stop])
                    start = stop
                return
        for job in jobs:  # one request, or a batch that failed: each alone, its own error
            try:
                with decoding_deadline(job.deadline):
                    job.future.set_result(self.predict(job.frame))
            except BaseException as exc:  # noqa: BLE001 - handed to the request's thread
                job.future.set_exception(exc)
