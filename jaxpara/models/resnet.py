"""ResNet-18 with attention on the residual branch (card C2, seed 001).

Layout (He et al. 2016, torchvision's `resnet18`): stem -> 4 stages of
BasicBlocks (64, 128, 256, 512 channels, 2 blocks each, stride 1, 2, 2, 2) ->
global average pool over [time', freq'] -> Dense(num_classes). The stem is
'7x7' (conv 7x7 / 2, BN, ReLU, max-pool 3x3 / 2; the standard one) or '3x3'
(conv 3x3 / 1, BN, ReLU, no pooling; for small inputs). Convolutions have no
bias (`conv.Conv`: nn.Conv with a fast CPU kernel gradient), padding follows
torchvision (k // 2 on both sides), a shape-changing
shortcut is conv 1x1 / s + BN, and BatchNorm keeps scale + bias in 'params'
and its running mean / variance in 'batch_stats'. With 3 input channels and
1000 classes the parameter count is torchvision's 11,689,512.

Attention (`attention`, seed 001 section 3.3, eq. 1-7) acts in every
BasicBlock of the stages listed in `resnet_attention_stages`, on the residual
branch after the second BN and before the addition of the shortcut
(`ResidualAttention`):

    se:         F' = A_SE(F) (x) F,  A_SE = sigmoid(W2 relu(W1 avgpool(F)))
                (dense C -> C // r -> C, with biases; r = resnet_se_reduction)
    spatial:    F' = A_SP(F) (x) F,  A_SP = sigmoid(conv1x1(F) -> 1 channel)
    se_spatial: F' = A_SE(F) (x) A_SP(F) (x) F  (both computed from the same F)
    component:  F' = A_CO(F) (x) F,  A_CO = sigmoid(conv1x1(F) -> C channels)

The maps are sown into 'intermediates' under each block's `attention` scope,
e.g. `stage1_block0/attention/se_attention` [batch, C],
`.../spatial_attention` [batch, time', freq'] and `.../component_attention`
[batch, time', freq', C]; `model.apply(..., mutable=['intermediates'])`
returns them for plots.

Padding: card C2 zero-pads short cycles and the network sees the padded
spectrogram, as in the paper; `frames` is accepted for the common model
interface and not used.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpara.models.base import Classifier
from jaxpara.models.conv import Conv
from jaxpara.models.layers import classifier_head

Dtype = Any

# `config.model.attention` values (card C2).
ATTENTION_VARIANTS = ("none", "se", "spatial", "se_spatial", "component")
STEMS = ("7x7", "3x3")
# torchvision's ResNet initialisation: He normal, fan_out, for convolutions.
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _pad(kernel: int) -> tuple[tuple[int, int], tuple[int, int]]:
    return ((kernel // 2, kernel // 2), (kernel // 2, kernel // 2))


def _batch_norm(train: bool, dtype: Dtype, name: str) -> nn.BatchNorm:
    # momentum 0.9 = PyTorch's 0.1; epsilon as PyTorch.
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        dtype=dtype,
        name=name,
    )


class SqueezeExcitation(nn.Module):
    """Channel attention A_SE (seed 001 eq. 2).

    A_SE(F) = sigmoid(W2 relu(W1 mean_{time,freq}(F) + b1) + b2), W1: C -> C // r
    (at least 1 unit), W2: C // r -> C.

    Attributes:
        reduction: r.
        dtype: compute dtype of the dense layers.
    """

    reduction: int = 16
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        """Args: features [batch, time, freq, C]. Returns: [batch, C] float32."""
        channels = features.shape[-1]
        squeezed = jnp.mean(features.astype(jnp.float32), axis=(1, 2))
        hidden = nn.Dense(
            max(1, channels // self.reduction), dtype=self.dtype, name="squeeze"
        )(squeezed)
        excited = nn.Dense(channels, dtype=self.dtype, name="excite")(nn.relu(hidden))
        return nn.sigmoid(excited.astype(jnp.float32))


class Conv1x1Gate(nn.Module):
    """sigmoid(conv1x1(F)): the spatial and component gates (eq. 4, 7).

    One gate per cell (`SpatialAttention`) or, with `per_channel`, one per
    cell and channel (`ComponentAttention`).

    Attributes:
        dtype: compute dtype of the convolution.
    """

    dtype: Dtype = jnp.float32
    per_channel: ClassVar[bool] = False

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        """Args: features [batch, time, freq, C]. Returns: float32 gates in (0,
        1), [batch, time, freq] ([batch, time, freq, C] with `per_channel`)."""
        channels = features.shape[-1] if self.per_channel else 1
        score = Conv(channels, (1, 1), dtype=self.dtype, name="conv")(features)
        gate = nn.sigmoid(score.astype(jnp.float32))
        return gate if self.per_channel else gate[..., 0]


class SpatialAttention(Conv1x1Gate):
    """Spatial attention A_SP = sigmoid(conv1x1(F) -> 1 channel) (eq. 4)."""


class ComponentAttention(Conv1x1Gate):
    """Component attention A_CO = sigmoid(conv1x1(F) -> C channels) (eq. 7)."""

    per_channel = True


class ResidualAttention(nn.Module):
    """Applies one attention variant to a residual branch (eq. 1, 3, 5, 6).

    Attributes:
        kind: 'se' | 'spatial' | 'se_spatial' | 'component'.
        reduction: SE reduction ratio r.
        dtype: compute dtype of the attention layers.
    """

    kind: str
    reduction: int = 16
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        """Re-weights `features` [batch, time, freq, C]; same shape and dtype.

        Sows the maps ('intermediates'): `se_attention` [batch, C],
        `spatial_attention` [batch, time, freq], `component_attention`
        [batch, time, freq, C] (float32, in (0, 1)).
        """
        if self.kind not in ATTENTION_VARIANTS[1:]:
            raise ValueError(
                f"model.attention={self.kind!r}; expected one of "
                f"{list(ATTENTION_VARIANTS)}."
            )
        weight = jnp.ones((), jnp.float32)
        if self.kind in ("se", "se_spatial"):
            a_se = SqueezeExcitation(self.reduction, self.dtype, name="se")(features)
            self.sow("intermediates", "se_attention", a_se)
            weight = weight * a_se[:, None, None, :]
        if self.kind in ("spatial", "se_spatial"):
            a_sp = SpatialAttention(self.dtype, name="spatial")(features)
            self.sow("intermediates", "spatial_attention", a_sp)
            weight = weight * a_sp[..., None]
        if self.kind == "component":
            a_co = ComponentAttention(self.dtype, name="component")(features)
            self.sow("intermediates", "component_attention", a_co)
            weight = a_co
        return (weight * features.astype(jnp.float32)).astype(features.dtype)


class BasicBlock(nn.Module):
    """conv3x3/s-BN-ReLU-conv3x3-BN [-> attention] + shortcut -> ReLU.

    Attributes:
        features: output channels.
        strides: stride of the first convolution (and of the shortcut).
        attention: 'none' or a `ResidualAttention` kind.
        se_reduction: SE reduction ratio.
        dtype: compute dtype.
    """

    features: int
    strides: int = 1
    attention: str = "none"
    se_reduction: int = 16
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: jax.Array, *, train: bool) -> jax.Array:
        """[batch, time, freq, C_in] -> [batch, time / s, freq / s, features]."""
        conv = functools.partial(
            Conv, use_bias=False, dtype=self.dtype, kernel_init=_conv_init
        )
        strides = (self.strides, self.strides)
        branch = conv(self.features, (3, 3), strides, padding=_pad(3), name="conv1")(
            inputs
        )
        branch = nn.relu(_batch_norm(train, self.dtype, "bn1")(branch))
        branch = conv(self.features, (3, 3), padding=_pad(3), name="conv2")(branch)
        branch = _batch_norm(train, self.dtype, "bn2")(branch)
        if self.attention != "none":
            branch = ResidualAttention(
                self.attention, self.se_reduction, self.dtype, name="attention"
            )(branch)
        shortcut = inputs
        if inputs.shape[-1] != self.features or self.strides != 1:
            shortcut = conv(self.features, (1, 1), strides, name="downsample_conv")(
                inputs
            )
            shortcut = _batch_norm(train, self.dtype, "downsample_bn")(shortcut)
        return nn.relu(branch + shortcut)


class ResNet(Classifier):
    """ResNet with BasicBlocks; the defaults are ResNet-18 (card C2).

    Called as `Classifier` on spectrogram crops (zero-padded cycles, card
    C2); `frames` and `gender` are unused.

    Config keys (`jaxpara.models.create_model`): `model.attention`,
    `model.resnet.{stage_features, blocks_per_stage, stem, se_reduction,
    attention_stages}`, `model.dtype`.

    Attributes:
        num_classes: K.
        attention: 'none' | 'se' | 'spatial' | 'se_spatial' | 'component'.
        resnet_stage_features: channels per stage.
        resnet_blocks_per_stage: BasicBlocks per stage.
        resnet_stem: '7x7' (standard) or '3x3' (small inputs).
        resnet_se_reduction: SE reduction ratio r.
        resnet_attention_stages: 1-based stages whose blocks get attention.
        dtype: compute dtype (params, BN statistics and logits are float32).
    """

    num_classes: int
    attention: str = "none"
    resnet_stage_features: Sequence[int] = (64, 128, 256, 512)
    resnet_blocks_per_stage: Sequence[int] = (2, 2, 2, 2)
    resnet_stem: str = "7x7"
    resnet_se_reduction: int = 16
    resnet_attention_stages: Sequence[int] = (1, 2, 3, 4)
    dtype: Dtype = jnp.float32

    def _check(self) -> None:
        num_stages = len(self.resnet_stage_features)
        if self.attention not in ATTENTION_VARIANTS:
            raise ValueError(
                f"model.attention={self.attention!r}; ResNet accepts one of "
                f"{list(ATTENTION_VARIANTS)}."
            )
        if self.resnet_stem not in STEMS:
            raise ValueError(
                f"model.resnet.stem={self.resnet_stem!r}; expected one of "
                f"{list(STEMS)}."
            )
        if len(self.resnet_blocks_per_stage) != num_stages or not num_stages:
            raise ValueError(
                f"model.resnet.blocks_per_stage={self.resnet_blocks_per_stage} "
                f"needs one entry per stage of model.resnet.stage_features="
                f"{self.resnet_stage_features}."
            )
        bad = [s for s in self.resnet_attention_stages if not 1 <= s <= num_stages]
        if bad:
            raise ValueError(
                f"model.resnet.attention_stages={self.resnet_attention_stages}: "
                f"stages are numbered 1..{num_stages}, got {bad}."
            )
        if self.resnet_se_reduction < 1:
            raise ValueError(
                f"model.resnet.se_reduction={self.resnet_se_reduction}; need >= 1."
            )

    def classify(self, inputs, lengths, gender, *, train):
        del lengths, gender  # Unused (see the module docstring).
        self._check()
        x = inputs.astype(self.dtype)
        stem_kernel = 7 if self.resnet_stem == "7x7" else 3
        stem_strides = (2, 2) if self.resnet_stem == "7x7" else (1, 1)
        x = Conv(
            self.resnet_stage_features[0],
            (stem_kernel, stem_kernel),
            stem_strides,
            padding=_pad(stem_kernel),
            use_bias=False,
            dtype=self.dtype,
            kernel_init=_conv_init,
            name="stem_conv",
        )(x)
        x = nn.relu(_batch_norm(train, self.dtype, "stem_bn")(x))
        if self.resnet_stem == "7x7":
            x = nn.max_pool(x, (3, 3), (2, 2), padding=_pad(3))
        for stage, (features, blocks) in enumerate(
            zip(self.resnet_stage_features, self.resnet_blocks_per_stage), start=1
        ):
            attention = (
                self.attention if stage in self.resnet_attention_stages else "none"
            )
            for block in range(blocks):
                x = BasicBlock(
                    features,
                    strides=2 if stage > 1 and block == 0 else 1,
                    attention=attention,
                    se_reduction=self.resnet_se_reduction,
                    dtype=self.dtype,
                    name=f"stage{stage}_block{block}",
                )(x, train=train)
        pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        return classifier_head(self, pooled, {}, train=train)
