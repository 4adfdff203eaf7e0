"""Attentive ConvLSTM (card C1's SACRNN branch; Cornia et al. 2018, SAM).

The same input map X [batch, height, width, channels] is read for `iterations`
steps t = 1..T_s (the recurrence runs over refinement steps, not over time).
With H_0 = C_0 = 0 and `*` a SAME-padded convolution, each step is (seed 000,
eq. 4-12):

    Z_t   = R_a * tanh(W_a * X + U_a * H_{t-1} + b_a)       (4)  1 channel
    A_t   = softmax of Z_t over all height * width positions  (5)
    X'_t  = A_t (.) X          (the map broadcast over channels) (6)
    I_t   = sigmoid(W_i * X'_t + U_i * H_{t-1} + b_i)          (7)
    F_t   = sigmoid(W_f * X'_t + U_f * H_{t-1} + b_f)          (8)
    O_t   = sigmoid(W_o * X'_t + U_o * H_{t-1} + b_o)          (9)
    G_t   = tanh(W_c * X'_t + U_c * H_{t-1} + b_c)             (10)
    C_t   = F_t (.) C_{t-1} + I_t (.) G_t                      (11)
    H_t   = O_t (.) tanh(C_t)                                  (12)

R_a is 1x1 (eq. 4); W_a, U_a and the gate kernels are k x k (SAM uses the gate
kernel size for W_a and U_a too). The attention's hidden width is `features`
unless set (SAM: 512 = its hidden width). Every bias is on the X side only
(b_a, b_i, ...); the H-side convolutions and R_a have none (a bias on R_a would
cancel in the softmax). The four gates share one kernel pair, gate order
[i, f, o, g] on the last axis; the forget-gate bias starts at 1.0 as in
`recurrent.LSTM`.

Scan and hoisting (STYLE 4): `jax.lax.scan` carries (C, H) over the T_s steps.
X is the same every step, so `W_a * X + b_a` is computed once before the scan.
The gate input `W * X'_t` is NOT hoisted with attention on, since X'_t = A_t (.) X
changes with t; the two H-side convolutions (U_a and U_{i,f,o,g}) read the same
H_{t-1} and run as one convolution with concatenated kernels. With attention
off (X'_t = X: a plain ConvLSTM, the `model.attention='none'` ablation) the gate
input `W * X + b` is state-independent and hoisted too, leaving one convolution
per step.

Padding: with a validity mask, masked positions get exactly zero attention and
C_t, H_t are zeroed there after every step, so a SAME convolution at the edge of
the valid region sees the zeros that an unpadded map's SAME padding would give
it (X itself must already be zero there, as `ConvFrontEnd` guarantees).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpara.models.attention import masked_softmax
from jaxpara.models.recurrent import lstm_bias_init

Dtype = Any
State = tuple[jax.Array, jax.Array]


def _patches(inputs: jax.Array, kh: int, kw: int) -> jax.Array:
    """[B, H, W, C] -> [B, H, W, kh * kw * C] SAME windows, (i, j, c) order."""
    height, width = inputs.shape[1:3]
    pad = ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0))
    padded = jnp.pad(inputs, pad)
    return jnp.concatenate(
        [
            padded[:, i : i + height, j : j + width]
            for i in range(kh)
            for j in range(kw)
        ],
        axis=-1,
    )


@jax.checkpoint
def _im2col_conv(inputs: jax.Array, kernel: jax.Array) -> jax.Array:
    patches = _patches(inputs, *kernel.shape[:2])
    return jnp.dot(
        patches,
        kernel.reshape(-1, kernel.shape[-1]),
        preferred_element_type=jnp.float32,
    )


def conv2d_same(inputs: jax.Array, kernel: jax.Array, dtype: Dtype) -> jax.Array:
    """Stride-1 SAME cross-correlation (nn.Conv's) in `dtype`, result float32.

    Computed as im2col: the k x k SAME windows concatenated on the channel
    axis, times the kernel reshaped to [k * k * in, out], one matmul. Not
    `lax.conv`, because XLA CPU runs a kernel-gradient convolution inside a
    while loop (the backward scan) on a slow generic path (jax-ml/jax#12868):
    ~90x slower than the same conv outside a loop here, 208 s per default
    SACRNN train step at T_s = 2 on 2 CPU cores; the matmul form has no such
    cliff on any backend. `jax.checkpoint` recomputes the patches in the
    backward pass instead of saving them (k * k times the input), so memory
    stays that of a convolution.

    Args:
        inputs: [batch, height, width, in_channels].
        kernel: [kh, kw, in_channels, out_channels].
        dtype: compute dtype.

    Returns:
        [batch, height, width, out_channels] float32.
    """
    return _im2col_conv(inputs.astype(dtype), kernel.astype(dtype))


class AttentiveConvLSTM(nn.Module):
    """ConvLSTM over `iterations` re-reads of one map, with spatial attention.

    Equations, hoisting and padding: module docstring. Parameters (C = input
    channels, F = `features`, A = attention width, k = `kernel_size`):
    attention (only when `attention`): `attention_input_kernel` [k, k, C, A]
    (W_a), `attention_bias` [A] (b_a), `attention_hidden_kernel` [k, k, F, A]
    (U_a), `attention_score_kernel` [1, 1, A, 1] (R_a); gates:
    `gates_input_kernel` [k, k, C, 4F], `gates_bias` [4F],
    `gates_hidden_kernel` [k, k, F, 4F], gate order [i, f, o, g].

    The per-step attention maps A_t are sown as
    intermediates['spatial_attention'], [batch, iterations, height, width]
    float32 (nothing is sown with `attention=False`).

    Attributes:
        features: hidden channels F of C_t and H_t.
        kernel_size: k of the k x k gate (and W_a, U_a) convolutions.
        iterations: T_s, steps over the same input.
        attention: spatial attention on; False = plain ConvLSTM (X'_t = X).
        attention_features: width A of the attention's tanh layer; None =
            `features`.
        forget_bias: initial forget-gate bias.
        dtype: compute dtype of the convolutions; gates, attention, C and H
            stay float32. Weights are float32.
    """

    features: int = 128
    kernel_size: int = 3
    iterations: int = 4
    attention: bool = True
    attention_features: int | None = None
    forget_bias: float = 1.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Runs the T_s steps.

        Args:
            inputs: [batch, height, width, channels] map X, zero where `mask`
                is False.
            mask: optional bool validity mask broadcastable to [batch,
                height, width] (e.g. [batch, time', 1] for valid time rows);
                None = all valid.

        Returns:
            H_{T_s}: [batch, height, width, features] in `dtype`, zero where
            `mask` is False.
        """
        if self.iterations < 1:
            raise ValueError(f"AttentiveConvLSTM: iterations={self.iterations} < 1.")
        batch, height, width, channels = inputs.shape
        hidden, k = self.features, (self.kernel_size, self.kernel_size)
        att = hidden if self.attention_features is None else self.attention_features
        kernel_init = nn.initializers.lecun_normal()

        def param(name, shape, init=kernel_init):
            return self.param(name, init, shape, jnp.float32)

        gates_input = param("gates_input_kernel", (*k, channels, 4 * hidden))
        gates_bias = param(
            "gates_bias", (4 * hidden,), lstm_bias_init(hidden, self.forget_bias)
        )
        gates_hidden = param("gates_hidden_kernel", (*k, hidden, 4 * hidden))
        if self.attention:
            att_input = param("attention_input_kernel", (*k, channels, att))
            att_bias = param("attention_bias", (att,), nn.initializers.zeros_init())
            att_hidden = param("attention_hidden_kernel", (*k, hidden, att))
            att_score = param("attention_score_kernel", (1, 1, att, 1))
            # U_a and U_{i,f,o,g} read the same H_{t-1}: one conv per step.
            hidden_kernel = jnp.concatenate([att_hidden, gates_hidden], axis=-1)
        else:
            hidden_kernel = gates_hidden

        inputs = inputs.astype(self.dtype)
        if mask is None:
            valid = None
        else:
            valid = jnp.broadcast_to(jnp.asarray(mask, bool), (batch, height, width))
        # Hoisted, state-independent input terms (see module docstring).
        if self.attention:
            input_term = conv2d_same(inputs, att_input, self.dtype) + att_bias
        else:
            input_term = conv2d_same(inputs, gates_input, self.dtype) + gates_bias

        def step(state: State, _):
            cell, out = state
            from_hidden = conv2d_same(out, hidden_kernel, self.dtype)
            if self.attention:
                z = jnp.tanh(input_term + from_hidden[..., :att])
                scores = conv2d_same(z, att_score, self.dtype)[..., 0]
                flat = None if valid is None else valid.reshape(batch, -1)
                alpha = masked_softmax(scores.reshape(batch, -1), flat)
                alpha = alpha.reshape(batch, height, width)
                attended = alpha[..., None].astype(self.dtype) * inputs
                gates = conv2d_same(attended, gates_input, self.dtype) + gates_bias
                gates = gates + from_hidden[..., att:]
            else:
                alpha = None
                gates = input_term + from_hidden
            i, f, o, g = jnp.split(gates, 4, axis=-1)
            cell = jax.nn.sigmoid(f) * cell + jax.nn.sigmoid(i) * jnp.tanh(g)
            out = jax.nn.sigmoid(o) * jnp.tanh(cell)
            if valid is not None:
                cell = jnp.where(valid[..., None], cell, 0.0)
                out = jnp.where(valid[..., None], out, 0.0)
            return (cell, out), alpha

        zeros = jnp.zeros((batch, height, width, hidden), jnp.float32)
        (_, out), alphas = jax.lax.scan(
            step, (zeros, zeros), None, length=self.iterations
        )
        if self.attention:
            self.sow("intermediates", "spatial_attention", jnp.swapaxes(alphas, 0, 1))
        return out.astype(self.dtype)
