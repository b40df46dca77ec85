"""What a program used while it trained: `UsageSampler` (process CPU and memory through
psutil, GPU utilisation and memory through NVML on NVIDIA GPUs), peak memory, and the
device's peak FLOP/s for MFU.

Whatever a machine cannot tell (no NVML, no memory_stats on the CPU backend) is recorded as
missing with the reason, never raised.
"""
from __future__ import annotations

import platform
import resource
import threading
from typing import Any

# Dense peak FLOP/s for float32 matmuls as JAX runs them by default on these GPUs (TF32
# tensor cores; vendor datasheets, no sparsity), matched by substring of the device kind,
# most specific first. MFU is left empty, with the reason, for any other device.
PEAK_FLOPS = [
    ("H100 PCIe", 378e12), ("H100", 494.7e12), ("H200", 494.7e12), ("GH200", 494.7e12),
    ("A100", 156e12), ("A10G", 35e12), ("L40S", 183e12), ("L4", 60e12),
    ("RTX 4090", 82.6e12), ("RTX 3090", 35.6e12), ("V100", 15.7e12), ("T4", 8.1e12),
]

def peak_flops(device_kind: str) -> float | None:
    for fragment, flops in PEAK_FLOPS:
        if fragment in device_kind:
            return flops
    return None


def device_memory_peak() -> tuple[int | None, str | None]:
    """(peak bytes in use on device 0 since the process started, None) where the backend
    keeps memory_stats (GPU, TPU), else (None, why not)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception as exc:  # noqa: BLE001  some backends raise instead of returning None
        return None, f"memory_stats failed: {type(exc).__name__}"
    if not stats or "peak_bytes_in_use" not in stats:
        return None, f"the {jax.devices()[0].platform} backend keeps no memory_stats"
    return int(stats["peak_bytes_in_use"]), None


def host_rss_peak() -> int:
    """Peak resident memory of this process so far, in bytes (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if platform.system() == "Darwin" else peak * 1024


class UsageSampler:
    """A daemon thread that samples process CPU utilisation and RSS (psutil) and, on an
    NVIDIA GPU, device utilisation and memory (NVML) every `interval_s` while a cell
    trains. It only reads counters the OS and driver keep, so it costs the training thread
    a few microseconds per sample (tests/perf/test_monitor_cost.py measures it)."""

    def __init__(self, interval_s: float = 0.1):
        self.interval_s = interval_s
        self.missing: dict[str, str] = {}
        self._cpu: list[float] = []
        self._rss: list[int] = []
        self._gpu_util: list[float] = []
        self._gpu_mem: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process = self._open_psutil()
        self._nvml = self._open_nvml()

    def _open_psutil(self):
        try:
            import psutil
        except ImportError as exc:
            self.missing["cpu"] = f"psutil unavailable: {exc}"
            return None
        process = psutil.Process()
        process.cpu_percent(None)  # the first reading only starts the interval
        return process

    def _open_nvml(self, platform_name: str | None = None):
        try:
            if platform_name is None:
                import jax

                platform_name = jax.devices()[0].platform
            if platform_name != "gpu":
                self.missing["device_util"] = f"no NVIDIA GPU (platform {platform_name})"
                return None
            import pynvml

            pynvml.nvmlInit()
            return pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception as exc:  # noqa: BLE001  no library, no driver, no permission
            self.missing["device_util"] = f"NVML unavailable: {type(exc).__name__}: {exc}".strip()
            return None

    def _sample(self) -> None:
        if self._process is not None:
            try:
                self._cpu.append(self._process.cpu_percent(None))
                self._rss.append(self._process.memory_info().rss)
            except Exception as exc:  # noqa: BLE001
                self.missing["cpu"] = f"psutil failed: {type(exc).__name__}"
                self._process = None
        if self._nvml is not None:
            pynvml, handle = self._nvml
            try:
                self._gpu_util.append(float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu))
                self._gpu_mem.append(int(pynvml.nvmlDeviceGetMemoryInfo(handle).used))
            except Exception as exc:  # noqa: BLE001
                self.missing["device_util"] = f"NVML failed: {type(exc).__name__}"
                self._nvml = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> UsageSampler:
        self._thread = threading.Thread(target=self._loop, name="optbench-usage", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()  # at least one sample, however short the cell

    def summary(self) -> dict[str, Any]:
        def mean(values):
            return float(sum(values) / len(values)) if values else None

        return {  # keys are bench.records.Usage fields: the engine copies them by name
            "cpu_util_mean": mean(self._cpu),
            "rss_sampled_peak_bytes": max(self._rss) if self._rss else None,
            "device_util_mean": mean(self._gpu_util),
            "device_util_max": max(self._gpu_util) if self._gpu_util else None,
            "device_mem_peak_bytes": max(self._gpu_mem) if self._gpu_mem else None,
            "usage_samples": max(len(self._cpu), len(self._gpu_util)),
        }
