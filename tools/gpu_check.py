"""Every figure issue 15 asks of an accelerator, in one short script.

    PYTHONPATH=. python3 tools/gpu_check.py [OUT_DIR] [--small] [--budget SECONDS] [--only PARTS]

Meant for a GPU machine with optbench's dependencies importable (pyproject.toml's
`dependencies`: parts 2 and 6 are whole `optbench run`s, which need rich, pyarrow,
matplotlib, scipy, mnist1d, scikit-learn, ... besides JAX, Flax, Optax and pandas) and
nothing else set up: it runs from the checkout, installs nothing, downloads nothing, and
prints, in order of what the issue needs most:

1. the device and the versions that ran, and the FLOP count MFU divides by (XLA's count of
   one chunk must not grow with the chunk's length);
2. the quick preset's MNIST-1D workloads (MLP, CNN, GRU: 21 programs; the 2-D test
   functions measure nothing on a GPU), as `optbench run` in a process of its own with an
   empty cache: per workload (median over its cells) steps/s, step time, compile time, the
   update's share of a step, GPU utilisation (NVML), peak device memory and MFU; and the
   run's overhead share (1 - train / wall clock);
3. sweep gain: a 64-member learning-rate sweep (16 rates x 4 seeds) of mnist1d-mlp as one
   program against the same 16 trials trained one after another, compile included
   (goal >= 10x on a GPU), both after a warm-up program;
4. the engine against both bare loops (tests/perf/loops.py: data as arguments, data as
   constants) on every built-in classification workload, with 1 and 8 seeds;
5. the largest sweep that fits: members multiplied by 4 until the device runs out of
   memory (or LARGEST_TRIED), then the size between, for mnist1d-mlp and mnist1d-cnn; per
   size the build-and-compile time, member-steps per second, and the program's own
   footprint as XLA plans it (arguments + outputs + temporaries - donated buffers), besides
   the process's peak;
6. `--compile-ahead` on the same run as part 2, again from an empty cache: whether compiling
   the next program while one trains shortens the wait where training runs on a GPU.

Every part prints its figures as it ends and guards itself: a part that fails prints one
line (its traceback on stderr) and the next part runs; Ctrl-C skips the parts after the
one it stops and still writes the figures so far (exit 130). `--budget SECONDS` bounds the whole
script: a part or loop round that would start after the budget is spent says it was
skipped, and the `optbench run` parts are stopped when it runs out. `--only` names the
parts to run (flops, preset, sweep, engine, largest, ahead). `--small` shrinks every
part to seconds (a check that the script works, on a CPU too): the smoke preset's two cells
for 20 steps in parts 2 and 6.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import jax
import numpy as np
import pandas as pd

import optimizers
import workloads
from bench.errors import UserError
from bench.runner.files import write_json
from bench.train import engine, usage
from tests.perf.loops import bare_loop, engine_loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = ["mnist1d-mlp", "mnist1d-cnn", "mnist1d-logreg", "digits-mlp", "digits-cnn",
             "mnist1d-gru"]  # the slowest last: a spent budget skips it first
PRESET = ["--preset", "quick", "--workloads", "mnist1d-mlp,mnist1d-cnn,mnist1d-gru"]
SMALL_PRESET = ["--preset", "smoke", "--steps", "20", "--seeds", "1"]
LARGEST_TRIED = 2 ** 16
USAGE = ("usage: PYTHONPATH=. python3 tools/gpu_check.py [OUT_DIR] [--small] [--budget SECONDS]"
         " [--only flops,preset,sweep,engine,largest,ahead]")


class Budget:
    """Seconds left of the script's budget (None: unbounded)."""

    def __init__(self, seconds: float | None):
        self.seconds, self.start = seconds, time.perf_counter()

    def left(self) -> float | None:
        return None if self.seconds is None else self.seconds - (time.perf_counter() - self.start)

    def spent(self, what: str) -> bool:
        left = self.left()
        if left is not None and left <= 0:
            print(f"  skipped: {what} (the budget of {self.seconds:.0f} s is spent)")
            return True
        return False


