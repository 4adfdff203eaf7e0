"""Device mesh, NamedShardings and host-local -> global batches (STYLE 6, 8)."""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


MODEL_AXIS = "model"


def make_mesh(num_devices: int = -1, model: int = 1) -> jax.sharding.Mesh:
    """A (data, model) mesh over `num_devices` devices (-1 = all).

    Args:
      num_devices: devices in the mesh (`config.mesh.data` x `config.mesh.model`
        when given; -1 = every device of every process).
      model: devices on the parameter-sharding axis (`config.mesh.model`);
        1 = parameters replicated (plain data parallelism).
    """
    available = jax.device_count()
    n = available if num_devices in (-1, 0) else num_devices * model
    if model < 1 or n % model:
        raise ValueError(
            f"mesh.model={model} must be >= 1 and divide the {n} devices of the mesh"
        )
    if n > available:
        raise ValueError(f"asked for {n} devices, only {available} available")
    # Auto axes: the compiler propagates shardings from the jit boundaries.
    return jax.make_mesh(
        (n // model, model),
        (DATA_AXIS, MODEL_AXIS),
        axis_types=(jax.sharding.AxisType.Auto,) * 2,
        devices=jax.devices()[:n],
    )


def param_sharding(shape, mesh, *, leading: int = 0) -> NamedSharding:
    """Sharding of one state leaf: its largest dimension that the model axis
    divides is split over it (ignoring `leading` stacked axes, e.g. seeds);
    small leaves (< 1024 elements per model shard) stay replicated."""
    model = mesh.shape[MODEL_AXIS]
    dims = list(shape[leading:])
    if model == 1 or not dims or int(np.prod(dims)) < 1024 * model:
        return NamedSharding(mesh, P())
    candidates = [i for i, d in enumerate(dims) if d % model == 0]
    if not candidates:
        return NamedSharding(mesh, P())
    axis = max(candidates, key=lambda i: dims[i]) + leading
    spec = [None] * len(shape)
    spec[axis] = MODEL_AXIS
    return NamedSharding(mesh, P(*spec))


def state_shardings(state, mesh, *, leading: int = 0):
    """Per-leaf shardings of a train state (see `param_sharding`)."""
    return jax.tree_util.tree_map(
        lambda x: param_sharding(x.shape, mesh, leading=leading), state
    )


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def data_sharded(mesh) -> NamedSharding:
    """Leading (batch) axis split over the data axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def seeds_data_sharded(mesh) -> NamedSharding:
    """[seeds, batch, ...] arrays: the batch axis split over the data axis."""
    return NamedSharding(mesh, P(None, DATA_AXIS))


def check_batch_size(batch_size: int, mesh, key: str = "train.batch_size") -> None:
    n = mesh.shape[DATA_AXIS]
    if batch_size % n:
        raise ValueError(
            f"{key}={batch_size} must be divisible by the {n} devices of the mesh"
        )


def to_global(
    batch: dict[str, np.ndarray], mesh, *, seeds_axis: bool = False
) -> dict[str, jax.Array]:
    """Host-local NumPy batch -> global jax.Arrays sharded over the data axis.

    Args:
      batch: this process's slice of every array ([B_local, ...], or
        [S, B_local, ...] with `seeds_axis`).
      mesh: the device mesh.
      seeds_axis: arrays carry a leading axis of vmapped seeds.
    """
    sharding = seeds_data_sharded(mesh) if seeds_axis else data_sharded(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in batch.items()
    }


# ------------------------------------------------------------- multi-host
def initialize_distributed(
    coordinator_address: str = "",
    num_processes: int = 0,
    process_id: int = -1,
    environ=None,
) -> bool:
    """Starts JAX's multi-controller runtime when this is a multi-process run.

    Sources, first match wins: explicit arguments (main.py flags); the
    `JAX_COORDINATOR_ADDRESS` / `JAX_NUM_PROCESSES` / `JAX_PROCESS_ID`
    variables (set by `launch/local.sh`); a cluster JAX detects by itself
    (SLURM, Cloud TPU pod slice, Open MPI), for which `jax.distributed.initialize()`
    is called without arguments. A plain single-process run does nothing.

    Returns:
      Whether `jax.distributed.initialize` was called.
    """
    env = os.environ if environ is None else environ
    address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS", "")
    count = num_processes or int(env.get("JAX_NUM_PROCESSES", "0") or 0)
    pid = process_id if process_id >= 0 else int(env.get("JAX_PROCESS_ID", "-1"))
    if address:
        if count < 1 or not 0 <= pid < count:
            raise ValueError(
                f"multi-process run with coordinator {address!r} needs "
                f"num_processes >= 1 and 0 <= process_id < num_processes; got "
                f"num_processes={count}, process_id={pid} (flags "
                "--num_processes/--process_id or JAX_NUM_PROCESSES/JAX_PROCESS_ID)"
            )
        jax.distributed.initialize(
            coordinator_address=address, num_processes=count, process_id=pid
        )
        return True
    cluster = (
        ("SLURM_JOB_ID" in env and int(env.get("SLURM_NTASKS", "1")) > 1)
        or "," in env.get("TPU_WORKER_HOSTNAMES", "")
        or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
    )
    if cluster:
        jax.distributed.initialize()  # Auto-detection: SLURM, TPU pod, Open MPI.
        return True
    return False
