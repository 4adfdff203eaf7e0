"""AttentiveConvLSTM (card C1) against a float64 NumPy reference of seed 000 eq. 4-12.

The reference below is written from the equations alone (separate W_i, W_f,
W_o, W_c slices, a direct SAME cross-correlation, a softmax over all positions),
with the module's own parameters. Tiny shapes; each case compiles once with
LLVM optimisation off.
"""

import functools

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpara.models.convlstm import AttentiveConvLSTM

BATCH, HEIGHT, WIDTH, CHANNELS, FEATURES = 2, 5, 4, 3, 4
ROWS = np.array([5, 3])  # Valid rows (time') per example in the masked cases.
ITERATIONS = 3


# ------------------------------------------------------- float64 reference


def _conv(x, kernel):
    """Stride-1 SAME cross-correlation: x [B, H, W, C], kernel [kh, kw, C, O]."""
    kh, kw = kernel.shape[:2]
    pad = ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0))
    xp = np.pad(x, pad)
    height, width = x.shape[1:3]
    out = np.zeros(x.shape[:3] + kernel.shape[-1:])
    for di in range(kh):
        for dj in range(kw):
            window = xp[:, di : di + height, dj : dj + width]
            out += np.einsum("bhwc,co->bhwo", window, kernel[di, dj])
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _iteration(p, x, state, mask, attention):
    """One step t of eq. 4-12 in float64; returns ((C_t, H_t), A_t or None)."""
    cell, hidden = state
    if attention:
        z = _conv(  # eq. 4: R_a * tanh(W_a * X + U_a * H + b_a), R_a 1x1.
            np.tanh(
                _conv(x, p["attention_input_kernel"])
                + _conv(hidden, p["attention_hidden_kernel"])
                + p["attention_bias"]
            ),
            p["attention_score_kernel"],
        )[..., 0]
        z = np.where(mask, z, -np.inf)  # eq. 5 over the valid positions only.
        e = np.exp(z - z.max(axis=(1, 2), keepdims=True))
        alpha = e / e.sum(axis=(1, 2), keepdims=True)
        x_new = alpha[..., None] * x  # eq. 6
    else:
        alpha, x_new = None, x
    w, u, b = p["gates_input_kernel"], p["gates_hidden_kernel"], p["gates_bias"]
    n = FEATURES

    def pre(j):  # W_j * X_new + U_j * H + b_j, gate order [i, f, o, c].
        sl = slice(j * n, (j + 1) * n)
        return _conv(x_new, w[..., sl]) + _conv(hidden, u[..., sl]) + b[sl]

    i, f, o, g = _sigmoid(pre(0)), _sigmoid(pre(1)), _sigmoid(pre(2)), np.tanh(pre(3))
    cell = f * cell + i * g  # eq. 11
    hidden = o * np.tanh(cell)  # eq. 12
    valid = mask[..., None]
    return (np.where(valid, cell, 0.0), np.where(valid, hidden, 0.0)), alpha


