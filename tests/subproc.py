"""Environment for tests that run `python -m jaxpara.main` (or a launcher) in a
subprocess: CPU only, `devices` fake devices, the same XLA optimisation level as
the in-process tests, and the run's shared compilation cache (tests/conftest.py)
inherited from `os.environ`."""

from __future__ import annotations

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_env(devices: int = 1) -> dict[str, str]:
    """A copy of `os.environ` for a subprocess on `devices` CPU devices."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        f"--xla_force_host_platform_device_count={devices} "
        "--xla_backend_optimization_level=0"
    )
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = REPO
    return env
