"""Train state, optimizer and initialisation, with a leading seed axis.

`TrainState` is one replica; `jaxpara.train` stacks S of them (vectorised
seeds) with `stack`, reads one back with `replica` and updates a subset with
`select`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxpara import models, sharding


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


class KerasNadamState(NamedTuple):
    count: jax.Array  # int32 updates done.
    u_product: jax.Array  # float32 prod_{s <= count} u_s.
    mu: Any
    nu: Any


def scale_by_keras_nadam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-7,
    schedule_decay: float = 0.004,
) -> optax.GradientTransformation:
    """Keras' Nadam direction (Dozat 2016 with Keras' momentum schedule).

    At update t = 1, 2, ... with u_t = b1 (1 - 0.5 * 0.96^(schedule_decay t))
    and P_t = u_1 u_2 ... u_t:

        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
        m_hat = u_{t+1} m / (1 - P_{t+1}) + (1 - u_t) g / (1 - P_t)
        direction = m_hat / (sqrt(v / (1 - b2^t)) + eps)

    `schedule_decay=0.004` is Keras 2 / tf.keras up to TF 2.10 (optimizer_v2:
    the momentum u_t rises from 0.45 b1 towards b1 over thousands of
    steps); 1.0 is Keras 3 (`keras.optimizers.Nadam`). optax's `nadam` has no
    schedule (u_t = b1) and eps 1e-8.
    """

    def init(params):
        return KerasNadamState(
            jnp.zeros([], jnp.int32),
            jnp.ones([], jnp.float32),
            jax.tree_util.tree_map(jnp.zeros_like, params),
            jax.tree_util.tree_map(jnp.zeros_like, params),
        )

    def update(updates, state, params=None):
        del params
        t = (state.count + 1).astype(jnp.float32)
        u_t = b1 * (1.0 - 0.5 * 0.96 ** (schedule_decay * t))
        u_next = b1 * (1.0 - 0.5 * 0.96 ** (schedule_decay * (t + 1.0)))
        u_product = state.u_product * u_t
        mu = jax.tree_util.tree_map(
            lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, updates
        )
        nu = jax.tree_util.tree_map(
            lambda v, g: b2 * v + (1.0 - b2) * g * g, state.nu, updates
        )

        def direction(g, m, v):
            m_hat = u_next * m / (1.0 - u_product * u_next) + (1.0 - u_t) * g / (
                1.0 - u_product
            )
            return m_hat / (jnp.sqrt(v / (1.0 - b2**t)) + eps)

        out = jax.tree_util.tree_map(direction, updates, mu, nu)
        return out, KerasNadamState(state.count + 1, u_product, mu, nu)

    return optax.GradientTransformation(init, update)


OPTIMIZERS = ("adam", "nadam", "nadam_keras")


def make_optimizer(train_cfg) -> optax.GradientTransformation:
    """Clip -> adam | nadam (optax) | nadam_keras (`scale_by_keras_nadam` with
    `train.nadam_schedule_decay`) -> weight decay -> learning rate."""
    if train_cfg.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"train.optimizer={train_cfg.optimizer!r}; expected one of {OPTIMIZERS}"
        )
    chain = []
    if train_cfg.grad_clip > 0:
        chain.append(optax.clip_by_global_norm(train_cfg.grad_clip))
    if train_cfg.optimizer == "nadam_keras":
        chain.append(
            scale_by_keras_nadam(schedule_decay=train_cfg.nadam_schedule_decay)
        )
    else:
        # nadam = Adam with Nesterov momentum (Dozat 2016), as optax.nadam.
        chain.append(optax.scale_by_adam(nesterov=train_cfg.optimizer == "nadam"))
    if train_cfg.weight_decay > 0:
        chain.append(optax.add_decayed_weights(train_cfg.weight_decay))
    chain.append(optax.scale_by_learning_rate(learning_rate_fn(train_cfg)))
    return optax.chain(*chain)


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """r_k = N / N_k (card C3); 0 for absent classes.

    Args:
      labels: [N] class of every item the loss sums over: the training
        SEGMENTS (an utterance cut into several segments counts several times).
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
    return w.astype(np.float32)


def create_state(model, tx, input_shape, rng, mesh) -> TrainState:
    """Builds the state abstractly first, then materialises it replicated."""
    return create_states(model, tx, input_shape, [rng], mesh)[0]


def _init_fn(model, tx, input_shape):
    def init(rng):
        variables = models.init_variables(model, rng, input_shape)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=variables["params"],
            batch_stats=variables["batch_stats"],
            opt_state=tx.init(variables["params"]),
            lr_scale=jnp.ones((), jnp.float32),
        )

    return init


def create_states(model, tx, input_shape, rngs, mesh) -> list[TrainState]:
    """One replicated state per key in `rngs`, all from one compiled init."""
    init = _init_fn(model, tx, input_shape)
    abstract = jax.eval_shape(init, rngs[0])
    shardings = jax.tree_util.tree_map(lambda _: sharding.replicated(mesh), abstract)
    compiled_init = jax.jit(init, out_shardings=shardings)
    return [compiled_init(rng) for rng in rngs]


def abstract_state(model, tx, input_shape, num_seeds: int):
    """The stacked state of `num_seeds` replicas as ShapeDtypeStructs on this
    process's first device (traced, nothing compiled): what a checkpoint saved
    on any number of devices restores onto (`jaxpara.rundir.restore_variables`).
    """
    init = _init_fn(model, tx, input_shape)
    abstract = jax.eval_shape(
        lambda: stack([init(jax.random.key(s, impl="rbg")) for s in range(num_seeds)])
    )
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract
    )


def variables(state: TrainState) -> dict:
    """{"params", "batch_stats"}: what `jaxpara.models.apply` takes."""
    return {"params": state.params, "batch_stats": state.batch_stats}


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
