"""Executors and plugins under a hostile user: long-lived Dask workers and edited plugins,
malformed scheduler addresses, one plugin named many ways, plugin paths that are not Python
files, Ctrl-C under worker processes, optimizers that hang in `optbench check`, compile time
and --cell-timeout, and errors raised inside jit. Every wait here is on an event the test
controls (a file, a process's exit), never on a sleep."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, interruptible, run_optbench, wait_for

SMOKE = ["--preset", "smoke", "--steps", "20", "--seeds", "1", "--no-report"]  # no test here reads a report


def plugin(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text("import optax\nimport jax\nfrom optimizers import register\n\n" + body)
    return path


SGD = '''
@register("{name}")
def factory(learning_rate: float = 0.1):
    return optax.sgd(learning_rate * {scale})
'''


def statuses(out: Path) -> dict[str, set[str]]:
    return pd.read_parquet(out / "runs.parquet").groupby("optimizer")["status"].agg(set).to_dict()


# 1. Long-lived Dask workers run the code the driver sees.

@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster


def test_a_long_lived_dask_worker_runs_edited_and_new_plugins(tmp_path, dask_cluster):
    edited = plugin(tmp_path, "edited", SGD.format(name="hx:edited", scale=1))
    address = ["--executor", "dask", "--address", dask_cluster.scheduler_address]
    workers = set(dask_cluster.scheduler_info["workers"])

    first = run_optbench("run", *SMOKE, "--optimizers", "hx:edited", "--plugin", str(edited),
                         *address, "--out", str(tmp_path / "first"))
    assert first.returncode == 0, first.stderr
    assert statuses(tmp_path / "first") == {"hx:edited": {"done"}}
    assert "Dask dashboard: http://" in first.stderr  # the scheduler's, on stderr

    edited.write_text(edited.read_text().replace("* 1)", "* 1e30)"))  # now it diverges
    fresh = plugin(tmp_path, "fresh", SGD.format(name="hx:fresh", scale=1))
    second = run_optbench("run", *SMOKE, "--optimizers", "hx:edited,hx:fresh", "--plugin",
                          str(edited), "--plugin", str(fresh), *address,
                          "--out", str(tmp_path / "second"))
    assert second.returncode == 0, second.stderr
    assert statuses(tmp_path / "second") == {"hx:edited": {"diverged"}, "hx:fresh": {"done"}}
    assert set(dask_cluster.scheduler_info["workers"]) == workers  # the same worker process


def planned(optimizer: str, code_change: dict[str, str] | None = None):
    from bench.plan import expand
    from bench.plan import matrix as matrix_mod

    matrix = matrix_mod.from_dict({"seeds": 1, "steps": 20, "workloads": ["synthetic-mlp"],
                                   "optimizers": [optimizer]}, name="t", source="test")
    cell = expand.cells(matrix)[0]
    if code_change:
        cell = dataclasses.replace(cell, code=tuple(
            (name, code_change.get(name, digest)) for name, digest in cell.code))
    return (cell,)


def test_a_worker_whose_code_or_versions_differ_fails_the_cell_and_says_which():
    from bench.runner.executors import DatasetCache, run_worker_program, worker_code

    program = planned("optax:sgd", {"bench/train/engine.py": "0" * 16})
    [result] = run_worker_program(program, DatasetCache(None), worker_code())
    assert result.seeds[0].status.value == "error"
    assert result.error.startswith("this worker runs other code than the driver planned with:"
                                   " bench/train/engine.py differs")

    code = dataclasses.replace(worker_code(), versions={"jax": "0.0.1"})
    [result] = run_worker_program(planned("optax:sgd"), DatasetCache(None), code)
    assert "jax " in result.error and "(the driver has 0.0.1)" in result.error


# 2. Malformed and unreachable Dask addresses.

@pytest.mark.parametrize("address,problem", [
    ("not a url", "has spaces in it"),
    ("http://x", "uses protocol 'http', which a Dask scheduler does not speak"),
    ("tcp://x", "has no port"),
    ("tcp://host:99999", "has port '99999', not a number from 1 to 65535"),
    ("tcp://:8786", "has no host"),
    ("tcp://host:\u0663", "has port '\u0663', not a number from 1 to 65535"),  # an Arabic 3:
    # str.isdigit and int() take it, a socket does not: it waited out the connect timeout
])
def test_a_malformed_dask_address_is_one_line(address, problem, capsys):
    from bench import cli

    assert cli.main(["run", *SMOKE, "--executor", "dask", "--address", address]) == 2
    err = capsys.readouterr().err
    assert err == (f"optbench: error: --address '{address}' {problem}; expected a Dask scheduler"
                   " address PROTOCOL://HOST:PORT (tcp, tls, ws, wss, ucx), e.g."
                   " tcp://10.0.0.5:8786\n")


@pytest.mark.parametrize("listening", [False, True], ids=["refused", "silent-listener"])
def test_an_unreachable_scheduler_is_one_line_within_the_connect_timeout(tmp_path, listening):
    pytest.importorskip("dask.distributed")
    with socket.socket() as port:  # held by this test: bound (refuses) or listening (silent)
        port.bind(("127.0.0.1", 0))
        if listening:
            port.listen(1)
        address = f"tcp://127.0.0.1:{port.getsockname()[1]}"
        result = subprocess.run(
            [sys.executable, "-m", "bench.cli", "run", *SMOKE, "--executor", "dask",
             "--address", address, "--out", str(tmp_path / "out")],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT),
                 "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        f"optbench: error: cannot reach the Dask scheduler at {address}:")
    assert result.stderr.rstrip().endswith("check the address and that the scheduler is running")


# 3. One plugin named many ways loads once, in the driver and in workers.

def test_loading_a_plugin_again_by_any_path_is_a_no_op_until_it_changes(tmp_path, monkeypatch):
    from optimizers import plugins, registry

    path = plugin(tmp_path, "twice", SGD.format(name="hx:twice", scale=1))
    (tmp_path / "link.py").symlink_to(path)
    monkeypatch.chdir(tmp_path)
    try:
        names = [plugins.load_plugin_file(p) for p in
                 (path, "twice.py", "link.py", f"../{tmp_path.name}/twice.py")]
        assert names == [["hx:twice"]] * 4
        first = registry.get("hx:twice").factory
        path.write_text(path.read_text().replace("* 1)", "* 2)"))
        assert plugins.load_plugin_file("link.py") == ["hx:twice"]
        assert registry.get("hx:twice").factory is not first  # edited: the new code replaced it
        assert [s.path for s in plugins.loaded_sources()].count(str(path.resolve())) == 1
    finally:
        plugins.unload_plugin(str(path.resolve()))


@pytest.mark.parametrize("executor", ["local", "processes"])
def test_the_same_plugin_from_the_matrix_a_flag_and_a_symlink_runs_cleanly(tmp_path, executor):
    path = plugin(tmp_path, "dup", SGD.format(name="hx:dup", scale=1))
    (tmp_path / "link.py").symlink_to(path)
    matrix = tmp_path / "m.toml"
    matrix.write_text(f'name = "dup"\nseeds = 1\nsteps = 20\nworkloads = ["synthetic-mlp"]\n'
                      f'optimizers = ["hx:dup"]\nplugins = ["{path}"]\n')
    result = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", str(matrix), "--no-report", "--plugin", "dup.py",
         "--plugin", "link.py", "--plugin", f"../{tmp_path.name}/dup.py",
         "--executor", executor, "--out", str(tmp_path / "out")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "error" not in result.stderr
    assert statuses(tmp_path / "out") == {"hx:dup": {"done"}}


# 4. A plugin path that is not a readable .py file: one true line.

def _fifo(tmp_path):
    os.mkfifo(tmp_path / "pipe.py")
    return (tmp_path / "pipe.py", "plugin {p} is a named pipe (FIFO), not a regular file;"
            " expected a Python file (.py)")


def _directory(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "mine.py").write_text("")
    return (tmp_path / "plugins", "plugin {p} is a directory; expected a Python file (.py) that"
            " registers optimizers (it holds mine.py: name each one)")


def _not_python(tmp_path):
    (tmp_path / "notes.txt").write_text("")
    return tmp_path / "notes.txt", "plugin {p} is not a Python file: expected a name ending in .py"


def _dangling_link(tmp_path):
    (tmp_path / "gone.py").symlink_to(tmp_path / "deleted.py")
    return (tmp_path / "gone.py",
            f"plugin {{p}} is a symbolic link to {tmp_path / 'deleted.py'}, which does not exist")


def _unreadable(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    (tmp_path / "secret.py").write_text("")
    (tmp_path / "secret.py").chmod(0)
    return (tmp_path / "secret.py", "plugin file {p} cannot be read (Permission denied);"
            " check its permissions")


@pytest.mark.parametrize("make", [_fifo, _directory, _not_python, _dangling_link, _unreadable])
def test_a_plugin_path_that_is_not_a_python_file_is_one_true_line(make, tmp_path, capsys):
    from bench import cli

    path, message = make(tmp_path)
    assert cli.main(["list", "optimizers", "--plugin", str(path)]) == 2
    assert capsys.readouterr().err == f"optbench: error: {message.format(p=path)}\n"


# 5. Ctrl-C under worker processes: the driver alone reports it.

BLOCKS = '''
import time
from pathlib import Path

STARTED, RELEASE = Path({started!r}), Path({release!r})

def _wait(_):
    STARTED.touch()  # the cell is training: the test may send its Ctrl-C now
    deadline = time.monotonic() + 300  # a bound, in case the test dies first
    while not RELEASE.exists() and time.monotonic() < deadline:
        time.sleep(0.05)

@register("hx:blocks")
def blocks(learning_rate: float = 0.1):
    def update(grads, state, params=None):
        jax.debug.callback(_wait, jax.tree.leaves(grads)[0])
        return grads, state
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)
'''


@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_ctrl_c_under_worker_processes_stops_quietly_with_exit_130(tmp_path, executor):
    if executor == "dask":
        pytest.importorskip("dask.distributed")
    started = tmp_path / "started"
    path = plugin(tmp_path, "blocks", BLOCKS.format(started=str(started),
                                                     release=str(tmp_path / "never")))
    process = subprocess.Popen(interruptible(
        [sys.executable, "-m", "bench.cli", "run", *SMOKE, "--optimizers", "hx:blocks,optax:sgd",
         "--plugin", str(path), "--executor", executor, "--workers", "2",
         "--out", str(tmp_path / "out")]),
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(started, process)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal does: the whole process group
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    saved = len(list((tmp_path / "out" / "cells").glob("*.json")))  # optax:sgd may be
    assert (f"interrupted: {saved} finished cell(s) saved in" if saved else  # done or not
            "interrupted before any cell finished; rerun the same command") in stderr


def test_ctrl_c_while_dask_programs_send_progress_is_quiet(tmp_path):
    """Ctrl-C while both workers' programs stream progress events (one per step): the
    scheduler, in this process, must not forward one to the client that is leaving; it
    would log that as CRITICAL with a traceback."""
    pytest.importorskip("dask.distributed")
    process = subprocess.Popen(interruptible(
        [sys.executable, "-m", "bench.cli", "run", "--set",
         'workloads=[{name = "rosenbrock-2d", eval_every = 1}]', "--optimizers", "adam,sgd",
         "--steps", "100000", "--seeds", "1", "--no-report", "--executor", "dask",
         "--workers", "2", "--out", str(tmp_path / "out")]),
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen = []
    for line in process.stderr:  # until a program reports its steps: events are flowing
        seen.append(line)
        if ": step " in line:
            break
    else:
        pytest.fail("".join(seen))
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "CRITICAL" not in stderr, stderr


def test_ctrl_c_before_any_cell_finished_says_so_and_offers_no_report(tmp_path):
    started, release, out = tmp_path / "started", tmp_path / "release", tmp_path / "out"
    path = plugin(tmp_path, "blocks", BLOCKS.format(started=str(started), release=str(release)))
    with_report = [a for a in SMOKE if a != "--no-report"]  # unless there is nothing
    process = subprocess.Popen(interruptible(
        [sys.executable, "-m", "bench.cli", "run", *with_report, "--optimizers", "hx:blocks",
         "--plugin", str(path), "--out", str(out)]),
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    wait_for(started, process)
    process.send_signal(signal.SIGINT)
    release.touch()  # the step returns to Python, where the Ctrl-C is raised
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted before any cell finished; rerun the same command" in stderr
    assert "optbench report" not in stderr and not (out / "report.html").exists()
    assert not list((out / "cells").glob("*.json"))


def test_a_ctrl_c_that_a_host_callback_turned_into_an_error_still_stops_the_run(monkeypatch):
    """Ctrl-C inside a plugin's jax.debug.callback is raised there, and XLA reports it as
    the step's error: that error must stop the run, as the Ctrl-C asked, not fail the cell
    (the test above hits this case when its Ctrl-C lands during the callback)."""
    from bench.runner import interrupts, local
    from bench.train import engine

    def a_step_whose_callback_gets_the_ctrl_c(ready, report):
        try:
            signal.raise_signal(signal.SIGINT)  # the callback is running Python
        except KeyboardInterrupt:  # as XLA reports it (its text keeps the traceback's)
            raise RuntimeError("INTERNAL: CpuCallback error calling callback: ..."
                               " KeyboardInterrupt") from None

    def a_step_that_fails(ready, report):
        raise RuntimeError("INTERNAL: CpuCallback error calling callback: ... ValueError")

    prepared = local.Prepared(planned("optax:sgd"), time.perf_counter())
    with interrupts.counted():
        monkeypatch.setattr(engine, "train_prepared", a_step_that_fails)
        [failed] = local.train(prepared)  # a real error: the cell fails, the run goes on
        assert failed.seeds[0].status == "error" and "ValueError" in failed.error
        monkeypatch.setattr(engine, "train_prepared", a_step_whose_callback_gets_the_ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            local.train(prepared)


SWALLOWS = '''
import signal

@register("hx:swallows")
def swallows(learning_rate: float = 0.1):
    try:  # a Ctrl-C that lands where it is swallowed, as in JAX's gc callback (Python
        signal.raise_signal(signal.SIGINT)  # prints "Exception ignored" and goes on)
    except KeyboardInterrupt:
        pass
    return optax.sgd(learning_rate)
'''


def test_a_ctrl_c_swallowed_where_it_landed_still_stops_the_run(tmp_path):
    """4 Ctrl-Cs in 7 were lost so, and the run went on to exit 0."""
    path = plugin(tmp_path, "swallows", SWALLOWS)
    result = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", *SMOKE, "--optimizers", "optax:sgd,hx:swallows",
         "--plugin", str(path), "--out", str(tmp_path / "out")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 130, result.stderr
    assert "interrupted: 1 finished cell(s) saved in" in result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    runs = pd.read_parquet(tmp_path / "out" / "runs.parquet")
    assert list(runs["optimizer"].unique()) == ["optax:sgd"]


def test_stop_if_since_raises_only_for_a_ctrl_c_after_its_mark():
    from bench.runner import interrupts

    with interrupts.counted():
        began = interrupts.mark()
        interrupts.stop_if_since(began)  # none yet: nothing happens
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:  # swallowed where it landed
            pass
        with pytest.raises(KeyboardInterrupt):
            interrupts.stop_if_since(began)
        interrupts.stop_if_since(interrupts.mark())  # a later mark: nothing since


# 6. `optbench check --timeout`: a hang is a failed row, and the rest are still checked.

HANGS_AND_EXITS = '''
import os
import threading

NEVER = threading.Event()

@register("hx:hangs")
def hangs(learning_rate: float = 0.1):
    def update(grads, state, params=None):
        NEVER.wait()  # forever, while jit traces the update
        return grads, state
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)

@register("hx:exits")
def exits(learning_rate: float = 0.1):
    def update(grads, state, params=None):
        os._exit(3)  # a crash that takes the process with it
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)
'''


def test_check_stops_a_hanging_optimizer_at_its_timeout_and_goes_on(tmp_path):
    path = plugin(tmp_path, "faulty", HANGS_AND_EXITS)
    result = run_optbench("check", "hx:hangs", "hx:exits", "--plugin", str(path),
                          "--timeout", "5")
    assert result.returncode == 1, result.stderr
    out = " ".join(result.stdout.split())  # the table wraps long details
    assert "did not finish within 5 s (--timeout) and was stopped" in out
    assert "hx:hangs: 1 of 1 checks failed: jit" in out
    assert "the check process died (exit code 3)" in out  # a fresh child got to it
    assert "hx:exits: 1 of 1 checks failed: jit" in out
    assert "Traceback" not in result.stderr


# 7. --cell-timeout: preparation (data, tracing, compiling) and training have their own clocks.

PHASES = '''
import os
import time
from pathlib import Path

FOLDER = Path({folder!r})
CLOCK = FOLDER / "clock"


def wait_for(name):
    """Until the file `name` exists: the driver made it (see the test)."""
    deadline = time.monotonic() + 300  # a bound, in case the test dies first
    while not (FOLDER / name).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def advance(value, then_wait_for=None):
    """Move the driver's virtual clock to `value`; then wait until `then_wait_for` exists."""
    if value > (float(CLOCK.read_text()) if CLOCK.exists() else 0.0):
        (FOLDER / "clock.tmp").write_text(str(value))
        os.replace(FOLDER / "clock.tmp", CLOCK)
    if then_wait_for:
        wait_for(then_wait_for)