def optbench_run(args: list[str], out: str, cache: str, budget: Budget) -> tuple[int, float]:
    """`optbench run ARGS --out OUT` in a process of its own (its peak memory its own), with
    `cache` as $OPTBENCH_CACHE; (exit code, wall clock). Stopped when the budget runs out."""
    env = {**os.environ, "OPTBENCH_CACHE": cache,
           "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    left = budget.left()
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "bench.cli", "run", *args, "--out", out,
                               "--force"], env=env, timeout=_timeout(left),
                              capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        print(f"  stopped: the budget ran out {time.perf_counter() - start:.0f} s into the run")
        return 124, time.perf_counter() - start
    wall = time.perf_counter() - start
    try:  # its summary table and progress, for a look later
        with open(f"{out}.log", "w") as log:
            log.write(done.stdout + done.stderr)
    except OSError as exc:
        print(f"  could not keep the run's output: {exc}")
    if done.returncode != 0:
        print(f"  optbench run exited {done.returncode}: {done.stderr.strip()[-600:]}")
    return done.returncode, wall


def _timeout(left: float | None) -> float | None:
    """A subprocess timeout for `left` seconds: at least one, and none past a day (a budget of
    1e9 s means no bound; subprocess refuses timeouts that large with OverflowError)."""
    return None if left is None or left > 86_400 else max(left, 1)


def programs(out: str) -> pd.DataFrame:
    """One row per program (tests/perf/test_overhead.py counts them the same way)."""
    runs = pd.read_parquet(f"{out}/runs.parquet").drop_duplicates("cell_id")
    return runs.drop_duplicates(["workload", "optimizer", "train_s", "compile_s"])


def overhead_line(out: str, wall: float) -> str:
    table = programs(out)
    train = float(table["train_s"].sum())
    parts = ", ".join(f"{column.removesuffix('_s')} {float(table[column].sum()):.1f}"
                      for column in ("compile_s", "compile_cached_s", "setup_s", "probe_s",
                                     "eval_s", "data_s"))
    return (f"wall {wall:.1f} s, train {train:.1f} s: overhead share {1 - train / wall:.1%}"
            f" ({len(table)} programs; {parts} s)")


def preset_run(out: str, small: bool, budget: Budget, figures: dict) -> int:
    """Part 2: per-workload figures and the overhead share of a first run."""
    code, wall = optbench_run(SMALL_PRESET if small else PRESET, f"{out}/preset",
                              f"{out}/cache-preset", budget)
    if not os.path.exists(f"{out}/preset/runs.parquet"):  # it said why above
        print(f"the preset run finished no cell (exit {code}): no figures for part 2")
        return code or 1
    cells = pd.read_parquet(f"{out}/preset/runs.parquet").drop_duplicates("cell_id")
    columns = ["steps_per_s", "step_time_median_s", "compile_s", "update_share",
               "device_util_mean", "device_util_max", "peak_device_bytes", "mfu"]
    for why in sorted({why for text in cells["missing"] for why in json.loads(text).values()}):
        print("  not measured:", why)
    medians = cells.groupby("workload")[columns].median()
    print(f"{'smoke preset (--small)' if small else 'quick preset, MNIST-1D workloads'},"
          " median over the cells of each workload:")
    print(medians.to_string(float_format=lambda v: f"{v:.4g}"))
    figures["preset"] = {"wall_s": wall, "per_workload": json.loads(medians.to_json())}
    print(f"  first run, empty caches: {overhead_line(f'{out}/preset', wall)}")
    return code


