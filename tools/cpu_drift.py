"""How a machine's speed drifts while nothing changes: three small JAX programs of different
kinds (a 1-D convolution stack, matrix products, an elementwise loop), each timed in turn
for SECONDS (and at least two windows), reported as medians of 10-call windows relative to
each program's overall median.

`optbench compare`'s speed interval covers the scatter of a cell's chunks within one run, not
a spell in which the machine runs one kind of program slower: a cell that trains for a few
seconds sits inside one spell. This shows whether a machine has such spells, how large they
are, and whether they hit every kind of program alike (then a calibration program timed
beside each cell could correct for them; on this project's 2-core VM on 2026-11-28 they did
not: windows 1.3-1.8x slow for one program while the others ran at their median).

    python tools/cpu_drift.py [SECONDS]    # default 60
"""
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

WINDOW = 10  # rounds whose median is one point of the drift


def programs():
    key = jax.random.key(0)
    x = jax.random.normal(key, (100, 40, 1))
    w1, w2 = jax.random.normal(key, (5, 1, 32)), jax.random.normal(key, (5, 32, 32))
    a, v = jax.random.normal(key, (128, 128)), jnp.ones((256,))

    def conv(h, w):
        return jax.lax.conv_general_dilated(h, w, (1,), "SAME",
                                            dimension_numbers=("NWC", "WIO", "NWC"))

    def convolutions(x):
        def body(c, _):
            h = jax.nn.relu(conv(jax.nn.relu(conv(c, w1)), w2))
            return c + 1e-3 * h.mean(-1, keepdims=True), None
        return jax.lax.scan(body, x, length=200)[0]

    def products(a):
        return jax.lax.scan(lambda c, _: (jnp.tanh(c @ a), None), a, length=400)[0]

    def elementwise(v):
        return jax.lax.scan(lambda c, _: (jnp.sin(c) * 1.0001 + 0.1, None), v, length=2000)[0]

    return {"convolutions": (jax.jit(convolutions), x), "products": (jax.jit(products), a),
            "elementwise": (jax.jit(elementwise), v)}


def main(seconds: float) -> int:
    timed = programs()
    for fn, arg in timed.values():
        jax.block_until_ready(fn(arg))  # compiled and warm before any clock
    rows, end = [], time.monotonic() + seconds
    while time.monotonic() < end or len(rows) < 2 * WINDOW:  # two windows, however slow
        row = []
        for fn, arg in timed.values():
            start = time.perf_counter()
            jax.block_until_ready(fn(arg))
            row.append(time.perf_counter() - start)
        rows.append(row)
    windows = len(rows) // WINDOW
    medians = np.median(np.array(rows[:windows * WINDOW]).reshape(windows, WINDOW, -1), axis=1)
    relative = medians / np.median(medians, axis=0)
    print(f"{len(rows)} rounds, {windows} windows of {WINDOW}; window medians / overall"
          " median:")
    for i, name in enumerate(timed):
        print(f"  {name:13} slowest {relative[:, i].max():.2f}x, fastest {relative[:, i].min():.2f}x")
    names = list(timed)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            r = np.corrcoef(medians[:, i], medians[:, j])[0, 1]
            print(f"  correlation of windows, {names[i]} and {names[j]}: {r:.2f}")
    return 0


def seconds_given(argv: list[str]) -> float | None:
    """SECONDS from the command line (default 60), or None for anything else."""
    if len(argv) > 1:
        return None
    try:
        seconds = float(argv[0]) if argv else 60.0
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 86400 else None


if __name__ == "__main__":
    given = seconds_given(sys.argv[1:])
    if given is None:
        print("cpu_drift: give how long to measure, in seconds, from 0 to 86400:"
              " python tools/cpu_drift.py [SECONDS]", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(given))
