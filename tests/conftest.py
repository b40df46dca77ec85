import atexit
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# One JAX compilation cache for the whole session, its test processes and the optbench
# processes they start: the same small programs compile once, not once per process. Set
# before any test module imports JAX. Under `make test` it is the folder
# $OPTBENCH_TEST_COMPILE_CACHE (.cache/test-jax), kept between sessions: a program the code
# has not changed loads instead of compiling (a key is the program, JAX and its flags, so an
# edit only misses). Without it, a temporary folder the process that makes it removes.
# `make bench` keeps none (its compile-included figures must compile), and
# tests/test_compile_cache.py and tests/perf/test_overhead.py run optbench without it.
KEPT_CACHE_LIMIT = 2 << 30  # bytes; past this the kept folder starts again empty


def _cache_entries(folder: Path) -> list[Path]:
    """The files JAX's cache (and bench.train.cache_entries' temporary names) put in
    `folder`, and nothing else: the variable may name a folder that holds more (a typo, $HOME),
    and starting over must never remove what the cache did not write."""
    if not folder.is_dir():
        return []
    return [f for f in folder.iterdir() if f.is_file() and not f.is_symlink()
            and (f.name.endswith(("-cache", "-atime")) or
                 (f.name.startswith(".") and f.name.endswith(".tmp")))]


KEPT_CACHE_PROBLEMS: list[str] = []  # said in the session's summary: pytest swallows a
# conftest's output at import, so a print here would leave a slower session unexplained


def _test_compile_cache() -> str:
    kept = os.environ.get("OPTBENCH_TEST_COMPILE_CACHE", "").strip()  # blank: none kept
    if kept:
        folder = Path(kept).resolve()
        try:
            entries = _cache_entries(folder)
            if sum(f.stat().st_size for f in entries) > KEPT_CACHE_LIMIT:
                for entry in entries:  # entries of code long gone pile up: start over
                    entry.unlink(missing_ok=True)
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=folder).close()  # a folder JAX cannot write in
            return str(folder)
        except OSError as exc:  # a file in its place, no room: the session only runs slower
            KEPT_CACHE_PROBLEMS.append(
                f"tests: cannot keep compiled programs in {kept} ({exc.strerror or exc});"
                " used a temporary folder")
    folder = tempfile.mkdtemp(prefix="optbench-tests-jax-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ.update(JAX_COMPILATION_CACHE_DIR=_test_compile_cache(),
                      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


# The files that take longest (measured with --durations, slowest first). `make test` gives
# each of its two workers whole files; pytest-xdist would hand them out by their number of
# tests, most first, which leaves these few-but-slow end-to-end files for last and one worker
# idle while the other finishes them. Longest first keeps both busy to the end. A stale list
# costs only time.
SLOWEST_FILES = ["test_resilience.py", "test_plugins.py", "test_identity.py",
                 "test_new_workloads.py", "test_executor_hardening.py", "test_compile_cache.py",
                 "test_hardening.py", "test_engine.py", "test_schedules.py",
                 "perf/test_sweep_speed.py", "perf/test_engine_speed.py", "test_tuning.py"]


def pytest_terminal_summary(terminalreporter):
    for line in KEPT_CACHE_PROBLEMS:
        terminalreporter.write_line(line)


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the order below
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0].removeprefix("tests/")
        return SLOWEST_FILES.index(path) if path in SLOWEST_FILES else len(SLOWEST_FILES)
    items.sort(key=rank)  # stable: tests keep their order within a file


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Generated datasets go to a per-session folder, never the user's cache."""
    os.environ["OPTBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.pop("OPTBENCH_DATA", None)


def interruptible(argv: list[str]) -> list[str]:
    """`argv` started with SIGINT's default restored, as a terminal starts it: a test runner
    may ignore SIGINT (pytest-xdist's workers do), an ignored signal stays ignored across
    exec, and Python then installs no KeyboardInterrupt handler, so a test that sends SIGINT
    would test nothing. A small Python resets it and execs `argv` (no preexec_fn: forking a
    multithreaded JAX process to run Python in the child can deadlock)."""
    reset = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL);"
             " os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", reset, *argv]


def wait_for(path: Path, process: subprocess.Popen, limit: float = 300) -> None:
    """Until `path` exists (written by the code under test); fails if the process ends first."""
    deadline = time.monotonic() + limit
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)  # polls an event the test controls; decides nothing by time


def run_optbench(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: a separate process, its exit code and both streams."""
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def optbench_here(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`bench.cli.main(args)` in this process, its streams captured, shaped like
    `run_optbench`'s answer: for checks of what a command does with its arguments and its
    folders. A new process costs ~3 s here before it does anything (`optbench list
    optimizers`: imports, the registry, JAX's start-up), more on a loaded machine. Keep
    `run_optbench` where the process itself is under test (signals, locks, plugins loaded
    into a fresh registry, stray lines on stderr from libraries)."""
    from bench import cli

    out, err, previous = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd or ROOT)  # relative paths mean what they mean to run_optbench
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(["optbench", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One run of the smoke preset (2 optimizers x 2 seeds on synthetic data), shared."""
    from bench import cli

    out = tmp_path_factory.mktemp("runs") / "smoke"
    assert cli.main(["run", "--preset", "smoke", "--out", str(out)]) == 0
    return out
