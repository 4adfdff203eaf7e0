"""SACRNN and its fusion with the ACRNN (card C1, seed 000).

SACRNN: ConvFrontEnd [B, T, F, C] -> [B, T', F', C'] -> AttentiveConvLSTM
(T_s iterations over that map, spatial attention over all T' x F' positions)
-> global average pool over the valid positions -> Dense(head_features) + ReLU
+ Dropout -> Dense(num_classes).

SACRNNACRNNFusion: one shared ConvFrontEnd feeding a SACRNN branch (the
layers of `SACRNN` after its front-end, params under 'sacrnn') and an ACRNN
branch (those of `crnn.ACRNN`, params under 'acrnn'), each a `FusionBranch`;
the fused posterior is the mean of the two branch softmaxes (seed 000: "fused
additively").

Padding (as in crnn.py): `frames[b]` real frames lead each segment; the valid
length after the front-end is ceil(frames / 2), clipped to >= 1 so an empty
segment reads as one all-zero frame (as in ACRNN). Padded time rows get zero
spatial attention, zero ConvLSTM state and no weight in the average pool, so
logits do not depend on the padded tail.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpara.models.base import Classifier
from jaxpara.models.convlstm import AttentiveConvLSTM
from jaxpara.models.crnn import (
    acrnn_classifier,
    c1_front_end,
    frame_activation,
    front_end_lengths,
)
from jaxpara.models.layers import classifier_head

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


def sacrnn_classifier(
    module: nn.Module,
    features: jax.Array,
    mask: jax.Array,
    *,
    train: bool,
    sizes: nn.Module | None = None,
) -> jax.Array:
    """SACRNN after the front-end, built inside `module`'s compact scope.

    Shared by `SACRNN` (flat tree: convlstm, head, logits next to cnn) and the
    fusion model's 'sacrnn' branch. Reads convlstm_features,
    convlstm_iterations, convlstm_kernel_size, attention, head_features,
    dropout, num_classes and dtype from the fields of `sizes`. Arguments and
    result as `crnn.acrnn_classifier`.
    """
    sizes = module if sizes is None else sizes
    _check_attention(sizes.attention)
    lengths, mask = front_end_lengths(mask)
    freq = features.shape[2]
    hidden = AttentiveConvLSTM(
        features=sizes.convlstm_features,
        kernel_size=sizes.convlstm_kernel_size,
        iterations=sizes.convlstm_iterations,
        attention=sizes.attention == "spatial",
        dtype=sizes.dtype,
        name="convlstm",
    )(features, mask[:, :, None])
    # Global average over the valid time' x freq' positions (hidden is 0 elsewhere).
    pooled = jnp.sum(hidden.astype(jnp.float32), axis=(1, 2))
    pooled = pooled / (lengths * freq).astype(jnp.float32)[:, None]
    return classifier_head(sizes, pooled, {"head": sizes.head_features}, train=train)


class SACRNN(Classifier):
    """Spatial attentive ConvLSTM RNN (card C1's SACRNN branch as a model).

    Called as `Classifier` (`gender` is ignored). Intermediates:
    convlstm/spatial_attention [batch, T_s, time', freq'].

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

    def classify(self, inputs, lengths, gender, *, train):
        del gender  # SACRNN does not condition on speaker gender.
        x, mask = c1_front_end(self, inputs, lengths, train=train)
        return sacrnn_classifier(self, x, mask, train=train)


class FusionBranch(nn.Module):
    """A fusion model's branch in its own scope (params, intermediates: its name).

    Attributes:
        layers: the branch's layers after the shared front-end, e.g.
            `sacrnn_classifier` or `crnn.acrnn_classifier`, built here and
            sized by the fusion model's fields.
    """

    layers: Callable[..., jax.Array]

    @nn.compact
    def __call__(
        self, features: jax.Array, mask: jax.Array, sizes: nn.Module, *, train: bool
    ) -> jax.Array:
        """Classifies front-end features.

        Args:
            features: [batch, time', freq', channels] shared front-end output,
                zero on padded frames.
            mask: [batch, time'] bool, True on real frames (a prefix).
            sizes: the fusion model, whose fields size the layers.
            train: dropout on (rng 'dropout').

        Returns:
            [batch, num_classes] float32 logits.
        """
        return self.layers(self, features, mask, train=train, sizes=sizes)


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


class SACRNNACRNNFusion(Classifier):
    """SACRNN + ACRNN on one shared front-end, posteriors averaged (card C1).

    Parameters: 'cnn' (shared), 'sacrnn' (convlstm, head, logits), 'acrnn'
    (frame, lstm, attention, head, logits), i.e. exactly the trees of `SACRNN`
    and `ACRNN` with one 'cnn' between them.
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
        fusion_loss: the model returns {"logits": fused [B, K],
            "aux_logits", "branches": {"sacrnn": [B, K], "acrnn": [B, K]}};
            'fused_and_branches' -> aux_logits = (sacrnn, acrnn), so the
            engine adds one cross-entropy per branch; 'fused' -> aux_logits
            = (), the fused loss only. The branches are always reported
            (`models.branch_outputs`).
        dtype: compute dtype (float32 | bfloat16).
    """

    num_classes: int
    conv_features: Sequence[int] = (32, 64)
    convlstm_features: int = 128
    convlstm_iterations: int = 4
    convlstm_kernel_size: int = 3
    attention: str = "spatial"
    frame_features: int = 256
    frame_activation: str = "linear"
    lstm_features: int = 128
    bidirectional: bool = False
    attention_features: int = 64
    attention_bias: bool = False
    head_features: int = 64
    dropout: float = 0.2
    fusion_loss: str = "fused_and_branches"
    dtype: Dtype = jnp.float32

    BRANCHES: ClassVar[tuple[str, ...]] = ("sacrnn", "acrnn")

    def __post_init__(self):
        _check_attention(self.attention)
        frame_activation(self.frame_activation)
        if self.fusion_loss not in FUSION_LOSSES:
            raise ValueError(
                f"model.fusion_loss={self.fusion_loss!r}; expected one of "
                f"{list(FUSION_LOSSES)}."
            )
        super().__post_init__()

    def classify(self, inputs, lengths, gender, *, train):
        del gender  # Neither branch conditions on speaker gender.
        x, mask = c1_front_end(self, inputs, lengths, train=train)
        branch_logits = tuple(
            FusionBranch(layers, name=name)(x, mask, self, train=train)
            for layers, name in (
                (sacrnn_classifier, "sacrnn"),
                (acrnn_classifier, "acrnn"),
            )
        )
        logits = fuse_posteriors(*branch_logits)
        return {
            "logits": logits,
            # Trained with their own cross-entropy terms, or not ('fused').
            "aux_logits": branch_logits if self.fusion_loss != "fused" else (),
            # Reported on their own (card C1 Table 3: one run, three rows).
            "branches": dict(zip(self.BRANCHES, branch_logits)),
        }
