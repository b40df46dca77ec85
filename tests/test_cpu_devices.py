"""$OPTBENCH_CPU_DEVICES: the CPU split into several XLA devices, so that a program of several
members trains its parts on cores of their own (bench/train/cpu_devices.py)."""
import json

import pandas as pd
import pytest

from bench.train import cpu_devices
from tests.conftest import run_optbench


@pytest.mark.parametrize("value, count", [("", 1), ("1", 1), (" 3 ", 3), ("AUTO", None),
                                          ("256", 256)])
def test_the_count_asked_for(monkeypatch, value, count):
    import os

    monkeypatch.setenv(cpu_devices.ENV, value)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cpu_devices.wanted() == (count or usable) and cpu_devices.problem() is None


@pytest.mark.parametrize("value", ["0", "-1", "257", "two", "2.5", "1e3", "auto,2"])
def test_a_value_that_is_no_count_is_one_line_naming_the_choices(monkeypatch, value):
    monkeypatch.setenv(cpu_devices.ENV, value)
    said = cpu_devices.problem()
    assert said == (f"OPTBENCH_CPU_DEVICES={value!r} is not a device count; set it to auto (one"
                    " CPU device per usable core), to a whole number from 1 to 256, or unset it"
                    " (one device)")


def test_a_process_whose_jax_started_already_gets_one_warning(monkeypatch, capsys):
    import jax

    monkeypatch.setattr(cpu_devices, "_said", set())  # no earlier test's warning
    jax.devices()  # this test process's JAX is up: the count can no longer change
    monkeypatch.setattr(cpu_devices, "_said", set())  # whatever an earlier test was told
    monkeypatch.setenv(cpu_devices.ENV, str(len(jax.devices("cpu")) + 1))
    cpu_devices.configure()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: OPTBENCH_CPU_DEVICES asks for" in err
    assert len(jax.devices("cpu")) == int(cpu_devices.wanted()) - 1  # as it was


def test_a_run_splits_its_seeds_over_the_devices_asked_for(tmp_path, monkeypatch):
    """Two seeds over two CPU devices, in the run's own process; a value that is no count
    is one line and exit 2, before anything runs."""
    out = tmp_path / "run"
    monkeypatch.setenv(cpu_devices.ENV, "2")
    done = run_optbench("run", "--workloads", "rosenbrock-2d", "--optimizers", "adam",
                        "--steps", "20", "--seeds", "2", "--no-report", "--out", str(out))
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    assert set(pd.read_parquet(out / "runs.parquet")["devices"]) == {2}
    assert json.loads((out / "manifest.json").read_text())["device"]["count"] == 2
    monkeypatch.setenv(cpu_devices.ENV, "lots")
    refused = run_optbench("run", "--preset", "smoke", "--out", str(tmp_path / "refused"))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "OPTBENCH_CPU_DEVICES='lots' is not a device count" in refused.stderr
    assert not (tmp_path / "refused").exists()


@pytest.mark.parametrize("value", ["²", "２", "१", "ａｕｔｏ"])
def test_a_digit_other_than_ascii_is_refused_in_the_same_line(monkeypatch, value):
    """str.isdigit() holds for '²' (int() then failed, its own message out) and int() reads
    '２' as 2: a count is written in ASCII digits, anything else is the usual refusal."""
    monkeypatch.setenv(cpu_devices.ENV, value)
    assert cpu_devices.problem() == (
        f"OPTBENCH_CPU_DEVICES={value!r} is not a device count; set it to auto (one CPU device"
        " per usable core), to a whole number from 1 to 256, or unset it (one device)")


def test_importing_the_engine_with_a_value_that_is_no_count_warns_and_goes_on(monkeypatch,
                                                                              capsys):
    """The engine configures the CPU when it is imported (tools/gpu_check.py, a script, a
    generated workload's test): a bad value there is one warning, never a traceback at
    import (`optbench run` and bench.run refuse it in one line before)."""
    monkeypatch.setattr(cpu_devices, "_said", set())
    monkeypatch.setenv(cpu_devices.ENV, "0")
    cpu_devices.configure()
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("optbench: warning: OPTBENCH_CPU_DEVICES='0' is not a device count")


def test_a_process_is_warned_once_however_often_it_configures(monkeypatch, capsys):
    """run_matrix and the engine's import both configure, and bench.run may be called again
    and again in one process: the same warning is given once."""
    import jax

    monkeypatch.setattr(cpu_devices, "_said", set())
    jax.devices()
    monkeypatch.setenv(cpu_devices.ENV, str(len(jax.devices("cpu")) + 1))
    for _ in range(3):
        cpu_devices.configure()
    monkeypatch.setenv(cpu_devices.ENV, "lots")
    for _ in range(2):
        cpu_devices.configure()
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and err.count("asks for") == 1, err


@pytest.mark.parametrize("name, value", [(cpu_devices.ENV, "0"),
                                         ("OPTBENCH_COMPILE_CACHE", "of")])