def compile_ahead(out: str, small: bool, budget: Budget, figures: dict) -> int:
    """Part 6: part 2's run again from an empty cache, each program prepared while the one
    before it trains."""
    code, wall = optbench_run([*(SMALL_PRESET if small else PRESET), "--compile-ahead"],
                              f"{out}/ahead", f"{out}/cache-ahead", budget)
    if not os.path.exists(f"{out}/ahead/runs.parquet"):
        print(f"the --compile-ahead run finished no cell (exit {code})")
        return code or 1
    print(f"  --compile-ahead, empty caches: {overhead_line(f'{out}/ahead', wall)}")
    before = figures.get("preset", {}).get("wall_s")
    if before:
        print(f"  wall clock against part 2's run: {wall:.1f} s vs {before:.1f} s"
              f" ({wall / before:.2f}x)")
    figures["compile_ahead_wall_s"] = wall
    return code


def engine_vs_bare(steps: int, rounds: int, names: list[str], seeds_list: list[int],
                   budget: Budget, figures: dict) -> None:
    print(f"engine vs bare loops ({steps} steps a call, median of {rounds} interleaved rounds;"
          " speed = bare time / engine time, goal >= 0.95):")
    for name in names:
        if budget.spent(name):
            continue
        workload = workloads.get(name)
        dataset = workload.load_data()
        for seeds in seeds_list:
            if seeds > 1 and budget.spent(f"{name} with {seeds} seeds"):
                continue
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
            rate = steps / statistics.median(times["engine"])
            figures.setdefault("engine_vs_bare", {})[f"{name} {seeds}"] = {"steps_per_s": rate,
                                                                          **ratio}
            print(f"  {name:15} {seeds} seed(s): {rate:9.0f} steps/s; vs data as arguments"
                  f" {ratio['args']:.3f}x, vs data as constants {ratio['const']:.3f}x")


def sweep_gain(rates: int, seeds: int, steps: int, figures: dict) -> None:
    workload = workloads.get("mnist1d-mlp")
    dataset = workload.load_data()
    spec = optimizers.get("adam")
    grid = [float(r) for r in np.geomspace(1e-4, 1e-1, rates)]
    kwargs = dict(steps=steps, eval_every=max(1, steps // 4), batch_size=workload.batch_size,
                  seeds=list(range(seeds)), probe=False)
    # the process's first programs pay for starting the backend (on an H200 the sweep
    # measured first took 12.0 s, then 2.8 s): another optimizer's program pays it here
    sgd = optimizers.get("sgd")
    engine.train(workload, dataset, sgd, sgd.resolve(), **{**kwargs, "steps": 20, "eval_every": 10})
    start = time.perf_counter()
    program = engine.train_program(workload, dataset, spec, spec.resolve(),
                                   [{"learning_rate": r} for r in grid], **kwargs)[0].timings
    sweep = time.perf_counter() - start
    start = time.perf_counter()
    trials = [engine.train(workload, dataset, spec, spec.resolve({"learning_rate": rate}),
                           **kwargs).timings for rate in grid]
    separate = time.perf_counter() - start
    figures["sweep_gain"] = {"members": rates * seeds, "one_program_s": sweep,
                             "one_by_one_s": separate}
    print(f"sweep gain, {rates} rates x {seeds} seeds = {rates * seeds} members, {steps} steps,"
          f" compile included: one program {sweep:.1f} s, one by one {separate:.1f} s:"
          f" {separate / sweep:.1f}x (goal >= 10x on a GPU, >= 1.3x on a CPU)")
    for name, phases in (("one program", [program]), ("one by one", trials)):
        print(f"  {name}: " + ", ".join(
            f"{phase.removesuffix('_s')} {sum(getattr(t, phase) for t in phases):.2f} s"
            for phase in ("data_s", "setup_s", "compile_s", "compile_cached_s", "train_s",
                          "eval_s")))


def flops_check(figures: dict) -> None:
    """The FLOPs MFU divides by: XLA's count of one mnist1d-mlp chunk of 1, 10 and 50 steps
    (2 members), from the lowering and from the compiled program. The engine takes the
    lowering's where there is one, else the compiled one's, as one step's (a scan's body
    counted once); counts that grow with the chunk length would make MFU wrong."""
    workload = workloads.get("mnist1d-mlp")
    spec = optimizers.get("adam")
    batch = engine.MemberBatch(workload, workload.load_data(), spec, spec.resolve(),
                               seeds=[0, 1], batch_size=workload.batch_size)
    counts = {}
    for length in (1, 10, 50):
        compiled = batch.compile_chunk(length).cost_analysis()
        compiled = compiled[0] if isinstance(compiled, list) else compiled
        lowered = batch.chunk_lowerings[length].cost_analysis()
        counts[length] = [None if not c else c.get("flops") for c in (lowered, compiled)]
    figures["chunk_flops"] = counts
    print("FLOPs of a 2-member mnist1d-mlp chunk, lowered / compiled:",
          "; ".join(f"{length} steps {a} / {b}" for length, (a, b) in counts.items()))
    steps = [b for _, b in counts.values()]
    print("  the compiled count " + ("is one step's whatever the chunk length: MFU holds"
                                     if max(steps) < 1.5 * min(steps) else
                                     "grows with the chunk length: MFU is off by it"))


def footprint(executable) -> int | None:
    """The bytes XLA plans for one run of a program: arguments, outputs and temporaries,
    less the outputs written over donated arguments."""
    try:
        m = executable.memory_analysis()
        return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                - m.alias_size_in_bytes)
    except Exception:  # noqa: BLE001  backends without a memory analysis
        return None


