"""A results folder's sessions (bench/runner/sessions.py): each run into a folder is one; the
manifest keeps the set-up of each earlier session that saved cells, and the report and
compare say when the cells shown were trained under different set-ups."""
import json
import os
from datetime import datetime, timedelta, timezone

from bench.report import report, setups
from bench.runner import sessions
from tests.conftest import optbench_here

ARGS = ["--workloads", "rosenbrock-2d", "--steps", "20", "--seeds", "1"]


def _at(when: datetime) -> str:
    return when.isoformat(timespec="microseconds")


def test_an_earlier_session_is_kept_with_the_cells_it_saved(tmp_path):
    start = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    files = []
    for name, offset in (("old", -60), ("new1", 1), ("new2", 30)):
        path = tmp_path / f"{name}.json"
        path.write_text("{}")
        stamp = (start + timedelta(seconds=offset)).timestamp()
        os.utime(path, (stamp, stamp))
        files.append(path)
    existing = {"session_started": _at(start), "host": {"name": "a"}, "config": {"big": 1},
                "earlier_sessions": [{"session_started": "x", "cells_saved": 1}, "junk"]}
    earlier = sessions.earlier_sessions(existing, files)
    assert [s.get("cells_saved") for s in earlier] == [1, 2]  # "junk" is not a session
    assert earlier[-1]["host"] == {"name": "a"} and "config" not in earlier[-1]
    # a session that saved nothing is not one the report needs; an unknown start is kept
    assert sessions.earlier_sessions({**existing, "session_started": _at(start + timedelta(hours=1))},
                                     files) == earlier[:1]
    assert sessions.earlier_sessions({"host": {}}, files) == [{"host": {}, "cells_saved": None}]
    many = {"session_started": _at(start), "earlier_sessions": [{"cells_saved": 1}] * 80}
    assert len(sessions.earlier_sessions(many, files)) == sessions.MOST
    assert sessions.earlier_sessions(None, files) == []
    assert sessions.earlier_sessions({"earlier_sessions": "x", "session_started": 5}, []) \
        == [{"session_started": 5, "cells_saved": None}]


def test_an_interrupted_run_counts_its_own_cells_apart_from_earlier_ones():
    """A --force rerun stopped before any new cell said '2 finished cell(s) saved': the
    folder's cells of the run before it."""
    def line(saved, present, resume=None):
        return sessions.interrupted_line(saved, present, "out", again="rerun it", resume=resume)

    assert line(0, 0) == "interrupted before any cell finished; rerun it to start again"
    assert line(0, 2) == ("interrupted before any cell of this run finished; the 2 cell(s)"
                          " saved there by an earlier run are kept; rerun it to finish the rest")
    assert line(2, 3) == ("interrupted: 2 finished cell(s) saved in out; the 1 cell(s) saved"
                          " there by an earlier run are kept; rerun it to finish the rest")
    assert line(1, 1) == "interrupted: 1 finished cell(s) saved in out; rerun it to finish the rest"


def test_an_interrupted_force_run_suggests_resume_only_where_it_finishes_the_job():
    """--resume in place of --force keeps the earlier run's cells as they are: the one
    suggestion said it would 'finish the rest' of a rerun meant to retrain them, and, for a
    rerun stopped before its first cell, it trained nothing at all."""
    def line(saved, present):
        return sessions.interrupted_line(saved, present, "out", again="rerun it",
                                         resume="resume it")

    assert line(0, 0) == "interrupted before any cell finished; rerun it to start again"
    assert line(0, 2) == ("interrupted before any cell of this run finished; the 2 cell(s)"
                          " saved there by an earlier run are kept; rerun it to start again")
    assert line(2, 2) == "interrupted: 2 finished cell(s) saved in out; resume it to finish the rest"
    assert line(2, 3) == ("interrupted: 2 finished cell(s) saved in out; the 1 cell(s) saved"
                          " there by an earlier run are kept; resume it to train only the"
                          " missing cells (keeping those 1 as they are), or rerun it to retrain"
                          " every cell")


