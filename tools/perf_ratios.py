"""The figures a `make bench` run holds, each beside its goal (issue 15), one line each.

    python tools/perf_ratios.py results/bench.json

Benchmarks that time their sides themselves, interleaved round by round (engine/bare,
sweep/separate, handwritten/optax, monitor on/off), carry `pairs` in extra_info: both
medians and the median of the per-round time ratios. Groups of two separate benchmarks
(vmap/sequential) give the ratio of their median times. The overhead benchmark carries its
own figures. Speeds are printed as "speed 1.20x" (the other side's time over this one's:
above 1, a is faster).
These are measurements of one run on this machine, not pass/fail tests: a line that misses
its goal says so and the script still exits 0.
"""
from __future__ import annotations

import json
import math
import sys
from collections import defaultdict

SEPARATE = [("vmap", "sequential")]  # (a, b) parameter ids of two benchmarks in one group
FASTER_GOALS = {  # group prefix -> the speed a must reach relative to b (b's time / a's)
    "engine-vs-bare": 0.95, "sweep-vs-separate": 1.3, "seeds:": 1.3, "update-vs-optax": 1 / 1.1,
}
SLOWER_GOALS = {"monitor-cost": 1.02}  # group prefix -> the most a's time may be of b's


def number(value) -> float | None:
    """A finite number from the report, or None (missing, text, null, NaN: a partial or
    hand-edited bench.json prints what it can)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)  # JSON holds integers of any length: 1e400 written out overflows
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def non_negative(value) -> float | None:
    """A time or a count from the report, or None: as `number`, and never below zero."""
    found = number(value)
    return found if found is not None and found >= 0 else None


def fixed(value: float, spec: str) -> str:
    """`value` formatted by `spec`, or as .4g where that runs to many digits: a hand-edited
    1e300 is one short word, not 300 digits."""
    text = f"{value:{spec}}"
    if len(text.strip()) <= 12:
        return text
    return f"{value * 100:.4g}%" if spec.endswith("%") else f"{value:.4g}"


def quotient(a: float | None, b: float | None) -> float | None:
    """a / b, or None where either is missing or b is zero."""
    return None if a is None or not b else a / b


def benchmarks(report) -> list[dict]:
    """The report's benchmarks that are tables; anything else is left out."""
    found = report.get("benchmarks") if isinstance(report, dict) else None
    return [b for b in found if isinstance(b, dict)] if isinstance(found, list) else []


def info_of(bench: dict) -> dict:
    info = bench.get("extra_info")
    return info if isinstance(info, dict) else {}


def rows(report: dict) -> list[tuple[str, str, float | None, float | None, float | None]]:
    """(benchmark, 'a/b', median seconds of a, of b, time ratio a/b); None where the report
    lacks a figure or a ratio would divide by zero."""
    found = []
    for bench in benchmarks(report):
        pairs = info_of(bench).get("pairs")
        for pair in pairs if isinstance(pairs, list) else []:
            if isinstance(pair, dict):
                a, b = number(pair.get("a_median_s")), number(pair.get("b_median_s"))
                ratio = number(pair.get("ratio_median"))
                found.append((f"{bench.get('group')}[{bench.get('param')}]",
                              str(pair.get("sides", "?")), a, b, ratio if ratio else None))
    by_group: dict[str, dict[str, float | None]] = defaultdict(dict)
    for bench in benchmarks(report):
        stats = bench.get("stats")
        by_group[str(bench.get("group"))][bench.get("param")] = number(
            stats.get("median") if isinstance(stats, dict) else None)
    for group, sides in sorted(by_group.items()):
        for a, b in SEPARATE:
            if a in sides and b in sides:
                found.append((group, f"{a}/{b}", sides[a], sides[b], quotient(sides[a], sides[b])))
    return found


def goal_line(name: str, ratio: float | None) -> str:
    """The goal this time ratio answers to, and whether it met it, or '' for none."""
    for prefix, speed in FASTER_GOALS.items():
        if name.startswith(prefix):
            if not ratio:
                return f"no ratio (a median missing or zero)  goal >= {speed:.2f}x"
            met = 1 / ratio >= speed
            return f"speed {1 / ratio:.2f}x  goal >= {speed:.2f}x  {'meets' if met else 'MISSES'}"
    for prefix, most in SLOWER_GOALS.items():
        if name.startswith(prefix):
            if ratio is None:
                return f"no ratio (a median missing or zero)  goal <= {most:.2f}x"
            met = ratio <= most
            return f"{ratio:6.3f}x the time  goal <= {most:.2f}x  {'meets' if met else 'MISSES'}"
    return ""


