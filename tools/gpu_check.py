"""Every figure issue 15 asks of an accelerator, in one short script.

    PYTHONPATH=. python3 tools/gpu_check.py [OUT_DIR] [--small]

Meant for a GPU machine with optbench's dependencies importable (pyproject.toml's
`dependencies`: part 2 is a whole `optbench run`, which needs rich, pyarrow, matplotlib,
scipy, mnist1d, scikit-learn, ... besides JAX, Flax, Optax and pandas) and nothing else set
up: it runs from the checkout, installs nothing, downloads nothing, and prints, in order:

1. the device;
2. the quick preset, per workload (median over its cells): steps/s, step time, compile time,
   the optimizer update's share of a step, GPU utilisation (NVML, where nvidia-ml-py is
   importable), peak device memory and MFU;
3. the engine against both bare loops (tests/perf/loops.py: data as arguments, data as
   constants) on every built-in classification workload, with 1 and 8 seeds;
4. sweep gain: a 64-member learning-rate sweep (16 rates x 4 seeds) of mnist1d-mlp as one
   program against the same 64 trained one by one, compile included (goal >= 10x on a GPU);
5. the largest sweep that fits: members doubled until the device runs out of memory (or
   LARGEST_TRIED), for mnist1d-mlp and mnist1d-cnn, with the peak memory of the last fit.

`--small` shrinks every part to seconds (a check that the script works, on a CPU too); its
part 2 is the smoke preset's two cells for 20 steps.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

import jax
import numpy as np
import pandas as pd

import optimizers
import workloads
from bench import cli
from bench.train import engine, usage
from tests.perf.loops import bare_loop, engine_loop

WORKLOADS = ["mnist1d-mlp", "mnist1d-cnn", "mnist1d-logreg", "mnist1d-gru", "digits-mlp",
             "digits-cnn"]
LARGEST_TRIED = 2 ** 15


def quick_preset(out: str, small: bool) -> int:
    """The quick preset's figures per workload; with `small`, the smoke preset's two cells
    for 20 steps, so that a check on a CPU runs this part too."""
    matrix = ["--preset", "smoke", "--steps", "20", "--seeds", "1"] if small else [
        "--preset", "quick"]
    code = cli.main(["run", *matrix, "--out", out, "--force"])
    if not os.path.exists(f"{out}/runs.parquet"):  # it said why above; the other parts still run
        print(f"the preset run finished no cell (exit {code}): no figures for part 2")
        return code
    cells = pd.read_parquet(f"{out}/runs.parquet").drop_duplicates("cell_id")
    columns = ["steps_per_s", "step_time_median_s", "compile_s", "update_share",
               "device_util_mean", "device_util_max", "peak_device_bytes", "mfu"]
    for why in sorted({why for text in cells["missing"] for why in json.loads(text).values()}):
        print("not measured:", why)
    print(f"{'smoke preset (--small)' if small else 'quick preset'}, median over the cells of"
          " each workload:")
    print(cells.groupby("workload")[columns].median().to_string(float_format=lambda v: f"{v:.4g}"))
    return code


def engine_vs_bare(steps: int, rounds: int, names: list[str], seeds_list: list[int]) -> None:
    print(f"engine vs bare loops ({steps} steps a call, median of {rounds} interleaved rounds;"
          " speed = bare time / engine time, goal >= 0.95):")
    for name in names:
        workload = workloads.get(name)
        dataset = workload.load_data()
        for seeds in seeds_list:
            sides = {"engine": engine_loop(workload, dataset, 1e-2, steps, seeds),
                     "args": bare_loop(workload, dataset, 1e-2, steps, seeds, constant_data=False),
                     "const": bare_loop(workload, dataset, 1e-2, steps, seeds, constant_data=True)}
            times = {side: [] for side in sides}
            for call in sides.values():
                call()  # warm-up
            for _ in range(rounds):
                for side, call in sides.items():
                    start = time.perf_counter()
                    call()
                    times[side].append(time.perf_counter() - start)
            ratio = {b: statistics.median(t / e for t, e in zip(times[b], times["engine"]))
                     for b in ("args", "const")}
            print(f"  {name:15} {seeds} seed(s): {steps / statistics.median(times['engine']):9.0f}"
                  f" steps/s; vs data as arguments {ratio['args']:.3f}x, vs data as constants"
                  f" {ratio['const']:.3f}x")


def sweep_gain(rates: int, seeds: int, steps: int) -> None:
    workload = workloads.get("mnist1d-mlp")
    dataset = workload.load_data()
    spec = optimizers.get("adam")
    grid = [float(r) for r in np.geomspace(1e-4, 1e-1, rates)]
    kwargs = dict(steps=steps, eval_every=max(1, steps // 4), batch_size=workload.batch_size,
                  seeds=list(range(seeds)), probe=False)
    start = time.perf_counter()
    engine.train_program(workload, dataset, spec, spec.resolve(),
                         [{"learning_rate": r} for r in grid], **kwargs)
    sweep = time.perf_counter() - start
    start = time.perf_counter()
    for rate in grid:
        engine.train(workload, dataset, spec, spec.resolve({"learning_rate": rate}), **kwargs)
    separate = time.perf_counter() - start
    print(f"sweep gain, {rates} rates x {seeds} seeds = {rates * seeds} members, {steps} steps,"
          f" compile included: one program {sweep:.1f} s, one by one {separate:.1f} s:"
          f" {separate / sweep:.1f}x (goal >= 10x on a GPU, >= 1.3x on a CPU)")


def largest_sweep(name: str, start: int, cap: int) -> None:
    workload = workloads.get(name)
    dataset = workload.load_data()
    spec = optimizers.get("adam")
    fits, members, peak = None, start, None
    while members <= cap:
        try:
            batch = engine.MemberBatch(workload, dataset, spec, spec.resolve(),
                                       seeds=list(range(members)), batch_size=workload.batch_size)
            batch.run_chunk(10)
        except Exception as exc:  # noqa: BLE001  out of memory, as each backend says it
            print(f"  {name}: {members} members fail ({type(exc).__name__}:"
                  f" {str(exc).splitlines()[0][:120]})")
            break
        fits, peak = members, usage.device_memory_peak()[0]
        del batch
        members *= 2
    memory = f", peak device memory so far {peak / 2**30:.2f} GiB" if peak else ""
    print(f"  {name}: the largest sweep tried that fits: {fits} members"
          f"{' (the cap)' if fits == cap else ''}{memory}")


def main(argv: list[str]) -> int:
    small = "--small" in argv
    paths = [a for a in argv if a != "--small"]
    if len(paths) > 1 or any(a.startswith("-") for a in paths):  # not taken for a folder
        print("usage: PYTHONPATH=. python3 tools/gpu_check.py [OUT_DIR] [--small]",
              file=sys.stderr)
        return 2
    out = paths[0] if paths else f"{tempfile.gettempdir()}/optbench-gpu-check"
    device = jax.devices()[0]
    print(f"jax {jax.__version__}: {device.platform} {device.device_kind} x{jax.device_count()}")
    clock = time.perf_counter()
    code = quick_preset(out, small)
    engine_vs_bare(20 if small else 1000, 3 if small else 7,
                   WORKLOADS[:1] if small else WORKLOADS, [1, 2] if small else [1, 8])
    sweep_gain(*((2, 2, 20) if small else (16, 4, 500)))
    print("largest sweep that fits (adam; members = trials x seeds share one program):")
    for name in ("mnist1d-mlp",) if small else ("mnist1d-mlp", "mnist1d-cnn"):
        largest_sweep(name, 2 if small else 64, 4 if small else LARGEST_TRIED)
    print(f"gpu_check took {time.perf_counter() - clock:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