def _reference(params, x, mask, attention, iterations):
    """Python loop applying `_iteration` T_s times from C_0 = H_0 = 0."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x = np.asarray(x, np.float64)
    mask = np.broadcast_to(
        np.ones((1, 1, 1), bool) if mask is None else mask, x.shape[:3]
    )
    zeros = np.zeros(x.shape[:3] + (FEATURES,))
    state, maps = (zeros, zeros), []
    for _ in range(iterations):
        state, alpha = _iteration(p, x, state, mask, attention)
        maps.append(alpha)
    return state[1], maps


def _rel_err(out, ref):
    return np.max(np.abs(np.asarray(out, np.float64) - ref)) / np.max(np.abs(ref))


# ------------------------------------------------------------ module side


def _case(attention, masked, iterations, seed=0):
    """Module, its NumPy-drawn params, inputs (zero on masked rows), mask."""
    rng = np.random.default_rng(seed)
    model = AttentiveConvLSTM(
        features=FEATURES, kernel_size=3, iterations=iterations, attention=attention
    )
    x = rng.normal(size=(BATCH, HEIGHT, WIDTH, CHANNELS)).astype(np.float32)
    mask = None
    if masked:
        mask = (np.arange(HEIGHT)[None, :] < ROWS[:, None])[:, :, None]
        x = np.where(mask[..., None], x, 0.0).astype(np.float32)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, mask))
    params = {
        name: (
            rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
            if leaf.ndim > 1
            else 0.3 * rng.normal(size=leaf.shape)
        ).astype(np.float32)
        for name, leaf in shapes["params"].items()
    }
    return model, params, x, mask


def _run(model, params, x, mask):
    out, state = jax.jit(
        lambda p, x, m: model.apply({"params": p}, x, m, mutable=["intermediates"])
    )(params, x, mask)
    return np.asarray(out), state.get("intermediates", {})


@pytest.mark.parametrize(
    "attention, masked",
    [(True, False), (False, False), (True, True), (False, True)],
    ids=["attention", "plain", "attention-masked", "plain-masked"],
)
def test_one_iteration_matches_float64_reference(attention, masked):
    model, params, x, mask = _case(attention, masked, iterations=1)
    out, inter = _run(model, params, x, mask)
    ref, (alpha,) = _reference(params, x, mask, attention, 1)
    assert out.shape == (BATCH, HEIGHT, WIDTH, FEATURES)
    assert _rel_err(out, ref) <= 1e-5
    if attention:
        (maps,) = inter["spatial_attention"]
        assert maps.shape == (BATCH, 1, HEIGHT, WIDTH)
        assert _rel_err(maps[:, 0], alpha) <= 1e-5
    else:
        assert "spatial_attention" not in inter  # Nothing to sow.


@functools.cache
def _scanned(attention):
    """T_s = ITERATIONS, masked: module output and the looped reference."""
    model, params, x, mask = _case(attention, True, ITERATIONS, seed=1)
    out, inter = _run(model, params, x, mask)
    ref, ref_maps = _reference(params, x, mask, attention, ITERATIONS)
    return dict(attention=attention, out=out, inter=inter, ref=ref, ref_maps=ref_maps)


@pytest.mark.parametrize("attention", [True, False], ids=["attention", "plain"])
def test_scan_equals_python_loop_of_iterations(attention):
    scanned = _scanned(attention)
    assert _rel_err(scanned["out"], scanned["ref"]) <= 1e-5
    # Padded rows: state zeroed every step, so the output is exactly 0 there.
    for b, rows in enumerate(ROWS):
        np.testing.assert_array_equal(scanned["out"][b, rows:], 0.0)
    if scanned["attention"]:
        (maps,) = scanned["inter"]["spatial_attention"]
        assert maps.shape == (BATCH, ITERATIONS, HEIGHT, WIDTH)
        for t, alpha in enumerate(scanned["ref_maps"]):
            assert _rel_err(maps[:, t], alpha) <= 1e-5
        # The maps change with H_{t-1}: the iterations are not all the same.
        assert not np.allclose(maps[:, 0], maps[:, -1], atol=1e-4)


def test_attention_maps_are_distributions_over_valid_positions():
    (maps,) = _scanned(True)["inter"]["spatial_attention"]
    assert maps.dtype == jnp.float32
    for b, rows in enumerate(ROWS):
        np.testing.assert_allclose(maps[b, :, :rows].sum(axis=(1, 2)), 1.0, rtol=1e-6)
        np.testing.assert_array_equal(maps[b, :, rows:], 0.0)
        assert np.all(maps[b, :, :rows] > 0.0)


def _count_dots(jaxpr, skip_scan=False):
    """dot_general ops in a jaxpr and its sub-jaxprs (conv2d_same is one dot)."""
    count = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            count += 1
        if skip_scan and eqn.primitive.name == "scan":
            continue
        for value in eqn.params.values():
            if isinstance(value, jax.extend.core.ClosedJaxpr):
                value = value.jaxpr
            if isinstance(value, jax.extend.core.Jaxpr):
                count += _count_dots(value, skip_scan)
    return count


def _convs_in_and_out_of_scan(attention):
    model, params, x, mask = _case(attention, True, ITERATIONS)
    jaxpr = jax.make_jaxpr(lambda p: model.apply({"params": p}, x, mask))(params)
    (scan,) = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
    inside = _count_dots(scan.params["jaxpr"].jaxpr)
    return inside, _count_dots(jaxpr.jaxpr, skip_scan=True)


def test_state_independent_convolutions_are_hoisted():
    # Attention: W_a * X outside; inside, [U_a | U_gates] * H (one conv),
    # R_a * tanh(.) and W_gates * X_att (X_att changes every step).
    assert _convs_in_and_out_of_scan(True) == (3, 1)
    # Plain ConvLSTM: W_gates * X outside, only U_gates * H inside.
    assert _convs_in_and_out_of_scan(False) == (1, 1)


def test_rejects_zero_iterations():
    model, params, x, mask = _case(True, False, iterations=1)
    with pytest.raises(ValueError, match="iterations"):
        AttentiveConvLSTM(features=FEATURES, iterations=0).init(jax.random.key(0), x)