def seconds(value: float | None, unit: str = " s", scale: float = 1.0, width: int = 0,
            digits: int = 1) -> str:
    """A time as text, '?' where the report lacks it."""
    return ("?".rjust(width) + unit if value is None
            else fixed(value * scale, f"{width}.{digits}f") + unit)


def overhead_lines(report: dict) -> list[str]:
    lines = []
    for bench in benchmarks(report):
        info = info_of(bench)
        if "first_overhead_share" not in info:
            continue
        figure = {key: number(value) for key, value in info.items()}
        for name, label, goal in (("first", "first run", 0.30), ("rerun", "rerun", 0.15)):
            share = figure.get(f"{name}_overhead_share")
            parts = ", ".join(f"{what} {seconds(figure.get(f'{name}_{key}'))}" for what, key in (
                ("train", "train_s"), ("compile", "compile_s"), ("cached load", "compile_cached_s"),
                ("setup", "setup_s"), ("probe", "probe_s"), ("eval", "eval_s")))
            verdict = "?" if share is None else "meets" if share < goal else "MISSES"
            lines.append(
                f"overhead share, {label:9}  {'?' if share is None else fixed(share, '6.1%')} of"
                f" {seconds(figure.get(f'{name}_wall_s'), width=6)} wall ({parts})"
                f"  goal < {goal:.0%}  {verdict}")
        cold, hit = figure.get("compile_cold_s"), figure.get("compile_cache_hit_s")
        share = quotient(hit, cold)
        lines.append(f"compile from the cache  {seconds(hit)} vs {seconds(cold)} compiling"
                     f" ({'?' if share is None else fixed(share, '.2f')}x the time)  goal <= 0.25x"
                     f"  {'?' if share is None else 'meets' if share <= 0.25 else 'MISSES'}")
        lines += same_code_lines(figure)
    return lines


def same_code_lines(figure: dict) -> list[str]:
    """The speed verdicts of compare between the overhead benchmark's two runs (the same
    code): cells read beyond noise, and those --fail-on-regression 15 would fail on."""
    # counts below zero and ratios not above it are no figures: '?', never a verdict
    judged, beyond, flagged = (non_negative(figure.get(f"same_code_{key}")) for key in
                               ("judged", "beyond_noise", "regressions_15"))
    if judged is None:
        return []
    low, high = (figure.get(f"same_code_ratio_{key}") for key in ("min", "max"))
    spread = "" if not (low and high and low > 0 and high > 0) else \
        f", speed ratios {fixed(low, '.2f')}-{fixed(high, '.2f')}x"
    verdict = "?" if flagged is None else "meets" if flagged == 0 else "MISSES"
    return [f"compare, rerun vs first run (same code)  {judged:g} cells judged,"
            f" {'?' if beyond is None else f'{beyond:g}'} read faster or slower beyond the"
            f" chunks' noise{spread}; --fail-on-regression 15 flags"
            f" {'?' if flagged is None else f'{flagged:g}'}  goal 0  {verdict}"]


def main(path: str) -> int:
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError) as exc:  # missing, unreadable, not JSON: one line
        print(f"perf_ratios: cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
              file=sys.stderr)
        return 2
    if not isinstance(report, dict) or not isinstance(report.get("benchmarks"), list):
        print(f"perf_ratios: {path} is not a pytest-benchmark report (--benchmark-json): it"
              " has no list of benchmarks", file=sys.stderr)
        return 2
    if not benchmarks(report):  # a run that selected no benchmark: nothing to measure
        print(f"perf_ratios: {path} holds no benchmarks", file=sys.stderr)
        return 0
    for line in overhead_lines(report):
        print(line)
    # a/b is the median of the per-round ratios where the sides were interleaved, so it
    # need not equal median a / median b; speed is its inverse (b's time over a's)
    print(f"{'benchmark':44} {'sides a/b':>22} {'median a':>11} {'median b':>11} {'time a/b':>9}"
          "  (interleaved: median of the rounds' ratios; speed: b's time / a's)")
    for name, sides, a, b, ratio in rows(report):
        print(f"{name:44} {sides:>22} {seconds(a, 'ms', 1e3, 9, 3)} {seconds(b, 'ms', 1e3, 9, 3)}"
              f" {'?' if ratio is None else fixed(ratio, '9.3f'):>9}  {goal_line(name, ratio)}")
    for bench in benchmarks(report):
        start_stop = non_negative(info_of(bench).get("start_stop_ms"))
        if start_stop is not None:  # .4g: a hand-edited 1e300 is one short word, not 300 digits
            print(f"usage sampler at {bench.get('param')} s: starting and stopping it took"
                  f" {start_stop:.4g} ms, once per program, outside every step time")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "results/bench.json"))
