"""conv.conv_general_dilated: lax's forward, a float64-exact kernel gradient."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxpara.models import conv

DN = ("NHWC", "HWIO", "NHWC")


@pytest.fixture(autouse=True)
def every_size(monkeypatch):
    """The custom kernel gradient at the tests' small shapes too."""
    monkeypatch.setattr(conv, "MIN_FLOPS", 0.0)


def _dk_float64(x, g, kernel_shape, strides, padding):
    """dK[i, j] = sum_{b,h,w} x_pad[b, s h + i, s w + j]^T g[b, h, w], float64."""
    x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
    kh, kw, cin, cout = kernel_shape
    (pt, pb), (pl, pr) = padding
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    ho, wo = g.shape[1:3]
    dk = np.zeros(kernel_shape)
    for i in range(kh):
        for j in range(kw):
            for h in range(ho):
                for w in range(wo):
                    xs = xp[:, strides[0] * h + i, strides[1] * w + j]
                    dk[i, j] += xs.T @ g[:, h, w]
    return dk


CASES = [  # input, kernel, strides, padding (the models' kinds of conv).
    ((5, 13, 7, 3), (3, 3, 3, 4), (1, 1), "SAME"),  # C1 / C3 3x3.
    ((4, 11, 6, 2), (5, 3, 2, 3), (1, 1), "SAME"),  # C5 5x3.
    ((3, 9, 8, 2), (3, 3, 2, 2), (1, 1), ((0, 2), (1, 0))),  # Asymmetric.
    ((4, 16, 12, 3), (7, 7, 3, 5), (2, 2), ((3, 3), (3, 3))),  # C2 stem.
    ((4, 15, 11, 3), (1, 1, 3, 5), (2, 2), ((0, 0), (0, 0))),  # C2 shortcut.
    ((2, 15, 11, 3), (3, 3, 3, 4), (2, 1), "SAME"),
]


@pytest.mark.parametrize("shape, kshape, strides, padding", CASES)
def test_gradients_equal_lax_and_the_float64_sum(shape, kshape, strides, padding):
    x = jax.random.normal(jax.random.key(0), shape)
    k = jax.random.normal(jax.random.key(1), kshape)

    def loss(fn):
        return lambda x, k: jnp.sum(
            jnp.sin(fn(x, k, strides, padding, dimension_numbers=DN))
        )

    out_ref = lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=DN)
    out = conv.conv_general_dilated(x, k, strides, padding, dimension_numbers=DN)
    np.testing.assert_array_equal(out, out_ref)  # Forward: lax's, bit for bit.
    (dx_ref, dk_ref) = jax.grad(loss(lax.conv_general_dilated), (0, 1))(x, k)
    (dx, dk) = jax.grad(loss(conv.conv_general_dilated), (0, 1))(x, k)
    np.testing.assert_array_equal(dx, dx_ref)  # Input gradient: lax's.
    pads = (
        lax.padtype_to_pads(shape[1:3], kshape[:2], strides, padding)
        if isinstance(padding, str)
        else padding
    )
    g = jnp.cos(out_ref)
    exact = _dk_float64(x, g, kshape, strides, pads)
    scale = np.abs(exact).max()
    assert np.abs(np.asarray(dk, np.float64) - exact).max() <= 1e-5 * scale
    assert np.abs(np.asarray(dk_ref, np.float64) - exact).max() <= 1e-5 * scale


