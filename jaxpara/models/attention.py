"""Masking helpers and attention pooling shared by the recurrent models.

`sequence_mask` and `masked_softmax` are the one place where padding is turned
into attention weights; C1 (ACRNN), C3 (Attention-BLSTM/FCN), C4 (MOMA) and C5
(CNN-BiLSTM) all pool through them, so a padded frame gets exactly zero weight
everywhere.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def sequence_mask(lengths: jax.Array, max_len: int) -> jax.Array:
    """Boolean validity mask of a batch of padded sequences.

    Args:
        lengths: [batch] integer number of real (leading) steps per sequence.
        max_len: padded length `time`.

    Returns:
        [batch, time] bool, True where `t < lengths[b]`.
    """
    return jnp.arange(max_len)[None, :] < jnp.asarray(lengths)[:, None]


def masked_softmax(
    scores: jax.Array, mask: jax.Array | None = None, axis: int = -1
) -> jax.Array:
    """Softmax along `axis` over the positions where `mask` is True.

    Masked positions get exactly 0 weight (not merely a tiny one), the valid
    positions sum to 1, and a slice with no valid position at all returns all
    zeros instead of NaN. Computed in float32 whatever the input dtype.

    Args:
        scores: [..., n, ...] unnormalised scores (any float dtype).
        mask: bool array broadcastable to `scores`; None = all valid.
        axis: the axis to normalise over.

    Returns:
        float32 weights with the shape of `scores`.
    """
    scores = scores.astype(jnp.float32)
    if mask is None:
        return jax.nn.softmax(scores, axis=axis)
    mask = jnp.broadcast_to(jnp.asarray(mask, bool), scores.shape)
    # A finite fill keeps exp() and its gradient free of inf - inf.
    filled = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    shift = jax.lax.stop_gradient(jnp.max(filled, axis=axis, keepdims=True))
    exp = jnp.where(mask, jnp.exp(filled - shift), 0.0)
    total = jnp.sum(exp, axis=axis, keepdims=True)
    return exp / jnp.where(total > 0.0, total, 1.0)


class TemporalAttention(nn.Module):
    """Additive temporal attention pooling (card C1's ACRNN branch, Chen et al. 2018).

    score_t = v^T tanh(W h_t + b);  alpha = masked softmax_t(score);
    output = sum_t alpha_t h_t.

    Attributes:
        features: width of the hidden attention layer (rows of W).
        use_bias: whether the tanh layer has the bias b (card C1 omits it, the
            brief keeps it; on by default).
        dtype: compute dtype of the projections (weights are float32).
    """

    features: int = 64
    use_bias: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, inputs: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Pools a sequence over time.

        Args:
            inputs: [batch, time, dim] frame representations h_t.
            mask: optional [batch, time] bool, True on real frames.

        Returns:
            (pooled [batch, dim] in the inputs' dtype, alpha [batch, time]
            float32 weights, exactly 0 on masked frames).
        """
        hidden = nn.Dense(
            self.features, use_bias=self.use_bias, dtype=self.dtype, name="proj"
        )(inputs)
        scores = nn.Dense(1, use_bias=False, dtype=self.dtype, name="score")(
            jnp.tanh(hidden)
        )[..., 0]
        alpha = masked_softmax(scores, mask, axis=-1)
        pooled = jnp.einsum("bt,btd->bd", alpha, inputs.astype(jnp.float32))
        return pooled.astype(inputs.dtype), alpha
