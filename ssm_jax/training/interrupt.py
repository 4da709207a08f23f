"""Ctrl-C that lands between training steps, never inside a library call.

A KeyboardInterrupt raised at an arbitrary bytecode can land inside orbax's save (its
asyncio runner, a lock, a thread pool) and leave the process hung. Inside :func:`deferred`,
the first SIGINT only sets a flag; the training loop calls :func:`check` at each step
boundary, which raises the KeyboardInterrupt there. A second SIGINT raises at once (a stuck
process can still be stopped), and a flag still set when the block ends raises on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

_pending = threading.Event()


def _handler(signum, frame):
    if _pending.is_set():
        raise KeyboardInterrupt
    _pending.set()
    if sys.stderr is not None and sys.stderr.isatty():  # os.write: no reentrant buffered I/O
        os.write(sys.stderr.fileno(), b"\nCtrl-C: stopping after this step (again: at once)\n")


@contextlib.contextmanager
def deferred():
    """Defer SIGINT to the next :func:`check` inside the block (main thread only; a no-op
    elsewhere, under another SIGINT handler, or nested inside itself)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    _pending.clear()
    signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    check()


def check() -> None:
    """Raise the KeyboardInterrupt of a SIGINT deferred by :func:`deferred`."""
    if _pending.is_set():
        _pending.clear()
        raise KeyboardInterrupt
