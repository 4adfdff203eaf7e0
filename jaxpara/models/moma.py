"""MOMA: BLSTM encoder + residual mixture of multi-view attention (card C4, seed 003).

    inputs [B, T, F, C] -> frames [B, T, F*C] (23 log-Mel bands, C = 1)
    -> BLSTM encoder, 2 layers x 512 per direction -> Y [B, T, 1024]
    -> attention layer 1: a1 = MeanContextAttention(Y); Y <- Y + a1 (.) Y
    -> MOMA layer: a_mix = sum_n gamma_n a_n over n = 3 MeanContextAttention
       blocks with separate weights on the same Y (seed 003 eq. 7-9)
    -> pooled = sum_t a_mix[t] Y[t] -> Dense(1024) + ReLU (+ Dropout)
    -> Dense(num_classes).

Decisions where seed 003 is silent (card C4): the pooled vector's projection to
1024 has a ReLU (two stacked linear maps would collapse into one); gamma is
initialised uniformly in [0, 1) and used as printed (`model.moma.mixture =
'raw'`; 'softmax' normalises it); dropout after the projection is
`model.dropout` (the C4 config sets 0: the paper names none). The attention
blocks have no biases, as card C4 prints E (`model.moma.attention_bias=True`
adds them inside the tanhs).

Padding: the BLSTM stops at each segment's length (`frames`), every attention
gives exactly 0 weight to padded frames and the mean context M averages the
real frames only, so logits do not depend on the padded tail.

The attention vectors are sown for plotting (seed 003 Figures 2-5):
intermediates['attention_layer1'] [B, T] (MOMA1, eq. 5),
intermediates['attention_mixture'] [B, T] (MOMA2, eq. 9) and
intermediates['attention_blocks'] [B, n, T]. `jaxpara.evaluate.save_attention`
writes them per utterance (`config.eval.save_attention`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxpara.models.attention import (
    AttentionMixture,
    MeanContextAttention,
    sequence_mask,
)
from jaxpara.models.base import Classifier
from jaxpara.models.layers import classifier_head
from jaxpara.models.recurrent import StackedLSTM

Dtype = Any


class MOMA(Classifier):
    """BLSTM encoder -> attention layer 1 (residual) -> MOMA layer -> classifier.

    Called as `Classifier`; `gender` is ignored.

    Attributes:
        num_classes: number of logits K.
        lstm_features: LSTM units per direction (seed 003: 512).
        blstm_layers: BLSTM encoder layers (seed 003: 2).
        moma_attention_features: width of E in every attention block (128).
        moma_attention_bias: biases inside the blocks' tanhs (card C4: none).
        moma_blocks: attention blocks n of the MOMA layer (3).
        moma_mixture: 'raw' (a_mix = sum gamma_n a_n) | 'softmax' (softmax(gamma)).
        moma_projection_features: width of the projection of the pooled
            vector (1024).
        dropout: dropout rate after the projection (rng 'dropout').
        dtype: compute dtype (float32 | bfloat16); weights, LSTM state,
            attention weights and logits stay float32.
    """

    num_classes: int
    lstm_features: int = 512
    blstm_layers: int = 2
    moma_attention_features: int = 128
    moma_attention_bias: bool = False
    moma_blocks: int = 3
    moma_mixture: str = "raw"
    moma_projection_features: int = 1024
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    def classify(self, inputs, lengths, gender, *, train):
        del gender  # MOMA does not condition on speaker gender.
        batch, time = inputs.shape[:2]
        mask = sequence_mask(lengths, time)
        x = inputs.reshape(batch, time, -1).astype(self.dtype)
        y, _ = StackedLSTM(
            self.lstm_features,
            num_layers=self.blstm_layers,
            bidirectional=True,
            dtype=self.dtype,
            name="encoder",
        )(x, lengths, train=train)

        # Attention layer 1 with the residual projection (eq. 4-6).
        a1 = MeanContextAttention(
            self.moma_attention_features,
            self.moma_attention_bias,
            dtype=self.dtype,
            name="attention1",
        )(y, mask)
        self.sow("intermediates", "attention_layer1", a1)
        y = y.astype(jnp.float32)
        y = y + a1[..., None] * y

        # MOMA layer (eq. 7-9); the mixed attention pools Y over time.
        a_mix, blocks = AttentionMixture(
            self.moma_blocks,
            self.moma_attention_features,
            self.moma_mixture,
            self.moma_attention_bias,
            dtype=self.dtype,
            name="moma",
        )(y, mask)
        self.sow("intermediates", "attention_mixture", a_mix)
        self.sow("intermediates", "attention_blocks", blocks)
        pooled = jnp.einsum("bt,btd->bd", a_mix, y)

        return classifier_head(
            self, pooled, {"projection": self.moma_projection_features}, train=train
        )
