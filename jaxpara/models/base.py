"""The model call every registry model implements (`jaxpara.models`).

`Classifier.__call__(inputs, frames=None, gender=None, *, train)` is the one
signature `jaxpara.models.apply` calls; a model subclasses `Classifier` and
implements `classify(inputs, lengths, gender, *, train)` on the resolved
lengths.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class Classifier(nn.Module):
    """Base class of the registry's models: owns the model call.

    Subclasses implement `classify`; `__call__` resolves `frames` into
    lengths and is the only `nn.compact` method, so `classify` builds its
    layers in the model's own scope (parameter names are the subclass's).
    """

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        frames: jax.Array | None = None,
        gender: jax.Array | None = None,
        *,
        train: bool,
    ) -> jax.Array | dict[str, Any]:
        """Classifies a batch of segments.

        Args:
            inputs: [batch, time, freq, channels] normalised features,
                zero-padded at the end.
            frames: optional [batch] int number of real (leading) frames per
                segment; None = all `time` frames are real.
            gender: optional [batch] int, 1 = male, 0 = female, -1 = unknown;
                read only by models that condition on it.
            train: BatchNorm batch statistics and dropout (rng 'dropout').

        Returns:
            [batch, num_classes] float32 logits, or, for a fusion model, the
            {"logits", "aux_logits"} dict of `jaxpara.models.split_outputs`.
        """
        batch, time = inputs.shape[:2]
        if frames is None:
            lengths = jnp.full((batch,), time, jnp.int32)
        else:
            lengths = jnp.asarray(frames, jnp.int32)
        return self.classify(inputs, lengths, gender, train=train)

    def classify(
        self,
        inputs: jax.Array,
        lengths: jax.Array,
        gender: jax.Array | None,
        *,
        train: bool,
    ) -> jax.Array | dict[str, Any]:
        """The model proper: `__call__`'s arguments with `frames` resolved.

        Args:
            inputs: [batch, time, freq, channels], zero-padded at the end.
            lengths: [batch] int32 real frames per segment (`frames`, or
                `time` for every segment).
            gender: as in `__call__` (may be None).
            train: as in `__call__`.

        Returns:
            As `__call__`.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement classify.")
