"""Device mesh, NamedShardings and host-local -> global batches (STYLE 6, 8)."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(num_devices: int = -1) -> jax.sharding.Mesh:
    """A 1-D data-parallel mesh over `num_devices` devices (-1 = all)."""
    available = jax.device_count()
    n = available if num_devices in (-1, 0) else num_devices
    if n > available:
        raise ValueError(f"asked for {n} devices, only {available} available")
    # Auto axes: the compiler propagates shardings from the jit boundaries.
    return jax.make_mesh(
        (n,),
        (DATA_AXIS,),
        axis_types=(jax.sharding.AxisType.Auto,),
        devices=jax.devices()[:n],
    )


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def data_sharded(mesh) -> NamedSharding:
    """Leading (batch) axis split over the data axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh, key: str = "train.batch_size") -> None:
    n = mesh.shape[DATA_AXIS]
    if batch_size % n:
        raise ValueError(
            f"{key}={batch_size} must be divisible by the {n} devices of the mesh"
        )


def to_global(batch: dict[str, np.ndarray], mesh) -> dict[str, jax.Array]:
    """Host-local NumPy batch -> global jax.Arrays sharded over the data axis."""
    sharding = data_sharded(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in batch.items()
    }