def test_the_cells_a_session_saved_are_its_count_not_the_files_times(tmp_path):
    """Files copied with their times (cp -p, rsync -t) or written under a clock that was
    ahead counted as saved by whichever session came later."""
    start = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    files = []
    for offset in (3600, 7200):  # in the future of the session below
        path = tmp_path / f"{offset}.json"
        path.write_text("{}")
        stamp = (start + timedelta(seconds=offset)).timestamp()
        os.utime(path, (stamp, stamp))
        files.append(path)
    ended = {"session_started": _at(start), "cells_saved": 0}
    assert sessions.saved_by(ended, files) == 0
    assert sessions.saved_by({**ended, "cells_saved": 99}, files) == 2  # a hand edit
    assert sessions.saved_by({**ended, "cells_saved": -1}, files) == 0
    # killed outright, it recorded nothing: the times are all there is
    assert sessions.saved_by({"session_started": _at(start)}, files) == 2
    assert sessions.saved_by({"session_started": _at(start), "cells_saved": True}, files) == 2
    assert sessions.saved_by({}, files) is None
    assert sessions.earlier_sessions(ended, files) == []  # it saved none


def _manifest(executor="local", compile_ahead=False, cpu="CPU A", **extra):
    return {"host": {"cpu_model": cpu, "cores": 2, "cpus": 2},
            "device": {"platform": "cpu", "kind": "cpu", "count": 1},
            "provenance": {"executor": {"name": executor, "workers": 1,
                                        "compile_ahead": compile_ahead}}, **extra}


def test_sessions_set_up_differently_are_one_note_naming_what_differed():
    same = _manifest(earlier_sessions=[{**_manifest(), "cells_saved": 3}])
    assert setups.sessions_note(same) is None and setups.sessions_note(_manifest()) is None
    mixed = _manifest(compile_ahead=True, earlier_sessions=[
        {**_manifest(cpu="CPU <b>B</b>"), "cells_saved": 3}, {**_manifest(), "cells_saved": 1},
        "junk", {**_manifest(executor="processes"), "cells_saved": True}])
    note = setups.sessions_note(mixed)
    assert note.startswith("This run's cells were trained in 4 sessions set up differently")
    assert "session 1 (3 cell files): CPU model CPU <b>B</b>, executor local, compile ahead off" in note
    assert "session 2 (1 cell file): CPU model CPU A" in note
    assert "session 3: CPU model CPU A, executor processes" in note  # a bool is no count
    assert "the last session: CPU model CPU A, executor local, compile ahead on" in note
    assert setups.sessions_note({"earlier_sessions": [None, 3]}) is None


def test_a_cpu_split_into_devices_is_how_a_run_ran_not_another_machine():
    """OPTBENCH_CPU_DEVICES splits one CPU into several XLA devices: compare called two runs
    on one machine, one split and one not, 'different machines'. A GPU count stays the
    machine's."""
    split = _manifest(device={"platform": "cpu", "kind": "cpu", "count": 2})
    notes = setups.setup_notes(["a", "b"], [_manifest(), split])
    assert notes == ["The runs ran differently: CPU devices: a 1 vs b 2. Speed ratios compare"
                     " these as much as the code."]
    gpus = [_manifest(device={"platform": "gpu", "kind": "H100", "count": n}) for n in (1, 8)]
    [note] = setups.setup_notes(["a", "b"], gpus)
    assert note.startswith("Speed ratios between different machines (device: a gpu H100 x1 vs"
                           " b gpu H100 x8")


