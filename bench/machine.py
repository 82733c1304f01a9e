"""What the numbers were measured on, printed beside them."""

from __future__ import annotations

import os
import platform
import sys
import time

import zmq


def describe() -> dict[str, str]:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                model,
            )
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": f"{os.cpu_count()} cores, {model}",
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "zeromq": f"libzmq {zmq.zmq_version()}, pyzmq {zmq.__version__}",
        "load at start": load,
    }


STOLEN = "cpu stolen"  # a scenario's own entry, beside the machine's


def cpu_ticks() -> tuple[int, int]:
    """CPU ticks since boot over all cores: those the hypervisor gave to other guests
    (steal), and all of them."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) == 8 else 0), sum(fields)


def stolen(before: tuple[int, int], after: tuple[int, int]) -> str:
    """The share of the machine's CPU time between two readings that other guests took."""
    total = after[1] - before[1]
    if total <= 0:
        return "unknown"
    return f"{100 * (after[0] - before[0]) / total:.0f} %"
