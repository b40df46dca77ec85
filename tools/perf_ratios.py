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
import sys
from collections import defaultdict

SEPARATE = [("vmap", "sequential")]  # (a, b) parameter ids of two benchmarks in one group
FASTER_GOALS = {  # group prefix -> the speed a must reach relative to b (b's time / a's)
    "engine-vs-bare": 0.95, "sweep-vs-separate": 1.3, "seeds:": 1.3, "update-vs-optax": 1 / 1.1,
}
SLOWER_GOALS = {"monitor-cost": 1.02}  # group prefix -> the most a's time may be of b's


def rows(report: dict) -> list[tuple[str, str, float, float, float]]:
    """(benchmark, 'a/b', median seconds of a, of b, time ratio a/b)."""
    found = []
    for bench in report["benchmarks"]:
        for pair in bench.get("extra_info", {}).get("pairs", []):
            found.append((f"{bench['group']}[{bench['param']}]", pair["sides"],
                          pair["a_median_s"], pair["b_median_s"], pair["ratio_median"]))
    by_group: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in report["benchmarks"]:
        by_group[bench["group"]][bench["param"]] = bench["stats"]["median"]
    for group, sides in sorted(by_group.items()):
        for a, b in SEPARATE:
            if a in sides and b in sides:
                found.append((group, f"{a}/{b}", sides[a], sides[b], sides[a] / sides[b]))
    return found


def goal_line(name: str, ratio: float) -> str:
    """The goal this time ratio answers to, and whether it met it, or '' for none."""
    for prefix, speed in FASTER_GOALS.items():
        if name.startswith(prefix):
            met = 1 / ratio >= speed
            return f"speed {1 / ratio:.2f}x  goal >= {speed:.2f}x  {'meets' if met else 'MISSES'}"
    for prefix, most in SLOWER_GOALS.items():
        if name.startswith(prefix):
            met = ratio <= most
            return f"{ratio:6.3f}x the time  goal <= {most:.2f}x  {'meets' if met else 'MISSES'}"
    return ""


def overhead_lines(report: dict) -> list[str]:
    lines = []
    for bench in report["benchmarks"]:
        info = bench.get("extra_info", {})
        if "first_overhead_share" not in info:
            continue
        for name, label, goal in (("first", "first run", 0.30), ("rerun", "rerun", 0.15)):
            share = info[f"{name}_overhead_share"]
            lines.append(
                f"overhead share, {label:9}  {share:6.1%} of {info[f'{name}_wall_s']:6.1f} s"
                f" wall (train {info[f'{name}_train_s']:.1f} s, compile {info[f'{name}_compile_s']:.1f} s,"
                f" cached load {info[f'{name}_compile_cached_s']:.1f} s, setup"
                f" {info[f'{name}_setup_s']:.1f} s, probe {info[f'{name}_probe_s']:.1f} s,"
                f" eval {info[f'{name}_eval_s']:.1f} s)  goal < {goal:.0%}"
                f"  {'meets' if share < goal else 'MISSES'}")
        cold, hit = info["compile_cold_s"], info["compile_cache_hit_s"]
        lines.append(f"compile from the cache  {hit:.1f} s vs {cold:.1f} s compiling"
                     f" ({hit / cold:.2f}x the time)  goal <= 0.25x"
                     f"  {'meets' if hit <= 0.25 * cold else 'MISSES'}")
    return lines


def main(path: str) -> None:
    with open(path) as f:
        report = json.load(f)
    for line in overhead_lines(report):
        print(line)
    # a/b is the median of the per-round ratios where the sides were interleaved, so it
    # need not equal median a / median b; speed is its inverse (b's time over a's)
    print(f"{'benchmark':44} {'sides a/b':>22} {'median a':>11} {'median b':>11} {'time a/b':>9}"
          "  (interleaved: median of the rounds' ratios; speed: b's time / a's)")
    for name, sides, a, b, ratio in rows(report):
        print(f"{name:44} {sides:>22} {a * 1e3:9.3f}ms {b * 1e3:9.3f}ms {ratio:9.3f}  "
              f"{goal_line(name, ratio)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/bench.json")