def test_a_resume_set_up_differently_is_noted_in_the_report_and_compare(tmp_path):
    out = tmp_path / "run"
    assert optbench_here("run", *ARGS, "--optimizers", "adam", "--no-report",
                         "--out", str(out)).returncode == 0
    resumed = optbench_here("run", *ARGS, "--optimizers", "adam,sgd", "--resume",
                            "--compile-ahead", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    [earlier] = manifest["earlier_sessions"]
    assert earlier["cells_saved"] == 1 and earlier["session_started"] < manifest["session_started"]
    assert earlier["provenance"]["executor"]["compile_ahead"] is False
    report = (out / "report.md").read_text()
    assert ("session 1 (1 cell file): compile ahead off; the last session: compile ahead on"
            in report)
    compared = optbench_here("compare", str(out), str(out), "--out", str(tmp_path / "cmp"))
    assert compared.returncode == 0, compared.stderr
    assert "This run's cells were trained in 2 sessions" in compared.stdout + compared.stderr
    # resumed again without --compile-ahead, with nothing left to train: the cells' sessions
    # are still the two; it read "3 sessions", the last one "compile ahead off"
    idle = optbench_here("run", *ARGS, "--optimizers", "adam,sgd", "--resume", "--out", str(out))
    assert idle.returncode == 0, idle.stderr
    after = json.loads((out / "manifest.json").read_text())
    assert after["provenance"]["executor"]["compile_ahead"] is True and after["cells_saved"] == 1
    assert after["earlier_sessions"] == manifest["earlier_sessions"]
    assert after["session_started"] == manifest["session_started"]
    assert setups.sessions_note(after) == setups.sessions_note(manifest)


def test_a_session_that_saved_no_cell_leaves_the_set_up_of_the_one_that_did():
    first = {**_manifest(cpu="CPU A"), "session_started": "t1", "updated": "u1", "cells_saved": 2}
    current = {**_manifest(cpu="CPU B", executor="processes"), "session_started": "t2",
               "updated": "u2", "config": {"m": 1}, "state": "running",
               "earlier_sessions": [{"cells_saved": 1, "host": {"cpu_model": "CPU 0"}}, first]}
    ended = sessions.ended(current, 0, finished=True)
    assert ended["host"] == first["host"] and ended["provenance"] == first["provenance"]
    assert ended["session_started"] == "t1" and ended["cells_saved"] == 2
    assert ended["updated"] == "u2" and ended["config"] == {"m": 1}  # not a set-up
    assert ended["earlier_sessions"] == current["earlier_sessions"][:1]
    alone = {k: v for k, v in current.items() if k != "earlier_sessions"}
    assert "earlier_sessions" not in sessions.ended({**alone, "earlier_sessions": [first]}, 0,
                                                    finished=True)
    # a session that saved cells, the only one, or one interrupted (its Ctrl-C line counts
    # its own cells from here) keeps its own set-up and says its count
    assert sessions.ended(current, 3, finished=True) == {**current, "cells_saved": 3}
    assert sessions.ended(alone, 0, finished=True) == {**alone, "cells_saved": 0}
    assert sessions.ended(current, 0, finished=False) == {**current, "cells_saved": 0}


def test_a_session_interrupted_before_any_cell_is_not_one_the_cells_were_trained_in():
    """A resume with --compile-ahead stopped by Ctrl-C before a cell finished keeps its own
    set-up and a count of 0 (its Ctrl-C line reads it): the report then said the cells were
    'trained in 2 sessions set up differently', the last 'compile ahead on', and compare and
    the report's header named that session's set-up, though it trained no cell."""
    first = {**_manifest(), "session_started": "t1", "git_commit": "aaa", "cells_saved": 1}
    stopped = {**_manifest(executor="processes", compile_ahead=True), "git_commit": "bbb",
               "session_started": "t2", "state": "interrupted", "cells_saved": 0,
               "earlier_sessions": [first]}
    assert setups.sessions_note(stopped) is None
    assert setups.setup_notes(["a", "b"], [first, stopped]) == []
    assert "commit aaa" in report.provenance(stopped)
    assert sessions.of_cells(stopped)["provenance"] == first["provenance"]
    assert sessions.of_cells(stopped)["state"] == "interrupted"
    # hand-edited sessions that saved none (0, negative) are no sessions of the cells either
    junk = _manifest(compile_ahead=True, earlier_sessions=[
        {**_manifest(), "cells_saved": -3}, {**_manifest(executor="dask"), "cells_saved": 0}])
    assert setups.sessions_note({**junk, "cells_saved": 2}) is None
    assert setups.sessions_note(_manifest(earlier_sessions=[{**_manifest(), "cells_saved": 0}],
                                          cells_saved=0)) is None


def test_a_force_rerun_of_every_cell_leaves_no_earlier_session(tmp_path):
    """--force retrains the folder's cells: the report of a --force --compile-ahead rerun
    said its one cell was 'trained in 2 sessions set up differently', the first of which
    no longer had a cell there."""
    out = tmp_path / "run"
    assert optbench_here("run", *ARGS, "--optimizers", "adam", "--no-report",
                         "--out", str(out)).returncode == 0
    forced = optbench_here("run", *ARGS, "--optimizers", "adam", "--force", "--no-report",
                           "--compile-ahead", "--out", str(out))
    assert forced.returncode == 0, forced.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert "earlier_sessions" not in manifest and manifest["cells_saved"] == 1
    assert setups.sessions_note(manifest) is None
    # one that saved only some of the folder's cells leaves the earlier sessions be
    current = _manifest(earlier_sessions=[{**_manifest(), "cells_saved": 2}])
    assert sessions.ended(current, 1, finished=True, present=3) == {**current, "cells_saved": 1}
    assert sessions.ended(current, 0, finished=False, present=0)["earlier_sessions"]
