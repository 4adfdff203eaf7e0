"""Attention-BLSTM, Attention-FCN and their fusion (card C3, seed 002).

Input: a log-Mel spectrogram [batch, time, freq, channels] (card C3: 40 bands,
one channel, utterances cropped / zero-padded to 500 frames), `frames[b]` real
frames leading each row.

Attention-BLSTM (`AttentionBLSTM`): frames flattened to [batch, time,
freq * channels] -> `blstm_layers` stacked BLSTM layers (`lstm_features` per
direction, outputs concatenated) -> `LinearTemporalAttention` (alpha =
softmax_t(w^T x_t), output sum_t alpha_t x_t) -> [batch, 2 * lstm_features].
Seed 002 eq. 3 combines the two directions by a linear map W_f h_f + W_b h_b +
b; we keep the concatenation [h_f, h_b] instead, because that map is absorbed
exactly: a linear score of a linear map is a linear score, and the pooled
vector only feeds dense layers.

Attention-FCN (`AttentionFCN`): per block conv 3x3 (no bias) -> BatchNorm ->
ReLU -> 2x2 max pool -> dropout, widths `conv_features` (card C3: 64, 128,
128), then `ScaledAttentionPooling` over all time' x freq' cells (e_i = u^T
tanh(W a_i + b), alpha = softmax(lambda * e), lambda = 0.3) -> [batch,
conv_features[-1]]. The plain FCN baseline (`fcn_attention=False`) averages
the valid cells instead (global average pooling, Network in Network).

Fusion (`AttentionBLSTMFCN`): the branch vectors are concatenated into the
deep-spectrum vector (sown as intermediates['deep_spectrum'], exported by
`jaxpara.export`) -> `head_layers` x (Dense(head_features) + ReLU + Dropout)
-> Dense(num_classes). Seed 002 Table 5's variants are `branches` /
`bidirectional` / `fcn_attention` / `blstm_layers` settings (registry entries
in `jaxpara.models`).

Padding (as in crnn.py): features beyond the valid length are zeroed before
every convolution and excluded from BatchNorm's batch statistics and from both
attentions; the LSTMs freeze their state there. Pools are SAME (ceil) and act
on post-ReLU maps, so logits do not depend on the padded tail. The valid
length is clipped to >= 1, so an all-padding row reads as one zero frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpara.models.attention import (
    LinearTemporalAttention,
    ScaledAttentionPooling,
    sequence_mask,
    zero_padding,
)
from jaxpara.models.base import Classifier
from jaxpara.models.layers import classifier_head, masked_conv_bn, masked_max_pool
from jaxpara.models.recurrent import StackedLSTM

Dtype = Any

# `branches` values: both branches fused, or one of them alone (Table 5).
BRANCHES = ("blstm_fcn", "blstm", "fcn")


class AttentionBLSTM(nn.Module):
    """Stacked (B)LSTM over spectrogram frames + linear-score attention pooling.

    Attributes:
        lstm_features: LSTM units per direction.
        num_layers: stacked layers (card C3: 2).
        bidirectional: BLSTM (Attention-BLSTM) or forward LSTM (Attention-LSTM).
        dtype: compute dtype (weights float32).
    """

    lstm_features: int = 128
    num_layers: int = 2
    bidirectional: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, inputs: jax.Array, lengths: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Encodes and pools a batch of spectrograms.

        Args:
            inputs: [batch, time, freq, channels], zero-padded at the end.
            lengths: [batch] int valid frames (>= 1).

        Returns:
            (vector [batch, lstm_features * (2 if bidirectional else 1)],
            alpha [batch, time] float32 attention weights, 0 on padding).
        """
        x = inputs.reshape(inputs.shape[0], inputs.shape[1], -1).astype(self.dtype)
        x, _ = StackedLSTM(
            self.lstm_features,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            dtype=self.dtype,
            name="lstm",
        )(x, lengths)
        mask = sequence_mask(lengths, inputs.shape[1])
        return LinearTemporalAttention(dtype=self.dtype, name="attention")(x, mask)


class AttentionFCN(nn.Module):
    """Fully convolutional blocks + attention pooling over grid cells.

    Attributes:
        conv_features: output channels of each block (card C3: 64, 128, 128).
        kernel_size: conv kernel (time, freq).
        pool: max-pool window = stride (time, freq) after each block.
        dropout: dropout rate after each block's pool.
        attention: attention pooling (Attention-FCN) or the valid-cell mean
            (plain FCN).
        attention_features: width of the attention's tanh layer.
        attention_scale: lambda of the attention softmax.
        dtype: compute dtype (weights and BN statistics float32).
    """

    conv_features: Sequence[int] = (64, 128, 128)
    kernel_size: tuple[int, int] = (3, 3)
    pool: tuple[int, int] = (2, 2)
    dropout: float = 0.2
    attention: bool = True
    attention_features: int = 64
    attention_scale: float = 0.3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, inputs: jax.Array, lengths: jax.Array, *, train: bool
    ) -> tuple[jax.Array, jax.Array | None]:
        """Encodes and pools a batch of spectrograms.

        Args:
            inputs: [batch, time, freq, channels], zero-padded at the end.
            lengths: [batch] int valid frames (>= 1).
            train: BatchNorm batch statistics (masked) and dropout.

        Returns:
            (vector [batch, conv_features[-1]], alpha [batch, time', freq']
            float32 attention weights, 0 on padded cells; None without
            attention).
        """
        mask = sequence_mask(lengths, inputs.shape[1])
        x = inputs.astype(self.dtype)
        for i, width in enumerate(self.conv_features):
            x = zero_padding(x, mask)
            x = masked_conv_bn(self, x, mask, width, index=i, train=train)
            x, mask = masked_max_pool(x, mask, self.pool)
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        if self.attention:
            return ScaledAttentionPooling(
                self.attention_features,
                scale=self.attention_scale,
                dtype=self.dtype,
                name="attention",
            )(x, mask[:, :, None])
        # Global average pooling over the valid cells (padded cells are zero).
        cells = jnp.sum(mask, axis=1) * x.shape[2]
        total = jnp.sum(x.astype(jnp.float32), axis=(1, 2))
        return (total / jnp.maximum(cells, 1)[:, None]).astype(x.dtype), None


