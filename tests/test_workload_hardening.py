"""Hostile workload plugins and names: each class of defect found once, checked here.

In-process (no subprocess, no training): registration, names and widths, data loaders,
the model / loss / metric contracts (traced with jax.eval_shape), new-workload's reserved
names. Fast: nothing here compiles a training program.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import workloads
from bench.errors import UserError
from bench.new_workload import write_workload
from bench.train.data import Dataset
from models import MLP
from optimizers.registry import RegistryError
from workloads import Target
from workloads.registry import Workload, WorkloadError


def _data(d=None):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    return Dataset("t", x[:10], x[:10, :1], x[10:20], x[10:20, :1], x[20:], x[20:, :1])


def _mse(p, t):
    return jnp.mean((p - t) ** 2)


def _sums(p, t):
    return {"loss": jnp.sum((p - t) ** 2)}


def _workload(**changes) -> Workload:
    fields = dict(name="hx", data=_data, model=lambda d, r: MLP(4, (8,), 1, rngs=r),
                  target=Target("val_loss", 0.01, "min"), batch_size=8, steps=5, eval_every=5,
                  loss=_mse, metric_sums=_sums, metrics={"loss": "min"})
    return Workload(**{**fields, **changes})


# names: the whole registered name is checked, never only the part before '@w'
@pytest.mark.parametrize("name", ["ab@w<script>alert(1)</script>", "ab@w12", "a" * 101,
                                  "a$b", "a/b", "αβ", ".."])
def test_a_registered_workload_name_is_plain(name):
    with pytest.raises(RegistryError, match="a workload name is") as caught:
        _workload(name=name)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400


@pytest.mark.parametrize("width", [True, 0, -1, 65_537, 10**9, 8.0])
def test_a_registered_width_is_an_int_in_range(width):
    with pytest.raises(RegistryError, match="width must be an integer from 1 to 65536"):
        _workload(width=width, model=lambda d, r, w: MLP(4, (8,), 1, rngs=r))


@pytest.mark.parametrize("suffix", ["", "01", "-3", "1e3", "٣", "064"])
def test_a_width_has_one_spelling(suffix):
    with pytest.raises(UserError, match="without leading zeros"):
        workloads.get(f"mnist1d-mlp@w{suffix}")


def test_width_names_that_are_no_width_stay_unknown_or_out_of_range():
    with pytest.raises(UserError, match="unknown workload"):
        workloads.get("mnist1d-mlp@@w4")
    with pytest.raises(UserError, match="out of range"):
        workloads.get("mnist1d-mlp@w" + "9" * 5000)
    assert workloads.get("mnist1d-mlp@w64").name == "mnist1d-mlp@w64"


# data: a loader's failure is one line naming its file; splits are checked, not trained on
def test_a_data_loader_that_raises_is_one_line_naming_its_file():
    def load(d=None):
        raise RuntimeError("disk on fire\nsecond line")

    with pytest.raises(UserError) as caught:
        _workload(data=load).load_data()
    message = str(caught.value)
    assert "\n" not in message and "RuntimeError: disk on fire" in message
    assert __file__ in message and "line" in message


@pytest.mark.parametrize("change,message", [
    (lambda x: dict(x_val=np.ones((5, 7), np.float32)), "expected one shape in every split"),
    (lambda x: dict(y_test=np.ones((5, 2), np.float32)), "expected one shape in every split"),
    (lambda x: dict(x_train=np.where(x == x[0, 0], np.nan, x)), "NaN or infinite"),
    (lambda x: dict(y_train=np.full((10, 1), np.inf)), "NaN or infinite"),
    (lambda x: dict(x_train=x.astype(complex)), "expected floats or integers"),
    (lambda x: dict(y_train=np.array(["a"] * 10)), "expected floats or integers"),
    (lambda x: dict(x_val=x[:0], y_val=x[:0, :1]), "at least one"),
])
def test_a_dataset_with_bad_splits_is_one_line(change, message):
    x = np.ones((10, 4), np.float32) * np.arange(4, dtype=np.float32)
    splits = dict(x_train=x, y_train=x[:, :1], x_val=x[:5], y_val=x[:5, :1], x_test=x[:5],
                  y_test=x[:5, :1])
    with pytest.raises(UserError, match=message) as caught:
        Dataset("t", **{**splits, **change(x)})
    assert "\n" not in str(caught.value)


# the model, loss and metric contracts: a clear WorkloadError while tracing (the cell fails
# with that line, the run goes on); an undeclared metric must never reach the store
def _trace(workload: Workload):
    data = workload.load_data()
    model = workload.build_model(data, nnx.Rngs(0))
    x, y = jnp.asarray(data.x_val), jnp.asarray(data.y_val)
    jax.eval_shape(lambda: workload.checked_loss(model(x), y))
    jax.eval_shape(lambda: workload.checked_sums(model(x), y))


@pytest.mark.parametrize("changes,message", [
    (dict(model=lambda d, r: 42), "model factory returned int, not a flax.nnx.Module"),
    (dict(loss=lambda p, t: (p - t) ** 2), r"loss returned an array of shape \(10, 1\)"),
    (dict(loss=lambda p, t: "x"), "loss returned str"),
    (dict(metric_sums=lambda p, t: {"err": jnp.sum(p)}), "missing loss"),
    (dict(metric_sums=lambda p, t: {"loss": jnp.sum(p), "zzz": jnp.sum(p)}), "not declared: zzz"),
    (dict(metric_sums=lambda p, t: {"loss": jnp.sum(p), "Bad Key": jnp.sum(p)}), "not declared: Bad Key"),
    (dict(metrics={"loss": "min", "acc": "max"}), "missing acc"),
    (dict(metric_sums=lambda p, t: {"loss": (p - t) ** 2}), "gave 'loss' as an array of shape"),
    (dict(metric_sums=lambda p, t: {"loss": jnp.sum(p).astype(jnp.complex64)}), "real scalar"),
    (dict(metric_sums=lambda p, t: [jnp.sum(p)]), "returned list"),
])
def test_a_broken_model_loss_or_metric_is_one_clear_line(changes, message):
    with pytest.raises(WorkloadError, match=message) as caught:
        _trace(_workload(**changes))
    assert "\n" not in str(caught.value)


def test_a_well_formed_workload_traces():
    _trace(_workload())


# new-workload: a name whose file the workloads package would skip is refused
@pytest.mark.parametrize("name", ["registry", "test"])
def test_new_workload_refuses_the_packages_own_module_names(name, tmp_path):
    with pytest.raises(UserError, match="reserves"):
        write_workload(name, tmp_path, tmp_path, taken={}, in_package=True)
    assert not list(tmp_path.iterdir())


def test_workload_files_named_like_optimizer_machinery_still_load():
    from optimizers.plugins import _INFRASTRUCTURE

    assert _INFRASTRUCTURE["workloads"] == {"registry"}
    assert {"space", "plugins", "conformance"} <= _INFRASTRUCTURE["optimizers"]


# compare: a metric only some workloads declare compares the cells that hold it; the others
# are named in one note, never rows of dashes counted as compared
def test_compare_skips_cells_whose_workload_lacks_the_metric():
    from pathlib import Path

    from bench.report import compare
    from bench.runner.results import load

    reference = load(Path(__file__).parents[1] / "results" / "reference")
    result = compare.compare([reference, reference], "final_val_x")
    assert set(result.rows["workload"]) == {"beale-2d", "rastrigin-2d", "rosenbrock-2d", "saddle-2d"}
    # a cell whose seeds diverged still has the metric (NaN): compared, not skipped
    assert result.rows["mean_a"].notna().any() and result.rows["mean_a"].isna().any()
    assert set(result.rows["better"]) == {None}  # a position: recorded, never scored
    note = next(n for n in result.notes if n.startswith("Not compared"))
    assert "mnist1d-mlp" in note and "rosenbrock" not in note and "\n" not in note


# widths in a matrix: a name that says its width keeps it; with its own widths it is refused
def _cells(tmp_path, text):
    from bench.plan import expand
    from bench.plan import matrix as matrix_mod

    path = tmp_path / "m.toml"
    path.write_text('seeds = 1\noptimizers = ["adam"]\n' + text)
    return expand.cells(matrix_mod.load(str(path), None), None)


def test_a_named_width_is_kept_under_the_matrix_widths(tmp_path):
    cells = _cells(tmp_path, 'workloads = ["synthetic-mlp", "synthetic-mlp@w4"]\nwidths = [8, 16]\n')
    assert sorted(c.workload for c in cells) == ["synthetic-mlp@w16", "synthetic-mlp@w4",
                                                  "synthetic-mlp@w8"]
    with pytest.raises(UserError, match="no workload of the matrix has a width to scale"):
        _cells(tmp_path, 'workloads = ["synthetic-mlp@w4"]\nwidths = [8, 16]\n')


def test_a_named_width_with_its_own_widths_is_one_line(tmp_path):
    with pytest.raises(UserError, match="names its width and also has widths") as caught:
        _cells(tmp_path, 'workloads = [{name = "synthetic-mlp@w4", widths = [8]}]\n')
    assert "\n" not in str(caught.value)


# memory: a width that cannot fit fails its cell in one line before anything is allocated
def test_a_model_too_large_for_free_memory_is_refused_before_allocating(monkeypatch):
    from bench.train import programs

    workload = _workload()
    data = workload.load_data()
    programs.check_memory(workload, data, [0, 1])  # a few hundred bytes: fits
    monkeypatch.setattr(programs, "_free_bytes", lambda: 100)
    with pytest.raises(WorkloadError, match=r"for 2 seed\(s\) need about .* GiB free") as caught:
        programs.check_memory(workload, data, [0, 1])
    assert "\n" not in str(caught.value)
    monkeypatch.setattr(programs, "_free_bytes", lambda: None)  # unknown: never refused
    programs.check_memory(workload, data, [0, 1])
