"""Test set-up: 8 fake CPU devices, set before jax is imported (STYLE 12).

XLA's backend optimisation level is 0 in tests: the programs compute the same
values (no fast-math either way), and the tiny test models compile ~40% faster,
which is most of their run time. Subprocesses get the same flag from
tests/subproc.subprocess_env.

Compiled XLA programs are shared through a persistent compilation cache for
the length of one pytest run: xdist workers and the subprocesses that tests
start (`python -m jaxpara.main ...`) inherit the environment, so the same tiny
model is compiled once per run instead of once per test. The cache key covers
the program, backend and device assignment, so a hit is the program a fresh
compile would give. The folder is removed when the run ends.
"""

import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

_RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
_CACHE_DIR = os.path.join(tempfile.gettempdir(), f"jaxpara-test-xla-cache-{_RUN_ID}")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE_DIR)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")


def pytest_sessionfinish(session, exitstatus):
    """The controller (not an xdist worker) removes the run's cache folder."""
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)
