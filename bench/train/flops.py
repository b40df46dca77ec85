"""FLOPs of one train step of one member, read off a program's own training chunk (XLA's
cost analysis), and the device's peak for MFU. Nothing here compiles anything new."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import jax

from bench.train import usage

if TYPE_CHECKING:
    from bench.train.engine import MemberBatch


def count_flops(batch: MemberBatch) -> None:
    """FLOPs of one train step of one member: `chunk_flops` divided by the members (the
    analysis counts a scan's body once, so a chunk of any length costs one step). Within
    0.2% of lowering a lone member's single step (measured on every built-in workload; the
    vmapped key splitting is shared), without tracing the step again."""
    try:
        total = chunk_flops(batch)
        batch.usage.flops_per_step = float(total) / len(batch.members)
    except Exception as exc:  # noqa: BLE001  backends without cost analysis
        batch.usage.missing["flops"] = f"no cost analysis: {type(exc).__name__}"
    device = jax.devices()[0]
    batch.usage.peak_flops = usage.peak_flops(device.device_kind)
    if batch.usage.peak_flops is None:
        batch.usage.missing["mfu"] = f"peak FLOP/s unknown for {device.device_kind!r}"


def chunk_flops(batch: MemberBatch) -> float:
    """XLA's FLOP count of one chunk (a scan's body counted once). The lowering's analysis
    where the backend gives one; the GPU plugin (PJRT C API) gives none before compiling
    (None), so there the compiled executable's (on a CPU the two agree within 0.6%)."""
    length, lowered = next(iter(batch.chunk_lowerings.items()))
    flops = _flops(lowered.cost_analysis())
    if flops is None:
        flops = _flops(batch.compile_chunk(length).cost_analysis())
    if flops is None:
        raise LookupError("neither the lowering nor the executable counts FLOPs")
    return flops


def _flops(analysis) -> float | None:
    """The 'flops' of a cost analysis (older JAX: a list of one per computation), or None
    where it has no such count: an analysis without the entry, or a value that is no count
    (negative, zero, NaN), must leave MFU missing rather than make it a lie."""
    if isinstance(analysis, list):
        analysis = analysis[0] if analysis else None
    flops = analysis.get("flops") if isinstance(analysis, Mapping) else None
    try:
        flops = float(flops)
    except (TypeError, ValueError):
        return None
    return flops if math.isfinite(flops) and flops > 0 else None
