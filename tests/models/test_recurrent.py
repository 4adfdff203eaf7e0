"""LSTM / BiLSTM / StackedLSTM against a float64 NumPy reference.

Compilation dominates on the shared 2-core CI machine, so one jitted BiLSTM run
(value, final states and gradients) is shared by most tests: its 'forward' half
is an `LSTM` and its 'backward' half an `LSTM(reverse=True)`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpara.models import count_params
from jaxpara.models.recurrent import (
    BiLSTM,
    StackedLSTM,
    lstm_bias_init,
    recurrence,
    reverse_within_length,
)

BATCH, TIME, DIM, HIDDEN, EXTRA = 3, 7, 4, 5, 5
LENGTHS = np.array([7, 4, 1], np.int32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_lstm(x, params):
    """float64 LSTM over one unpadded sequence x [time, dim]; gates [i, f, g, o]."""
    kernel = np.asarray(params["input"]["kernel"], np.float64)
    bias = np.asarray(params["input"]["bias"], np.float64)
    recurrent = np.asarray(params["recurrent_kernel"], np.float64)
    c = np.zeros(recurrent.shape[0])
    h = np.zeros(recurrent.shape[0])
    outputs = []
    for x_t in np.asarray(x, np.float64):
        z = x_t @ kernel + bias + h @ recurrent
        i, f, g, o = np.split(z, 4)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs), (c, h)


def _rel_err(actual, expected):
    actual = np.asarray(actual, np.float64)
    return np.linalg.norm(actual - expected) / np.linalg.norm(expected)


def _to_numpy(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


@pytest.fixture(scope="module")
def run():
    """One BiLSTM on [BATCH, TIME, DIM] and on a junk-padded copy; shared results."""
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(BATCH, TIME, DIM)).astype(np.float32)
    # Padded copy: EXTRA more frames, junk (not zeros) beyond each length.
    junk = 3.0 * rng.normal(size=(BATCH, TIME + EXTRA, DIM))
    valid = np.arange(TIME + EXTRA)[None, :, None] < LENGTHS[:, None, None]
    padded = np.where(valid, np.pad(inputs, ((0, 0), (0, EXTRA), (0, 0))), junk)
    padded = padded.astype(np.float32)

    model = BiLSTM(HIDDEN)
    shapes = jax.eval_shape(model.init, jax.random.key(1), inputs)["params"]
    # NumPy-drawn parameters (random init would cost a threefry compile), with
    # non-trivial biases so every bias slot is exercised.
    params = jax.tree_util.tree_map(
        lambda s: (0.5 * rng.normal(size=s.shape)).astype(np.float32), shapes
    )

    def loss(params, x):
        outputs, states = model.apply({"params": params}, x, LENGTHS)
        return jnp.sum(outputs**2), (outputs, states)

    grad_fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    (_, (outputs, states)), (grads, x_grad) = grad_fn(params, inputs)
    padded_outputs, padded_states = jax.jit(model.apply)(
        {"params": params}, padded, LENGTHS
    )
    return _to_numpy(
        dict(
            inputs=inputs,
            params=params,
            outputs=outputs,
            states=states,
            grads=grads,
            x_grad=x_grad,
            padded_outputs=padded_outputs,
            padded_states=padded_states,
        )
    )


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_matches_numpy_reference(run, direction):
    params = run["params"][direction]
    lo, hi = (0, HIDDEN) if direction == "forward" else (HIDDEN, 2 * HIDDEN)
    state = run["states"][0 if direction == "forward" else 1]
    for b, length in enumerate(LENGTHS):
        x = run["inputs"][b, :length]
        if direction == "forward":
            ref, (ref_c, ref_h) = reference_lstm(x, params)
        else:  # Forward reference on the time-reversed valid part, re-reversed.
            ref, (ref_c, ref_h) = reference_lstm(x[::-1], params)
            ref = ref[::-1]
        assert _rel_err(run["outputs"][b, :length, lo:hi], ref) <= 1e-5
        assert _rel_err(state[0][b], ref_c) <= 1e-5
        assert _rel_err(state[1][b], ref_h) <= 1e-5
        np.testing.assert_array_equal(run["outputs"][b, length:], 0.0)


def test_padding_invariance(run):
    for b, length in enumerate(LENGTHS):
        np.testing.assert_allclose(
            run["padded_outputs"][b, :length], run["outputs"][b, :length], atol=1e-6
        )
        np.testing.assert_array_equal(run["padded_outputs"][b, length:], 0.0)
    for padded, plain in zip(
        jax.tree_util.tree_leaves(run["padded_states"]),
        jax.tree_util.tree_leaves(run["states"]),
    ):
        np.testing.assert_allclose(padded, plain, atol=1e-6)


def test_reverse_within_length_is_an_involution():
    x = np.arange(2 * 5).reshape(2, 5)
    lengths = np.array([3, 5])
    flipped = np.asarray(reverse_within_length(x, lengths))
    np.testing.assert_array_equal(flipped, [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]])
    np.testing.assert_array_equal(reverse_within_length(flipped, lengths), x)


def test_param_count_and_bias_layout(run):
    # Per direction: input/kernel [D, 4H] + input/bias [4H] + recurrent [H, 4H].
    per_direction = 4 * HIDDEN * (DIM + HIDDEN) + 4 * HIDDEN
    assert count_params(run["params"]["forward"]) == per_direction
    assert count_params(run["params"]) == 2 * per_direction
    params = run["params"]["backward"]
    assert params["input"]["kernel"].shape == (DIM, 4 * HIDDEN)
    assert params["recurrent_kernel"].shape == (HIDDEN, 4 * HIDDEN)
    # Gates [i, f, g, o]; the forget slice of the bias starts at 1.
    bias = np.asarray(lstm_bias_init(HIDDEN)(None, (4 * HIDDEN,)))
    expected_bias = np.zeros(4 * HIDDEN)
    expected_bias[HIDDEN : 2 * HIDDEN] = 1.0
    np.testing.assert_array_equal(bias, expected_bias)


def test_gradients_flow_through_scan(run):
    leaves = jax.tree_util.tree_leaves(run["grads"])
    assert all(np.all(np.isfinite(g)) and np.abs(g).sum() > 0.0 for g in leaves)
    for b, length in enumerate(LENGTHS):  # Padding receives no gradient.
        np.testing.assert_array_equal(run["x_grad"][b, length:], 0.0)
        assert np.abs(run["x_grad"][b, :length]).sum() > 0.0


def test_stacked_lstm_shapes_params_and_dropout():
    rng = np.random.default_rng(4)
    inputs = rng.normal(size=(BATCH, TIME, DIM)).astype(np.float32)
    layer_sizes = [
        4 * HIDDEN * (DIM + HIDDEN) + 4 * HIDDEN,  # Layer 0: D -> H.
        4 * HIDDEN * (HIDDEN + HIDDEN) + 4 * HIDDEN,  # Unidirectional: H -> H.
        4 * HIDDEN * (2 * HIDDEN + HIDDEN) + 4 * HIDDEN,  # Bidirectional: 2H -> H.
    ]
    bidirectional = StackedLSTM(HIDDEN, num_layers=2, bidirectional=True)
    shapes = jax.eval_shape(bidirectional.init, jax.random.key(0), inputs)
    assert count_params(shapes) == 2 * (layer_sizes[0] + layer_sizes[2])

    model = StackedLSTM(HIDDEN, num_layers=2, dropout=0.5)
    shapes = jax.eval_shape(model.init, jax.random.key(0), inputs)
    assert count_params(shapes) == layer_sizes[0] + layer_sizes[1]
    variables = jax.tree_util.tree_map(
        lambda s: rng.normal(size=s.shape).astype(np.float32), shapes
    )

    @jax.jit
    def eval_and_train(variables, key):
        evaluated, states = model.apply(variables, inputs, LENGTHS)
        trained, _ = model.apply(
            variables, inputs, LENGTHS, train=True, rngs={"dropout": key}
        )
        return evaluated, states, trained

    # An 'rbg' key compiles much faster on CPU than threefry; same semantics.
    key = jax.random.key(1, impl="rbg")
    evaluated, states, trained = _to_numpy(eval_and_train(variables, key))
    assert evaluated.shape == (BATCH, TIME, HIDDEN)
    assert len(states) == 2
    assert not np.allclose(trained, evaluated)
    np.testing.assert_array_equal(trained[2, 1:], 0.0)  # Length 1: padding is 0.


def _autodiff_recurrence(projected, mask, kernel):
    """The recurrence as a plain `lax.scan` (autodiff gradient)."""

    def step(state, xs):
        cell, out = state
        z_t, valid = xs
        i, f, g, o = jnp.split(z_t + out @ kernel, 4, axis=-1)
        new_cell = jax.nn.sigmoid(f) * cell + jax.nn.sigmoid(i) * jnp.tanh(g)
        new_out = jax.nn.sigmoid(o) * jnp.tanh(new_cell)
        valid = valid[:, None]
        cell = jnp.where(valid, new_cell, cell)
        out = jnp.where(valid, new_out, out)
        return (cell, out), jnp.where(valid, new_out, 0.0)

    zeros = jnp.zeros((projected.shape[1], kernel.shape[0]))
    final, outputs = jax.lax.scan(step, (zeros, zeros), (projected, mask))
    return outputs, final


def test_recurrence_gradient_equals_autodiff_of_the_scan():
    """The custom VJP (one kernel-gradient matmul after the reverse scan)
    against autodiff of the plain scan: outputs and both final states get
    cotangents, padded steps included, and under vmap (the engine's seeds)."""
    rng = np.random.default_rng(7)
    time, batch, hidden = 9, 4, 6
    lengths = np.array([9, 5, 1, 0])
    mask = np.arange(time)[:, None] < lengths[None, :]
    z = rng.normal(size=(2, time, batch, 4 * hidden)).astype(np.float32)
    u = (0.5 * rng.normal(size=(2, hidden, 4 * hidden))).astype(np.float32)
    w = rng.normal(size=(time, batch, hidden)).astype(np.float32)
    wc, wh = rng.normal(size=(2, batch, hidden)).astype(np.float32)

    def loss(fn, z, u):
        outputs, (c, h) = fn(z, mask, u)
        return jnp.sum(w * outputs) + jnp.sum(wc * c) + jnp.sum(wh * h)

    def grads(fn):
        g = jax.vmap(jax.grad(lambda z, u: loss(fn, z, u), (0, 1)))
        return _to_numpy(jax.jit(g)(z, u))

    ours = grads(recurrence)
    ref = grads(_autodiff_recurrence)
    for a, b in zip(ours, ref, strict=True):
        assert _rel_err(a, np.asarray(b, np.float64)) < 1e-5
    np.testing.assert_array_equal(ours[0][:, ~mask], 0.0)  # No padding gradient.
    # bfloat16 matmuls: the same gradient to bfloat16 accuracy.
    bf16 = grads(lambda z, m, u: recurrence(z, m, u.astype(jnp.bfloat16), jnp.bfloat16))
    for a, b in zip(bf16, ref, strict=True):
        assert _rel_err(a, np.asarray(b, np.float64)) < 3e-2
