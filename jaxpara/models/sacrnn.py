"""SACRNN and its fusion with the ACRNN (card C1, seed 000).

SACRNN: ConvFrontEnd [B, T, F, C] -> [B, T', F', C'] -> AttentiveConvLSTM
(T_s iterations over that map, spatial attention over all T' x F' positions)
-> global average pool over the valid positions -> Dense(head_features) + ReLU
+ Dropout -> Dense(num_classes).

SACRNNACRNNFusion: one shared ConvFrontEnd feeding a SACRNN branch
(`SACRNNHead`, params under 'sacrnn') and an ACRNN branch (`crnn.ACRNNHead`,
params under 'acrnn'); the fused posterior is the mean of the two branch
softmaxes (seed 000: "fused additively").

Padding (as in crnn.py): `frames[b]` real frames lead each segment; the valid
length after the front-end is ceil(frames / 2), clipped to >= 1 so an empty
segment reads as one all-zero frame (as in ACRNN). Padded time rows get zero
spatial attention, zero ConvLSTM state and no weight in the average pool, so
logits do not depend on the padded tail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpara.models.attention import frames_mask, sequence_mask
from jaxpara.models.convlstm import AttentiveConvLSTM
from jaxpara.models.crnn import ACRNNHead, ConvFrontEnd, front_end_pools

Dtype = Any

# `config.model.attention` values: spatial attention on, or a plain ConvLSTM.
ATTENTION_VARIANTS = ("spatial", "none")
# `config.model.fusion_loss`: CE on the fused output only, or + one per branch.
FUSION_LOSSES = ("fused", "fused_and_branches")


def _check_attention(attention: str) -> None:
    if attention not in ATTENTION_VARIANTS:
        raise ValueError(
            f"model.attention={attention!r}; SACRNN models accept one of "
            f"{list(ATTENTION_VARIANTS)}."
        )


def _front_end(
    module: nn.Module, inputs: jax.Array, frames: jax.Array | None, *, train: bool
) -> tuple[jax.Array, jax.Array]:
    """Card C1's shared CNN ('cnn' in `module`): features and pooled mask."""
    batch, time = inputs.shape[:2]
    mask = frames_mask(frames, batch, time)
    return ConvFrontEnd(
        tuple(module.conv_features),
        front_end_pools(len(module.conv_features)),
        dtype=module.dtype,
        name="cnn",
    )(inputs, mask, train=train)


def sacrnn_classifier(
    module: nn.Module, features: jax.Array, mask: jax.Array, *, train: bool
) -> jax.Array:
    """SACRNN after the front-end, built inside `module`'s compact scope.

    Shared by `SACRNN` (flat tree: convlstm, head, logits next to cnn) and
    `SACRNNHead` (the fusion branch). Reads convlstm_features,
    convlstm_iterations, convlstm_kernel_size, attention, head_features,
    dropout, num_classes and dtype from `module`'s fields.

    Args:
        module: the calling module; must be inside its `nn.compact` method.
        features: [batch, time', freq', channels] front-end output, zero on
            padded frames.
        mask: [batch, time'] bool, True on real frames (a prefix).
        train: dropout on (rng 'dropout').

    Returns:
        [batch, num_classes] float32 logits.
    """
    _check_attention(module.attention)
    time, freq = features.shape[1:3]
    lengths = jnp.maximum(jnp.sum(mask, axis=1, dtype=jnp.int32), 1)
    mask = sequence_mask(lengths, time)
    hidden = AttentiveConvLSTM(
        features=module.convlstm_features,
        kernel_size=module.convlstm_kernel_size,
        iterations=module.convlstm_iterations,
        attention=module.attention == "spatial",
        dtype=module.dtype,
        name="convlstm",
    )(features, mask[:, :, None])
    # Global average over the valid time' x freq' positions (hidden is 0 elsewhere).
    pooled = jnp.sum(hidden.astype(jnp.float32), axis=(1, 2))
    pooled = pooled / (lengths * freq).astype(jnp.float32)[:, None]

    x = nn.Dense(module.head_features, dtype=module.dtype, name="head")(pooled)
    x = nn.Dropout(module.dropout, deterministic=not train)(nn.relu(x))
    logits = nn.Dense(module.num_classes, dtype=module.dtype, name="logits")(x)
    return logits.astype(jnp.float32)


class SACRNN(nn.Module):
    """Spatial attentive ConvLSTM RNN (card C1's SACRNN branch as a model).

    Intermediates: convlstm/spatial_attention [batch, T_s, time', freq'].

    Attributes:
        num_classes: number of logits K.
        conv_features: front-end block widths (2x2 pool, then 1x2 pools).
        convlstm_features: ConvLSTM hidden channels (Table 1: 128).
        convlstm_iterations: T_s, iterations over the same map.
        convlstm_kernel_size: k of the k x k ConvLSTM convolutions.
        attention: 'spatial' (attentive ConvLSTM) | 'none' (plain ConvLSTM).
        head_features: width of the dense head.
        dropout: dropout rate after the dense head.
        dtype: compute dtype (float32 | bfloat16); weights, BN statistics,
            attention maps, ConvLSTM state and logits stay float32.
    """

    num_classes: int
    conv_features: Sequence[int] = (32, 64)
    convlstm_features: int = 128
    convlstm_iterations: int = 4
    convlstm_kernel_size: int = 3
    attention: str = "spatial"
    head_features: int = 64
    dropout: float = 0.2
    dtype: Dtype = jnp.float32

    def __post_init__(self):
        _check_attention(self.attention)
        super().__post_init__()

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        frames: jax.Array | None = None,
        gender: jax.Array | None = None,
        *,
        train: bool,
    ) -> jax.Array:
        """Classifies a batch of segments (call contract: `jaxpara.models`).

        `gender` is accepted and ignored; `train` switches BatchNorm batch
        statistics and dropout (rng 'dropout').
        """
        del gender  # SACRNN does not condition on speaker gender.
        x, mask = _front_end(self, inputs, frames, train=train)
        return sacrnn_classifier(self, x, mask, train=train)


