"""Ctrl-C during a run, as the main thread sees it.

A Ctrl-C is raised as KeyboardInterrupt in the main thread, wherever it runs Python. When
that is inside a host callback (a plugin's `jax.debug.callback` or `io_callback`, which XLA
on a CPU calls from the thread that runs the step), XLA turns it into a runtime error of the
step: the cell would be recorded as failed and the run would go on, as if the user had not
asked it to stop. `counted()` notes each Ctrl-C, so that the executor can tell such an error
from a real one (`since(mark)`) and stop as asked.
"""
from __future__ import annotations

import contextlib
import signal
import threading

_seen = 0  # Ctrl-Cs while counted() was in force


def mark() -> int:
    return _seen


def since(earlier: int) -> bool:
    """Whether a Ctrl-C came after `earlier = mark()`."""
    return _seen != earlier


@contextlib.contextmanager
def counted():
    """Inside, a Ctrl-C does what the handler in force did (raise KeyboardInterrupt, as a
    rule; a notebook's own handler is kept) and is counted. Main thread only: Python runs
    signal handlers there, and nowhere else may set them."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield  # ignored, or the system's default: nothing to count on the way
        return

    def count_then_handle(signum, frame):
        global _seen
        _seen += 1
        previous(signum, frame)

    signal.signal(signal.SIGINT, count_then_handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def ignored():
    """SIGINT ignored inside (main thread only, where Python handles signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
