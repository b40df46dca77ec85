"""The local executor prepares the next program while the current one trains
(bench/runner/local.py): the overlap happens, the numbers are those of a run without it,
and a program whose preparation fails fails its own cells only."""
import threading

import numpy as np
import pytest

from bench.runner import local
from bench.runner.executors import Limits


def programs(optimizers: list[str], steps: int = 20):
    import optimizers as registry
    from bench.plan import expand
    from bench.plan import matrix as matrix_mod

    registry.load_builtins()
    matrix = matrix_mod.from_dict(
        {"seeds": 2, "steps": steps, "optimizers": optimizers,
         "workloads": [{"name": "synthetic-mlp", "eval_every": 10}]}, name="ahead", source="test")
    return expand.programs(expand.cells(matrix))


def results(programs_, ahead: bool):
    return list(local.run_local(programs_, None, Limits(compile_ahead=ahead)))


def test_the_next_program_is_prepared_while_the_current_one_trains(monkeypatch):
    planned = programs(["optax:sgd", "optax:adam"])
    second_prepared = threading.Event()
    prepare, train = local.prepare, local.train
    order = []

    def watched_prepare(program, *args, **kwargs):
        done = prepare(program, *args, **kwargs)
        if program == planned[1]:
            second_prepared.set()
        return done

    def watched_train(prepared, *args, **kwargs):
        if prepared.program == planned[0]:
            # the second program's preparation ends while the first has not trained yet;
            # the timeout only turns a missing overlap into a failure instead of a hang
            order.append(("second prepared before the first trained",
                          second_prepared.wait(timeout=300)))
        return train(prepared, *args, **kwargs)

    monkeypatch.setattr(local, "prepare", watched_prepare)
    monkeypatch.setattr(local, "train", watched_train)
    done = results(planned, ahead=True)
    assert order == [("second prepared before the first trained", True)]
    assert [r.seeds[0].status.value for _, r in done] == ["done", "done"]


def test_compiling_ahead_changes_no_number():
    planned = programs(["optax:sgd", "optax:adam", "lion"])
    ahead, after = results(planned, ahead=True), results(planned, ahead=False)
    assert [c.id for c, _ in ahead] == [c.id for c, _ in after]
    for (_, a), (_, b) in zip(ahead, after):
        assert a.curves.keys() == b.curves.keys()
        for column in a.curves.keys() - {"train_seconds"}:  # a clock, not a result
            np.testing.assert_array_equal(a.curves[column], b.curves[column])
        # each program's clocks are its own: preparing it ahead still times its compile
        assert a.timings.compile_s + a.timings.compile_cached_s > 0
        assert a.timings.total_s >= a.timings.train_s + a.timings.setup_s


def test_a_program_that_fails_to_prepare_fails_its_cells_only(monkeypatch):
    planned = programs(["optax:sgd", "optax:adam", "lion"])
    from bench.train import engine

    prepare_program = engine.prepare_program

    def failing(workload, dataset, optimizer, *args, **kwargs):
        if optimizer.name == "optax:adam":
            raise RuntimeError("the model would not build")
        return prepare_program(workload, dataset, optimizer, *args, **kwargs)

    monkeypatch.setattr(engine, "prepare_program", failing)
    done = results(planned, ahead=True)
    assert [(c.optimizer, r.seeds[0].status.value) for c, r in done] == [
        ("optax:sgd", "done"), ("optax:adam", "error"), ("lion", "done")]
    assert "the model would not build" in done[1][1].error


@pytest.mark.parametrize("ahead", [True, False])
def test_bad_user_input_while_preparing_stops_the_run(monkeypatch, ahead):
    from bench.errors import UserError
    from bench.train import engine

    def refusing(*args, **kwargs):
        raise UserError("no such data folder")

    monkeypatch.setattr(engine, "prepare_program", refusing)
    with pytest.raises(UserError, match="no such data folder"):
        results(programs(["optax:sgd", "optax:adam"]), ahead=ahead)


def test_a_run_that_compiled_ahead_says_so_in_its_manifest_and_report(tmp_path):
    import bench
    from bench import cli
    from bench.report import report

    out = tmp_path / "run"
    assert cli.main(["run", "--workloads", "rosenbrock-2d", "--optimizers", "sgd,adam",
                     "--steps", "20", "--seeds", "1", "--compile-ahead", "--no-report",
                     "--out", str(out)]) == 0
    results = bench.load(out)
    assert results.manifest["provenance"]["executor"]["compile_ahead"] is True
    assert any("--compile-ahead" in note for note in report.build(results).notes)
