"""Model registry (STYLE 3) and the model call: the one owner of both.

`create_model(config.model, num_classes)` builds `MODELS[config.model.name]`.
Every model is called through `apply` (training, evaluation, export,
prediction, plots all do), which is

    model.apply(variables, batch["inputs"], frames=batch["frames"],
                gender=batch["gender"], train=train, rngs=rngs,
                mutable=mutable)

with inputs [batch, time, freq, channels] float32, frames [batch] int32 (real
frames per segment), gender [batch] int32 (`MODEL_INPUTS` lists the batch keys
a model receives besides its inputs), and returns [batch, num_classes] logits,
or, for a fusion model with `fusion_loss='fused_and_branches'`, {"logits":
[batch, num_classes], "aux_logits": (branch logits, ...)} (`split_outputs`).
Attention weights and other internals are sown into 'intermediates' (e.g.
`temporal_attention`, [batch, time']; `convlstm/spatial_attention`, [batch,
T_s, time', freq']); `intermediates` reads them under one naming rule.
Every model subclasses `base.Classifier`, which owns that call signature.
Adding a model input means: a batch key (jaxpara.data.pipeline), its name
in `MODEL_INPUTS`, a keyword of `Classifier.__call__` passed on to every
model's `classify`.

Variants are `functools.partial`s of a model class; tiny test variants start
with `_` and take their sizes from `TINY_SIZES` (`tiny`).
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

# The sizes of the tiny test variants: each `_..._tiny` binds those its class
# has a field for (see `tiny`), plus what its entry adds.
TINY_SIZES: dict[str, Any] = {
    "conv_features": (4, 8),
    "frame_features": 16,
    "lstm_features": 8,
    "attention_features": 8,
    "local_attention_features": 8,
    "head_features": 8,
    "convlstm_features": 8,
    "convlstm_iterations": 2,
    "moma_attention_features": 8,
    "moma_projection_features": 8,
    "gender_embedding": 6,
    "gender_features": 4,
    "resnet_stage_features": (4, 8, 8, 16),
    "resnet_se_reduction": 2,
}


def tiny(module_cls: type[nn.Module], **fields: Any) -> functools.partial:
    """A tiny test variant of `module_cls`: `TINY_SIZES` for the fields it
    has, then `fields` (which win)."""
    names = {field.name for field in dataclasses.fields(module_cls)}
    sizes = {key: value for key, value in TINY_SIZES.items() if key in names}
    return functools.partial(module_cls, **{**sizes, **fields})


MODELS: dict[str, Callable[..., nn.Module]] = {
    "acrnn": crnn.ACRNN,
    "_acrnn_tiny": tiny(crnn.ACRNN),
    "sacrnn": sacrnn.SACRNN,
    "_sacrnn_tiny": tiny(sacrnn.SACRNN),
    "sacrnn_acrnn_fusion": sacrnn.SACRNNACRNNFusion,
    "_fusion_tiny": tiny(sacrnn.SACRNNACRNNFusion),
    # Card C3 (seed 002 Table 5): fcn, attention_fcn, attention_lstm,
    # attention_blstm, attention_blstm_fcn (1-3 layers: model.blstm.layers).
    **{
        name: functools.partial(blstm_fcn.AttentionBLSTMFCN, **fields)
        for name, fields in blstm_fcn.VARIANTS.items()
    },
    "_blstm_fcn_tiny": tiny(
        blstm_fcn.AttentionBLSTMFCN,
        **blstm_fcn.VARIANTS["attention_blstm_fcn"],
        conv_features=(4,),  # One FCN block: conv compiles dominate on CPU.
    ),
    # Card C2 (seed 001): ResNet-18; config.model.attention picks none | se |
    # spatial | se_spatial | component, config.model.resnet the rest.
    "resnet18": resnet.ResNet,
    "_resnet18_tiny": tiny(resnet.ResNet),
    # Card C4 (seed 003): MOMA; config.model.moma holds the attention sizes,
    # the mixture and the number of blocks.
    "moma": moma.MOMA,
    "_moma_tiny": tiny(moma.MOMA, blstm_layers=1),
    # Card C5 (seed 004): CNN-BiLSTM; model.attention = temporal (Model 1) |
    # local_self (Model 2); model.use_gender adds the gender embedding.
    "cnn_bilstm": cnn_bilstm.CNNBiLSTM,
    "_cnn_bilstm_tiny": tiny(cnn_bilstm.CNNBiLSTM),
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


# ------------------------------------------------------------- model call
# Batch keys passed to every model as keywords, besides batch["inputs"].
MODEL_INPUTS = ("frames", "gender")


def apply(model: nn.Module, variables, batch, *, train: bool, rngs=None, mutable=False):
    """The model call (module docstring); returns what `model.apply` returns.

    Args:
      model: a module from `create_model`.
      variables: {"params", "batch_stats"}.
      batch: {"inputs" [B, T, F, C], "frames" [B], "gender" [B], ...}.
      train: training mode (dropout, BatchNorm batch statistics).
      rngs: e.g. {"dropout": key} in training.
      mutable: collections to return updated ('batch_stats', 'intermediates').
    """
    return model.apply(
        variables,
        batch["inputs"],
        **{k: batch[k] for k in MODEL_INPUTS},
        train=train,
        rngs=rngs,
        mutable=mutable,
    )


def split_outputs(outputs) -> tuple[jax.Array, tuple]:
    """(logits [B, K], aux logits (...)) of a model's output.

    `aux_logits` are extra heads trained with their own cross-entropy term (the
    branches of a fusion model); only `logits` is used for prediction.
    """
    if isinstance(outputs, dict):
        return outputs["logits"], tuple(outputs.get("aux_logits", ()))
    return outputs, ()


def branch_names(model: nn.Module) -> tuple[str, ...]:
    """Names of the branches a model reports besides its prediction (the
    fusion model's 'sacrnn' and 'acrnn', card C1); () for the others."""
    return tuple(getattr(type(model), "BRANCHES", ()))


def branch_outputs(outputs) -> dict[str, jax.Array]:
    """{branch name: logits [B, K]} of a model's output ({} without branches)."""
    if isinstance(outputs, dict):
        return dict(outputs.get("branches", {}))
    return {}


def dummy_batch(input_shape: tuple[int, ...]) -> dict:
    """A one-segment batch of zeros of `input_shape` [T, F, C] (for init)."""
    return {
        "inputs": jnp.zeros((1, *input_shape), jnp.float32),
        "frames": jnp.full((1,), input_shape[0], jnp.int32),
        "gender": jnp.zeros((1,), jnp.int32),
    }


def init_variables(model: nn.Module, rng, input_shape: tuple[int, ...]) -> dict:
    """{"params", "batch_stats" ({} if none)} of `model` for [T, F, C] inputs."""
    batch = dummy_batch(input_shape)
    variables = model.init(
        {"params": rng, "dropout": rng},
        batch["inputs"],
        **{k: batch[k] for k in MODEL_INPUTS},
        train=False,
    )
    return {
        "params": variables["params"],
        "batch_stats": variables.get("batch_stats", {}),
    }


def intermediates(model: nn.Module, variables, batch) -> dict[str, jax.Array]:
    """What the model sows into 'intermediates' on a batch, in inference mode.

    The one naming rule: a sown array's name is its module path and sow name
    joined with '/' (e.g. `convlstm/spatial_attention`, `temporal_attention`),
    plus `#i` when the module sowed that name i = 0, 1, ... more than once.

    Returns:
      {name: [B, ...]} (pure; callers jit it).
    """
    from flax import traverse_util

    _, state = apply(model, variables, batch, train=False, mutable=["intermediates"])
    out = {}
    for path, values in traverse_util.flatten_dict(
        state.get("intermediates", {})
    ).items():
        for i, value in enumerate(values):
            out["/".join(path) + (f"#{i}" if len(values) > 1 else "")] = value
    return out
