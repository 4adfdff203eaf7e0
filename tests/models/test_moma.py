"""MOMA (card C4): attention blocks and mixture vs NumPy, parameter count, padding.

The test-sized run of configs/iemocap_moma.py (with the attention files) is in
tests/test_emotion_protocols.py, which shares one synthetic corpus.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpara.models import MODELS, count_params
from jaxpara.models.attention import (
    AttentionMixture,
    MeanContextAttention,
    sequence_mask,
)
from jaxpara.models.moma import MOMA

LENGTHS = np.array([7, 4, 1, 0], np.int32)  # Full, padded, one frame, empty.
TIME, DIM, WIDTH = 7, 5, 4


def _random_params(shapes, seed):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda s: rng.normal(size=s.shape).astype(np.float32), shapes
    )


def _inputs(seed=0):
    x = np.random.default_rng(seed).normal(size=(len(LENGTHS), TIME, DIM))
    return x.astype(np.float32), np.asarray(sequence_mask(LENGTHS, TIME))


def _block_reference(params, x, length):
    """Seed 003 eq. 4-5 in float64 over the first `length` frames of x [T, D]
    (with the biases b_h, b_m where `params` has them)."""
    y = x[:length].astype(np.float64)
    m = y.mean(0)
    p = {
        k: {n: np.asarray(v, np.float64) for n, v in d.items()}
        for k, d in params.items()
    }
    e = np.tanh(y @ p["hidden"]["kernel"] + p["hidden"].get("bias", 0.0)) * np.tanh(
        m @ p["context"]["kernel"] + p["context"].get("bias", 0.0)
    )
    s = e @ p["score"]["kernel"][:, 0]
    a = np.exp(s - s.max())
    return a / a.sum()


def _check_weights(weights, expected_rows, total=1.0):
    for row, length in enumerate(LENGTHS):
        np.testing.assert_array_equal(weights[row, length:], 0.0)
        if length:
            np.testing.assert_allclose(
                weights[row, :length], expected_rows[row], rtol=2e-5
            )
            np.testing.assert_allclose(weights[row].sum(), total, rtol=1e-5)


@pytest.mark.parametrize("use_bias", [False, True])
def test_mean_context_attention_matches_formula(use_bias):
    x, mask = _inputs()
    block = MeanContextAttention(WIDTH, use_bias)
    shapes = jax.eval_shape(block.init, jax.random.key(0), x, mask)["params"]
    bias = {"bias": (WIDTH,)} if use_bias else {}
    assert jax.tree_util.tree_map(lambda s: s.shape, shapes) == {
        "hidden": {"kernel": (DIM, WIDTH), **bias},
        "context": {"kernel": (DIM, WIDTH), **bias},
        "score": {"kernel": (WIDTH, 1)},
    }
    params = _random_params(shapes, 1)
    # Values on padded frames must not matter: fill them with garbage.
    x_garbage = np.where(mask[..., None], x, 1e3).astype(np.float32)
    weights = np.asarray(jax.jit(block.apply)({"params": params}, x_garbage, mask))
    assert weights.dtype == np.float32 and weights.shape == (len(LENGTHS), TIME)
    expected = [
        _block_reference(params, x[r], n) if n else None for r, n in enumerate(LENGTHS)
    ]
    _check_weights(weights, expected)


@pytest.mark.parametrize("mixture", ["raw", "softmax"])
def test_attention_mixture_matches_eq9(mixture):
    x, mask = _inputs(2)
    layer = AttentionMixture(num_blocks=3, features=WIDTH, mixture=mixture)
    shapes = jax.eval_shape(layer.init, jax.random.key(0), x, mask)["params"]
    assert sorted(shapes) == ["block0", "block1", "block2", "gamma"]
    assert shapes["gamma"].shape == (3,)
    params = _random_params(shapes, 3)
    a_mix, blocks = jax.jit(layer.apply)({"params": params}, x, mask)
    a_mix, blocks = np.asarray(a_mix), np.asarray(blocks)
    assert blocks.shape == (len(LENGTHS), 3, TIME)
    gamma = np.asarray(params["gamma"], np.float64)
    if mixture == "softmax":
        gamma = np.exp(gamma) / np.exp(gamma).sum()
    per_block = [
        [
            _block_reference(params[f"block{n}"], x[r], k) if k else None
            for r, k in enumerate(LENGTHS)
        ]
        for n in range(3)
    ]
    for n in range(3):
        _check_weights(blocks[:, n], per_block[n])
    mixed = [
        sum(gamma[n] * per_block[n][r] for n in range(3)) if k else None
        for r, k in enumerate(LENGTHS)
    ]
    # 'raw' sums to sum(gamma) (eq. 9 as printed), 'softmax' to 1.
    _check_weights(a_mix, mixed, total=gamma.sum())
    if mixture == "softmax":
        np.testing.assert_allclose(
            a_mix[: np.count_nonzero(LENGTHS)].sum(1), 1.0, rtol=1e-5
        )


def test_gamma_init_and_bad_mixture():
    x, mask = _inputs()
    variables = jax.jit(AttentionMixture(features=WIDTH).init)(
        jax.random.key(0), x, mask
    )
    gamma = np.asarray(variables["params"]["gamma"])
    assert gamma.shape == (3,) and np.all((gamma >= 0) & (gamma < 1))
    assert len(set(gamma.tolist())) == 3  # Random, not constant.
    with pytest.raises(ValueError, match="model.moma.mixture"):
        jax.eval_shape(
            AttentionMixture(mixture="mean").init, jax.random.key(0), x, mask
        )


def test_default_moma_param_count():
    """Hand count of MOMA() on [batch, 300, 23, 1] (seed 003 sizes)."""

    def lstm(d, h):
        return 4 * h * (d + h) + 4 * h

    def dense(d_in, d_out, bias=True):
        return d_in * d_out + (d_out if bias else 0)

    encoder = 2 * lstm(23, 512) + 2 * lstm(1024, 512)
    block = 2 * dense(1024, 128, bias=False) + dense(128, 1, bias=False)
    head = dense(1024, 1024) + dense(1024, 4)
    expected = encoder + 4 * block + 3 + head  # layer 1 + 3 blocks, 3 gammas.
    assert expected == 10_593_799
    variables = jax.eval_shape(
        lambda: MOMA(4).init(jax.random.key(0), jnp.zeros((1, 300, 23, 1)), train=False)
    )
    assert count_params(variables["params"]) == expected
    assert set(variables["params"]) == {
        "encoder",
        "attention1",
        "moma",
        "projection",
        "logits",
    }
    assert set(variables["params"]["encoder"]) == {"layer_0", "layer_1"}


def test_tiny_moma_padding_invariance_and_sown_attention():
    model = MODELS["_moma_tiny"](num_classes=4)
    frames = np.array([12, 7, 1], np.int32)
    x = np.random.default_rng(4).normal(size=(3, 12, 5, 1)).astype(np.float32)
    shapes = jax.eval_shape(
        functools.partial(model.init, train=False), jax.random.key(0), x, frames
    )
    variables = _random_params(shapes, 5)
    apply = jax.jit(
        functools.partial(model.apply, train=False, mutable=["intermediates"])
    )
    logits, state = apply(variables, x, frames)
    tail = np.arange(12)[None, :, None, None] >= frames[:, None, None, None]
    logits2, state2 = apply(
        variables, np.where(tail, 50.0, x).astype(np.float32), frames
    )
    np.testing.assert_allclose(
        np.asarray(logits2), np.asarray(logits), rtol=1e-6, atol=1e-6
    )
    inter = state["intermediates"]
    (a1,), (a_mix,), (blocks,) = (
        inter["attention_layer1"],
        inter["attention_mixture"],
        inter["attention_blocks"],
    )
    assert a1.shape == a_mix.shape == (3, 12) and blocks.shape == (3, 3, 12)
    mask = np.asarray(sequence_mask(frames, 12))
    np.testing.assert_allclose(np.asarray(a1).sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(a1)[~mask], 0.0)
    gamma = np.asarray(variables["params"]["moma"]["gamma"])
    np.testing.assert_allclose(
        np.asarray(a_mix), np.einsum("n,bnt->bt", gamma, np.asarray(blocks)), rtol=1e-5
    )
    np.testing.assert_array_equal(np.asarray(a_mix)[~mask], 0.0)
