"""Model registry (STYLE 3): `config.model.name` -> a linen Module factory.

Every model is called as

    model.apply(variables, inputs, frames=None, gender=None, train=train,
                rngs={'dropout': key},
                mutable=['batch_stats'] if train else False)

with inputs [batch, time, freq, channels] float32, optional frames [batch]
int32 (real frames per segment), optional gender [batch] int32, and returns
[batch, num_classes] float32 logits. Attention weights are sown into
'intermediates' (e.g. `temporal_attention`, [batch, time']).

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

from jaxpara.models import crnn

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


def create_model(model_cfg: Any, num_classes: int) -> nn.Module:
    """Builds `MODELS[model_cfg.name]` from the `config.model` ConfigDict.

    Each field of the model class that has a same-named key in `model_cfg`
    (dropout, conv_features, frame_features, lstm_features, bidirectional,
    attention_features, head_features, dtype, ...) is set from it. Keywords a
    registry variant binds in its `functools.partial` (the `_..._tiny` sizes)
    win over the config, so a variant stays what its name says.

    Args:
        model_cfg: the `config.model` ConfigDict.
        num_classes: number of output classes.

    Returns:
        An unbound linen Module.

    Raises:
        ValueError: unknown `model.name` or `model.dtype`.
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
    kwargs = {}
    for field in dataclasses.fields(module_cls):
        key = field.name
        if key in _NOT_FROM_CONFIG or key in bound or key not in model_cfg:
            continue
        kwargs[key] = _config_value(key, model_cfg[key])
    return factory(num_classes=num_classes, **kwargs)


def count_params(params: Any) -> int:
    """Number of scalars in a pytree of arrays (or `jax.ShapeDtypeStruct`s)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params))
