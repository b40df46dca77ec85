"""Timing two or more sides of a comparison round by round: each round runs every side once,
back to back, so that the machine's drift (large on a shared 2-core CPU) hits all sides alike."""
import statistics
import time


class SelfTimed:
    """A side that times the part under test itself and returns its seconds (setup and
    teardown around it, such as starting a thread, stay off its clock)."""

    def __init__(self, call):
        self._call = call

    def __call__(self) -> float:
        return self._call()


def time_interleaved(benchmark, sides: dict, *, rounds: int, group: str) -> dict[str, list[float]]:
    """Seconds per call of each side, one list per side; pytest-benchmark times the rounds.
    A `SelfTimed` side's time is the seconds it returns (the part under test), not the call's."""
    times = {name: [] for name in sides}

    def one_round():
        for name, call in sides.items():
            start = time.perf_counter()
            timed = call()
            times[name].append(timed if isinstance(call, SelfTimed) else
                               time.perf_counter() - start)

    benchmark.group = group
    benchmark.pedantic(one_round, rounds=rounds, iterations=1)
    return times


def record_ratio(benchmark, times: dict[str, list[float]], a: str, b: str, **extra) -> None:
    """extra_info for tools/perf_ratios.py: one entry of `pairs` per call, with both medians
    and the median per-round time ratio a/b (below 1: a is faster). Nothing under
    --benchmark-disable, where one round is no measurement."""
    if benchmark.stats is None:
        return
    benchmark.extra_info.setdefault("pairs", []).append(dict(
        sides=f"{a}/{b}", a_median_s=statistics.median(times[a]),
        b_median_s=statistics.median(times[b]),
        ratio_median=statistics.median(x / y for x, y in zip(times[a], times[b]))))
    benchmark.extra_info.update(extra)
