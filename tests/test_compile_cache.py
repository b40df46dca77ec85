"""The persistent compilation cache: a rerun loads its executables instead of compiling
them, books that time apart (compile_cached_s, compile_cache_hits), gets the same numbers,
and the switch turns it off. Each run is its own process: JAX decides once per process
whether it uses the cache."""
import importlib.util
import json
import shutil
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.runner.files import HOST
from tests.conftest import ROOT

ARGS = ["run", "--no-report", "--workloads", "rosenbrock-2d", "--optimizers", "adam", "--steps", "20",
        "--seeds", "1"]


def run(out, cache, *extra, env=None):
    environment = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    environment.update(PYTHONPATH=str(ROOT), OPTBENCH_CACHE=str(cache), **(env or {}))
    done = subprocess.run([sys.executable, "-m", "bench.cli", *ARGS, "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=300, env=environment)
    assert done.returncode == 0, done.stderr[-2000:]
    return pd.read_parquet(out / "runs.parquet").iloc[0], done.stderr


ORPHAN = f".jit_run-abc-cache.{HOST}.{2**31 - 1}.1.tmp"  # a pid above any system's largest
RUNNING = f".jit_run-abc-cache.{HOST}.{os.getpid()}.1.tmp"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compile-cache")
    cache = root / "cache"
    first = run(root / "first", cache)
    for name in (ORPHAN, RUNNING):  # what a writer killed mid-write left; one still writing
        (cache / "jax" / name).write_bytes(b"part of an entry")
    second = run(root / "second", cache)
    off = run(root / "off", cache, "--no-compile-cache")
    off_by_env = run(root / "off-env", cache, env={"OPTBENCH_COMPILE_CACHE": "off"})
    return root, cache, first, second, off, off_by_env


def test_a_rerun_loads_every_executable_and_books_it_apart(runs):
    root, cache, (first, _), (second, stderr), *_ = runs
    assert any((cache / "jax").iterdir())  # under $OPTBENCH_CACHE, never elsewhere
    assert first["compile_cache_hits"] == 0 and first["compile_s"] > 0
    assert first["compile_cached_s"] == 0
    assert second["compile_cache_hits"] == second["compiles"] == first["compiles"]
    assert second["compile_s"] == 0 and second["compile_cached_s"] > 0
    assert "from the cache" in stderr  # the cell's line says where its executables came from
    # the rerun removed the temporary of a writer that is gone, kept the running one's
    assert not (cache / "jax" / ORPHAN).exists() and (cache / "jax" / RUNNING).exists()
    for column in ("final_val_loss", "final_test_loss", "best_target"):  # same programs
        assert second[column] == first[column]
    manifest = json.loads((root / "second" / "manifest.json").read_text())
    assert manifest["provenance"]["compile_cache"] == str(cache / "jax")


def test_the_switch_compiles_everything_afresh(runs):
    root, _, (first, _), _, (off, _), (off_by_env, _) = runs
    for row in (off, off_by_env):
        assert row["compile_cache_hits"] == 0 and row["compile_cached_s"] == 0
        assert row["compile_s"] > 0 and row["compiles"] == first["compiles"]
        np.testing.assert_equal(row["final_val_loss"], first["final_val_loss"])
    manifest = json.loads((root / "off" / "manifest.json").read_text())
    assert manifest["provenance"]["compile_cache"] == "off"


def test_a_cache_folder_that_cannot_be_made_is_one_warning_and_the_run_goes_on(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    row, stderr = run(tmp_path / "out", blocker)
    assert "warning: no compilation cache" in stderr and "Traceback" not in stderr
    assert row["compile_cache_hits"] == 0 and row["compile_s"] > 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["provenance"]["compile_cache"].startswith("off (")  # not the folder's path


def test_a_cache_folder_that_is_not_utf8_is_one_warning_and_the_run_goes_on(tmp_path):
    """XLA takes the cache's path as UTF-8: an $OPTBENCH_CACHE in other bytes (a name made
    under another locale) failed every cell with a TypeError from inside JAX."""
    cache = tmp_path / os.fsdecode(b"cache\xff")
    row, stderr = run(tmp_path / "out", cache)
    assert stderr.count("warning") == 1, stderr
    assert "no compilation cache (" in stderr and "not a valid UTF-8 path" in stderr
    assert row["status"] == "done" and row["compile_cache_hits"] == 0 and row["compile_s"] > 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    recorded = manifest["provenance"]["compile_cache"]
    assert recorded.startswith("off (")
    assert recorded.endswith("cache\\xff/jax: not a valid UTF-8 path, which JAX needs)")


@pytest.mark.skipif(importlib.util.find_spec("filelock") is not None,
                    reason="JAX's size-limited cache works where filelock is installed")
def test_a_cache_jax_cannot_use_is_one_warning_even_with_jax_told_directly(tmp_path):
    """JAX_COMPILATION_CACHE_DIR alone turns JAX's cache on: giving up on it must turn it off,
    or JAX warns again at the first compile. A size limit needs filelock, which JAX imports
    only then."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for env in ({"JAX_COMPILATION_CACHE_DIR": str(blocker / "jax")},
                {"JAX_COMPILATION_CACHE_MAX_SIZE": "100000"}):
        row, stderr = run(tmp_path / f"out-{len(env)}-{sorted(env)[0]}", tmp_path / "cache",
                          env=env)
        assert stderr.count("warning") == 1, stderr
        assert "warning: no compilation cache" in stderr
        assert "Error reading persistent compilation cache" not in stderr
        assert row["compile_cache_hits"] == 0 and row["compile_s"] > 0
    assert not (tmp_path / "cache" / "jax").exists()


def test_a_switch_that_is_neither_on_nor_off_is_one_line_before_anything_runs(tmp_path,
                                                                             monkeypatch):
    from tests.conftest import optbench_here

    monkeypatch.setenv("OPTBENCH_COMPILE_CACHE", "of")  # a typo: it would have stayed on
    out = tmp_path / "run"
    result = optbench_here(*ARGS, "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "optbench: error: OPTBENCH_COMPILE_CACHE='of' is neither on nor off; set it to off (or"
        " 0, false, no) to compile everything afresh, or to on (or 1, true, yes, or unset it)"
        " to use the cache"]
    assert not out.exists()
    monkeypatch.setenv("OPTBENCH_COMPILE_CACHE", " OFF ")  # case and spaces are forgiven
    from bench.train import compile_cache
    assert compile_cache.switch_problem() is None and not compile_cache.enabled()


def test_a_truncated_entry_is_compiled_again_and_rewritten_whole(runs, tmp_path):
    """What a kill or a full disk mid-write left behind before entries were written whole:
    JAX would warn on every run and compile that program every time, for good. The module's
    runs are done, so their cache is damaged in place (a cache's keys hold its folder's
    path: a copy elsewhere would only miss)."""
    _, cache, (first, _), *_ = runs
    entries = sorted((cache / "jax").glob("*-cache"))
    assert entries
    for entry in entries:
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    healed, stderr = run(tmp_path / "healed", cache)
    assert "Error reading persistent compilation cache" not in stderr and "Traceback" not in stderr
    assert healed["compile_cache_hits"] == 0 and healed["compile_s"] > 0
    assert healed["final_val_loss"] == first["final_val_loss"]
    again, _ = run(tmp_path / "again", cache)
    assert again["compile_cache_hits"] == again["compiles"] and again["compile_s"] == 0
    assert sorted((cache / "jax").glob("*-cache")) == entries  # the same entries, whole
    assert {p.name for p in (cache / "jax").glob(".*.tmp")} <= {RUNNING}  # a writer's still


def test_an_entry_that_cannot_be_loaded_is_compiled_again_and_rewritten(runs, tmp_path):
    """Worse than truncated: a folder (or a link to one) in an entry's place fails to read,
    and whole, well-compressed bytes that are no executable fail to deserialize. JAX warned
    about each on every run and never wrote them again."""
    from jax._src.compilation_cache import compress_executable

    _, cache, (first, _), *_ = runs
    entries = sorted((cache / "jax").glob("*-cache"))
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "kept").mkdir(parents=True)
    for i, entry in enumerate(entries):
        entry.unlink()
        if i % 3 == 0:
            (entry / "inside").mkdir(parents=True)
        elif i % 3 == 1:
            entry.symlink_to(elsewhere, target_is_directory=True)
        else:
            entry.write_bytes(compress_executable(b"not an executable" * 64))
    healed, stderr = run(tmp_path / "healed", cache)
    assert "Error reading persistent compilation cache" not in stderr and "Traceback" not in stderr
    assert "warning" not in stderr
    assert healed["compile_cache_hits"] == 0 and healed["compile_s"] > 0
    assert healed["final_val_loss"] == first["final_val_loss"]
    again, _ = run(tmp_path / "again", cache)
    assert again["compile_cache_hits"] == again["compiles"] and again["compile_s"] == 0
    assert all(entry.is_file() and not entry.is_symlink() for entry in entries)
    assert (elsewhere / "kept").is_dir()  # a link goes, never what it points to


def test_entries_are_guarded_on_this_jax_and_a_full_disk_is_one_warning(tmp_path, monkeypatch,
                                                                        capsys):
    """guard_entries reaches into jax._src: this fails when a JAX release moves what it needs."""
    from jax._src import compilation_cache as jax_cache
    from jax._src.lru_cache import LRUCache

    from bench.train import cache_entries

    assert cache_entries.guard_entries()
    guarded = cache_entries.WholeEntries.around(LRUCache(str(tmp_path), max_size=-1))
    assert isinstance(guarded, cache_entries.WholeEntries)
    assert cache_entries.WholeEntries.around(guarded) is guarded
    whole = jax_cache.compress_executable(b"an executable")
    guarded.put("key", whole)
    assert guarded.get("key") == whole and guarded.get("missing") is None
    (tmp_path / "bad-cache").write_bytes(whole[:5])  # half an entry, as a kill leaves it
    assert guarded.get("bad") is None and not (tmp_path / "bad-cache").exists()

    def full(*_, **__):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_entries.WholeEntries, "_write_failed", False)
    monkeypatch.setattr(cache_entries, "open", full, raising=False)  # before the builtin
    guarded.put("other", whole)
    guarded.put("third", whole)
    err = capsys.readouterr().err
    assert err.count("warning: cannot write the compilation cache (No space left on device)") == 1
    assert not (tmp_path / "other-cache").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key-cache"]


def test_starting_the_kept_test_cache_over_removes_only_its_entries(tmp_path, monkeypatch):
    """OPTBENCH_TEST_COMPILE_CACHE may name a folder that holds more than the cache (a typo,
    $HOME): past the limit, the whole folder was removed, whatever it held."""
    from tests import conftest

    kept = tmp_path / "kept"
    (kept / "precious").mkdir(parents=True)
    (kept / "precious" / "notes.txt").write_text("mine")
    (kept / "big.iso").write_bytes(b"x" * 100)
    monkeypatch.setattr(conftest, "KEPT_CACHE_LIMIT", 50)
    monkeypatch.setenv("OPTBENCH_TEST_COMPILE_CACHE", str(kept))
    assert conftest._test_compile_cache() == str(kept)  # only entries count: none yet
    for name in ("jit_a-0f-cache", "jit_a-0f-atime", ".jit_b-1e-cache.x1.tmp"):
        (kept / name).write_bytes(b"e" * 30)
    assert conftest._test_compile_cache() == str(kept)
    assert sorted(p.name for p in kept.iterdir()) == ["big.iso", "precious"]
    assert (kept / "precious" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("kept", ["a-file", "   "])
def test_a_kept_test_cache_that_cannot_be_used_is_said_in_the_summary(tmp_path, monkeypatch,
                                                                      kept):
    """A file in its place was printed at conftest import, where pytest swallows it; a blank
    value made a folder named by spaces in the current one."""
    from tests import conftest

    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(conftest, "KEPT_CACHE_PROBLEMS", [])
    monkeypatch.setenv("OPTBENCH_TEST_COMPILE_CACHE", kept)
    used = Path(conftest._test_compile_cache())
    assert used.is_dir() and used.parent != tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]

    class Reporter:
        lines = []

        def write_line(self, line):
            self.lines.append(line)

    conftest.pytest_terminal_summary(Reporter())
    said = Reporter.lines
    if kept.strip():
        assert said == [f"tests: cannot keep compiled programs in {kept} (File exists);"
                        " used a temporary folder"]
    else:
        assert said == []  # blank is none kept, as unset


def test_programs_larger_than_jaxs_size_limit_are_one_warning(tmp_path, monkeypatch, capsys):
    """With JAX_COMPILATION_CACHE_MAX_SIZE below a program's size, JAX warned once per such
    program on every run (its own locked path needs filelock: a stand-in here)."""
    from bench.train import cache_entries

    class Limited:
        path, eviction_enabled, max_size = tmp_path, True, 10

        def __init__(self):
            self.stored = {}

        def put(self, key, value):
            self.stored[key] = value

    monkeypatch.setattr(cache_entries.WholeEntries, "_too_big_said", False)
    base = Limited()
    guarded = cache_entries.WholeEntries.around(base)
    for key in ("a", "b", "c"):
        guarded.put(key, b"x" * 50)
    guarded.put("small", b"x" * 5)
    assert base.stored == {"small": b"x" * 5}
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "larger than the whole compilation cache" in err


def test_an_entry_that_is_not_a_file_reads_as_missing_and_goes(tmp_path):
    """A named pipe in an entry's place made JAX's read wait for ever (a hung run); a folder
    failed to read on every run. In a child process: a regression hangs there, not here."""
    (tmp_path / "elsewhere").mkdir()
    os.mkfifo(tmp_path / "pipe-cache")
    (tmp_path / "folder-cache").mkdir()
    (tmp_path / "link-cache").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "dead-cache").symlink_to(tmp_path / "nowhere")
    code = ("import sys\nfrom jax._src.lru_cache import LRUCache\n"
            "from bench.train.cache_entries import WholeEntries\n"
            "cache = WholeEntries.around(LRUCache(sys.argv[1], max_size=-1))\n"
            "print([cache.get(key) for key in ('pipe', 'folder', 'link', 'dead')])")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[None, None, None, None]"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_optbench_cache_is_the_default_not_the_current_folder(tmp_path, monkeypatch,
                                                                      blank):
    """OPTBENCH_CACHE= made Path(""), the current folder: a jax/ folder appeared wherever
    optbench was started."""
    from bench.train import compile_cache

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("OPTBENCH_CACHE", blank)
    assert compile_cache.folder() == tmp_path / "optbench" / "jax"


@pytest.mark.parametrize("where", ["gs://bucket/jax-cache", "file:///tmp/x", "s3://b/c"])
def test_a_cache_jax_was_given_as_a_url_is_off_and_makes_no_local_folder(tmp_path, monkeypatch,
                                                                         where):
    """JAX takes JAX_COMPILATION_CACHE_DIR=gs://bucket/... (a bucket); optbench made it a
    local path, gs:/bucket/..., created it in the current folder and filled it, and the
    manifest named that mangled path as the cache."""
    from bench.train import compile_cache

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", where)
    recorded = compile_cache.describe()
    assert recorded.startswith(f"off ({where}: ") and "not a local folder" in recorded
    assert list(tmp_path.iterdir()) == []
