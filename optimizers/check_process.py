"""`optbench check`'s isolation: each optimizer's conformance checks (optimizers/conformance.py)
run in a spawned child process, so that one that hangs is stopped after a time limit and one
that crashes the process fails its check instead of the command."""
from __future__ import annotations

import multiprocessing
import signal
import time
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp

from optimizers.conformance import CheckResult, iter_checks, raised


def run_checks_isolated(names: Sequence[str], plugins: Sequence = (),
                        timeout: float = 120.0) -> Iterator[tuple[str, list[CheckResult]]]:
    """(name, results) for each of `names`, in order, checked in a spawned child process
    that loads the built-ins and `plugins` (PluginSource, as the caller loaded them). An
    optimizer whose checks run past `timeout` seconds (from when the child starts on it)
    is stopped: the check it was in fails, and a fresh child takes the rest."""
    context = multiprocessing.get_context("spawn")  # fork would copy JAX's threads
    pending = list(names)
    while pending:
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_check_child, args=(send, pending, tuple(plugins)),
                                daemon=True)
        _start_quietly(child)
        send.close()  # the child's end: when the child dies, receive sees EOF
        try:
            for name, results in _follow(receive, child, pending, timeout):
                pending.remove(name)
                yield name, results
        finally:
            if child.is_alive():
                child.kill()
            child.join()
            receive.close()


def _follow(receive, child, names: Sequence[str], timeout: float):
    """Read one child's reports; it stops at the end, a hang, or the child's death."""
    current, check, results, deadline = None, None, [], None
    while True:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            message = receive.recv() if receive.poll(wait) else None
        except EOFError:  # died: out of memory, a crash in native code
            child.join()
            message = ("died", f"the check process died (exit code {child.exitcode})")
        if message is None:
            message = ("died", f"did not finish within {timeout:g} s (--timeout) and was"
                               " stopped; the remaining checks did not run")
        kind = message[0]
        if kind == "optimizer":
            current, check, results = message[1], None, []
            deadline = time.monotonic() + timeout
        elif kind == "check":
            check = message[1]
        elif kind == "result":
            results.append(message[1])
        elif kind == "done":
            yield current, results
            current, deadline = None, None
        elif kind == "end":
            return
        else:  # "died" or "broken": what was in progress fails, and this child is done
            for name in [current] if current else list(names):
                yield name, [*results, CheckResult(check or "setup", False, message[1])]
                results = []
            return


def _check_child(send, names: Sequence[str], plugins) -> None:
    _ignore_interrupts()
    import optimizers
    from optimizers.plugins import sync_plugins

    try:
        optimizers.load_builtins()
        sync_plugins(plugins)
        jax.block_until_ready(jnp.zeros(()))  # start the backend before any clock runs
    except Exception as exc:  # noqa: BLE001  loaded in the caller, so this is rare
        send.send(("broken", f"the check process could not load the plugins: {exc}"))
        return
    for name in names:
        send.send(("optimizer", name))
        try:
            for result in iter_checks(optimizers.get(name),
                                      starting=lambda check: send.send(("check", check))):
                send.send(("result", result))
        except Exception as exc:  # noqa: BLE001  outside any check: building it from its defaults
            failure = CheckResult("setup", False, raised(exc))
            send.send(("result", failure))
        send.send(("done",))
    send.send(("end",))


# A Ctrl-C is for the parent, which stops the child: SIGINT stays blocked from the child's
# start until it ignores it (as bench/runner/executors.py `interrupts_held` does for workers;
# optimizers never import bench).
def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _start_quietly(process) -> None:
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
