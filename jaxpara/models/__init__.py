"""Model registry (STYLE 3): `config.model.name` -> a linen Module factory.

Every model is called as

    model.apply(variables, inputs, frames=None, gender=None, train=train,
                rngs={'dropout': key},
                mutable=['batch_stats'] if train else False)

with inputs [batch, time, freq, channels] float32, optional frames [batch]
int32 (real frames per segment), optional gender [batch] int32, and returns
[batch, num_classes] float32 logits, or, for a fusion model with
`fusion_loss='fused_and_branches'`, {"logits": [batch, num_classes],
"aux_logits": (branch logits, ...)} (see `jaxpara.train.split_outputs`).
Attention weights are sown into 'intermediates' (e.g. `temporal_attention`,
[batch, time']; `convlstm/spatial_attention`, [batch, T_s, time', freq']).

Variants are `functools.partial`s of a model class; tiny test variants start
with `_`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxpara.models import blstm_fcn, cnn_bilstm, crnn, moma, resnet, sacrnn

MODELS: dict[str, Callable[..., nn.Module]] = {
    "acrnn": crnn.ACRNN,
    "_acrnn_tiny": functools.partial(
        crnn.ACRNN,
        conv_features=(4, 8),
        frame_features=16,
        lstm_features=8,
        attention_features=8,
        head_features=8,
    ),
    "sacrnn": sacrnn.SACRNN,
    "_sacrnn_tiny": functools.partial(
        sacrnn.SACRNN,
        conv_features=(4, 8),
        convlstm_features=8,
        convlstm_iterations=2,
        head_features=8,
    ),
    "sacrnn_acrnn_fusion": sacrnn.SACRNNACRNNFusion,
    "_fusion_tiny": functools.partial(
        sacrnn.SACRNNACRNNFusion,
        conv_features=(4, 8),
        convlstm_features=8,
        convlstm_iterations=2,
        frame_features=16,
        lstm_features=8,
        attention_features=8,
        head_features=8,
    ),
    # Card C3 (seed 002 Table 5): fcn, attention_fcn, attention_lstm,
    # attention_blstm, attention_blstm_fcn (1-3 layers: model.blstm.layers).
    **{
        name: functools.partial(blstm_fcn.AttentionBLSTMFCN, **fields)
        for name, fields in blstm_fcn.VARIANTS.items()
    },
    "_blstm_fcn_tiny": functools.partial(
        blstm_fcn.AttentionBLSTMFCN,
        **blstm_fcn.VARIANTS["attention_blstm_fcn"],
        lstm_features=8,
        conv_features=(4,),  # One FCN block: conv compiles dominate on CPU.
        attention_features=8,
        head_features=8,
    ),
    # Card C2 (seed 001): ResNet-18; config.model.attention picks none | se |
    # spatial | se_spatial | component, config.model.resnet the rest.
    "resnet18": resnet.ResNet,
    "_resnet18_tiny": functools.partial(
        resnet.ResNet, resnet_stage_features=(4, 8, 8, 16), resnet_se_reduction=2
    ),
    # Card C4 (seed 003): MOMA; config.model.moma holds the attention sizes,
    # the mixture and the number of blocks.
    "moma": moma.MOMA,
    "_moma_tiny": functools.partial(
        moma.MOMA,
        lstm_features=8,
        blstm_layers=1,
        moma_attention_features=8,
        moma_projection_features=8,
    ),
    # Card C5 (seed 004): CNN-BiLSTM; model.attention = temporal (Model 1) |
    # local_self (Model 2); model.use_gender adds the gender embedding.
    "cnn_bilstm": cnn_bilstm.CNNBiLSTM,
    "_cnn_bilstm_tiny": functools.partial(
        cnn_bilstm.CNNBiLSTM,
        conv_features=(4, 8),
        frame_features=16,
        lstm_features=8,
        attention_features=8,
        local_attention_features=8,
        gender_embedding=6,
        gender_features=4,
        head_features=8,
    ),
}

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Module fields never filled from config.model: flax's own, and num_classes,
# which is create_model's argument (config.model.num_classes = 0 means "from
# the corpus", resolved by the caller).
_NOT_FROM_CONFIG = frozenset({"name", "parent", "num_classes"})


def _config_value(key: str, value: Any) -> Any:
    if key == "dtype":
        if value not in _DTYPES:
            raise ValueError(
                f"model.dtype={value!r}; expected one of {sorted(_DTYPES)}."
            )
        return _DTYPES[value]
    if isinstance(value, list):
        return tuple(value)
    return value


def _flat_config(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """{'<parent>_<key>': value} for nested ConfigDicts, recursively."""
    flat = {}
    for key, value in cfg.items():
        if isinstance(value, (ml_collections.ConfigDict, dict)):
            items = _flat_config(value, f"{prefix}{key}_").items()
        else:
            items = [(f"{prefix}{key}", value)]
        for name, leaf in items:
            if name in flat:
                raise ValueError(f"model config: two keys map to field {name!r}.")
            flat[name] = leaf
    return flat


def create_model(model_cfg: Any, num_classes: int) -> nn.Module:
    """Builds `MODELS[model_cfg.name]` from the `config.model` ConfigDict.

    Each field of the model class that has a same-named key in `model_cfg`
    (dropout, conv_features, frame_features, lstm_features, bidirectional,
    attention_features, head_features, attention, fusion_loss, dtype, ...) is
    set from it. A key of a nested ConfigDict fills the field named
    `<parent>_<key>`: `model_cfg.convlstm.features` -> `convlstm_features`
    (likewise `convlstm_iterations`, `convlstm_kernel_size`). Keys without a
    matching field are ignored (e.g. `attention` for ACRNN). Keywords a
    registry variant binds in its `functools.partial` (the `_..._tiny` sizes)
    win over the config, so a variant stays what its name says.

    Args:
        model_cfg: the `config.model` ConfigDict.
        num_classes: number of output classes.

    Returns:
        An unbound linen Module.

    Raises:
        ValueError: unknown `model.name` or `model.dtype`, or a value the
            model rejects (SACRNN models: `model.attention` not in
            {'spatial', 'none'}, `model.fusion_loss` not in {'fused',
            'fused_and_branches'}).
    """
    name = model_cfg.name
    if name not in MODELS:
        raise ValueError(
            f"Unknown model.name={name!r}; registered models: {sorted(MODELS)}."
        )
    factory = MODELS[name]
    module_cls, bound = factory, {}
    if isinstance(factory, functools.partial):
        module_cls, bound = factory.func, factory.keywords
    values = _flat_config(model_cfg)
    kwargs = {}
    for field in dataclasses.fields(module_cls):
        key = field.name
        if key in _NOT_FROM_CONFIG or key in bound or key not in values:
            continue
        kwargs[key] = _config_value(key, values[key])
    return factory(num_classes=num_classes, **kwargs)


def count_params(params: Any) -> int:
    """Number of scalars in a pytree of arrays (or `jax.ShapeDtypeStruct`s)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params))
