"""Length-aware LSTMs: uni-, bidirectional and stacked (cards C1, C3, C4, C5).

The LSTM equations, gate order [i, f, g, o] along the last axis:

    z_t = W x_t + b + U h_{t-1}                     (4H pre-activations)
    i = sigmoid(z_i), f = sigmoid(z_f), g = tanh(z_g), o = sigmoid(z_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

with c_0 = h_0 = 0. `W x_t + b` is computed for every step at once by one
Dense before the scan (STYLE 4); `jax.lax.scan` carries (c, h) and applies only
`U h`. Parameters per LSTM: `input/kernel` [D, 4H], `input/bias` [4H] (the only
bias; the recurrent product has none) and `recurrent_kernel` [H, 4H], i.e.
4H(D + H) + 4H. The forget-gate slice of the bias starts at 1.0 (Jozefowicz et
al. 2015), the other gates' at 0; `recurrent_kernel` starts orthogonal.

Padding: with `lengths` given, steps t >= lengths[b] leave the state frozen and
output exactly zero, so padding never changes a real frame's output or the
final state. The reverse direction reads each sequence from its own last real
frame backwards (a per-example index flip within the valid length), not from
the padded end.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxpara.models.attention import sequence_mask

Dtype = Any
State = tuple[jax.Array, jax.Array]


# Fields of every linen Module, never forwarded.
_MODULE_FIELDS = frozenset({"parent", "name"})


def shared_fields(module: nn.Module, target: type[nn.Module]) -> dict[str, Any]:
    """{field: value} of `module` for every field `target` has too.

    Args:
        module: a module instance (e.g. a `BiLSTM`).
        target: a module class (e.g. `LSTM`, built by it).

    Returns:
        Keyword arguments for `target`, without flax's `parent` and `name`.
    """
    return {
        field.name: getattr(module, field.name)
        for field in dataclasses.fields(target)
        if field.name not in _MODULE_FIELDS and hasattr(module, field.name)
    }


def reverse_within_length(inputs: jax.Array, lengths: jax.Array) -> jax.Array:
    """Reverses each sequence's first `lengths[b]` steps; padding stays put.

    The permutation is its own inverse, so applying it twice is the identity.

    Args:
        inputs: [batch, time, ...] padded sequences.
        lengths: [batch] integer valid lengths.

    Returns:
        [batch, time, ...] with out[b, t] = inputs[b, lengths[b] - 1 - t] for
        t < lengths[b] and out[b, t] = inputs[b, t] otherwise.
    """
    steps = jnp.arange(inputs.shape[1])[None, :]
    lengths = jnp.asarray(lengths)[:, None]
    index = jnp.where(steps < lengths, lengths - 1 - steps, steps)
    index = index.reshape(index.shape + (1,) * (inputs.ndim - 2))
    return jnp.take_along_axis(inputs, index, axis=1)


def lstm_bias_init(features: int, forget_bias: float = 1.0):
    """Initialiser of the [4 * features] gate bias: `forget_bias` on f, 0 elsewhere."""

    def init(key, shape, dtype=jnp.float32):
        del key  # Deterministic.
        bias = np.zeros(shape, np.float32)
        bias[features : 2 * features] = forget_bias
        return jnp.asarray(bias, dtype)

    return init


class LSTM(nn.Module):
    """One LSTM layer over padded sequences (equations in the module docstring).

    Attributes:
        features: hidden size H.
        reverse: run from each sequence's last real frame to its first; outputs
            are returned in the original time order.
        forget_bias: initial value of the forget-gate bias.
        unroll: `jax.lax.scan` unroll factor (a speed knob, same numbers).
        dtype: compute dtype of the matmuls; gates, cell state and the carried
            (c, h) stay float32. Weights are float32.
    """

    features: int
    reverse: bool = False
    forget_bias: float = 1.0
    unroll: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, inputs: jax.Array, lengths: jax.Array | None = None
    ) -> tuple[jax.Array, State]:
        """Runs the layer.

        Args:
            inputs: [batch, time, dim] sequences, padded at the end.
            lengths: optional [batch] int valid lengths; None = all `time`.

        Returns:
            (outputs [batch, time, features] in `dtype`, zero beyond each
            length; final state (c, h), each [batch, features] float32: the
            state after the last real frame, or after the first one for
            `reverse`).
        """
        batch, time = inputs.shape[:2]
        hidden = self.features
        if lengths is None:
            lengths = jnp.full((batch,), time, jnp.int32)
        mask = sequence_mask(lengths, time)

        # Hoisted input-to-hidden projection: one batched Dense over all steps.
        projected = nn.Dense(
            4 * hidden,
            dtype=self.dtype,
            bias_init=lstm_bias_init(hidden, self.forget_bias),
            name="input",
        )(inputs)
        recurrent_kernel = self.param(
            "recurrent_kernel",
            nn.initializers.orthogonal(),
            (hidden, 4 * hidden),
            jnp.float32,
        ).astype(self.dtype)
        if self.reverse:
            projected = reverse_within_length(projected, lengths)

        def step(state: State, xs: tuple[jax.Array, jax.Array]):
            cell, out = state
            proj_t, valid_t = xs
            gates = proj_t.astype(jnp.float32) + jnp.dot(
                out.astype(self.dtype),
                recurrent_kernel,
                preferred_element_type=jnp.float32,
            )
            i, f, g, o = jnp.split(gates, 4, axis=-1)
            new_cell = jax.nn.sigmoid(f) * cell + jax.nn.sigmoid(i) * jnp.tanh(g)
            new_out = jax.nn.sigmoid(o) * jnp.tanh(new_cell)
            valid_t = valid_t[:, None]
            cell = jnp.where(valid_t, new_cell, cell)
            out = jnp.where(valid_t, new_out, out)
            return (cell, out), jnp.where(valid_t, new_out, 0.0)

        zeros = jnp.zeros((batch, hidden), jnp.float32)
        final, outputs = jax.lax.scan(
            step,
            (zeros, zeros),
            (jnp.swapaxes(projected, 0, 1), jnp.swapaxes(mask, 0, 1)),
            unroll=self.unroll,
        )
        outputs = jnp.swapaxes(outputs, 0, 1)
        if self.reverse:
            outputs = reverse_within_length(outputs, lengths)
        return outputs.astype(self.dtype), final


class BiLSTM(nn.Module):
    """Bidirectional LSTM: forward and within-length-reversed directions.

    Attributes:
        features: hidden size H per direction.
        forget_bias: initial forget-gate bias of both directions.
        unroll: `jax.lax.scan` unroll factor.
        dtype: compute dtype.
    """

    features: int
    forget_bias: float = 1.0
    unroll: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, inputs: jax.Array, lengths: jax.Array | None = None
    ) -> tuple[jax.Array, tuple[State, State]]:
        """Runs both directions.

        Args:
            inputs: [batch, time, dim] sequences, padded at the end.
            lengths: optional [batch] int valid lengths.

        Returns:
            (outputs [batch, time, 2 * features] = [forward, backward], zero
            beyond each length; (forward final (c, h), backward final (c, h))).
        """
        kwargs = shared_fields(self, LSTM)
        fwd, fwd_state = LSTM(**kwargs, name="forward")(inputs, lengths)
        bwd, bwd_state = LSTM(**kwargs, reverse=True, name="backward")(inputs, lengths)
        return jnp.concatenate([fwd, bwd], axis=-1), (fwd_state, bwd_state)


class StackedLSTM(nn.Module):
    """`num_layers` (Bi)LSTM layers, each fed the previous layer's outputs.

    Attributes:
        features: hidden size H per direction.
        num_layers: number of layers.
        bidirectional: BiLSTM layers (outputs 2H wide) instead of LSTM.
        dropout: dropout rate between layers (not after the last); uses the
            'dropout' rng when `train`.
        forget_bias: initial forget-gate bias.
        unroll: `jax.lax.scan` unroll factor.
        dtype: compute dtype.
    """

    features: int
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    forget_bias: float = 1.0
    unroll: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        lengths: jax.Array | None = None,
        *,
        train: bool = False,
    ) -> tuple[jax.Array, tuple[Any, ...]]:
        """Runs the stack.

        Args:
            inputs: [batch, time, dim] sequences, padded at the end.
            lengths: optional [batch] int valid lengths.
            train: enables the between-layer dropout.

        Returns:
            (outputs [batch, time, features * (2 if bidirectional else 1)],
            zero beyond each length; per-layer final states, as returned by
            `LSTM` / `BiLSTM`).
        """
        layer_cls = BiLSTM if self.bidirectional else LSTM
        outputs, states = inputs, []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0.0:
                outputs = nn.Dropout(self.dropout, deterministic=not train)(outputs)
            outputs, state = layer_cls(
                **shared_fields(self, layer_cls), name=f"layer_{layer}"
            )(outputs, lengths)
            states.append(state)
        return outputs, tuple(states)
