"""What a run's speed depends on besides the code, read from its manifest: the machine
(device, CPU model, cores, usable CPUs), how the run used it (the XLA devices the CPU was
split into, executor, workers, compile ahead), and how busy it was when the run started (the 1-minute load average). `optbench
compare` notes where the runs differ: speed ratios between different machines measure the
machines too. A field a manifest lacks (written before optbench recorded it) reads
"unknown". No JAX.
"""
from __future__ import annotations

import math

from bench.runner import sessions

UNKNOWN = "unknown"  # a field the run's manifest lacks (written before it was recorded)

# what the machine is; the other set-up fields say how a run used it
MACHINE = ("device", "CPU model", "cores", "usable CPUs")
# a 1-minute load average per usable CPU from which other work competed for the CPUs: XLA's
# CPU programs use every core, so half the cores busy elsewhere already slows them
BUSY = 0.5


def setup_notes(names: list[str], manifests: list[dict]) -> list[str]:
    """What the notes say of the runs' set-ups: that speed ratios between different machines
    measure the machines too (or that the manifests cannot tell), and how else the runs ran
    differently (executor, workers)."""
    manifests = [sessions.of_cells(m) for m in manifests]  # not a session that saved no cell
    setups = [run_setup(m) for m in manifests]
    machine = setup_differences(names, setups, MACHINE)
    used = setup_differences(names, setups, [f for f in setups[0] if f not in MACHINE])
    notes = []
    if machine:
        notes.append("Speed ratios between different machines (" + "; ".join(machine)
                     + ") measure the machines too.")
    elif any(setup[f] == UNKNOWN for setup in setups for f in ("CPU model", "cores")):
        notes.append("The manifests do not record every run's CPU model and cores (runs made"
                     " before optbench recorded them): whether the machines differ is unknown,"
                     " and speed ratios may measure the machines too.")
    if used:
        notes.append("The runs ran differently: " + "; ".join(used)
                     + ". Speed ratios compare these as much as the code.")
    busy = load_note(names, manifests)
    resumed = [f"{name}: {note}" for name, m in zip(names, manifests)
               if (note := sessions_note(m)) is not None]
    return notes + ([busy] if busy else []) + resumed


def sessions_note(manifest: dict) -> str | None:
    """A note when a run's cells were trained in sessions set up differently (it was
    resumed on another machine, with another executor, with or without compile ahead; see
    bench/runner/sessions.py), naming what differed in each; None when nothing did."""
    manifest = sessions.of_cells(manifest)  # not a session that saved no cell
    earlier = sessions.recorded(manifest)
    if not earlier:
        return None
    setups = [run_setup(s) for s in (*earlier, manifest)]
    differ = [f for f in setups[0] if len({setup[f] for setup in setups}) > 1]
    if not differ:
        return None

    def cells(session: dict) -> str:
        saved = session.get("cells_saved")
        return (f" ({saved} cell file{'s' if saved != 1 else ''})"
                if isinstance(saved, int) and not isinstance(saved, bool) else "")

    parts = [f"session {i}{cells(s)}: " + ", ".join(f"{f} {setup[f]}" for f in differ)
             for i, (s, setup) in enumerate(zip(earlier, setups), start=1)]
    parts.append("the last session: " + ", ".join(f"{f} {setups[-1][f]}" for f in differ))
    return (f"This run's cells were trained in {len(setups)} sessions set up differently (it"
            " was resumed): " + "; ".join(parts) + ". Step times of cells from different"
            " sessions compare these set-ups as much as the optimizers.")


def load_note(names: list[str], manifests: list[dict]) -> str | None:
    """A note when some run started on a busy machine (its 1-minute load average at or above
    BUSY per usable CPU), giving every run's load; None when none did."""
    loads = [_load(m) for m in manifests]
    if not any(load is not None and load[0] >= BUSY * load[1] for load in loads):
        return None
    said = [f"{name} {UNKNOWN}" if load is None else f"{name} {load[0]:g} on {load[1]} CPUs"
            for name, load in zip(names, loads)]
    return ("A run started on a busy machine (1-minute load average: " + " vs ".join(said)
            + "). Other work slows every chunk of a run alike, which the speed intervals (each"
            " run's own scatter over its chunks) do not cover: rerun on a quiet machine before"
            " believing a speed difference.")


def _load(manifest: dict) -> tuple[float, int] | None:
    """(1-minute load average when the run started, usable CPUs), or None where unknown."""
    host = manifest.get("host")
    host = host if isinstance(host, dict) else {}
    load, cpus = host.get("load_average"), host.get("cpus")
    try:
        first, cpus = float(load[0]), int(cpus)
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):  # int(Infinity)
        return None
    return (first, cpus) if math.isfinite(first) and cpus > 0 else None


def setup_differences(names: list[str], setups: list[dict[str, str]], fields) -> list[str]:
    """One phrase per field of `run_setup` in which the runs differ ("executor: a local vs
    b processes"), each run's value or "unknown" where its manifest does not say."""
    found = []
    for field in fields:
        values = [setup[field] for setup in setups]
        if len(set(values)) > 1:
            found.append(f"{field}: " + " vs ".join(f"{name} {value}"
                                                    for name, value in zip(names, values)))
    return found


def run_setup(manifest: dict) -> dict[str, str]:
    """What a run's speed depends on besides the code, as text: device, CPU model, cores,
    usable CPUs, executor, workers and compile ahead ("unknown" for what the manifest
    lacks)."""
    def part(table: str) -> dict:
        value = manifest.get(table)
        return value if isinstance(value, dict) else {}

    device, host = part("device"), part("host")
    executor = part("provenance").get("executor")
    executor = executor if isinstance(executor, dict) else {}

    def known(value) -> str:
        return UNKNOWN if value is None or value == "" else str(value)

    cpu = device.get("platform") == "cpu"
    return {
        # a GPU count is the machine's; the XLA devices a CPU is split into are the run's
        # choice (OPTBENCH_CPU_DEVICES, bench/train/cpu_devices.py): a field of their own
        "device": UNKNOWN if not device else
        f"{device.get('platform', '?')} {device.get('kind', '?')}"
        + ("" if cpu else f" x{device.get('count', '?')}"),
        "CPU devices": UNKNOWN if not device else known(device.get("count")) if cpu else "-",
        "CPU model": known(host.get("cpu_model")),
        "cores": known(host.get("cores")),
        "usable CPUs": known(host.get("cpus")),
        "executor": known(executor.get("name")),
        "workers": (known(executor.get("workers")) if "workers" in executor and
                    executor.get("workers") is not None else
                    "a scheduler's own" if executor.get("address") else UNKNOWN),
        # recorded since --compile-ahead exists, so a manifest without it trained beside no
        # compile; with it, chunks share the CPU with the next program's compile (2x measured)
        "compile ahead": "on" if executor.get("compile_ahead") is True else "off",
    }
