"""CNN-BiLSTM (card C5): local self-attention vs NumPy, gender embedding,
parameter counts, padding invariance and the gender path of both models.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpara.models import MODELS, count_params
from jaxpara.models.attention import LocalSelfAttention, sequence_mask
from jaxpara.models.cnn_bilstm import CNNBiLSTM, GenderEmbedding
from tests.model_variables import numpy_variables


def _random_params(shapes, seed):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda s: rng.normal(size=s.shape).astype(np.float32), shapes
    )


def test_local_self_attention_matches_keras_formula():
    lengths = np.array([9, 5, 1, 0], np.int32)
    batch, time, dim, units, width = len(lengths), 9, 4, 3, 5
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, time, dim)).astype(np.float32)
    mask = np.asarray(sequence_mask(lengths, time))
    layer = LocalSelfAttention(width=width, features=units, activation="relu")
    shapes = jax.eval_shape(layer.init, jax.random.key(0), x, mask)["params"]
    assert jax.tree_util.tree_map(lambda s: s.shape, shapes) == {
        "query": {"kernel": (dim, units)},
        "key": {"kernel": (dim, units), "bias": (units,)},
        "score": {"kernel": (units, 1), "bias": (1,)},
    }
    params = _random_params(shapes, 1)
    x_garbage = np.where(mask[..., None], x, -1e3).astype(np.float32)
    out, weights = jax.jit(layer.apply)({"params": params}, x_garbage, mask)
    out, weights = np.asarray(out), np.asarray(weights)
    assert out.shape == (batch, time, dim) and weights.shape == (batch, time, time)

    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    relu_clipped = 0
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(weights[b, n:], 0.0)  # Padded queries.
        np.testing.assert_array_equal(weights[b, :, n:], 0.0)  # Padded keys.
        np.testing.assert_array_equal(out[b, n:], 0.0)
        xb = x[b, :n].astype(np.float64)
        q = xb @ p["query"]["kernel"]
        k = xb @ p["key"]["kernel"] + p["key"]["bias"]
        h = np.tanh(q[:, None, :] + k[None, :, :])
        e = h @ p["score"]["kernel"][:, 0] + p["score"]["bias"][0]
        relu_clipped += int((e < 0).sum())
        e = np.maximum(e, 0.0)
        for t in range(n):
            lo = t - width // 2
            keys = [s for s in range(n) if lo <= s < lo + width]
            a = np.exp(e[t, keys] - e[t, keys].max())
            a /= a.sum()
            np.testing.assert_allclose(weights[b, t, keys], a, rtol=2e-5)
            outside = [s for s in range(time) if s not in keys]
            np.testing.assert_array_equal(weights[b, t, outside], 0.0)
            np.testing.assert_allclose(weights[b, t].sum(), 1.0, rtol=1e-6)
            np.testing.assert_allclose(out[b, t], a @ xb[keys], rtol=1e-5, atol=1e-6)
    assert relu_clipped > 0  # The ReLU was exercised.


def test_local_self_attention_rejects_bad_settings():
    x = np.zeros((1, 3, 2), np.float32)
    for kwargs, key in (
        ({"width": 0}, "width"),
        ({"activation": "gelu"}, "activation"),
    ):
        with pytest.raises(ValueError, match=f"model.local_attention.{key}"):
            jax.eval_shape(LocalSelfAttention(**kwargs).init, jax.random.key(0), x)


def test_gender_embedding_codes_and_unknown_is_the_mean():
    layer = GenderEmbedding(embedding=5, features=3)
    codes = np.array([1, 0, -1, 7], np.int32)
    shapes = jax.eval_shape(layer.init, jax.random.key(0), codes)["params"]
    assert count_params(shapes) == 2 * 5 + 5 * 3 + 3
    params = _random_params(shapes, 2)
    out = np.asarray(jax.jit(layer.apply)({"params": params}, codes), np.float64)
    table = np.asarray(params["embed"]["embedding"], np.float64)
    w = np.asarray(params["dense"]["kernel"], np.float64)
    bias = np.asarray(params["dense"]["bias"], np.float64)
    expected = [table[1], table[0], table.mean(0), table.mean(0)] @ w + bias
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def _hand_count(num_classes, attention, use_gender):
    def conv(c_in, c_out):  # 5x3 kernel, no bias (BN follows), + BN scale/bias.
        return 5 * 3 * c_in * c_out + 2 * c_out

    def dense(d_in, d_out, bias=True):
        return d_in * d_out + (d_out if bias else 0)

    def lstm(d, h):
        return 4 * h * (d + h) + 4 * h

    cnn = conv(3, 128) + conv(128, 256) + 4 * conv(256, 256)
    frame = dense(20 * 256, 768)
    rnn = 2 * lstm(768, 128)
    if attention == "temporal":
        pool = dense(256, 128, bias=False) + dense(128, 1, bias=False)  # Card C1's.
    else:
        pool = dense(256, 32, bias=False) + dense(256, 32) + dense(32, 1)
    gender = (2 * 300 + dense(300, 64)) if use_gender else 0
    head = dense(256 + (64 if use_gender else 0), 64) + dense(64, num_classes)
    return cnn + frame + rnn + pool + gender + head


@pytest.mark.parametrize(
    "attention,use_gender,expected",
    [
        ("local_self", True, 9_340_829),
        ("local_self", False, 9_316_869),
        ("temporal", True, 9_357_276),
    ],
)
def test_default_param_counts(attention, use_gender, expected):
    """Seed 004 sizes on [batch, 300, 40, 3]; the gender branch adds
    2 * 300 + 300 * 64 + 64 parameters and 64 input rows of the head."""
    assert _hand_count(4, attention, use_gender) == expected
    model = CNNBiLSTM(4, attention=attention, use_gender=use_gender)
    variables = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 300, 40, 3)), train=False)
    )
    assert count_params(variables["params"]) == expected
    assert ("gender" in variables["params"]) == use_gender
    assert count_params(variables["batch_stats"]) == 2 * (128 + 5 * 256)


def test_bad_attention_is_named():
    with pytest.raises(ValueError, match="model.attention='spatial'"):
        jax.eval_shape(
            lambda: CNNBiLSTM(4, attention="spatial").init(
                jax.random.key(0), jnp.zeros((1, 8, 8, 3)), train=False
            )
        )


@pytest.mark.parametrize(
    "attention,use_gender",
    [("temporal", True), ("local_self", True), ("local_self", False)],
)
def test_tiny_model_padding_and_gender_path(attention, use_gender):
    frames = np.array([16, 16, 16, 16, 9, 9], np.int32)
    gender = np.array([1, 0, -1, 1, 1, 0], np.int32)
    x = np.random.default_rng(3).normal(size=(6, 16, 8, 3)).astype(np.float32)
    x[1:4] = x[0]  # Rows 0-3: the same segment with gender 1, 0, -1, 1.
    x[5] = x[4]
    tail = np.arange(16)[None, :, None, None] >= frames[:, None, None, None]
    x = np.where(tail, 0.0, x).astype(np.float32)
    model = MODELS["_cnn_bilstm_tiny"](
        num_classes=4, attention=attention, use_gender=use_gender
    )
    shapes = jax.eval_shape(
        functools.partial(model.init, train=False), jax.random.key(0), x, frames, gender
    )
    assert ("gender" in shapes["params"]) == use_gender
    variables = numpy_variables(shapes)
    apply = jax.jit(
        functools.partial(model.apply, train=False, mutable=["intermediates"])
    )
    logits, state = apply(variables, x, frames, gender)
    logits = np.asarray(logits)
    # Padding invariance: garbage in the padded tail changes nothing.
    garbage, _ = apply(variables, np.where(tail, 9.0, x), frames, gender)
    np.testing.assert_allclose(garbage, logits, rtol=1e-5, atol=1e-6)
    name = "temporal_attention" if attention == "temporal" else "local_attention"
    (weights,) = state["intermediates"][name]
    sums = np.asarray(weights).sum(-1)
    if sums.ndim == 2:  # Local attention: rows of real query frames.
        sums = sums[np.asarray(sequence_mask(-(-frames // 2), 8))]
    np.testing.assert_allclose(sums, 1.0, rtol=1e-5)
    same = [(0, 3)] if use_gender else [(0, 1), (0, 2), (0, 3), (4, 5)]
    for a, b in same:
        np.testing.assert_allclose(logits[a], logits[b], rtol=1e-6, atol=1e-7)
    if use_gender:  # Same audio, another gender code: other logits.
        for a, b in [(0, 1), (0, 2), (1, 2), (4, 5)]:
            assert np.abs(logits[a] - logits[b]).max() > 1e-4
