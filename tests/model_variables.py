"""Random model variables without compiling a random init (model tests).

`abstract_init` gives the variable shapes through `jax.eval_shape`;
`numpy_variables` fills them from NumPy: kernels ~ N(0, 1 / fan_in), BatchNorm
scales and running variances near 1, small biases.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def abstract_init(model, shape):
    """Variable ShapeDtypeStructs of `model` on a zero input of `shape`."""
    return jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False)
    )


def numpy_variables(shapes, seed=0):
    """Float32 NumPy variables of the given shapes (see the module doc)."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if len(leaf.shape) >= 2:
            value = rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
        elif "scale" in name or "var" in name:
            value = 1.0 + 0.1 * np.abs(rng.normal(size=leaf.shape))
        else:
            value = 0.1 * rng.normal(size=leaf.shape)
        return value.astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)