def gib(size: int | None) -> str:
    if size is None:
        return "?"
    return f"{size / 2**30:.2f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


def largest_sweep(name: str, start: int, cap: int, budget: Budget, figures: dict) -> None:
    """Members multiplied by 4 from `start` until a size fails (or `cap`), then the size
    between the last fit and that one: the largest fit within a factor of 2. Each size is
    built, one 50-step chunk compiled and run twice (the second timed) and evaluated once,
    as a sweep of that size would."""
    workload = workloads.get(name)
    dataset = workload.load_data()
    spec = optimizers.get("adam")

    def fits(members: int) -> bool:
        try:
            clock = time.perf_counter()
            batch = engine.MemberBatch(workload, dataset, spec, spec.resolve(),
                                       seeds=list(range(members)), batch_size=workload.batch_size)
            batch.run_chunk(50)
            compiled = time.perf_counter() - clock
            clock = time.perf_counter()
            batch.run_chunk(50)
            rate = 50 * members / (time.perf_counter() - clock)
            batch.evaluate()
        except Exception as exc:  # noqa: BLE001  out of memory, as each backend says it
            print(f"  {name}: {members} members fail ({type(exc).__name__}:"
                  f" {str(exc).splitlines()[0][:160]})")
            return False
        plan = footprint(batch.compile_chunk(50))
        print(f"  {name}: {members:6d} members fit: built and compiled in {compiled:.1f} s,"
              f" {rate:,.0f} member-steps/s, program footprint {gib(plan)}", flush=True)
        figures.setdefault("largest_sweep", {}).setdefault(name, []).append(
            {"members": members, "member_steps_per_s": rate, "footprint_bytes": plan})
        return True

    fit, members, failed = None, start, None
    while members <= cap and not budget.spent(f"{name} at {members} members"):
        if not fits(members):
            failed = members
            break
        fit, members = members, members * 4
    between = fit * 2 if fit else None
    if between and between < (failed or cap + 1) and between <= cap and \
            not budget.spent(f"{name} at {between} members") and fits(between):
        fit = between
    peak = usage.device_memory_peak()[0]
    print(f"  {name}: the largest sweep tried that fits: {fit} members"
          f"{' (the cap)' if fit == cap else ''}; the process's peak device memory so far"
          f" {gib(peak)}")


PARTS = ["flops", "preset", "sweep", "engine", "largest", "ahead"]


