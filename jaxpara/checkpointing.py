"""Thin orbax wrapper: the only module that names orbax (STYLE 11).

A run keeps two managers in its workdir: `checkpoints/latest` (periodic, a
few kept) and `checkpoints/best` (the best validation UAR so far, one kept).
Each checkpoint holds the train state (a pytree of arrays, restored against an
abstract state built with `jax.eval_shape`, so shardings are preserved) and a
JSON dict with the host-side loop state (epoch, best metric, history).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class _QuietOrbax(logging.Filter):
    """Orbax logs every save/restore at INFO; keep the training log readable."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "orbax" not in record.pathname


logging.getLogger("absl").addFilter(_QuietOrbax())

# Orbax splits every replicated array across its replicas on save ("replica
# parallel", its default off GPU), one op-by-op device slice per leaf and
# replica. For the small leaves of these models that costs far more than it
# saves: ~2 s per save of a 150-leaf state on 8 CPU devices. Leaves whose
# per-replica slice would be under 4 MiB are written whole by one replica.
_MIN_SLICE_BYTES_FOR_REPLICA_PARALLEL = 4 << 20
_default_array_handler = ocp.type_handlers.get_type_handler(jax.Array)
_absl_logger = logging.getLogger("absl")
_level = _absl_logger.level
_absl_logger.setLevel(logging.ERROR)  # Orbax warns that it is overriding.
try:
    ocp.type_handlers.register_type_handler(
        jax.Array,
        ocp.type_handlers.ArrayHandler(
            min_slice_bytes_for_replica_parallel=_MIN_SLICE_BYTES_FOR_REPLICA_PARALLEL,
            array_metadata_store=getattr(
                _default_array_handler, "_array_metadata_store", None
            ),
        ),
        override=True,
    )
finally:
    _absl_logger.setLevel(_level)


class Checkpointer:
    """Saves and restores (train state, JSON metadata) pairs by step."""

    def __init__(self, directory: str, *, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
            ),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, meta: dict) -> bool:
        """Saves `state` and `meta` at `step`; a step already saved is kept.

        Returns:
          True if a new checkpoint was written.
        """
        if step in self._manager.all_steps():
            return False
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
        )
        self._manager.wait_until_finished()
        return True

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restores (state, meta) at `step` (default: latest).

        Args:
          abstract_state: pytree of `jax.ShapeDtypeStruct` (with shardings),
            usually from `jax.eval_shape`, giving structure, dtypes and layout.
          step: the step to restore; None = the latest.
        """
        return self._restore(ocp.args.StandardRestore(abstract_state), step)

    def restore_arrays(self, step: int | None = None) -> tuple[Any, dict]:
        """Restores (state as nested dicts of host arrays, meta) without a target.

        For inspection (tests, reports); training restores with `restore`.
        """
        return self._restore(ocp.args.StandardRestore(), step)

    def _restore(self, state_args, step: int | None) -> tuple[Any, dict]:
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(state=state_args, meta=ocp.args.JsonRestore()),
        )
        return restored["state"], dict(restored["meta"])

    def close(self) -> None:
        self._manager.close()


def abstract_like(tree: Any) -> Any:
    """ShapeDtypeStructs (with shardings) of a concrete pytree of arrays."""
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree
    )


def jsonable(x):
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


class PreemptedError(RuntimeError):
    """SIGTERM arrived during training; the current step was checkpointed."""


class Preemption:
    """Records SIGTERM (preemption) instead of dying, until `restore()`.

    Only the main thread can own signal handlers; elsewhere this is inert.
    """

    def __init__(self):
        self.requested = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        logging.warning("SIGTERM received: checkpointing after this step")
        self.requested = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
