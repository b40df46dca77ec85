"""Every figure the harness measures, on the accelerator this runs on, in one script.

Run it from the checkout with optbench's dependencies importable (pyproject.toml's
`dependencies`, with a JAX that sees the GPU: `python3 -m pip install -e . "jax[cuda13]"`,
or `jax[cuda12]` for an older driver; optbench itself need not be installed). It installs
nothing, downloads nothing, and prints, in order of what issue 15 needs most:

1. flops: the device and the versions that ran, and the FLOP count MFU divides by (XLA's
   count of one chunk must not grow with the chunk's length);
2. preset: the quick preset's MNIST-1D workloads (MLP, CNN, GRU: 21 programs; the 2-D test
   functions measure nothing on a GPU), as `optbench run` in a process of its own with an
   empty cache: per workload (median over its cells) steps/s, step time, compile time, the
   update's share of a step, GPU utilisation (NVML), peak device memory and MFU; and the
   run's overhead share (1 - train / wall clock);
3. sweep: a 64-member learning-rate sweep (16 rates x 4 seeds) of mnist1d-mlp as one
   program against the same 16 trials trained one after another, compile included
   (goal >= 10x on a GPU), both after a warm-up program;
4. engine: the engine against both bare loops (tests/perf/loops.py: data as arguments,
   data as constants) on every built-in classification workload, with 1 and 8 seeds;
5. largest: the largest sweep that fits: members multiplied by 4 until the device runs out
   of memory (or LARGEST_TRIED), then the size between, for mnist1d-mlp and mnist1d-cnn;
   per size the build-and-compile time, member-steps per second, and the program's own
   footprint as XLA plans it (arguments + outputs + temporaries - donated buffers), besides
   the process's peak;
6. ahead: `--compile-ahead` on the same run as part 2, again from an empty cache: whether
   compiling the next program while one trains shortens the wait on a GPU.

Every part prints its figures as it ends and guards itself: a part that fails prints one
line (its traceback on stderr) and the next part runs. The figures also go to
OUT_DIR/gpu_check.json, rewritten after each part (and on Ctrl-C). How long: on one H200,
`--budget 390` ran 415 s and its budget was spent before part 6, which repeats part 2's
run (135 s there): all six need about 10 minutes (an estimate: no run has finished all six
yet). Pick parts with --only and bound the whole with --budget.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":  # run as a script: the checkout's packages, as PYTHONPATH=. does
    sys.path.insert(0, ROOT)

try:  # a machine not set up yet still gets --help, and one line naming what is missing
    import jax
    import numpy as np
    import pandas as pd

    import optimizers
    import workloads
    from bench.errors import UserError
    from bench.runner.files import write_json
    from bench.train import engine, usage
    from tests.perf.loops import bare_loop, engine_loop
    MISSING = None
except ImportError as exc:
    MISSING = exc

WORKLOADS = ["mnist1d-mlp", "mnist1d-cnn", "mnist1d-logreg", "digits-mlp", "digits-cnn",
             "mnist1d-gru"]  # the slowest last: a spent budget skips it first
PRESET = ["--preset", "quick", "--workloads", "mnist1d-mlp,mnist1d-cnn,mnist1d-gru"]
# --small checks that every part works, on a CPU: its runs skip the report (~3 s of figures each)
SMALL_PRESET = ["--preset", "smoke", "--steps", "20", "--seeds", "1", "--no-report"]
LARGEST_TRIED = 2 ** 16
PARTS = ["flops", "preset", "sweep", "engine", "largest", "ahead"]


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


def optbench_run(args: list[str], out: str, budget: Budget) -> tuple[int | None, float]:
    """`optbench run ARGS --out OUT` in a process of its own (its peak memory its own), with
    an empty $OPTBENCH_CACHE of its own; (exit code, or None where the budget ran out and
    stopped it; wall clock)."""
    if os.path.isdir(out) and os.path.exists(f"{out}/manifest.json"):
        # an earlier check's run: its cells would stay in the merged tables beside this
        # run's (--force reruns cells, it keeps the others), and their seconds in the sums
        shutil.rmtree(out)
    with tempfile.TemporaryDirectory(prefix="optbench-gpu-check-cache-") as cache:
        # JAX_COMPILATION_CACHE_DIR would win over $OPTBENCH_CACHE (a user's, or the test
        # session's shared cache): the run would load what an earlier one compiled
        env = {**{k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"},
               "OPTBENCH_CACHE": cache,
               "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
        left = budget.left()
        start = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-m", "bench.cli", "run", *args, "--out",
                                   out, "--force"], env=env, capture_output=True, text=True,
                                  timeout=_timeout(left))
        except subprocess.TimeoutExpired:
            print(f"  stopped: the budget ran out {time.perf_counter() - start:.0f} s into the"
                  " run")
            return None, time.perf_counter() - start
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
    code, wall = optbench_run(SMALL_PRESET if small else PRESET, f"{out}/preset", budget)
    if not os.path.exists(f"{out}/preset/runs.parquet"):  # it said why above
        print(f"the preset run finished no cell ({'stopped' if code is None else f'exit {code}'}):"
              " no figures for part 2")
        return 0 if code is None else code or 1
    cells = pd.read_parquet(f"{out}/preset/runs.parquet").drop_duplicates("cell_id")
    columns = ["steps_per_s", "step_time_median_s", "compile_s", "update_share",
               "device_util_mean", "device_util_max", "peak_device_bytes", "mfu"]
    for why in sorted({why for text in cells["missing"] for why in json.loads(text).values()}):
        print("  not measured:", why)
    medians = cells.groupby("workload")[columns].median()
    print(f"{'smoke preset (--small)' if small else 'quick preset, MNIST-1D workloads'},"
          f" median over the {'cells finished before the stop' if code is None else 'cells'}"
          " of each workload:")
    print(medians.to_string(float_format=lambda v: f"{v:.4g}"))
    print("  (update_share and mfu are fractions of 1, device_util_* percent; peak_device_bytes"
          " is the process's peak so far when the cell ended, so a later workload's includes"
          " an earlier one's)")
    figures["preset"] = {"per_workload": json.loads(medians.to_json())}
    if code is None:  # a wall clock cut short by the budget makes no overhead share
        print("  overhead share: not measured, the budget stopped the run")
        return 0
    figures["preset"]["wall_s"] = wall
    print(f"  first run, empty caches: {overhead_line(f'{out}/preset', wall)}")
    return code


def compile_ahead(out: str, small: bool, budget: Budget, figures: dict) -> int:
    """Part 6: part 2's run again from an empty cache, each program prepared while the one
    before it trains."""
    code, wall = optbench_run([*(SMALL_PRESET if small else PRESET), "--compile-ahead"],
                              f"{out}/ahead", budget)
    if code is None:
        print("  --compile-ahead: not measured, the budget stopped the run")
        return 0
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
    peak, why = usage.device_memory_peak()
    print(f"  {name}: the largest sweep tried that fits: {fit} members"
          f"{' (the cap)' if fit == cap else ''}; the process's peak device memory so far"
          f" {gib(peak) if why is None else f'not measured ({why})'}")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        self.exit(2, f"gpu_check: {message} (see `python3 tools/gpu_check.py --help`)\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not 0 < value < float("inf"):  # nan fails both
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds and finite, got {text}")
    return value


def _parts(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"names no part (the parts: {', '.join(PARTS)})")
    for name in names:
        if name not in PARTS:
            close = difflib.get_close_matches(name, PARTS, n=1)
            raise argparse.ArgumentTypeError(
                f"unknown part '{name}'" + (f" (did you mean '{close[0]}'?)" if close else "")
                + f"; the parts: {', '.join(PARTS)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python3 tools/gpu_check.py", description=__doc__, allow_abbrev=False,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", metavar="OUT_DIR",
                        default=f"{tempfile.gettempdir()}/optbench-gpu-check",
                        help="where the runs, their logs and gpu_check.json go"
                             " (default: %(default)s)")
    parser.add_argument("--small", action="store_true",
                        help="shrink every part to seconds (the smoke preset's two cells for 20"
                             " steps in parts 2 and 6): a check that the script works, on a"
                             " CPU too (about 40 s on a 2-core CPU; its runs write no report)")
    parser.add_argument("--budget", type=_seconds, metavar="SECONDS",
                        help="no part, or round of a part, starts after SECONDS, and the"
                             " `optbench run` parts are stopped when they run out; what is"
                             " already running finishes first (--budget 390 ended at 415 s"
                             " on an H200): set it a minute or so below the time you have")
    parser.add_argument("--only", type=_parts, default=PARTS, metavar="PARTS",
                        help=f"comma-separated parts to run, of {','.join(PARTS)} (default:"
                             " all)")
    return parser


def main(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2), already printed
        return stop.code or 0
    if MISSING is not None:
        print(f"gpu_check: {MISSING} (install optbench's dependencies, with a JAX for the"
              f" GPU: python3 -m pip install -e {shlex.quote(ROOT)} \"jax[cuda13]\")",
              file=sys.stderr)
        return 2
    try:
        platform = jax.devices()[0].platform
    except Exception as exc:  # noqa: BLE001  JAX_PLATFORMS naming a backend it cannot start
        # (a RuntimeError, or a bare AssertionError where no plugin for it is installed)
        print(f"gpu_check: JAX cannot start its backend ({type(exc).__name__}"
              f"{': ' + str(exc).splitlines()[0][:300] if str(exc) else ''};"
              f" JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', '')!r})", file=sys.stderr)
        return 2
    if platform == "cpu" and not args.small:
        print("gpu_check: JAX sees no accelerator, only the CPU (install a JAX for the GPU:"
              " python3 -m pip install \"jax[cuda13]\"); add --small to check the script on"
              " a CPU", file=sys.stderr)
        return 2
    try:  # every part writes under it: refused now, in one line, not after minutes of work
        os.makedirs(args.out, exist_ok=True)
        if not os.access(args.out, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
    except (OSError, ValueError) as exc:  # a file, a dangling link, '', a NUL, too long
        why = "a file is there" if os.path.isfile(args.out) else \
            getattr(exc, "strerror", None) or exc
        print(f"gpu_check: cannot make the folder {args.out[:200]!r} for OUT_DIR: {why}",
              file=sys.stderr)
        return 2
    # this process's compiles are compiles: a persistent cache left warm by an earlier
    # check would turn the sweep gain's "compile included" into loads (the runs of parts
    # 2 and 6 get empty caches of their own)
    was = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        return check(args.out, args.small, args.budget, args.only)
    finally:
        jax.config.update("jax_enable_compilation_cache", was)


def save(figures: dict, path: str) -> None:
    """gpu_check.json, whole or not at all (a temporary name, then renamed) and strict: a
    NaN or infinite figure is null, numpy numbers plain numbers."""
    try:
        write_json(Path(path), figures)
    except UserError as exc:  # a full disk: the figures printed above are all there is
        print(f"the figures were not written: {exc}", file=sys.stderr)


def check(out: str, small: bool, seconds: float | None, only: list[str]) -> int:
    budget, figures, failed = Budget(seconds), {}, []
    path = f"{out}/gpu_check.json"
    device = jax.devices()[0]
    import flax
    import optax
    figures["device"] = f"{device.platform} {device.device_kind} x{jax.device_count()}"
    print(f"jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}:"
          f" {figures['device']}")
    code = 0

    def part(key: str, name: str, run) -> None:
        nonlocal code
        if key not in only or budget.spent(name):
            return
        clock = time.perf_counter()
        try:
            result = run()
        except Exception as exc:  # noqa: BLE001  one part's failure must not cost the rest
            traceback.print_exc()
            print(f"{name} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            failed.append(name)
            return
        finally:  # the device's minutes are few: what they measured is kept as it comes
            save(figures, path)
        if isinstance(result, int) and result:
            code = code or result
        print(f"  ({name}: {time.perf_counter() - clock:.0f} s)", flush=True)

    try:
        part("flops", "flops check", lambda: flops_check(figures))
        part("preset", "preset run", lambda: preset_run(out, small, budget, figures))
        part("sweep", "sweep gain", lambda: sweep_gain(
            *((2, 2, 20) if small else (16, 4, 500)), figures))
        part("engine", "engine vs bare", lambda: engine_vs_bare(
            20 if small else 1000, 3 if small else 7, WORKLOADS[:1] if small else WORKLOADS,
            [1, 2] if small else [1, 8], budget, figures))
        if "largest" in only:
            print("largest sweep that fits (adam; members = trials x seeds share one program):")
        for name in ("mnist1d-mlp",) if small else ("mnist1d-mlp", "mnist1d-cnn"):
            part("largest", f"largest sweep {name}", lambda name=name: largest_sweep(
                name, 2 if small else 64, 4 if small else LARGEST_TRIED, budget, figures))
        part("ahead", "compile ahead", lambda: compile_ahead(out, small, budget, figures))
    except KeyboardInterrupt:
        save(figures, path)
        print(f"interrupted after {time.perf_counter() - budget.start:.0f} s; the figures"
              f" measured so far are in {path}", file=sys.stderr)
        return 130
    save(figures, path)
    print(f"gpu_check took {time.perf_counter() - budget.start:.0f} s; figures in"
          f" {path}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return code or (1 if failed else 0)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    if code == 130:  # Ctrl-C that cut an XLA compile short could crash the interpreter's
        # teardown (SIGSEGV on the CPU backend, in some runs): the figures are saved
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)
