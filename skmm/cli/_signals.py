"""Ctrl-C and SIGTERM during a command: training stops, nothing half-trained or half-written is saved."""


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
