"""Ctrl-C during a run, as the main thread sees it.

A Ctrl-C is raised as KeyboardInterrupt in the main thread, wherever it runs Python, and
two places swallow it: JAX's garbage-collection callback (Python prints "Exception ignored
in: <function _xla_gc_callback ...>" and goes on; a newcomer's Ctrl-C went unheeded 4 times
in 7), and a host callback (a plugin's `jax.debug.callback`, which XLA on a CPU runs on the
thread that runs the step, turning the KeyboardInterrupt into the step's runtime error: the
cell would be recorded as failed). `counted()` notes each Ctrl-C, so that the run can tell
such an error from a real one (`since(mark)`) and stop at its next progress event or cell
(`stop_if_since(mark)`), as asked.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading

_seen = 0  # Ctrl-Cs while counted() was in force


def mark() -> int:
    return _seen


def since(earlier: int) -> bool:
    """Whether a Ctrl-C came after `earlier = mark()`."""
    return _seen != earlier


def stop_if_since(earlier: int) -> None:
    """Raise KeyboardInterrupt if a Ctrl-C came after `earlier = mark()`: one that raised
    where it landed has ended the run already, so this is one that was swallowed there."""
    if since(earlier):
        raise KeyboardInterrupt


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

    hook = sys.unraisablehook

    def quiet_about_interrupts(unraisable):  # a swallowed Ctrl-C is acted on, not printed
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):  # as a traceback
            hook(unraisable)

    signal.signal(signal.SIGINT, count_then_handle)
    sys.unraisablehook = quiet_about_interrupts
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = hook


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
