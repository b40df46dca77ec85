"""Ratios between the sides of each benchmark group in a pytest-benchmark JSON report.

    python -m bench.perf_ratios results/bench.json

Groups that hold two benchmarks (engine/bare) give the first side's median time over the
second's; a benchmark that timed both sides itself (handwritten/optax updates) carries its
ratio in extra_info.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict

# (numerator, denominator) sides, as they appear in the benchmarks' parameter ids
SIDES = [("engine", "bare"), ("vmap", "sequential")]


def ratios(report: dict) -> list[tuple[str, str, float, float, float]]:
    """(group, 'a/b', median a, median b, a/b) for each group with both sides."""
    by_group: dict[str, dict[str, dict]] = defaultdict(dict)
    for bench in report["benchmarks"]:
        for a, b in SIDES:
            for side in (a, b):
                if side in bench["param"].split("-"):
                    by_group[bench["group"]][side] = bench["stats"]
    rows = []
    for group, sides in sorted(by_group.items()):
        for a, b in SIDES:
            if a in sides and b in sides:
                ma, mb = sides[a]["median"], sides[b]["median"]
                rows.append((group, f"{a}/{b}", ma, mb, ma / mb, sides[a]["iqr"], sides[b]["iqr"]))
    return rows


def main(path: str) -> None:
    with open(path) as f:
        report = json.load(f)
    print(f"{'group':34} {'ratio':>12} {'median a':>11} {'median b':>11} {'time a/b':>9}  (IQR a, b)")
    for group, label, ma, mb, ratio, iqr_a, iqr_b in ratios(report):
        print(f"{group:34} {label:>12} {ma * 1e3:9.3f}ms {mb * 1e3:9.3f}ms {ratio:9.3f}"
              f"  ({iqr_a * 1e3:.3f}, {iqr_b * 1e3:.3f} ms)")
    monitor = [b for b in report["benchmarks"] if b["group"] == "monitor-cost"]
    for bench in monitor:
        info = bench.get("extra_info", {})
        if "ratio_median" in info:
            print(f"monitor on/off, sampling every {bench['param']} s: step time ratio"
                  f" {info['ratio_median']:.4f} (off {info['off_median_s'] * 1e3:.2f} ms,"
                  f" on {info['on_median_s'] * 1e3:.2f} ms per chunk)")
    paired = [b for b in report["benchmarks"] if "ratio_median" in b.get("extra_info", {})
              and b["group"] != "monitor-cost"]
    if paired:
        print(f"\n{'hand-written vs Optax twin':34} {'us/update':>11} {'optax':>9} {'time ratio':>10}  (IQR)")
    for bench in paired:
        info = bench["extra_info"]
        print(f"{bench['param']:34} {info['us_per_update_handwritten']:11.2f}"
              f" {info['us_per_update_optax']:9.2f} {info['ratio_median']:10.3f}"
              f"  ({info['ratio_iqr']:.3f})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/bench.json")
