"""Card C3: its attention poolings against NumPy, and the Attention-BLSTM-FCN.

The attention modules live in jaxpara/models/attention.py; their C3 tests are
here, next to the model that uses them.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpara import models
from jaxpara.models.attention import (
    LinearTemporalAttention,
    ScaledAttentionPooling,
    sequence_mask,
)
from jaxpara.models.blstm_fcn import VARIANTS, AttentionBLSTMFCN

LENGTHS = np.array([6, 3, 1], np.int32)


def _numpy_params(shapes, rng):
    return jax.tree_util.tree_map(
        lambda s: rng.normal(size=s.shape).astype(np.float32), shapes
    )


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_linear_temporal_attention_matches_formula():
    batch, time, dim = 3, 6, 5
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(batch, time, dim)).astype(np.float32)
    mask = np.asarray(sequence_mask(LENGTHS, time))
    model = LinearTemporalAttention()
    shapes = jax.eval_shape(model.init, jax.random.key(0), inputs, mask)["params"]
    assert jax.tree_util.tree_map(lambda s: s.shape, shapes) == {
        "score": {"kernel": (dim, 1)}
    }
    params = _numpy_params(shapes, rng)
    pooled, alpha = map(
        np.asarray, jax.jit(model.apply)({"params": params}, inputs, mask)
    )
    assert pooled.shape == (batch, dim) and alpha.shape == (batch, time)
    w = np.asarray(params["score"]["kernel"], np.float64)[:, 0]
    for row, length in enumerate(LENGTHS):
        x = inputs[row, :length].astype(np.float64)
        expected = _softmax(x @ w)  # alpha_t = softmax_t(w^T x_t), eq. 5.
        np.testing.assert_allclose(alpha[row, :length], expected, rtol=1e-5)
        np.testing.assert_array_equal(alpha[row, length:], 0.0)
        np.testing.assert_allclose(alpha[row].sum(), 1.0, rtol=1e-6)
        np.testing.assert_allclose(pooled[row], expected @ x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [0.3, 0.0])
def test_scaled_attention_pooling_matches_formula(scale):
    batch, time, freq, dim, features = 3, 6, 2, 4, 5
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(batch, time, freq, dim)).astype(np.float32)
    mask = np.asarray(sequence_mask(LENGTHS, time))[:, :, None]  # Valid frames.
    model = ScaledAttentionPooling(features, scale=scale)
    shapes = jax.eval_shape(model.init, jax.random.key(0), inputs, mask)["params"]
    assert jax.tree_util.tree_map(lambda s: s.shape, shapes) == {
        "proj": {"kernel": (dim, features), "bias": (features,)},
        "score": {"kernel": (features, 1)},
    }
    params = _numpy_params(shapes, rng)
    pooled, alpha = map(
        np.asarray, jax.jit(model.apply)({"params": params}, inputs, mask)
    )
    assert pooled.shape == (batch, dim) and alpha.shape == (batch, time, freq)
    w = np.asarray(params["proj"]["kernel"], np.float64)
    b = np.asarray(params["proj"]["bias"], np.float64)
    u = np.asarray(params["score"]["kernel"], np.float64)[:, 0]
    for row, length in enumerate(LENGTHS):
        cells = inputs[row, :length].reshape(-1, dim).astype(np.float64)  # L = T x F.
        e = np.tanh(cells @ w + b) @ u  # e_i = u^T tanh(W a_i + b), eq. 8.
        expected = _softmax(scale * e)  # eq. 9.
        np.testing.assert_allclose(alpha[row, :length].reshape(-1), expected, rtol=1e-5)
        np.testing.assert_array_equal(alpha[row, length:], 0.0)
        np.testing.assert_allclose(alpha[row].sum(), 1.0, rtol=1e-6)
        np.testing.assert_allclose(
            pooled[row], expected @ cells, rtol=1e-5, atol=1e-6
        )  # eq. 10.
    if scale == 0.0:  # lambda = 0: uniform over the valid cells.
        np.testing.assert_allclose(alpha[1, :3], 1.0 / (3 * freq), rtol=1e-6)


def test_scaled_attention_pooling_rejects_negative_scale():
    x = np.zeros((1, 2, 2, 3), np.float32)
    with pytest.raises(ValueError, match="scale must be >= 0"):
        jax.eval_shape(ScaledAttentionPooling(4, scale=-1.0).init, jax.random.key(0), x)


def _param_count(variant, n_mels=40, classes=4):
    module = AttentionBLSTMFCN(classes, **VARIANTS[variant])
    x = jnp.zeros((2, 500, n_mels, 1))
    shapes = jax.eval_shape(
        functools.partial(module.init, train=False), jax.random.key(0), x
    )
    return models.count_params(shapes["params"])


def test_param_counts_follow_the_card():
    """Exact counts at card C3's sizes: 40 mels, H = 128, FCN 64-128-128."""

    def lstm(d, h):  # One direction: input kernel + bias + recurrent kernel.
        return 4 * h * (d + h) + 4 * h

    def head(d, k=4, h=128):  # 2 x Dense(128) + logits.
        return d * h + h + h * h + h + h * k + k

    blstm = 2 * lstm(40, 128) + 2 * lstm(256, 128) + 256  # + attention w.
    lstm_uni = lstm(40, 128) + lstm(128, 128) + 128
    convs = (9 * 64 + 2 * 64) + (9 * 64 * 128 + 2 * 128) + (9 * 128 * 128 + 2 * 128)
    fcn_attention = 128 * 64 + 64 + 64  # W, b, u.
    assert _param_count("fcn") == convs + head(128)
    assert _param_count("attention_fcn") == convs + fcn_attention + head(128)
    assert _param_count("attention_lstm") == lstm_uni + head(128)
    assert _param_count("attention_blstm") == blstm + head(256)
    fusion = blstm + convs + fcn_attention + head(384)
    assert _param_count("attention_blstm_fcn") == fusion == 864_580
    # Mel bands only change the first LSTM layer's input kernels.
    assert (
        _param_count("attention_blstm_fcn", n_mels=100)
        - _param_count("attention_blstm_fcn", n_mels=30)
        == 2 * 4 * 128 * 70
    )