def parse(argv: list[str]) -> tuple[str, bool, float | None, list[str]] | None:
    small, budget, paths, args, only = False, None, [], list(argv), PARTS
    while args:
        arg = args.pop(0)
        if arg == "--small":
            small = True
        elif arg == "--only" and args:
            only = args.pop(0).split(",")
            if not set(only) <= set(PARTS):
                return None
        elif arg == "--budget" and args:
            try:
                budget = float(args.pop(0))
            except ValueError:
                return None
            if not budget > 0 or budget == float("inf"):
                return None
        elif arg.startswith("-") or paths:  # not taken for a folder, nor a second one
            return None
        else:
            paths.append(arg)
    return (paths[0] if paths else f"{tempfile.gettempdir()}/optbench-gpu-check"), small, \
        budget, only


def main(argv: list[str]) -> int:
    parsed = parse(argv)
    if parsed is None:
        print(USAGE, file=sys.stderr)
        return 2
    out, small, seconds, only = parsed
    try:  # every part writes under it: refused now, in one line, not after minutes of work
        os.makedirs(out, exist_ok=True)
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
    except (OSError, ValueError) as exc:  # a file, a dangling link, '', a NUL, too long
        why = getattr(exc, "strerror", None) or exc
        print(f"gpu_check: cannot use {out[:200]!r} as OUT_DIR: {why}", file=sys.stderr)
        return 2
    # this process's compiles are compiles: a persistent cache left warm by an earlier
    # check would turn the sweep gain's "compile included" into loads (the runs of parts
    # 2 and 6 get empty caches of their own)
    was = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        return check(out, small, seconds, only)
    finally:
        jax.config.update("jax_enable_compilation_cache", was)


def check(out: str, small: bool, seconds: float | None, only: list[str]) -> int:
    budget, figures, failed = Budget(seconds), {}, []
    device = jax.devices()[0]
    import flax
    import optax
    figures["device"] = f"{device.platform} {device.device_kind} x{jax.device_count()}"
    print(f"jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}:"
          f" {figures['device']}")
    code, interrupted = 0, []

    def part(key: str, name: str, run) -> None:
        nonlocal code
        if key not in only or interrupted or budget.spent(name):
            return
        clock = time.perf_counter()
        try:
            result = run()
        except KeyboardInterrupt:  # Ctrl-C: keep what the device time measured so far
            print(f"{name} interrupted: the parts after it are skipped; the figures so far"
                  f" are written")
            interrupted.append(name)
            return
        except Exception as exc:  # noqa: BLE001  one part's failure must not cost the rest
            traceback.print_exc()
            print(f"{name} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            failed.append(name)
            return
        if isinstance(result, int) and result:
            code = code or result
        print(f"  ({name}: {time.perf_counter() - clock:.0f} s)", flush=True)

    part("flops", "flops check", lambda: flops_check(figures))
    part("preset", "preset run", lambda: preset_run(out, small, budget, figures))
    part("sweep", "sweep gain", lambda: sweep_gain(*((2, 2, 20) if small else (16, 4, 500)), figures))
    part("engine", "engine vs bare", lambda: engine_vs_bare(
        20 if small else 1000, 3 if small else 7, WORKLOADS[:1] if small else WORKLOADS,
        [1, 2] if small else [1, 8], budget, figures))
    if "largest" in only:
        print("largest sweep that fits (adam; members = trials x seeds share one program):")
    for name in ("mnist1d-mlp",) if small else ("mnist1d-mlp", "mnist1d-cnn"):
        part("largest", f"largest sweep {name}", lambda name=name: largest_sweep(
            name, 2 if small else 64, 4 if small else LARGEST_TRIED, budget, figures))
    part("ahead", "compile ahead", lambda: compile_ahead(out, small, budget, figures))
    try:  # strict JSON, written whole or not at all (Ctrl-C, a full disk)
        write_json(Path(out) / "gpu_check.json", figures)
    except UserError as exc:
        print(f"the figures were not written: {exc}")
        failed.append("gpu_check.json")
    print(f"gpu_check took {time.perf_counter() - budget.start:.0f} s; figures in"
          f" {out}/gpu_check.json" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 130 if interrupted else code or (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
