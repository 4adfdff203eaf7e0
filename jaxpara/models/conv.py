"""2-D convolution with a fast kernel gradient on XLA:CPU (issue 15).

`conv_general_dilated` is `lax.conv_general_dilated` with the same forward
pass and input gradient, and, for the plain case of the models (NHWC / HWIO,
any strides s, no dilation, no groups) on the CPU backend, a different way to
compute the kernel gradient:

    dK[i, j] = sum_{b, h, w} x_pad[b, s h + i, s w + j, :]^T g[b, h, w, :]

as kh * kw 2-D matmuls [C_in, N] x [N, C_out] (N = batch x height x width),
accumulated over chunks of the batch in a `lax.scan` so that a chunk's input
and output gradient stay in cache while its kh * kw products are taken.
XLA:CPU lowers the kernel gradient to a "backward filter" convolution whose
window is the whole feature map; at the models' shapes that is 4-7x slower
than their forward convolution (benchmarks/profile_cpu.py ops, README
"Benchmarks"). The sum is the same; only the order of the float32
additions differs (relative difference ~1e-5, tests/models/test_conv.py).

Every other case (dilation, groups, other layouts, other backends:
cuDNN's kernel gradient is fast; kernel gradients under `MIN_FLOPS`, where
XLA's is cheap and the custom one only doubles compile time) is
`lax.conv_general_dilated` unchanged.
Models pass the function to `flax.linen.Conv(conv_general_dilated=...)`, so
the parameters and their tree are those of a plain `nn.Conv`.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")
# Bytes of input + output gradient per chunk of the kernel-gradient scan.
CHUNK_BYTES = 4 << 20
# Kernel-gradient FLOPs below which a convolution stays lax's: there XLA's own
# gradient costs little and compiles in about half the time (the tiny test
# models); the paper models' convolutions are 1e9-1e10.
MIN_FLOPS = 1e8


def kernel_gradient_flops(lhs_shape, rhs_shape, strides) -> float:
    """2 B H' W' kh kw C_in C_out of an NHWC / HWIO convolution's dK."""
    b, h, w, _ = lhs_shape
    kh, kw, cin, cout = rhs_shape
    return 2.0 * b * -(-h // strides[0]) * -(-w // strides[1]) * kh * kw * cin * cout


def _is_plain(lhs, rhs, dimension_numbers) -> bool:
    if dimension_numbers is None or lhs.ndim != 4:
        return False
    if tuple(dimension_numbers) == _NHWC:
        return True
    return isinstance(
        dimension_numbers, lax.ConvDimensionNumbers
    ) and dimension_numbers == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)


def chunk_size(batch: int, per_example_bytes: int) -> int:
    """The largest divisor of `batch` whose chunk fits `CHUNK_BYTES` (>= 1)."""
    best = 1
    for c in range(1, batch + 1):
        if batch % c == 0 and c * per_example_bytes <= CHUNK_BYTES:
            best = c
    return best


