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


def engine_steps():
    """(train_step, eval_step, source) of the engine, called uniformly as
    `train_step(state, batch, rng, model=, tx=, weights=)` and
    `eval_step(state, batch, model=)` (the engine's eval step takes the
    variables dict; this adapts it to a TrainState)."""
    from jaxpara import train

    def eval_step(state, batch, *, model):
        return train.eval_step(
            {"params": state.params, "batch_stats": state.batch_stats},
            batch,
            model=model,
        )

    return train.train_step, eval_step, "jaxpara.train"


# ------------------------------------------------------------------ FLOPs


def xla_flops(compiled) -> float | None:
    """`compiled.cost_analysis()['flops']`. XLA counts a while loop's body
    ONCE, not times its trip count, so a `lax.scan` (LSTM, ConvLSTM) is
    undercounted; see `jaxpr_flops` for the model's FLOPs."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it.
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    flops = (cost or {}).get("flops")
    return None if flops is None else float(flops)


def jaxpr_flops(fn, *args) -> float:
    """Multiply-add FLOPs (2 per MAC) of every dot_general and convolution in
    `jax.make_jaxpr(fn)(*args)`, with scan bodies counted `length` times and
    while loops once. Elementwise work is not counted (the usual model-FLOPs
    convention for MFU); recomputation under `jax.checkpoint` is."""
    import math

    from jax import core as jcore

    try:
        from jax.extend.core import ClosedJaxpr, Jaxpr
    except ImportError:  # Older JAX.
        ClosedJaxpr, Jaxpr = jcore.ClosedJaxpr, jcore.Jaxpr

    def sub_jaxprs(value):
        if isinstance(value, ClosedJaxpr):
            return [value.jaxpr]
        if isinstance(value, Jaxpr):
            return [value]
        if isinstance(value, (tuple, list)):
            return [j for v in value for j in sub_jaxprs(v)]
        return []

    def count(jaxpr) -> float:
        total = 0.0
        for eqn in jaxpr.eqns:
            name = eqn.primitive.name
            if name == "dot_general":
                (lc, _), _ = eqn.params["dimension_numbers"]
                lhs = eqn.invars[0].aval.shape
                out = eqn.outvars[0].aval.shape
                total += 2.0 * math.prod(out) * math.prod(lhs[d] for d in lc)
            elif name == "conv_general_dilated":
                rhs = eqn.invars[1].aval.shape
                spec = eqn.params["dimension_numbers"].rhs_spec
                out = eqn.outvars[0].aval.shape
                per_out = rhs[spec[1]] * math.prod(rhs[d] for d in spec[2:])
                total += (
                    2.0 * math.prod(out) * per_out / eqn.params["batch_group_count"]
                )
            subs = [j for v in eqn.params.values() for j in sub_jaxprs(v)]
            if not subs:
                continue
            if name == "cond":
                total += max(count(j) for j in subs)
            else:
                inner = sum(count(j) for j in subs)
                total += inner * (eqn.params["length"] if name == "scan" else 1)
        return total

    return count(jax.make_jaxpr(fn)(*args).jaxpr)


def build_train_step(model, tx, shape, num_classes: int, *, batch_size: int, mesh=None):
    """The engine's train step for `model`, compiled, with its inputs.

    Built as `jaxpara.train` builds it (state from `jaxpara.state.create_state`,
    `train_step` jitted with replicated state, batch split over the mesh's
    data axis, donated state), on a random batch of `batch_size` examples.

    Returns:
      {"step" (the jitted function), "compiled", "state", "batch", "rng",
      "compile_s", "source" (where train_step came from), "mesh"}.
    """
    import functools
    import time

    import jax.numpy as jnp

    from jaxpara import sharding
    from jaxpara import state as state_lib

    train_step, _, source = engine_steps()
    mesh = mesh if mesh is not None else sharding.make_mesh(1)
    state = state_lib.create_state(
        model, tx, tuple(shape), jax.random.key(0, impl="rbg"), mesh
    )
    repl = sharding.replicated(mesh)
    state_sh = jax.tree_util.tree_map(lambda _: repl, state)
    step = jax.jit(
        functools.partial(
            train_step,
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
    return {
        "step": step,
        "compiled": compiled,
        "state": state,
        "batch": batch,
        "rng": rng,
        "compile_s": compile_s,
        "source": source,
        "mesh": mesh,
    }


def measure_train_step(
    model, tx, shape, num_classes: int, *, batch_size: int, steps: int, mesh=None
) -> dict:
    """Compile time and step time of the engine's train step for `model`.

    The step is `build_train_step`'s, on a random batch of `batch_size`
    examples of `shape`.

    Returns:
      {"compile_s", "step_s" (mean of `steps` timed steps after a warm-up),
      "step_runs_s", "examples_per_s", "num_params", "flops_per_example"
      (`jaxpr_flops`: dots and convs, scans times their length),
      "xla_flops_per_example" (cost_analysis; scan bodies once),
      "train_step_source"}.
    """
    import time

    from jaxpara.models import count_params

    built = build_train_step(
        model, tx, shape, num_classes, batch_size=batch_size, mesh=mesh
    )
    compiled, state, batch, rng = (
        built[k] for k in ("compiled", "state", "batch", "rng")
    )
    flops = jaxpr_flops(built["step"], state, batch, rng)
    xla = xla_flops(compiled)
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
        "compile_s": round(built["compile_s"], 3),
        "step_s": round(step_s, 5),
        "step_runs_s": [round(s, 5) for s in runs],
        "examples_per_s": round(batch_size / step_s, 2),
        "num_params": count_params(state.params),
        "flops_per_example": flops / batch_size,
        "xla_flops_per_example": None if xla is None else xla / batch_size,
        "train_step_source": built["source"],
    }
