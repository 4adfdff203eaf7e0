"""What every benchmark records: the machine, the date, and the JSON file."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import jax
import numpy as np


def machine_info(load_before, **versions) -> dict:
    """Platform, CPUs, load average before/after, library versions, JAX devices."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "load_avg_before": [round(v, 2) for v in load_before],
        "load_avg_after": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "jax": jax.__version__,
        **versions,
        "numpy": np.__version__,
        "jax_backend": jax.default_backend(),
        "jax_device": jax.devices()[0].device_kind,
        "jax_device_count": jax.device_count(),
    }


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_result(result: dict, out: str) -> dict:
    """Prints `result` as JSON and writes it to `out` (parents created)."""
    text = json.dumps(result, indent=2)
    print(text)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return result
