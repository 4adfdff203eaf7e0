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
import functools
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


def _gates(z: jax.Array) -> jax.Array:
    """[..., 4H] pre-activations -> [..., 4H] activations [i, f, g, o]."""
    i, f, g, o = jnp.split(z, 4, axis=-1)
    return jnp.concatenate(
        [jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)], -1
    )


def _forward(projected, mask, kernel, dtype, unroll):
    """The recurrence; also returns the per-step states and gate activations."""

    def step(state: State, xs):
        cell, out = state
        proj_t, valid_t = xs
        acts = _gates(
            proj_t.astype(jnp.float32)
            + jnp.dot(out.astype(dtype), kernel, preferred_element_type=jnp.float32)
        )
        i, f, g, o = jnp.split(acts, 4, axis=-1)
        new_cell = f * cell + i * g
        new_out = o * jnp.tanh(new_cell)
        valid_t = valid_t[:, None]
        cell = jnp.where(valid_t, new_cell, cell)
        out = jnp.where(valid_t, new_out, out)
        return (cell, out), (jnp.where(valid_t, new_out, 0.0), cell, out, acts)

    zeros = jnp.zeros(projected.shape[1:2] + (kernel.shape[0],), jnp.float32)
    final, (outputs, cells, outs, acts) = jax.lax.scan(
        step, (zeros, zeros), (projected, mask), unroll=unroll
    )
    return outputs, final, cells, outs, acts


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def recurrence(projected, mask, kernel, dtype=jnp.float32, unroll=1):
    """LSTM recurrence over hoisted projections, time-major.

    Its gradient is the one autodiff of the scan gives, arranged as cuDNN does:
    the reverse scan only carries (dh, dc) and emits each step's dz_t; the
    recurrent-kernel gradient is then ONE [H, T*B] x [T*B, 4H] matmul instead
    of T small ones accumulated inside the loop.

    Args:
        projected: [time, batch, 4H] `W x_t + b`.
        mask: [time, batch] bool, True on real frames (state frozen elsewhere).
        kernel: [H, 4H] recurrent kernel, in `dtype`.
        dtype: compute dtype of `h U` (accumulated in float32).
        unroll: `lax.scan` unroll factor.

    Returns:
        (outputs [time, batch, H] float32, zero where `mask` is False; final
        state (c, h), each [batch, H] float32).
    """
    outputs, final, _, _, _ = _forward(projected, mask, kernel, dtype, unroll)
    return outputs, final


def _recurrence_fwd(projected, mask, kernel, dtype, unroll):
    outputs, final, cells, outs, acts = _forward(projected, mask, kernel, dtype, unroll)
    return (outputs, final), (projected, mask, kernel, cells, outs, acts)


def _recurrence_bwd(dtype, unroll, residuals, cotangents):
    projected, mask, kernel, cells, outs, acts = residuals
    d_outputs, (d_cell, d_out) = cotangents
    zeros = jnp.zeros_like(cells[:1])
    prev_cells = jnp.concatenate([zeros, cells[:-1]])
    prev_outs = jnp.concatenate([zeros, outs[:-1]])
    kernel_t = kernel.T

    def back(carry, xs):
        dh, dc = carry
        d_output, valid, cell, prev_cell, a = xs
        i, f, g, o = jnp.split(a, 4, axis=-1)
        valid = valid[:, None]
        dh_t = dh + d_output
        tanh_c = jnp.tanh(cell)
        dc_t = dc + dh_t * o * (1.0 - tanh_c**2)
        dz = jnp.concatenate(
            [
                dc_t * g * i * (1.0 - i),
                dc_t * prev_cell * f * (1.0 - f),
                dc_t * i * (1.0 - g**2),
                dh_t * tanh_c * o * (1.0 - o),
            ],
            -1,
        )
        dz = jnp.where(valid, dz, 0.0)
        dh_prev = jnp.dot(
            dz.astype(dtype), kernel_t, preferred_element_type=jnp.float32
        ) + jnp.where(valid, 0.0, dh)
        dc_prev = jnp.where(valid, dc_t * f, dc)
        return (dh_prev, dc_prev), dz

    _, dzs = jax.lax.scan(
        back,
        (d_out, d_cell),
        (d_outputs, mask, cells, prev_cells, acts),
        reverse=True,
        unroll=unroll,
    )
    hidden = kernel.shape[0]
    d_kernel = jnp.dot(
        prev_outs.reshape(-1, hidden).astype(dtype).T,
        dzs.reshape(-1, 4 * hidden).astype(dtype),
        preferred_element_type=jnp.float32,
    )
    return dzs.astype(projected.dtype), None, d_kernel.astype(kernel.dtype)


recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


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

        outputs, final = recurrence(
            jnp.swapaxes(projected, 0, 1),
            jnp.swapaxes(mask, 0, 1),
            recurrent_kernel,
            self.dtype,
            self.unroll,
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