class AttentionBLSTMFCN(Classifier):
    """Attention-BLSTM and Attention-FCN in parallel, fused by a DNN (card C3).

    Called as `Classifier` (`gender` is ignored; `frames` clipped to [1,
    time]). Parameters: 'blstm' (`AttentionBLSTM`), 'fcn' (`AttentionFCN`),
    'head_<i>', 'logits'. Intermediates: 'deep_spectrum' [batch, D] (the
    fused vector, D = 2 * lstm_features + conv_features[-1] for the fusion),
    'blstm_attention' [batch, time], 'fcn_attention' [batch, time', freq'].

    Attributes:
        num_classes: number of logits K.
        branches: 'blstm_fcn' (fusion), 'blstm' or 'fcn' (one branch alone).
        lstm_features: LSTM units per direction.
        blstm_layers: stacked (B)LSTM layers (Table 5: 1, 2 or 3).
        bidirectional: BLSTM or forward LSTM in the recurrent branch.
        conv_features: FCN block widths.
        fcn_attention: attention pooling in the FCN (else the valid-cell mean).
        attention_features: width of the FCN attention's tanh layer.
        fcn_attention_scale: lambda of the FCN attention softmax.
        fcn_dropout: dropout after each FCN block.
        head_features: width of the DNN's hidden layers.
        head_layers: number of hidden layers of the DNN.
        dropout: dropout after each hidden DNN layer.
        dtype: compute dtype (float32 | bfloat16); weights, BN statistics,
            attention weights and logits stay float32.
    """

    num_classes: int
    branches: str = "blstm_fcn"
    lstm_features: int = 128
    blstm_layers: int = 2
    bidirectional: bool = True
    conv_features: Sequence[int] = (64, 128, 128)
    fcn_attention: bool = True
    attention_features: int = 64
    fcn_attention_scale: float = 0.3
    fcn_dropout: float = 0.2
    head_features: int = 128
    head_layers: int = 2
    dropout: float = 0.2
    dtype: Dtype = jnp.float32

    def __post_init__(self):
        if self.branches not in BRANCHES:
            raise ValueError(
                f"AttentionBLSTMFCN: branches={self.branches!r}; expected one of "
                f"{list(BRANCHES)}."
            )
        if self.blstm_layers < 1 or self.head_layers < 0:
            raise ValueError(
                f"model.blstm.layers={self.blstm_layers} must be >= 1 and "
                f"model.head_layers={self.head_layers} >= 0."
            )
        super().__post_init__()

    def classify(self, inputs, lengths, gender, *, train):
        del gender  # Card C3 does not condition on speaker gender.
        lengths = jnp.clip(lengths, 1, inputs.shape[1])
        vectors = []
        if self.branches in ("blstm_fcn", "blstm"):
            vector, alpha = AttentionBLSTM(
                self.lstm_features,
                num_layers=self.blstm_layers,
                bidirectional=self.bidirectional,
                dtype=self.dtype,
                name="blstm",
            )(inputs, lengths)
            self.sow("intermediates", "blstm_attention", alpha)
            vectors.append(vector)
        if self.branches in ("blstm_fcn", "fcn"):
            vector, alpha = AttentionFCN(
                tuple(self.conv_features),
                dropout=self.fcn_dropout,
                attention=self.fcn_attention,
                attention_features=self.attention_features,
                attention_scale=self.fcn_attention_scale,
                dtype=self.dtype,
                name="fcn",
            )(inputs, lengths, train=train)
            if alpha is not None:
                self.sow("intermediates", "fcn_attention", alpha)
            vectors.append(vector)
        x = jnp.concatenate([v.astype(jnp.float32) for v in vectors], axis=-1)
        self.sow("intermediates", "deep_spectrum", x)
        hidden = {f"head_{i}": self.head_features for i in range(self.head_layers)}
        return classifier_head(self, x, hidden, train=train)


# Seed 002 Table 5: registry name -> the fields that define the variant
# (`jaxpara.models` binds them with functools.partial). Attention-BLSTM-FCN with
# 1/2/3 BLSTM layers is `attention_blstm_fcn` with `model.blstm.layers`.
VARIANTS: dict[str, dict[str, Any]] = {
    "fcn": dict(branches="fcn", fcn_attention=False),
    "attention_fcn": dict(branches="fcn", fcn_attention=True),
    "attention_lstm": dict(branches="blstm", bidirectional=False),
    "attention_blstm": dict(branches="blstm", bidirectional=True),
    "attention_blstm_fcn": dict(
        branches="blstm_fcn", bidirectional=True, fcn_attention=True
    ),
}
