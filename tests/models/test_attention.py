"""masked_softmax, the poolings and TemporalAttention against the NumPy formulas."""

import jax
import numpy as np

from jaxpara.models.attention import (
    TemporalAttention,
    attention_pool,
    masked_mean,
    masked_softmax,
    sequence_mask,
)

LENGTHS = np.array([6, 3, 1], np.int32)
# Jitted: one compile per shape instead of one per eager op.
jit_masked_softmax = jax.jit(masked_softmax, static_argnames="axis")


def test_sequence_mask():
    np.testing.assert_array_equal(
        sequence_mask(np.array([2, 0, 3]), 3),
        [[True, True, False], [False, False, False], [True, True, True]],
    )


def test_masked_softmax_all_but_one_masked_and_all_masked():
    scores = np.array([[3.0, -1.0, 2.0, 7.0], [1.0, 2.0, 3.0, 4.0]], np.float32)
    mask = np.array([[False, False, True, False], [False] * 4])
    weights = np.asarray(jit_masked_softmax(scores, mask, axis=1))
    np.testing.assert_array_equal(weights, [[0, 0, 1, 0], [0, 0, 0, 0]])
    # Along another axis, with a broadcast mask.
    weights = np.asarray(jit_masked_softmax(scores.T, mask[0][:, None], axis=0))
    np.testing.assert_array_equal(weights, [[0, 0], [0, 0], [1, 1], [0, 0]])
    # A fully masked row has finite (zero) gradients, not NaN.
    grad = jax.jit(jax.grad(lambda s: (masked_softmax(s, mask) * s).sum()))(scores)
    assert np.all(np.isfinite(grad))


def test_masked_softmax_matches_softmax_over_valid_entries():
    scores = np.random.default_rng(0).normal(size=(2, 5)).astype(np.float32) * 30
    mask = np.array([[True, False, True, True, False], [True] * 5])
    weights = np.asarray(jit_masked_softmax(scores, mask, axis=1))
    for row in range(2):
        valid = scores[row, mask[row]].astype(np.float64)
        expected = np.exp(valid - valid.max()) / np.exp(valid - valid.max()).sum()
        np.testing.assert_allclose(weights[row, mask[row]], expected, rtol=1e-5)
        np.testing.assert_array_equal(weights[row, ~mask[row]], 0.0)
    np.testing.assert_allclose(
        np.asarray(jit_masked_softmax(scores, None, axis=1)).sum(-1), 1.0
    )


def test_temporal_attention_matches_formula():
    batch, time, dim, features = 3, 6, 5, 4
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(batch, time, dim)).astype(np.float32)
    mask = np.asarray(sequence_mask(LENGTHS, time))
    model = TemporalAttention(features)
    shapes = jax.eval_shape(model.init, jax.random.key(0), inputs, mask)
    assert jax.tree_util.tree_map(lambda s: s.shape, shapes["params"]) == {
        "proj": {"kernel": (dim, features), "bias": (features,)},
        "score": {"kernel": (features, 1)},
    }
    params = jax.tree_util.tree_map(
        lambda s: rng.normal(size=s.shape).astype(np.float32), shapes["params"]
    )
    pooled, alpha = jax.jit(model.apply)({"params": params}, inputs, mask)
    pooled, alpha = np.asarray(pooled), np.asarray(alpha)
    assert pooled.shape == (batch, dim) and alpha.shape == (batch, time)

    # score_t = v^T tanh(W h_t + b); softmax over valid t; sum_t alpha_t h_t.
    w = np.asarray(params["proj"]["kernel"], np.float64)
    b = np.asarray(params["proj"]["bias"], np.float64)
    v = np.asarray(params["score"]["kernel"], np.float64)[:, 0]
    for row, length in enumerate(LENGTHS):
        h = inputs[row, :length].astype(np.float64)
        scores = np.tanh(h @ w + b) @ v
        expected = np.exp(scores - scores.max())
        expected /= expected.sum()
        np.testing.assert_allclose(alpha[row, :length], expected, rtol=1e-5)
        np.testing.assert_array_equal(alpha[row, length:], 0.0)
        np.testing.assert_allclose(alpha[row].sum(), 1.0, rtol=1e-6)
        np.testing.assert_allclose(pooled[row], expected @ h, rtol=1e-5, atol=1e-6)


def test_attention_pool_over_grid_cells_and_masked_mean():
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(2, 4, 3, 5)).astype(np.float32)  # [B, T, F, D]
    scores = rng.normal(size=(2, 4, 3)).astype(np.float32)
    mask = np.asarray(sequence_mask(np.array([4, 2]), 4))
    pooled, alpha = jax.jit(attention_pool)(inputs, scores, mask[:, :, None])
    assert pooled.shape == (2, 5) and alpha.shape == (2, 4, 3)
    for row, length in enumerate([4, 2]):
        valid = scores[row, :length].astype(np.float64).ravel()
        expected = np.exp(valid - valid.max()) / np.exp(valid - valid.max()).sum()
        np.testing.assert_allclose(alpha[row, :length].ravel(), expected, rtol=1e-5)
        np.testing.assert_array_equal(alpha[row, length:], 0.0)
        cells = inputs[row, :length].reshape(-1, 5).astype(np.float64)
        np.testing.assert_allclose(pooled[row], expected @ cells, rtol=1e-5, atol=1e-6)
    frames = inputs[:, :, 0]  # [B, T, D]
    mean = np.asarray(jax.jit(masked_mean)(frames, mask))
    np.testing.assert_allclose(mean[1], frames[1, :2].mean(0), rtol=1e-6)
    empty = np.asarray(jax.jit(masked_mean)(frames, np.zeros((2, 4), bool)))
    np.testing.assert_array_equal(empty, 0.0)
