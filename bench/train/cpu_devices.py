"""How many XLA devices the CPU is split into: `$OPTBENCH_CPU_DEVICES`, unset or 1 (one
device, as JAX starts) by default, `auto` for one per usable core, or a number.

With more than one, a program of several members (seeds, a sweep's trials) is split across
them (`engine.MemberBatch._place_members`: as many devices as divide its members), each
part on a core of its own: XLA runs one CPU device's small operations on one core. Measured
on this project's 2-core CPU (tests/perf/test_seed_batching.py): 8 seeds of mnist1d-mlp
in one program trained 2.28-2.42x as fast as one after another with 2 devices, 1.05x with one;
4 seeds of mnist1d-mlp, -cnn and -gru 1.9x, 1.9x and 1.6x as fast as in one device. A
program of one member, or of a member count no device count divides (3 seeds on 2 cores),
runs on one device either way.

Not the default, for two reasons a user should choose to accept: a member's numbers then
depend on how its program was split (another partition compiles other code, so floats
differ in their last bits and a long run drifts apart), and the manifest's device count
says the CPU is several devices. JAX reads the count once, when its CPU backend starts:
`configure` sets it before that, or says in one warning that this process started JAX
already. Set (1 too), the variable wins over XLA_FLAGS' older
--xla_force_host_platform_device_count, in one warning where the two differ; unset, XLA_FLAGS
decides as it always has.
"""
from __future__ import annotations

import os
import re
import sys

ENV = "OPTBENCH_CPU_DEVICES"
MOST = 256  # far above any CPU's cores: a typo (10000) is refused, not thousands of devices
FLAG = "xla_force_host_platform_device_count"  # the older way to split the CPU
_said: set[str] = set()  # the warnings this process gave: run_matrix, the engine's import
# and every later bench.run configure again, and a warning said once is said


def problem() -> str | None:
    """What is wrong with $OPTBENCH_CPU_DEVICES, or None."""
    try:
        wanted()
    except ValueError as exc:
        return str(exc)
    return None


def wanted() -> int:
    """The CPU device count asked for; ValueError (one line) for a value that is not one."""
    text = os.environ.get(ENV, "").strip().lower()
    if text in ("", "1"):
        return 1
    if text == "auto":
        from bench.runner.environment import usable_cpus

        return max(1, usable_cpus() or 1)
    # ASCII digits only: isdigit() holds for '²', which int() refuses, and int() reads '２'
    if text.isascii() and text.isdigit() and 1 <= int(text) <= MOST:
        return int(text)
    return _refuse(os.environ[ENV])


def _refuse(value: str) -> int:
    raise ValueError(f"{ENV}={value!r} is not a device count; set it to auto (one CPU device"
                     f" per usable core), to a whole number from 1 to {MOST}, or unset it"
                     " (one device)")


def configure(*, say_flag: bool = True) -> None:
    """Split the CPU into `wanted()` devices when the variable is set (1 too: it wins over
    XLA_FLAGS' device count, in one warning where they differ) and JAX has not started its
    CPU backend in this process (then one warning, and the run goes on as it is). Never
    raises: the engine calls it when imported (a tool, a script), where a bad value is a
    warning; `optbench run` and bench.run refuse one before, through `problem()`.
    `say_flag=False` (the engine's import, in each worker too): the run said already that
    the variable wins over XLA_FLAGS, once for all its processes."""
    try:
        count = wanted()
    except ValueError as exc:
        _warn(f"{exc}; going on with the CPU devices JAX starts with")
        return
    if not os.environ.get(ENV, "").strip():
        return  # unset: JAX's own default, and whatever XLA_FLAGS a user set
    import jax

    if jax.config.jax_num_cpu_devices == count:
        return
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # the backend is up: its device count is fixed for this process
        have = len(jax.devices("cpu"))
        if have != count:
            _warn(f"{ENV} asks for {count} CPU devices, but JAX started with {have} in this"
                  " process before optbench could say so; set it before the first JAX"
                  " operation")
        return
    flag, jax_own = xla_flag_count(), os.environ.get("JAX_NUM_CPU_DEVICES", "").strip()
    if say_flag and flag is not None and flag != count:  # JAX's setting wins over the flag
        _warn(f"{ENV}={os.environ[ENV].strip()} wins over XLA_FLAGS'"
              f" --{FLAG}={flag}: JAX splits the CPU into {count} device(s)")
    if say_flag and jax_own and jax_own != str(count):  # optbench's setting replaces JAX's
        _warn(f"{ENV}={os.environ[ENV].strip()} wins over JAX_NUM_CPU_DEVICES={jax_own!r}:"
              f" JAX splits the CPU into {count} device(s)")


def warn_shared_cores(workers: int | None) -> None:
    """One warning when `workers` processes (an executor's), each with its CPU split into
    `wanted()` devices, make more devices than there are usable CPUs: the parts of their
    programs then share cores, and the step times recorded measure that. None: workers this
    process cannot count (a Dask scheduler of the user's); 1 for the local executor, whose
    one process shares cores when the devices alone outnumber the CPUs (the warning said
    '1 worker processes x 4 CPU devices ...; or --workers 1' to a run with --workers 1, and
    nothing to a local run)."""
    if not workers or not os.environ.get(ENV, "").strip() or problem() is not None:
        return
    from bench.runner.environment import usable_cpus

    count, cpus = wanted(), usable_cpus() or 1
    if count > cpus:  # one process already shares cores: fewer workers cannot help
        _warn(f"{ENV}={os.environ[ENV].strip()} makes {count} CPU devices on {cpus} usable"
              f" CPU(s) in each process: programs share cores and their step times measure"
              f" that; set {ENV}=auto (one device per usable CPU)")
    elif count > 1 and workers * count > cpus:
        _warn(f"{workers} worker processes x {count} CPU devices ({ENV}) make"
              f" {workers * count} devices on {cpus} usable CPU(s): programs share cores and"
              f" their step times measure that; set {ENV}=1, or --workers"
              f" {max(1, cpus // count)}")


def xla_flag_count() -> int | None:
    """The CPU device count $XLA_FLAGS forces (its last such flag), or None."""
    found = re.findall(rf"--{FLAG}=([0-9]+)", os.environ.get("XLA_FLAGS", ""))
    return int(found[-1]) if found else None


def _warn(text: str) -> None:
    if text not in _said:
        _said.add(text)
        print(f"optbench: warning: {text}", file=sys.stderr)
