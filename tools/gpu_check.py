"""Run the quick preset on whatever accelerator JAX finds and print what it cost.

    PYTHONPATH=. python3 tools/gpu_check.py [OUT_DIR]

Meant for a GPU machine with JAX, Flax and Optax installed and nothing else set up: it runs
from the checkout, installs nothing, and prints the device, then per workload (median over
its cells) steps/s, step time, compile time, the optimizer update's share of a step, GPU
utilisation (NVML, where nvidia-ml-py is importable), peak device memory and MFU.
"""
import json
import sys
import tempfile

import jax
import pandas as pd

from bench import cli


def main(argv: list[str]) -> int:
    out = argv[0] if argv else f"{tempfile.gettempdir()}/optbench-gpu-check"
    device = jax.devices()[0]
    print(f"jax {jax.__version__}: {device.platform} {device.device_kind} x{jax.device_count()}")
    code = cli.main(["run", "--preset", "quick", "--out", out, "--force"])
    stats = device.memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    print("peak device memory:", f"{peak / 2**20:.1f} MiB" if peak else "not reported by this backend")
    cells = pd.read_parquet(f"{out}/runs.parquet").drop_duplicates("cell_id")
    columns = ["steps_per_s", "step_time_median_s", "compile_s", "update_share",
               "device_util_mean", "device_util_max", "peak_device_bytes", "mfu"]
    missing = sorted({why for text in cells["missing"] for why in json.loads(text).values()})
    for why in missing:
        print("not measured:", why)
    print("median over the cells of each workload:")
    print(cells.groupby("workload")[columns].median().to_string(float_format=lambda v: f"{v:.4g}"))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
