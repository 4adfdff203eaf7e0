"""Self-attention CNN-BiLSTM with gender embedding (card C5, seed 004).

    inputs [B, T, 40, 3] -> 6 x (conv 5x3 -> BN -> ReLU), 128 filters in the
    first layer and 256 in the rest, one 2x2 max pool after the first
    -> [B, T/2, 20, 256] -> reshape [B, T/2, 5120] -> Dense(768) (linear)
    -> BiLSTM 128 per direction [B, T/2, 256]
    -> Model 1 (`attention='temporal'`): ACRNN temporal attention pooling
       (card C1, `TemporalAttention`);
       Model 2 (`attention='local_self'`): local additive self-attention,
       width 15, ReLU (`LocalSelfAttention`), then the average over the real
       frames (global average pooling)
    -> utterance vector [B, 256], concatenated with the gender vector
       (`use_gender`): Embed(2 -> 300) -> Dense(64) -> [B, 64]
    -> Dense(head_features) + ReLU + Dropout -> Dense(num_classes).

Decisions where seed 004 is silent (card C5): the convolutions are followed by
BatchNorm (masked batch statistics, as in `crnn.ResidualBlock`); the gender
Dense(64) is linear (the Keras default; the paper names no activation); the
head has one hidden layer of `head_features`.

Gender codes (`jaxpara.data.pipeline.GENDER_CODE`): 1 = male, 0 = female,
anything else (-1 = unknown, e.g. a manifest without a gender column) = the
mean of the two embedding rows, a point between the genders the Dense layer
has seen in training, rather than a zero vector it never saw. With
`use_gender=False` the gender branch has no parameters and `gender` is ignored.

Padding: as in `crnn`, padded frames are zeroed before every convolution and
excluded from BatchNorm's statistics, the time pool maps a length to
ceil(length / 2), the BiLSTM stops at that length and both poolings give the
padded frames exactly 0 weight, so logits do not depend on the padded tail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpara.models.attention import (
    LocalSelfAttention,
    TemporalAttention,
    masked_mean,
    sequence_mask,
    zero_padding,
)
from jaxpara.models.base import Classifier
from jaxpara.models.layers import classifier_head, masked_conv_bn, masked_max_pool
from jaxpara.models.recurrent import BiLSTM

Dtype = Any
ATTENTIONS = ("temporal", "local_self")


class ConvStack(nn.Module):
    """Plain conv -> BN -> ReLU layers, one max pool after the first (card C5).

    Attributes:
        features: output channels of each conv layer.
        kernel_size: conv kernel (time, freq).
        pool: (time, freq) max-pool window = stride after the first layer.
        dtype: compute dtype (weights float32).
    """

    features: Sequence[int] = (128, 256, 256, 256, 256, 256)
    kernel_size: tuple[int, int] = (5, 3)
    pool: tuple[int, int] = (2, 2)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, inputs: jax.Array, mask: jax.Array, *, train: bool
    ) -> tuple[jax.Array, jax.Array]:
        """Runs the stack.

        Args:
            inputs: [batch, time, freq, channels] features.
            mask: [batch, time] bool, True on real frames (a prefix).
            train: BatchNorm uses (masked) batch statistics.

        Returns:
            (features [batch, ceil(time / p_t), ceil(freq / p_f), features[-1]],
            zero on padded frames; mask [batch, ceil(time / p_t)]).
        """
        x = zero_padding(inputs.astype(self.dtype), mask)
        for layer, width in enumerate(self.features):
            x = masked_conv_bn(self, x, mask, width, index=layer, train=train)
            if layer == 0:
                x, mask = masked_max_pool(x, mask, self.pool)
        return x, mask


class GenderEmbedding(nn.Module):
    """Gender code -> Embed(2, embedding) -> Dense(features) (seed 004 sec. 2.3).

    Attributes:
        embedding: embedding width (seed 004: 300).
        features: output width (64).
        dtype: compute dtype (weights float32).
    """

    embedding: int = 300
    features: int = 64
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, gender: jax.Array) -> jax.Array:
        """Embeds gender codes.

        Args:
            gender: [batch] int, 1 = male, 0 = female, other = unknown (the
                mean of the two embedding rows).

        Returns:
            [batch, features] float32.
        """
        embed = nn.Embed(2, self.embedding, name="embed")
        gender = jnp.asarray(gender, jnp.int32)
        known = (gender == 0) | (gender == 1)
        rows = embed(jnp.clip(gender, 0, 1))
        unknown = jnp.mean(embed.embedding, axis=0)
        vectors = jnp.where(known[:, None], rows, unknown[None, :])
        out = nn.Dense(self.features, dtype=self.dtype, name="dense")(
            vectors.astype(self.dtype)
        )
        return out.astype(jnp.float32)


class CNNBiLSTM(Classifier):
    """CNN -> Dense(768) -> BiLSTM -> attention pooling (+ gender) -> classifier.

    Called as `Classifier`: `gender` [batch] (1 = male, 0 = female, -1 =
    unknown; None = unknown for every example) is read only with
    `use_gender`. The call raises ValueError when `attention` is not
    'temporal' or 'local_self'.

    Attributes:
        num_classes: number of logits K.
        conv_features: channels of the conv layers (6 in seed 004).
        conv_kernel: conv kernel (time, freq) (seed 004: 5x3).
        frame_features: width of the linear per-frame layer (768).
        lstm_features: BiLSTM units per direction (128).
        attention: 'temporal' (Model 1) | 'local_self' (Model 2).
        attention_features: width of the temporal attention's tanh layer
            (Model 1 is card C1's attention: 128, seed 000 Table 2).
        attention_bias: its bias b (Model 1 is card C1's attention: none).
        local_attention_width: window of the self-attention (Model 2: 15).
        local_attention_features: width of its additive layer (keras: 32).
        local_attention_activation: activation of its scores ('relu').
        use_gender: concatenate the gender vector to the utterance vector.
        gender_embedding: gender embedding width (300).
        gender_features: gender vector width (64).
        head_features: width of the hidden dense layer of the classifier.
        dropout: dropout rate after that layer (rng 'dropout').
        dtype: compute dtype (float32 | bfloat16); weights, BN statistics,
            attention weights and logits stay float32.
    """

    num_classes: int
    conv_features: Sequence[int] = (128, 256, 256, 256, 256, 256)
    conv_kernel: tuple[int, int] = (5, 3)
    frame_features: int = 768
    lstm_features: int = 128
    attention: str = "local_self"
    attention_features: int = 128
    attention_bias: bool = False
    local_attention_width: int = 15
    local_attention_features: int = 32
    local_attention_activation: str = "relu"
    use_gender: bool = True
    gender_embedding: int = 300
    gender_features: int = 64
    head_features: int = 64
    dropout: float = 0.2
    dtype: Dtype = jnp.float32

    def classify(self, inputs, lengths, gender, *, train):
        if self.attention not in ATTENTIONS:
            raise ValueError(
                f"model.attention={self.attention!r} for CNNBiLSTM; expected one "
                f"of {ATTENTIONS} (Model 1, Model 2)"
            )
        batch = inputs.shape[0]
        mask = sequence_mask(lengths, inputs.shape[1])
        x, mask = ConvStack(
            tuple(self.conv_features),
            tuple(self.conv_kernel),
            dtype=self.dtype,
            name="cnn",
        )(inputs, mask, train=train)
        lengths = jnp.sum(mask, axis=1, dtype=jnp.int32)

        x = x.reshape(batch, x.shape[1], -1)
        x = nn.Dense(self.frame_features, dtype=self.dtype, name="frame")(x)
        x, _ = BiLSTM(self.lstm_features, dtype=self.dtype, name="lstm")(x, lengths)

        if self.attention == "temporal":
            pooled, alpha = TemporalAttention(
                self.attention_features,
                use_bias=self.attention_bias,
                dtype=self.dtype,
                name="attention",
            )(x, mask)
            self.sow("intermediates", "temporal_attention", alpha)
        else:
            attended, weights = LocalSelfAttention(
                self.local_attention_width,
                self.local_attention_features,
                self.local_attention_activation,
                dtype=self.dtype,
                name="attention",
            )(x, mask)
            self.sow("intermediates", "local_attention", weights)
            pooled = masked_mean(attended, mask)
        pooled = pooled.astype(jnp.float32)

        if self.use_gender:
            if gender is None:
                gender = jnp.full((batch,), -1, jnp.int32)
            vector = GenderEmbedding(
                self.gender_embedding,
                self.gender_features,
                dtype=self.dtype,
                name="gender",
            )(gender)
            pooled = jnp.concatenate([pooled, vector], axis=-1)

        return classifier_head(self, pooled, {"head": self.head_features}, train=train)
