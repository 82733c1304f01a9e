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
