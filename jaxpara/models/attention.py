"""Masking helpers and attention pooling shared by the recurrent models.

`sequence_mask` and `masked_softmax` are the one place where padding is turned
into attention weights; C1 (ACRNN), C3 (Attention-BLSTM/FCN), C4 (MOMA) and C5
(CNN-BiLSTM) all pool through them (`attention_pool` for the softmax poolings,
`masked_mean` for plain averages), so a padded frame gets exactly zero weight
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


def zero_padding(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Zeroes [batch, time, ...] features where mask [batch, time] is False."""
    mask = mask.reshape(mask.shape + (1,) * (x.ndim - 2))
    return jnp.where(mask, x, jnp.zeros((), x.dtype))


def masked_mean(x: jax.Array, mask: jax.Array, keepdims: bool = False) -> jax.Array:
    """Mean of [batch, time, dim] over the real frames of mask [batch, time].

    Computed in float32; a row without real frames gives 0.

    Returns:
        [batch, dim] float32 ([batch, 1, dim] with `keepdims`).
    """
    valid = mask[..., None].astype(jnp.float32)
    count = jnp.maximum(jnp.sum(valid, axis=1, keepdims=keepdims), 1.0)
    return jnp.sum(x.astype(jnp.float32) * valid, axis=1, keepdims=keepdims) / count


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


