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


def random_batch(batch_size: int, shape, num_classes: int, seed: int = 0) -> dict:
    """A training batch of the engine's layout: N(0, 1) inputs [B, *shape],
    labels cycling over the classes, full-length frames, no padding."""
    rng = np.random.default_rng(seed)
    return {
        "inputs": rng.normal(size=(batch_size, *shape)).astype(np.float32),
        "label": (np.arange(batch_size) % num_classes).astype(np.int32),
        "frames": np.full(batch_size, shape[0], np.int32),
        "gender": np.zeros(batch_size, np.int32),
        "mask": np.ones(batch_size, np.float32),
    }


def measure_train_step(
    model, tx, shape, num_classes: int, *, batch_size: int, steps: int, mesh=None
) -> dict:
    """Compile time and step time of the engine's train step for `model`.

    The step is built as `jaxpara.train.train_fold` builds it (state from
    `jaxpara.state.create_state`, `train.train_step` jitted with replicated
    state, batch split over the mesh's data axis, donated state), on a random
    batch of `batch_size` examples of `shape`.

    Returns:
      {"compile_s", "step_s" (mean of `steps` timed steps after a warm-up),
      "step_runs_s", "examples_per_s", "num_params"}.
    """
    import functools
    import time

    import jax.numpy as jnp

    from jaxpara import sharding, train
    from jaxpara import state as state_lib
    from jaxpara.models import count_params

    mesh = mesh if mesh is not None else sharding.make_mesh(1)
    state = state_lib.create_state(
        model, tx, tuple(shape), jax.random.key(0, impl="rbg"), mesh
    )
    repl = sharding.replicated(mesh)
    state_sh = jax.tree_util.tree_map(lambda _: repl, state)
    step = jax.jit(
        functools.partial(
            train.train_step,
            model=model,
            tx=tx,
            weights=jnp.ones(num_classes, jnp.float32),
        ),
        in_shardings=(state_sh, sharding.data_sharded(mesh), repl),
        out_shardings=(state_sh, repl),
        donate_argnums=(0,),
    )
    batch = sharding.to_global(random_batch(batch_size, shape, num_classes), mesh)
    rng = jax.random.key(1)
    start = time.perf_counter()
    compiled = step.lower(state, batch, rng).compile()
    compile_s = time.perf_counter() - start
    state, metrics = compiled(state, batch, rng)  # Warm-up.
    jax.block_until_ready(state)
    runs = []
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = compiled(state, batch, rng)
        jax.block_until_ready(state)
        runs.append(time.perf_counter() - start)
    if not np.isfinite(float(metrics["loss"])):
        raise FloatingPointError(f"{type(model).__name__}: non-finite loss")
    step_s = float(np.mean(runs))
    return {
        "compile_s": round(compile_s, 3),
        "step_s": round(step_s, 5),
        "step_runs_s": [round(s, 5) for s in runs],
        "examples_per_s": round(batch_size / step_s, 2),
        "num_params": count_params(state.params),
    }