@pytest.mark.parametrize(
    "variant, dim",
    [("fcn", 8), ("attention_lstm", 8), ("attention_blstm", 16)],
)
def test_single_branch_variants_expose_their_vector(variant, dim):
    module = AttentionBLSTMFCN(
        3, **VARIANTS[variant], lstm_features=8, conv_features=(4, 8)
    )
    x = jnp.zeros((2, 20, 6, 1))
    variables = jax.eval_shape(
        functools.partial(module.init, train=False), jax.random.key(0), x
    )
    (_, state) = jax.eval_shape(
        functools.partial(module.apply, train=False, mutable=["intermediates"]),
        variables,
        x,
    )
    inter = state["intermediates"]
    assert inter["deep_spectrum"][0].shape == (2, dim)
    assert ("blstm_attention" in inter) == (variant != "fcn")
    assert "fcn_attention" not in inter


def test_unknown_branches_are_named():
    with pytest.raises(ValueError, match="branches='cnn'"):
        AttentionBLSTMFCN(4, branches="cnn")


@pytest.fixture(scope="module")
def fusion_run():
    """The tiny fusion (no dropout) on a batch and on a junk-padded copy."""
    time, extra, mels = 13, 6, 5
    frames = np.array([13, 9, 1], np.int32)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, time, mels, 1)).astype(np.float32)
    x = np.where(
        np.arange(time)[None, :, None, None] < frames[:, None, None, None], x, 0
    )
    junk = 5.0 * rng.normal(size=(3, extra, mels, 1))
    padded = np.concatenate([x, junk], axis=1).astype(np.float32)
    model = AttentionBLSTMFCN(
        4,
        lstm_features=4,
        conv_features=(3, 4, 4),
        attention_features=4,
        head_features=6,
        fcn_dropout=0.0,
        dropout=0.0,
    )
    shapes = jax.eval_shape(
        functools.partial(model.init, train=False), jax.random.key(0), x
    )
    variables = _numpy_params(shapes, rng)
    variables["batch_stats"] = jax.tree_util.tree_map(
        np.abs, variables["batch_stats"]
    )  # Running variances must be positive.

    @jax.jit
    def run(variables, inputs):
        evaluated, inter = model.apply(
            variables, inputs, frames, train=False, mutable=["intermediates"]
        )
        trained, stats = model.apply(
            variables, inputs, frames, train=True, mutable=["batch_stats"]
        )
        return evaluated, inter["intermediates"], trained, stats["batch_stats"]

    return frames, run(variables, x), run(variables, padded)


def test_fusion_ignores_the_padded_tail(fusion_run):
    _, plain, padded = fusion_run
    for i in (0, 2):  # Logits in eval and in train mode.
        np.testing.assert_allclose(plain[i], padded[i], rtol=1e-5, atol=1e-6)
    # Masked BatchNorm statistics of a training step ignore padding too.
    for a, b in zip(
        jax.tree_util.tree_leaves(plain[3]), jax.tree_util.tree_leaves(padded[3])
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        plain[1]["deep_spectrum"][0], padded[1]["deep_spectrum"][0], rtol=1e-5
    )


def test_fusion_attention_weights_are_masked(fusion_run):
    frames, plain, padded = fusion_run
    for inter in (plain[1], padded[1]):
        temporal = np.asarray(inter["blstm_attention"][0])
        grid = np.asarray(inter["fcn_attention"][0])
        assert inter["deep_spectrum"][0].shape == (3, 2 * 4 + 4)
        np.testing.assert_allclose(temporal.sum(1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(grid.sum((1, 2)), 1.0, rtol=1e-6)
        valid_cells = -(-frames // 8)  # Three 2x2 SAME pools: ceil(frames / 8).
        for b, length in enumerate(frames):
            np.testing.assert_array_equal(temporal[b, length:], 0.0)
            np.testing.assert_array_equal(grid[b, valid_cells[b] :], 0.0)
            assert np.all(temporal[b, :length] > 0.0)