def attention_pool(
    inputs: jax.Array, scores: jax.Array, mask: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Softmax weights over the cells of a sequence or map and their weighted sum.

    alpha = masked softmax(scores) over all cells of each example; output =
    sum_i alpha_i inputs_i.

    Args:
        inputs: [batch, *grid, dim] vectors, e.g. frames [batch, time, dim] or
            cells [batch, time, freq, channels].
        scores: [batch, *grid] unnormalised scores (any float dtype).
        mask: optional bool array broadcastable to [batch, *grid], True on
            real cells; None = all real.

    Returns:
        (pooled [batch, dim] in the inputs' dtype, alpha [batch, *grid]
        float32 weights summing to 1 over the real cells, exactly 0 on masked
        ones).
    """
    batch, dim, grid = inputs.shape[0], inputs.shape[-1], inputs.shape[1:-1]
    flat_mask = None
    if mask is not None:
        flat_mask = jnp.broadcast_to(mask, scores.shape).reshape(batch, -1)
    alpha = masked_softmax(scores.reshape(batch, -1), flat_mask)
    cells = inputs.reshape(batch, -1, dim).astype(jnp.float32)
    pooled = jnp.einsum("bl,bld->bd", alpha, cells)
    return pooled.astype(inputs.dtype), alpha.reshape(batch, *grid)


def additive_scores(
    inputs: jax.Array, features: int, *, use_bias: bool = True, dtype: Dtype
) -> jax.Array:
    """Additive (tanh-MLP) attention scores v^T tanh(W x + b), no bias on v.

    Builds the Dense layers 'proj' (W, b) and 'score' (v) inside the calling
    module's compact scope.

    Args:
        inputs: [..., dim] vectors x.
        features: width of the tanh layer (rows of W).
        use_bias: whether the tanh layer has the bias b.
        dtype: compute dtype of the projections (weights are float32).

    Returns:
        [...] scores in `dtype`.
    """
    hidden = nn.Dense(features, use_bias=use_bias, dtype=dtype, name="proj")(inputs)
    scores = nn.Dense(1, use_bias=False, dtype=dtype, name="score")(jnp.tanh(hidden))
    return scores[..., 0]


class TemporalAttention(nn.Module):
    """Additive temporal attention pooling (card C1's ACRNN branch, Chen et al. 2018).

    score_t = v^T tanh(W h_t + b);  alpha = masked softmax_t(score);
    output = sum_t alpha_t h_t.

    Attributes:
        features: width of the hidden attention layer (rows of W).
        use_bias: whether the tanh layer has the bias b (card C1's score is
            v^T tanh(W h_t), without it: the models pass
            `model.attention_bias`, False by default).
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
        scores = additive_scores(
            inputs, self.features, use_bias=self.use_bias, dtype=self.dtype
        )
        return attention_pool(inputs, scores, mask)


class LinearTemporalAttention(nn.Module):
    """Linear-score temporal attention pooling (card C3's Attention-BLSTM).

    score_t = w^T x_t;  alpha = masked softmax_t(score);  output = sum_t alpha_t x_t
    (seed 002 eq. 5-6). There is no bias: a constant added to every score
    cancels in the softmax.

    Attributes:
        dtype: compute dtype of the score projection (weights are float32).
    """

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, inputs: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Pools a sequence over time.

        Args:
            inputs: [batch, time, dim] frame representations x_t.
            mask: optional [batch, time] bool, True on real frames.

        Returns:
            (pooled [batch, dim] in the inputs' dtype, alpha [batch, time]
            float32 weights, exactly 0 on masked frames).
        """
        scores = nn.Dense(1, use_bias=False, dtype=self.dtype, name="score")(inputs)
        return attention_pool(inputs, scores[..., 0], mask)


class ScaledAttentionPooling(nn.Module):
    """tanh-MLP attention pooling over grid cells with a softmax scale (card C3).

    The Attention-FCN's pooling (seed 002 eq. 8-10) over all L = time' x freq'
    cells a_i of a feature map:

        e_i = u^T tanh(W a_i + b);  alpha = masked softmax_i(lambda * e_i);
        output = sum_i alpha_i a_i.

    lambda = 1 is the plain softmax, lambda = 0 uniform weights over the valid
    cells (the seed uses 0.3).

    Attributes:
        features: width of the tanh layer (rows of W).
        scale: lambda >= 0.
        dtype: compute dtype of the projections (weights are float32).
    """

    features: int = 64
    scale: float = 0.3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, inputs: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Pools a feature map over all its grid cells.

        Args:
            inputs: [batch, *grid, dim] cells a_i, e.g. [batch, time, freq,
                channels].
            mask: optional bool array broadcastable to [batch, *grid] (e.g.
                [batch, time, 1] for valid frames), True on real cells.

        Returns:
            (pooled [batch, dim] in the inputs' dtype, alpha [batch, *grid]
            float32 weights summing to 1 over the grid, exactly 0 on masked
            cells).
        """
        if self.scale < 0:
            raise ValueError(
                f"ScaledAttentionPooling: scale must be >= 0, got {self.scale}"
            )
        scores = additive_scores(inputs, self.features, dtype=self.dtype)
        return attention_pool(inputs, self.scale * scores.astype(jnp.float32), mask)


class MeanContextAttention(nn.Module):
    """One MOMA attention block (card C4, seed 003 eq. 4-5 and 7-8).

    With M the mean of Y over the valid frames (repeated over time):

        E = tanh(W_h y_t) * tanh(W_m M)     (elementwise, width A)
        a = masked softmax_t(W_e E_t)

    as card C4 prints it, without biases; `use_bias` adds b_h and b_m inside
    the tanhs (`model.moma.attention_bias`). W_e never has one (a constant
    shift cancels in the softmax). The block
    returns the weights only; the caller decides how they are applied
    (MOMA layer 1: Y <- Y + a (.) Y; the MOMA layer mixes several blocks).

    Attributes:
        features: width A of E (seed 003: 128).
        use_bias: biases b_h, b_m on W_h y_t and W_m M (card C4: none).
        dtype: compute dtype of the projections (weights are float32).
    """

    features: int = 128
    use_bias: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Attention weights over time.

        Args:
            inputs: [batch, time, dim] sequence Y, any values on padded frames.
            mask: optional [batch, time] bool, True on real frames.

        Returns:
            [batch, time] float32 weights: each row sums to 1 over its real
            frames and is exactly 0 on masked ones (all 0 for an empty row).
        """
        if mask is None:
            mask = jnp.ones(inputs.shape[:2], bool)
        context = masked_mean(inputs, mask, keepdims=True)  # [B, 1, D]
        hidden = jnp.tanh(
            nn.Dense(
                self.features, use_bias=self.use_bias, dtype=self.dtype, name="hidden"
            )(inputs)
        )
        ctx = jnp.tanh(
            nn.Dense(
                self.features, use_bias=self.use_bias, dtype=self.dtype, name="context"
            )(context.astype(inputs.dtype))
        )
        scores = nn.Dense(1, use_bias=False, dtype=self.dtype, name="score")(
            hidden * ctx
        )[..., 0]
        return masked_softmax(scores, mask, axis=-1)


MIXTURES = ("raw", "softmax")


class AttentionMixture(nn.Module):
    """MOMA layer: a learnable mixture of `num_blocks` attention blocks (card C4).

    a_n = MeanContextAttention_n(Y) with separate weights, and (seed 003 eq. 9)

        a_mix = sum_n gamma_n a_n

    with learnable gamma, initialised uniformly in [0, 1) ("randomly").
    `mixture='raw'` uses gamma as printed, so a_mix sums to sum_n gamma_n over
    the valid frames; `mixture='softmax'` mixes with softmax(gamma), so a_mix
    is a distribution over the valid frames. Either way masked frames get
    exactly 0.

    Attributes:
        num_blocks: n (seed 003: 3).
        features: width A of each block.
        mixture: 'raw' | 'softmax' (see above).
        use_bias: the blocks' `MeanContextAttention.use_bias`.
        dtype: compute dtype of the projections (weights are float32).
    """

    num_blocks: int = 3
    features: int = 128
    mixture: str = "raw"
    use_bias: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, inputs: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Mixes the blocks' attention weights.

        Args:
            inputs: [batch, time, dim] sequence Y.
            mask: optional [batch, time] bool, True on real frames.

        Returns:
            (a_mix [batch, time] float32, blocks [batch, num_blocks, time]
            float32: each block's weights, rows summing to 1 over real frames).
        """
        if self.mixture not in MIXTURES:
            raise ValueError(
                f"model.moma.mixture={self.mixture!r}; expected one of {MIXTURES}"
            )
        if self.num_blocks < 1:
            raise ValueError(f"model.moma.blocks={self.num_blocks}; expected >= 1")
        blocks = jnp.stack(
            [
                MeanContextAttention(
                    self.features, self.use_bias, dtype=self.dtype, name=f"block{n}"
                )(inputs, mask)
                for n in range(self.num_blocks)
            ],
            axis=1,
        )
        gamma = self.param(
            "gamma", nn.initializers.uniform(1.0), (self.num_blocks,), jnp.float32
        )
        if self.mixture == "softmax":
            gamma = jax.nn.softmax(gamma)
        return jnp.einsum("n,bnt->bt", gamma, blocks), blocks


ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}


class LocalSelfAttention(nn.Module):
    """Local additive self-attention with an attention width (card C5, seed 004).

    The additive `SeqSelfAttention` of keras-self-attention that seed 004 uses
    (attention_width=15, attention_activation='relu'): for query frame t and
    key frame s,

        h_ts = tanh(W_q x_t + W_k x_s + b_h)             (width U)
        e_ts = act(w_a^T h_ts + b_a)
        a_t. = masked softmax_s(e_t.) over the window
               t - width // 2 <= s < t - width // 2 + width, real frames only
        out_t = sum_s a_ts x_s

    Masking differs from keras (which only masks pairs where both frames are
    padding): a padded key frame gets exactly 0 weight, and a padded query
    frame's row is all 0 (so is its output).

    Attributes:
        width: attention width (window length in frames, >= 1).
        features: width U of the additive layer (keras default 32).
        activation: 'relu' | 'tanh' | 'sigmoid' | 'none', applied to e.
        dtype: compute dtype of the projections (weights are float32).
    """

    width: int = 15
    features: int = 32
    activation: str = "relu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, inputs: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Attends within the window around each frame.

        Args:
            inputs: [batch, time, dim] frames x_t.
            mask: optional [batch, time] bool, True on real frames.

        Returns:
            (outputs [batch, time, dim] in the inputs' dtype, zero on padded
            frames; weights [batch, time (query), time (key)] float32, rows
            of real frames summing to 1).
        """
        if self.width < 1:
            raise ValueError(f"model.local_attention.width={self.width}; expected >= 1")
        if self.activation not in ACTIVATIONS and self.activation != "none":
            raise ValueError(
                f"model.local_attention.activation={self.activation!r}; expected "
                f"one of {sorted(ACTIVATIONS) + ['none']}"
            )
        time = inputs.shape[1]
        if mask is None:
            mask = jnp.ones(inputs.shape[:2], bool)
        query = nn.Dense(self.features, use_bias=False, dtype=self.dtype, name="query")
        key = nn.Dense(self.features, use_bias=True, dtype=self.dtype, name="key")
        hidden = jnp.tanh(query(inputs)[:, :, None, :] + key(inputs)[:, None, :, :])
        scores = nn.Dense(1, dtype=self.dtype, name="score")(hidden)[..., 0]
        scores = scores.astype(jnp.float32)
        if self.activation != "none":
            scores = ACTIVATIONS[self.activation](scores)
        steps = jnp.arange(time)
        lower = steps[:, None] - self.width // 2
        window = (steps[None, :] >= lower) & (steps[None, :] < lower + self.width)
        pair_mask = window[None] & mask[:, :, None] & mask[:, None, :]
        weights = masked_softmax(scores, pair_mask, axis=-1)
        outputs = jnp.einsum("bts,bsd->btd", weights, inputs.astype(jnp.float32))
        return outputs.astype(inputs.dtype), weights