class SACRNNHead(nn.Module):
    """SACRNN minus its front-end: the SACRNN branch of the fusion model.

    Attributes:
        num_classes, convlstm_features, convlstm_iterations,
        convlstm_kernel_size, attention, head_features, dropout, dtype: as in
        `SACRNN`.
    """

    num_classes: int
    convlstm_features: int = 128
    convlstm_iterations: int = 4
    convlstm_kernel_size: int = 3
    attention: str = "spatial"
    head_features: int = 64
    dropout: float = 0.2
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, features: jax.Array, mask: jax.Array, *, train: bool
    ) -> jax.Array:
        """Classifies front-end features.

        Args:
            features: [batch, time', freq', channels] front-end output, zero
                on padded frames.
            mask: [batch, time'] bool, True on real frames (a prefix).
            train: dropout on (rng 'dropout').

        Returns:
            [batch, num_classes] float32 logits.
        """
        return sacrnn_classifier(self, features, mask, train=train)


def fuse_posteriors(*branch_logits: jax.Array) -> jax.Array:
    """log of the mean of the branches' softmaxes: a normalised log-posterior.

    Args:
        *branch_logits: [batch, K] logits of each branch.

    Returns:
        [batch, K] float32 logits whose softmax (= exp) is the mean posterior.
    """
    log_posteriors = jnp.stack(
        [jax.nn.log_softmax(x.astype(jnp.float32), axis=-1) for x in branch_logits]
    )
    return jax.nn.logsumexp(log_posteriors, axis=0) - math.log(len(branch_logits))


class SACRNNACRNNFusion(nn.Module):
    """SACRNN + ACRNN on one shared front-end, posteriors averaged (card C1).

    Parameters: 'cnn' (shared), 'sacrnn' (`SACRNNHead`: convlstm, head,
    logits), 'acrnn' (`crnn.ACRNNHead`: frame, lstm, attention, head, logits),
    i.e. exactly the trees of `SACRNN` and `ACRNN` with one 'cnn' between them.
    Intermediates: sacrnn/convlstm/spatial_attention [batch, T_s, time', freq']
    and acrnn/temporal_attention [batch, time'].

    Attributes:
        num_classes: number of logits K.
        conv_features: shared front-end block widths.
        convlstm_features, convlstm_iterations, convlstm_kernel_size,
            attention: the SACRNN branch (see `SACRNN`).
        frame_features, lstm_features, bidirectional, attention_features:
            the ACRNN branch (see `crnn.ACRNN`).
        head_features: width of both branches' dense heads.
        dropout: dropout rate after both dense heads.
        fusion_loss: 'fused' -> the model returns the fused logits [B, K];
            'fused_and_branches' -> {"logits": fused, "aux_logits":
            (sacrnn_logits, acrnn_logits)}, so the engine adds one
            cross-entropy per branch.
        dtype: compute dtype (float32 | bfloat16).
    """

    num_classes: int
    conv_features: Sequence[int] = (32, 64)
    convlstm_features: int = 128
    convlstm_iterations: int = 4
    convlstm_kernel_size: int = 3
    attention: str = "spatial"
    frame_features: int = 256
    lstm_features: int = 128
    bidirectional: bool = False
    attention_features: int = 64
    head_features: int = 64
    dropout: float = 0.2
    fusion_loss: str = "fused_and_branches"
    dtype: Dtype = jnp.float32

    def __post_init__(self):
        _check_attention(self.attention)
        if self.fusion_loss not in FUSION_LOSSES:
            raise ValueError(
                f"model.fusion_loss={self.fusion_loss!r}; expected one of "
                f"{list(FUSION_LOSSES)}."
            )
        super().__post_init__()

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        frames: jax.Array | None = None,
        gender: jax.Array | None = None,
        *,
        train: bool,
    ) -> jax.Array | dict[str, Any]:
        """Classifies a batch of segments with both branches.

        Args:
            inputs: [batch, time, freq, channels] normalised features,
                zero-padded at the end.
            frames: optional [batch] int number of real frames per segment.
            gender: optional [batch] int; accepted and ignored.
            train: BatchNorm batch statistics and dropout (rng 'dropout').

        Returns:
            Fused [batch, num_classes] float32 logits = log of the mean branch
            posterior ('fused'), or {"logits": those, "aux_logits":
            (sacrnn [batch, K], acrnn [batch, K])} ('fused_and_branches').
        """
        del gender  # Neither branch conditions on speaker gender.
        x, mask = _front_end(self, inputs, frames, train=train)
        sacrnn_logits = SACRNNHead(
            self.num_classes,
            convlstm_features=self.convlstm_features,
            convlstm_iterations=self.convlstm_iterations,
            convlstm_kernel_size=self.convlstm_kernel_size,
            attention=self.attention,
            head_features=self.head_features,
            dropout=self.dropout,
            dtype=self.dtype,
            name="sacrnn",
        )(x, mask, train=train)
        acrnn_logits = ACRNNHead(
            self.num_classes,
            frame_features=self.frame_features,
            lstm_features=self.lstm_features,
            bidirectional=self.bidirectional,
            attention_features=self.attention_features,
            head_features=self.head_features,
            dropout=self.dropout,
            dtype=self.dtype,
            name="acrnn",
        )(x, mask, train=train)
        logits = fuse_posteriors(sacrnn_logits, acrnn_logits)
        if self.fusion_loss == "fused":
            return logits
        return {"logits": logits, "aux_logits": (sacrnn_logits, acrnn_logits)}