def once_the_driver_saw(phase, name, then):
    """`then()` once the driver has booked the phase's start: a clock moved before it reads
    the phase's message would start the phase's clock at the moved value (never timing out)."""
    def step():
        wait_for(f"{{phase}}-{{name}}")
        then()
    return step


def identity_with(on_trace=None, on_step=None):
    def update(grads, state, params=None):
        if on_trace:
            on_trace()
        if on_step:
            jax.debug.callback(lambda _: on_step(), jax.tree.leaves(grads)[0])
        return grads, state
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def compiling_takes_60_s():
    advance(0, "seen-0")  # the driver has started its preparation clock at 0
    advance(60)


@register("hx:slow_compile")
def slow_compile(learning_rate: float = 0.1):
    # compiling takes 60 s and training 60 s: each under the 100 s limit, not together
    return identity_with(on_trace=compiling_takes_60_s, on_step=once_the_driver_saw(
        "train", "hx:slow_compile", lambda: advance(120, "seen-120")))


@register("hx:hangs_training")
def hangs_training(learning_rate: float = 0.1):
    return identity_with(on_step=once_the_driver_saw(
        "train", "hx:hangs_training", lambda: advance(10_000, "never")))


@register("hx:hangs_compiling")
def hangs_compiling(learning_rate: float = 0.1):
    return identity_with(on_trace=once_the_driver_saw(
        "data", "hx:hangs_compiling", lambda: advance(20_000, "never")))