def test_a_dry_run_refuses_what_the_run_would(monkeypatch, tmp_path, name, value):
    """--dry-run says what `run` would do: it said nothing of a setting the run refuses,
    and exited 0."""
    from tests.conftest import optbench_here

    monkeypatch.setenv(name, value)
    done = optbench_here("run", "--workloads", "rosenbrock-2d", "--optimizers", "adam",
                         "--steps", "10", "--dry-run", "--out", str(tmp_path / "dry"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"optbench: error: {name}={value!r}") and not done.stdout


@pytest.mark.parametrize("value, devices, said", [("2", 2, True), ("1", 1, True),
                                                  ("", 3, False), ("3", 3, False)])
def test_the_variable_wins_over_xla_flags_and_says_so(value, devices, said):
    """XLA_FLAGS' --xla_force_host_platform_device_count beside OPTBENCH_CPU_DEVICES: the
    variable set for optbench wins, 1 too (it lost there while 2 won, and neither was
    said); where they differ, one warning names both. Unset, XLA_FLAGS is left alone."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), cpu_devices.ENV: value,
           "XLA_FLAGS": "--xla_force_host_platform_device_count=3"}
    done = subprocess.run([sys.executable, "-c", "import jax; from bench.train import"
                           " cpu_devices; cpu_devices.configure(); print(len(jax.devices()))"],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.split() == [str(devices)], done.stderr
    assert done.stderr.count("\n") == said, done.stderr
    if said:
        assert done.stderr == (f"optbench: warning: {cpu_devices.ENV}={value} wins over"
                               " XLA_FLAGS' --xla_force_host_platform_device_count=3: JAX"
                               f" splits the CPU into {value} device(s)\n")


def test_worker_processes_leave_the_xla_flags_warning_to_the_run(tmp_path, monkeypatch):
    """Each worker process configures the CPU as its engine is imported: the run says once
    that the variable wins over XLA_FLAGS, not once more per worker."""
    monkeypatch.setenv(cpu_devices.ENV, "2")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=3")
    done = run_optbench("run", "--workloads", "rosenbrock-2d", "--optimizers", "adam,sgd",
                        "--steps", "10", "--seeds", "2", "--no-report", "--executor",
                        "processes", "--workers", "2", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("wins over XLA_FLAGS") == 1, done.stderr
    assert set(pd.read_parquet(tmp_path / "run" / "runs.parquet")["devices"]) == {2}
    # 2 workers x 2 devices on fewer than 4 CPUs share cores: said once, with the way out
    from bench.runner.environment import usable_cpus

    shared = done.stderr.count("2 worker processes x 2 CPU devices (OPTBENCH_CPU_DEVICES)"
                               " make 4 devices on")
    assert shared == (1 if (usable_cpus() or 1) < 4 else 0), done.stderr


def test_workers_that_fit_the_cpus_or_one_device_each_are_not_warned(monkeypatch, capsys):
    monkeypatch.setattr(cpu_devices, "_said", set())
    monkeypatch.setattr("bench.runner.environment.usable_cpus", lambda: 4)
    for value, workers in (("2", 2), ("1", 8), ("", 8), ("4", None), ("0", 8)):
        monkeypatch.setenv(cpu_devices.ENV, value)
        cpu_devices.warn_shared_cores(workers)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(cpu_devices.ENV, "auto")
    cpu_devices.warn_shared_cores(3)
    assert capsys.readouterr().err == (
        "optbench: warning: 3 worker processes x 4 CPU devices (OPTBENCH_CPU_DEVICES) make 12"
        " devices on 4 usable CPU(s): programs share cores and their step times measure that;"
        " set OPTBENCH_CPU_DEVICES=1, or --workers 1\n")
    # more devices than CPUs in one process: no number of workers helps (it suggested the
    # --workers 1 given), and the local executor's one process shares cores as well
    monkeypatch.setenv(cpu_devices.ENV, "8")
    for workers in (1, 2):
        cpu_devices.warn_shared_cores(workers)
    assert capsys.readouterr().err == (
        "optbench: warning: OPTBENCH_CPU_DEVICES=8 makes 8 CPU devices on 4 usable CPU(s) in"
        " each process: programs share cores and their step times measure that; set"
        " OPTBENCH_CPU_DEVICES=auto (one device per usable CPU)\n")


def test_the_variable_wins_over_jax_num_cpu_devices_and_says_so():
    """JAX's own JAX_NUM_CPU_DEVICES was replaced without a word."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), cpu_devices.ENV: "2",
           "JAX_NUM_CPU_DEVICES": "3"}
    env.pop("XLA_FLAGS", None)
    done = subprocess.run([sys.executable, "-c", "import jax; from bench.train import"
                           " cpu_devices; cpu_devices.configure(); print(len(jax.devices()))"],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.split() == ["2"], done.stderr
    assert done.stderr == (f"optbench: warning: {cpu_devices.ENV}=2 wins over"
                           " JAX_NUM_CPU_DEVICES='3': JAX splits the CPU into 2 device(s)\n")
