"""Train state, optimizer and initialisation, with a leading seed axis.

`TrainState` is one replica; `jaxpara.train` stacks S of them (vectorised
seeds) with `stack`, reads one back with `replica` and updates a subset with
`select`.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxpara import sharding


class TrainState(flax.struct.PyTreeNode):
    """Everything that changes during training; a pure pytree of arrays.

    Attributes:
      step: number of optimizer updates done.
      params: model parameters.
      batch_stats: BatchNorm running statistics ({} if the model has none).
      opt_state: optax state.
      lr_scale: reduce-on-plateau multiplier of the learning rate.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    lr_scale: jax.Array


# ---------------------------------------------------------------- optimizer
def learning_rate_fn(train_cfg):
    """lr / (1 + decay * step) (Keras-style per-step decay; card C3: 1e-6)."""
    lr, decay = train_cfg.learning_rate, train_cfg.lr_decay
    return lambda step: lr / (1.0 + decay * step)


def make_optimizer(train_cfg) -> optax.GradientTransformation:
    if train_cfg.optimizer not in ("adam", "nadam"):
        raise ValueError(
            f"train.optimizer={train_cfg.optimizer!r}; expected 'adam' or 'nadam'"
        )
    chain = []
    if train_cfg.grad_clip > 0:
        chain.append(optax.clip_by_global_norm(train_cfg.grad_clip))
    # nadam = Adam with Nesterov momentum (Dozat 2016), as optax.nadam.
    chain.append(optax.scale_by_adam(nesterov=train_cfg.optimizer == "nadam"))
    if train_cfg.weight_decay > 0:
        chain.append(optax.add_decayed_weights(train_cfg.weight_decay))
    chain.append(optax.scale_by_learning_rate(learning_rate_fn(train_cfg)))
    return optax.chain(*chain)


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """r_k = N / N_k over the training utterances (card C3); 0 for absent classes."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
    return w.astype(np.float32)


def create_state(model, tx, input_shape, rng, mesh) -> TrainState:
    """Builds the state abstractly first, then materialises it replicated."""
    return create_states(model, tx, input_shape, [rng], mesh)[0]


def create_states(model, tx, input_shape, rngs, mesh) -> list[TrainState]:
    """One replicated state per key in `rngs`, all from one compiled init."""

    def init(rng):
        dummy = jnp.zeros((1, *input_shape), jnp.float32)
        variables = model.init(
            {"params": rng, "dropout": rng},
            dummy,
            frames=jnp.full((1,), input_shape[0], jnp.int32),
            gender=jnp.zeros((1,), jnp.int32),
            train=False,
        )
        params = variables["params"]
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=tx.init(params),
            lr_scale=jnp.ones((), jnp.float32),
        )

    abstract = jax.eval_shape(init, rngs[0])
    shardings = jax.tree_util.tree_map(lambda _: sharding.replicated(mesh), abstract)
    compiled_init = jax.jit(init, out_shardings=shardings)
    return [compiled_init(rng) for rng in rngs]


@jax.jit
def all_finite(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def stack(trees: list) -> Any:
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def replica(tree: Any, s: int) -> Any:
    return jax.tree_util.tree_map(lambda x: x[s], tree)


@jax.jit
def select(mask: jax.Array, new: Any, old: Any) -> Any:
    """Per replica: `new` where mask[s], else `old` (leading seed axis)."""

    def pick(n, o):
        return jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o)

    return jax.tree_util.tree_map(pick, new, old)
