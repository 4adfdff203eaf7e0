"""Residual CNN front-end and the ACRNN (card C1's ACRNN branch, Chen et al. 2018).

Padding contract: `frames[b]` real frames lead each segment and the rest is
zero padding. The front-end zeroes every feature map beyond the valid length
before each convolution and excludes padded positions from BatchNorm's batch
statistics, so a conv at the last real frame sees the same zeros as SAME
padding of an unpadded segment would give it. Pooling uses SAME windows (ceil),
the valid length after a time pool of p is ceil(frames / p), and because pooled
inputs are post-ReLU (>= 0) a window straddling the boundary returns its real
maximum. Together: logits do not depend on the padded tail, in eval and in
train mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpara.models.attention import TemporalAttention, sequence_mask, zero_padding
from jaxpara.models.base import Classifier
from jaxpara.models.layers import classifier_head, masked_conv_bn, masked_max_pool
from jaxpara.models.recurrent import LSTM, BiLSTM

Dtype = Any


class ResidualBlock(nn.Module):
    """conv -> BN -> ReLU (= a) -> conv -> BN -> + a -> ReLU, padding-aware.

    The skip is the first conv's activated output, which already has the
    block's width, so no projection is needed. Convs have no bias (BN follows).
    BatchNorm momentum 0.9 (flax imagenet): the corpora are small.

    Attributes:
        features: output channels.
        kernel_size: conv kernel (time, freq).
        dtype: compute dtype (weights float32).
    """

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: jax.Array, mask: jax.Array, *, train: bool):
        """Runs the block.

        Args:
            inputs: [batch, time, freq, channels], zero on padded frames.
            mask: [batch, time] bool, True on real frames.
            train: BatchNorm uses (masked) batch statistics.

        Returns:
            [batch, time, freq, features], zero on padded frames.
        """
        skip = masked_conv_bn(self, inputs, mask, self.features, index=0, train=train)
        x = masked_conv_bn(
            self, skip, mask, self.features, index=1, train=train, relu=False
        )
        return zero_padding(nn.relu(x + skip), mask)


class ConvFrontEnd(nn.Module):
    """Residual conv blocks, each followed by max pooling (card C1's shared CNN).

    Defaults give [batch, T, F, C] -> [batch, ceil(T/2), ceil(F/4), 64]
    (exactly T/2, F/4 for even T and F divisible by 4).

    Attributes:
        features: output channels of each `ResidualBlock`.
        pools: (time, freq) max-pool window = stride after each block.
        kernel_size: conv kernel (time, freq).
        dtype: compute dtype (weights float32).
    """

    features: Sequence[int] = (32, 64)
    pools: Sequence[tuple[int, int]] = ((2, 2), (1, 2))
    kernel_size: tuple[int, int] = (3, 3)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, inputs: jax.Array, mask: jax.Array | None = None, *, train: bool
    ) -> tuple[jax.Array, jax.Array]:
        """Runs the blocks.

        Args:
            inputs: [batch, time, freq, channels] features.
            mask: optional [batch, time] bool, True on real frames (a prefix).
            train: BatchNorm uses batch statistics (and updates 'batch_stats').

        Returns:
            (features [batch, time', freq', features[-1]] in `dtype`, zero on
            padded frames; mask [batch, time'] of the pooled valid frames).
        """
        if len(self.pools) != len(self.features):
            raise ValueError(
                f"ConvFrontEnd: {len(self.features)} blocks but "
                f"{len(self.pools)} pools."
            )
        if mask is None:
            mask = jnp.ones(inputs.shape[:2], bool)
        x = zero_padding(inputs.astype(self.dtype), mask)
        for block, (width, pool) in enumerate(
            zip(self.features, self.pools, strict=True)
        ):
            x = ResidualBlock(
                width, self.kernel_size, dtype=self.dtype, name=f"block{block}"
            )(x, mask, train=train)
            x, mask = masked_max_pool(x, mask, pool)
        return x, mask


def front_end_pools(num_blocks: int) -> tuple[tuple[int, int], ...]:
    """Card C1's pools: 2x2 after the first block, 1x2 (frequency) after the rest."""
    return ((2, 2),) + ((1, 2),) * (num_blocks - 1)


def c1_front_end(
    module: nn.Module, inputs: jax.Array, lengths: jax.Array, *, train: bool
) -> tuple[jax.Array, jax.Array]:
    """Card C1's shared CNN, built as 'cnn' inside `module`'s compact scope.

    Reads `module.conv_features` (block widths: the first block pools 2x2, the
    others 1x2) and `module.dtype`.

    Args:
        module: the calling module; must be inside its `nn.compact` method.
        inputs: [batch, time, freq, channels], zero-padded at the end.
        lengths: [batch] int real frames per segment.
        train: BatchNorm batch statistics.

    Returns:
        (features [batch, time', freq', conv_features[-1]], zero on padded
        frames; mask [batch, time'] bool of the pooled real frames).
    """
    return ConvFrontEnd(
        tuple(module.conv_features),
        front_end_pools(len(module.conv_features)),
        dtype=module.dtype,
        name="cnn",
    )(inputs, sequence_mask(lengths, inputs.shape[1]), train=train)


def front_end_lengths(mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Valid lengths of a front-end mask [batch, time'], clipped to >= 1 (an
    empty segment reads as one all-zero frame): ([batch] int32, the mask of
    those lengths [batch, time'])."""
    lengths = jnp.maximum(jnp.sum(mask, axis=1, dtype=jnp.int32), 1)
    return lengths, sequence_mask(lengths, mask.shape[1])


FRAME_ACTIVATIONS = {"linear": lambda x: x, "relu": nn.relu}


def frame_activation(name: str):
    """The activation after the ACRNN's per-frame dense layer.

    Raises:
      ValueError: an unknown name, naming `model.frame_activation`.
    """
    if name not in FRAME_ACTIVATIONS:
        raise ValueError(
            f"model.frame_activation={name!r}; expected one of "
            f"{sorted(FRAME_ACTIVATIONS)}"
        )
    return FRAME_ACTIVATIONS[name]


def acrnn_classifier(
    module: nn.Module,
    features: jax.Array,
    mask: jax.Array,
    *,
    train: bool,
    sizes: nn.Module | None = None,
) -> jax.Array:
    """The ACRNN after the front-end, built inside `module`'s compact scope.

    Shared by `ACRNN` (whose parameter tree it keeps flat: frame, lstm,
    attention, head, logits next to cnn) and the fusion model's 'acrnn'
    branch (`sacrnn.FusionBranch`). Reads the sizes from the fields of
    `sizes` (frame_features, frame_activation, lstm_features, bidirectional,
    attention_features, attention_bias, head_features, dropout, num_classes,
    dtype) and sows
    intermediates['temporal_attention'] into `module`.

    Args:
        module: the calling module; must be inside its `nn.compact` method.
        features: [batch, time', freq', channels] front-end output, zero on
            padded frames.
        mask: [batch, time'] bool, True on real frames (a prefix).
        train: dropout on (rng 'dropout').
        sizes: the module whose fields size the layers; None = `module`.

    Returns:
        [batch, num_classes] float32 logits.
    """
    sizes = module if sizes is None else sizes
    lengths, mask = front_end_lengths(mask)
    x = features.reshape(features.shape[0], features.shape[1], -1)
    x = nn.Dense(sizes.frame_features, dtype=sizes.dtype, name="frame")(x)
    x = frame_activation(sizes.frame_activation)(x)
    rnn_cls = BiLSTM if sizes.bidirectional else LSTM
    x, _ = rnn_cls(sizes.lstm_features, dtype=sizes.dtype, name="lstm")(x, lengths)
    pooled, alpha = TemporalAttention(
        sizes.attention_features,
        use_bias=sizes.attention_bias,
        dtype=sizes.dtype,
        name="attention",
    )(x, mask)
    module.sow("intermediates", "temporal_attention", alpha)
    return classifier_head(sizes, pooled, {"head": sizes.head_features}, train=train)


class ACRNN(Classifier):
    """Attention CRNN: CNN -> per-frame dense -> (Bi)LSTM -> temporal attention.

    inputs [B, T, F, C] -> ConvFrontEnd [B, T', F', C'] -> reshape
    [B, T', F'*C'] -> Dense(frame_features), linear by default (card C1: "a
    linear layer ... for temporal summarisation", after Sainath) ->
    (Bi)LSTM(lstm_features)
    over the valid length ceil(frames / 2) (clipped to >= 1) -> TemporalAttention
    (sown as intermediates['temporal_attention']) -> Dense(head_features) + ReLU
    + Dropout -> Dense(num_classes). Called as `Classifier`; `gender` is
    ignored.

    Attributes:
        num_classes: number of logits K.
        conv_features: front-end block widths; the first block pools 2x2, the
            others 1x2 (frequency only).
        frame_features: width of the per-frame dense layer.
        frame_activation: after it: 'linear' (card C1) or 'relu'.
        lstm_features: LSTM units per direction.
        bidirectional: BiLSTM instead of a forward LSTM.
        attention_features: width of the attention's tanh layer (card C1
            Table 2: 128).
        attention_bias: the bias b in v^T tanh(W h_t + b) (card C1: none).
        head_features: width of the dense head.
        dropout: dropout rate after the dense head.
        dtype: compute dtype (float32 | bfloat16); weights, BN statistics,
            attention weights and logits stay float32.
    """

    num_classes: int
    conv_features: Sequence[int] = (32, 64)
    frame_features: int = 256
    frame_activation: str = "linear"
    lstm_features: int = 128
    bidirectional: bool = False
    attention_features: int = 64
    attention_bias: bool = False
    head_features: int = 64
    dropout: float = 0.2
    dtype: Dtype = jnp.float32

    def __post_init__(self):
        frame_activation(self.frame_activation)
        super().__post_init__()

    def classify(self, inputs, lengths, gender, *, train):
        del gender  # ACRNN does not condition on speaker gender.
        x, mask = c1_front_end(self, inputs, lengths, train=train)
        return acrnn_classifier(self, x, mask, train=train)
