"""Layers shared by the models: masked conv + BatchNorm, masked pooling, heads.

Padding contract (`jaxpara.models`): `mask` [batch, time] is True on the real
frames, which lead each segment; feature maps are zero beyond them. Batch
statistics are taken over the real frames only, and a SAME max pool of a
post-ReLU map (>= 0) returns the real maximum of a window that straddles the
end of the real frames, so the valid length after a time pool of p is
ceil(length / p).

Each function builds its layers inside the calling module's `nn.compact`
scope (no scope of its own), so the callers' parameter trees stay flat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpara.models.attention import zero_padding
from jaxpara.models.conv import Conv


def masked_conv_bn(
    module: nn.Module,
    x: jax.Array,
    mask: jax.Array,
    features: int,
    *,
    index: int,
    train: bool,
    relu: bool = True,
) -> jax.Array:
    """conv `conv{index}` (no bias: BN follows; `conv.Conv`) -> BatchNorm `bn{index}` [-> ReLU].

    Built inside `module`'s compact scope with its `kernel_size` (time, freq)
    and `dtype` (compute dtype; weights and BN statistics stay float32).
    BatchNorm momentum 0.9 (flax imagenet: the corpora are small); its batch
    statistics exclude the padded frames.

    Args:
        module: the calling module; must be inside its `nn.compact` method.
        x: [batch, time, freq, channels], zero on padded frames.
        mask: [batch, time] bool, True on real frames.
        features: output channels.
        index: suffix of the two layers' names.
        train: BatchNorm uses (masked) batch statistics.
        relu: apply ReLU and zero the padded frames; False = return the
            normalised map as it is (e.g. to add a skip before the ReLU).

    Returns:
        [batch, time, freq, features].
    """
    x = Conv(
        features,
        tuple(module.kernel_size),
        use_bias=False,
        dtype=module.dtype,
        name=f"conv{index}",
    )(x)
    x = nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        dtype=module.dtype,
        name=f"bn{index}",
    )(x, mask=mask[:, :, None, None])
    return zero_padding(nn.relu(x), mask) if relu else x


def pooled_mask(mask: jax.Array, pool: int) -> jax.Array:
    """[batch, time] valid frames -> [batch, ceil(time / pool)] after a SAME
    time pool of `pool`: a pooled frame is real if any frame in its window is."""
    pooled = nn.max_pool(
        mask[:, :, None].astype(jnp.float32), (pool,), strides=(pool,), padding="SAME"
    )
    return pooled[:, :, 0] > 0.0


def masked_max_pool(
    x: jax.Array, mask: jax.Array, pool: Sequence[int]
) -> tuple[jax.Array, jax.Array]:
    """SAME max pool of a post-ReLU map, window = stride = `pool`.

    Args:
        x: [batch, time, freq, channels] >= 0, zero on padded frames.
        mask: [batch, time] bool, True on real frames.
        pool: (time, freq) window.

    Returns:
        (x [batch, ceil(time / p_t), ceil(freq / p_f), channels], mask
        [batch, ceil(time / p_t)] of the pooled real frames).
    """
    pool = tuple(pool)
    x = nn.max_pool(x, pool, strides=pool, padding="SAME")
    return x, pooled_mask(mask, pool[0])


def classifier_head(
    module: nn.Module,
    x: jax.Array,
    hidden: Mapping[str, int],
    *,
    train: bool,
) -> jax.Array:
    """Dense + ReLU + Dropout per hidden layer, then the Dense `logits` layer.

    Built inside `module`'s compact scope; reads its `num_classes`, `dtype`
    (compute dtype) and, with hidden layers, `dropout` (the rate after each).

    Args:
        module: the calling model; must be inside its `nn.compact` method.
        x: [batch, dim] utterance vector (any float dtype; cast to `dtype`).
        hidden: {layer name: width} of the hidden layers, in order.
        train: dropout on (rng 'dropout').

    Returns:
        [batch, module.num_classes] float32 logits.
    """
    x = x.astype(module.dtype)
    for name, features in hidden.items():
        x = nn.Dense(features, dtype=module.dtype, name=name)(x)
        x = nn.Dropout(module.dropout, deterministic=not train)(nn.relu(x))
    logits = nn.Dense(module.num_classes, dtype=module.dtype, name="logits")(x)
    return logits.astype(jnp.float32)