'''


def test_cell_timeout_clocks_preparation_and_training_apart(tmp_path):
    """A virtual clock the plugin moves: the driver reads it, and the plugin waits until the
    driver has read a value before going on (files 'seen-<value>'), or has booked the start
    of a phase (files '<phase>-<optimizer>', from the progress events a worker sends after
    each phase's message), so no step races. (hx:hangs_training moved the clock before the
    driver had read its 'training' message on a loaded machine: the test hung.)"""
    import optimizers
    from bench.runner.executors import Limits
    from bench.runner.processes import run_processes
    from optimizers import plugins

    path = plugin(tmp_path, "phases", PHASES.format(folder=str(tmp_path)))
    optimizers.load_plugin_file(path)

    def clock() -> float:
        value = float((tmp_path / "clock").read_text()) if (tmp_path / "clock").exists() else 0.0
        (tmp_path / f"seen-{value:g}").touch()
        return value

    try:
        programs = [planned(name) for name in
                    ("hx:slow_compile", "hx:hangs_training", "hx:hangs_compiling")]
        def progress(program, event):  # in the driver, after the phase's own message
            (tmp_path / f"{event.phase}-{program[0].optimizer}").touch()

        results = {cell.optimizer: result for cell, result in
                   run_processes(programs, None, Limits(workers=1, cell_timeout=100),
                                 progress=progress, clock=clock)}
    finally:
        plugins.unload_plugin(str(path.resolve()))
    slow = results["hx:slow_compile"]
    assert slow.seeds[0].status.value == "done", slow.error
    assert results["hx:hangs_training"].seeds[0].status.value == "timeout"
    assert results["hx:hangs_training"].error == (
        "its training ran past its time limit of 100 s (--cell-timeout) and was stopped")
    assert results["hx:hangs_compiling"].seeds[0].status.value == "timeout"
    assert results["hx:hangs_compiling"].error == (
        "its preparation (loading data, tracing, compiling) ran past its time limit of 100 s"
        " (--cell-timeout) and was stopped")


# 8. An error raised inside jit is quoted as the optimizer's own exception.

RAISES = '''
@register("hx:raises")
def raises(learning_rate: float = 0.1):
    def update(grads, state, params=None):
        raise ValueError("the update refused these gradients")
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)
'''


def test_an_error_inside_jit_is_quoted_as_its_own_type_and_message(tmp_path):
    path = plugin(tmp_path, "raises", RAISES)
    out = tmp_path / "out"
    result = run_optbench("run", *SMOKE, "--optimizers", "hx:raises", "--plugin", str(path),
                          "--out", str(out))
    assert result.returncode == 1, result.stderr
    summary = "ValueError: the update refused these gradients"
    assert f"synthetic-mlp x hx:raises: error: {summary}\n" in result.stderr
    error = pd.read_parquet(out / "runs.parquet")["error"].iloc[0]
    assert error.splitlines()[-1] == summary
    [cell] = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert cell["error"].startswith("Traceback (most recent call last):")
    assert f'File "{path}", line 9, in update\n    raise ValueError(' in cell["error"]


def test_error_text_ends_in_the_exceptions_own_line():
    from bench.records import error_summary, error_text

    try:
        raise RuntimeError("first line\nsecond line")
    except RuntimeError as raised:
        raised.add_note("a note that Python prints last")
        text, summary = error_text(raised), error_summary(raised)
    assert text.splitlines()[-1] == "RuntimeError: first line" == summary
    assert "Traceback (most recent call last):" in text and "a note that Python prints last" in text
    assert error_summary(KeyError()) == "KeyError"
