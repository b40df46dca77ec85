"""The ratios a `make bench` report holds, one line each.

    python tools/perf_ratios.py results/bench.json

Benchmarks that time two sides themselves, interleaved round by round (engine/bare,
handwritten/optax, monitor on/off), carry `ratio_median` (the median of per-round time
ratios, below 1: side a is faster) in extra_info. Groups of two separate benchmarks
(vmap/sequential) give the ratio of their median times.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict

SEPARATE = [("vmap", "sequential")]  # (a, b) parameter ids of two benchmarks in one group


def rows(report: dict) -> list[tuple[str, str, float, float, float]]:
    """(benchmark, 'a/b', median seconds of a, of b, time ratio a/b)."""
    found = []
    for bench in report["benchmarks"]:
        info = bench.get("extra_info", {})
        if "ratio_median" in info:
            found.append((f"{bench['group']}[{bench['param']}]", info["sides"],
                          info["a_median_s"], info["b_median_s"], info["ratio_median"]))
    by_group: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in report["benchmarks"]:
        by_group[bench["group"]][bench["param"]] = bench["stats"]["median"]
    for group, sides in sorted(by_group.items()):
        for a, b in SEPARATE:
            if a in sides and b in sides:
                found.append((group, f"{a}/{b}", sides[a], sides[b], sides[a] / sides[b]))
    return found


def main(path: str) -> None:
    with open(path) as f:
        report = json.load(f)
    print(f"{'benchmark':44} {'sides a/b':>18} {'median a':>11} {'median b':>11} {'time a/b':>9}")
    for name, sides, a, b, ratio in rows(report):
        print(f"{name:44} {sides:>18} {a * 1e3:9.3f}ms {b * 1e3:9.3f}ms {ratio:9.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/bench.json")