def kernel_gradient(x, g, kernel_shape, strides, padding):
    """dK of an NHWC / HWIO convolution as shifted matmuls.

    Args:
        x: [B, H, W, C_in] the convolution's input.
        g: [B, H', W', C_out] the gradient of its output.
        kernel_shape: (kh, kw, C_in, C_out).
        strides: (s_h, s_w).
        padding: ((top, bottom), (left, right)) explicit padding.

    Returns:
        [kh, kw, C_in, C_out] float32.
    """
    kh, kw, cin, cout = kernel_shape
    # XLA:CPU has no bf16 x bf16 -> f32 dot: low-precision operands go up.
    x, g = x.astype(jnp.float32), g.astype(jnp.float32)
    batch, ho, wo = g.shape[:3]
    (pt, pb), (pl, pr) = padding
    sh, sw = strides
    per_example = (x[0].size + g[0].size) * 4
    c = chunk_size(batch, per_example)

    def chunk_grad(xc, gc):
        xp = jnp.pad(xc, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
        gf = gc.reshape(-1, cout)
        rows = []
        for i in range(kh):
            for j in range(kw):
                xs = xp[
                    :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw
                ].reshape(-1, cin)
                rows.append(
                    lax.dot_general(
                        xs,
                        gf,
                        (((0,), (0,)), ((), ())),
                        preferred_element_type=jnp.float32,
                    )
                )
        return jnp.stack(rows).reshape(kh, kw, cin, cout)

    if c == batch:
        return chunk_grad(x, g)
    xs = x.reshape(batch // c, c, *x.shape[1:])
    gs = g.reshape(batch // c, c, *g.shape[1:])

    def body(acc, xg):
        return acc + chunk_grad(*xg), None

    zero = jnp.zeros(kernel_shape, jnp.float32)
    return lax.scan(body, zero, (xs, gs))[0]


def _per_kernel(fn):
    """`fn(a, k)` (a batch-leading, e.g. an input or an output gradient; k a
    kernel) whose `vmap` is not XLA's: with only `a` mapped the mapped axis is
    folded into the batch (one convolution), with `k` mapped (the engine's
    vmapped seeds, one kernel per seed) `fn` runs once per kernel. XLA lowers a
    mapped kernel to a grouped convolution, which XLA:CPU runs 4-6x slower per
    seed than the plain one (benchmarks/profile_cpu.py, README "Benchmarks")."""
    mapped = jax.custom_batching.custom_vmap(fn)

    @mapped.def_vmap
    def rule(axis_size, in_batched, a, k):
        a_mapped, k_mapped = in_batched
        # `mapped`, not `fn`: an enclosing vmap goes through this rule too.
        if not k_mapped:
            out = mapped(a.reshape(-1, *a.shape[2:]), k)
            return out.reshape(axis_size, -1, *out.shape[1:]), True
        outs = [mapped(a[s] if a_mapped else a, k[s]) for s in range(axis_size)]
        return jnp.stack(outs), True

    return mapped


@functools.cache
def _ops(strides, padding, precision, preferred_element_type, in_hw):
    """(forward(x, k), input_gradient(g, k)) of one convolution's settings."""

    def forward(x, k):
        return lax.conv_general_dilated(
            x,
            k,
            strides,
            padding,
            dimension_numbers=_NHWC,
            precision=precision,
            preferred_element_type=preferred_element_type,
        )

    def input_gradient(g, k):
        x = jax.ShapeDtypeStruct((g.shape[0], *in_hw, k.shape[2]), k.dtype)
        (dx,) = jax.linear_transpose(lambda x: forward(x, k), x)(g.astype(k.dtype))
        return dx

    return _per_kernel(forward), _per_kernel(input_gradient)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv(x, k, strides, padding, precision, preferred_element_type):
    forward, _ = _ops(strides, padding, precision, preferred_element_type, x.shape[1:3])
    return forward(x, k)


def _conv_fwd(x, k, strides, padding, precision, preferred_element_type):
    out = _conv(x, k, strides, padding, precision, preferred_element_type)
    return out, (x, k)


def _conv_bwd(strides, padding, precision, preferred_element_type, residuals, g):
    x, k = residuals
    _, input_gradient = _ops(
        strides, padding, precision, preferred_element_type, x.shape[1:3]
    )
    dx = input_gradient(g, k).astype(x.dtype)
    dk = kernel_gradient(x, g, k.shape, strides, padding)
    return dx, dk.astype(k.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    batch_group_count=1,
    precision=None,
    preferred_element_type=None,
):
    """`lax.conv_general_dilated`, with `kernel_gradient` for the plain CPU case
    (module docstring); same arguments, same forward values."""
    plain = (
        jax.default_backend() == "cpu"
        and _is_plain(lhs, rhs, dimension_numbers)
        and all(d == 1 for d in (lhs_dilation or ()) + (rhs_dilation or ()))
        and feature_group_count == 1
        and batch_group_count == 1
        and kernel_gradient_flops(lhs.shape, rhs.shape, window_strides) >= MIN_FLOPS
    )
    if not plain:
        return lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation,
            rhs_dilation,
            dimension_numbers,
            feature_group_count,
            batch_group_count,
            precision=precision,
            preferred_element_type=preferred_element_type,
        )
    strides = tuple(int(s) for s in window_strides)
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _conv(lhs, rhs, strides, padding, precision, preferred_element_type)


# `nn.Conv` with `conv_general_dilated`: the models' convolution layer.
Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)