def test_chunked_scan_vmap_and_bfloat16():
    # Batch 12 with 1 KiB per chunk: a scan over 12 chunks of one example.
    x = jax.random.normal(jax.random.key(0), (12, 6, 5, 2))
    k = jax.random.normal(jax.random.key(1), (2, 3, 3, 2, 4))  # Two seeds.
    assert conv.chunk_size(12, 12 * 6 * 5 * 4) == 12
    assert conv.chunk_size(12, conv.CHUNK_BYTES // 5) == 4
    assert conv.chunk_size(7, conv.CHUNK_BYTES * 2) == 1

    def grads(fn, x, k):
        def loss(k):
            y = fn(x, k, (1, 1), "SAME", dimension_numbers=DN)
            return jnp.sum(y.astype(jnp.float32) ** 2)

        return jax.vmap(jax.grad(loss))(k)

    old = conv.CHUNK_BYTES
    try:
        conv.CHUNK_BYTES = 1024
        got = grads(conv.conv_general_dilated, x, k)
    finally:
        conv.CHUNK_BYTES = old
    want = grads(lax.conv_general_dilated, x, k)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)

    # vmap: a mapped kernel runs one convolution per kernel (XLA's own rule
    # makes a grouped conv of a mapped input and kernel), a mapped input only
    # is folded into the batch; both equal lax's vmap.
    def seed_grads(fn):
        return jax.make_jaxpr(jax.vmap(lambda x, k: grads(fn, x, k[None])[0], (0, 0)))(
            jnp.stack([x, x]), k
        )

    assert "feature_group_count=2" in str(seed_grads(lax.conv_general_dilated))
    assert "feature_group_count=2" not in str(seed_grads(conv.conv_general_dilated))
    xs = jnp.stack([x, 2 * x])

    def outputs(fn, xs, k, in_axes):
        return jax.vmap(
            lambda x, k: fn(x, k, (1, 1), "SAME", dimension_numbers=DN), in_axes
        )(xs, k)

    for args, in_axes in (((xs, k[0]), (0, None)), ((xs, k), (0, 0))):
        np.testing.assert_allclose(
            outputs(conv.conv_general_dilated, *args, in_axes),
            outputs(lax.conv_general_dilated, *args, in_axes),
            rtol=1e-5,
            atol=1e-5,
        )
    xb, kb = x.astype(jnp.bfloat16), k.astype(jnp.bfloat16)
    got = grads(conv.conv_general_dilated, xb, kb)
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(got, np.float32),
        np.asarray(grads(lax.conv_general_dilated, xb, kb), np.float32),
        rtol=0.05,
        atol=0.5,
    )


def test_other_cases_are_lax_unchanged_and_conv_has_nn_conv_parameters():
    x = jax.random.normal(jax.random.key(0), (2, 9, 8, 4))
    k = jax.random.normal(jax.random.key(1), (3, 3, 2, 4))
    kwargs = dict(rhs_dilation=(2, 1), dimension_numbers=DN, feature_group_count=2)
    jaxpr = jax.make_jaxpr(
        jax.grad(
            lambda k: conv.conv_general_dilated(x, k, (1, 1), "SAME", **kwargs).sum()
        )
    )(k)
    assert "custom_vjp" not in str(jaxpr)
    np.testing.assert_array_equal(
        conv.conv_general_dilated(x, k, (1, 1), "SAME", **kwargs),
        lax.conv_general_dilated(x, k, (1, 1), "SAME", **kwargs),
    )
    layer, plain = conv.Conv(5, (3, 3)), nn.Conv(5, (3, 3))
    params = layer.init(jax.random.key(2), x)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(
        jnp.shape, plain.init(jax.random.key(2), x)
    )
    np.testing.assert_array_equal(layer.apply(params, x), plain.apply(params, x))


def test_small_kernel_gradients_stay_lax(monkeypatch):
    """Under `MIN_FLOPS` a convolution is lax's (cheap, half the compile);
    at a paper model's size it takes the custom kernel gradient."""
    monkeypatch.setattr(conv, "MIN_FLOPS", 1e8)

    def traced(x_shape, k_shape):
        x, k = jnp.zeros(x_shape), jnp.zeros(k_shape)
        fn = jax.grad(
            lambda k: conv.conv_general_dilated(
                x, k, (1, 1), "SAME", dimension_numbers=DN
            ).sum()
        )
        return str(jax.make_jaxpr(fn)(k))

    assert conv.kernel_gradient_flops((8, 63, 201, 4), (3, 3, 4, 4), (1, 1)) < 1e8
    assert "custom_vjp" not in traced((8, 63, 201, 4), (3, 3, 4, 4))
    # ACRNN's second conv (card C1): [32, 300, 40, 32] -> 32, 3x3: 7.1 GFLOP.
    flops = conv.kernel_gradient_flops((32, 300, 40, 32), (3, 3, 32, 32), (1, 1))
    assert flops == 2 * 32 * 300 * 40 * 9 * 32 * 32
    assert "custom_vjp" in traced((32, 300, 40, 32), (3, 3, 32, 32))
    assert conv.kernel_gradient_flops((2, 15, 11, 3), (3, 3, 3, 4), (2, 1)) == (
        2 * 2 * 8 * 11 * 9 * 3 * 4
    )
