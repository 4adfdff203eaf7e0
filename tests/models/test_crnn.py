"""ACRNN (card C1) and the model registry: shapes, parameter count, padding, modes.

Compiles dominate on the shared CPU machine: the tiny variant is compiled a
handful of times (module fixtures), keys are 'rbg' (faster to compile on CPU
than threefry, same semantics), and shape questions use `jax.eval_shape`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.default import get_config
from jaxpara.models import MODELS, count_params, create_model
from jaxpara.models.crnn import ACRNN, ConvFrontEnd
from tests.model_variables import abstract_init, numpy_variables

TIME, EXTRA, FREQ, CHANNELS = 12, 8, 8, 3
FRAMES = np.array([12, 7, 0], np.int32)  # Full, padded inside, empty.
NUM_CLASSES = 4


def _key(seed):
    return jax.random.key(seed, impl="rbg")


# ------------------------------------------------------------ static shapes


def test_default_acrnn_param_count():
    """Hand count of ACRNN() on [batch, 300, 40, 3] input (card C1 sizes)."""

    def conv(c_in, c_out):  # 3x3 kernel, no bias (BN follows).
        return 3 * 3 * c_in * c_out

    def bn(c):  # scale + bias ('batch_stats' mean/var are not params).
        return 2 * c

    def dense(d_in, d_out, bias=True):
        return d_in * d_out + (d_out if bias else 0)

    def lstm(d, h):  # input kernel + bias, recurrent kernel.
        return 4 * h * (d + h) + 4 * h

    cnn = conv(3, 32) + bn(32) + conv(32, 32) + bn(32)
    cnn += conv(32, 64) + bn(64) + conv(64, 64) + bn(64)
    frame = dense((40 // 4) * 64, 256)
    rnn = lstm(256, 128)
    # Card C1: score v^T tanh(W h_t), no bias in either layer.
    attention = dense(128, 64, bias=False) + dense(64, 1, bias=False)
    for num_classes, expected_total in ((4, 443_748), (2, 443_618)):
        head = dense(128, 64) + dense(64, num_classes)
        expected = cnn + frame + rnn + attention + head
        assert expected == expected_total
        variables = abstract_init(ACRNN(num_classes), (1, 300, 40, 3))
        assert count_params(variables["params"]) == expected
        # BN running mean and var: 2 per channel of each of the 4 BNs.
        assert count_params(variables["batch_stats"]) == 2 * 2 * (32 + 64)

    # Bidirectional: two LSTMs; attention and head see 2 * 128 features.
    variables = abstract_init(ACRNN(4, bidirectional=True), (1, 300, 40, 3))
    bi_attention = dense(256, 64, bias=False) + dense(64, 1, bias=False)
    bi_head = dense(256, 64) + dense(64, 4)
    assert count_params(variables["params"]) == (
        cnn + frame + 2 * rnn + bi_attention + bi_head
    )


def test_shapes_and_sown_attention():
    model = ACRNN(NUM_CLASSES)
    x = jax.ShapeDtypeStruct((2, 300, 40, 3), jnp.float32)
    frames = jax.ShapeDtypeStruct((2,), jnp.int32)
    variables = abstract_init(model, (2, 300, 40, 3))
    logits, state = jax.eval_shape(
        lambda v, x, f: model.apply(
            v, x, f, None, train=False, mutable=["intermediates"]
        ),
        variables,
        x,
        frames,
    )
    assert logits.shape == (2, NUM_CLASSES) and logits.dtype == jnp.float32
    (alpha,) = state["intermediates"]["temporal_attention"]
    assert alpha.shape == (2, 150)
    features, mask = jax.eval_shape(
        lambda x: ConvFrontEnd().init_with_output(jax.random.key(0), x, train=False)[0],
        x,
    )
    assert features.shape == (2, 150, 10, 64) and mask.shape == (2, 150)


# ----------------------------------------------------------------- registry


def test_registry_and_create_model():
    cfg = get_config()
    assert create_model(cfg.model, 3) == ACRNN(3)  # Config defaults = class's.
    cfg.model.bidirectional = True
    cfg.model.dtype = "bfloat16"
    cfg.model.conv_features = (16, 32)
    model = create_model(cfg.model, 2)
    assert model.bidirectional and model.dtype == jnp.bfloat16
    assert model.conv_features == (16, 32) and model.num_classes == 2
    # A tiny variant keeps the sizes it binds; other keys come from config.
    cfg.model.name = "_acrnn_tiny"
    tiny = create_model(cfg.model, 2)
    assert tiny.conv_features == (4, 8) and tiny.lstm_features == 8
    assert tiny.bidirectional and tiny.dtype == jnp.bfloat16

    cfg.model.name = "no_such_model"
    with pytest.raises(ValueError, match="model.name") as error:
        create_model(cfg.model, 2)
    for name in MODELS:
        assert name in str(error.value)
    cfg.model.name = "acrnn"
    cfg.model.dtype = "float16"
    with pytest.raises(ValueError, match="model.dtype"):
        create_model(cfg.model, 2)


# ---------------------------------------------------- compiled tiny model


@pytest.fixture(scope="module")
def tiny():
    """Tiny ACRNN, its variables, a batch and the same batch padded by EXTRA."""
    model = MODELS["_acrnn_tiny"](num_classes=NUM_CLASSES)
    rng = np.random.default_rng(0)
    # Frames beyond FRAMES[b] hold junk, not zeros: they must not matter.
    padded = rng.normal(size=(3, TIME + EXTRA, FREQ, CHANNELS)).astype(np.float32)
    inputs = padded[:, :TIME]
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), inputs, FRAMES, train=False)
    )
    variables = numpy_variables(shapes)
    return dict(model=model, variables=variables, inputs=inputs, padded=padded)


@pytest.fixture(scope="module")
def evaluate(tiny):
    model = tiny["model"]

    @jax.jit
    def run(variables, inputs, frames, key):
        gender = jnp.ones(inputs.shape[:1], jnp.int32)  # Accepted, ignored.
        plain = model.apply(
            variables,
            inputs,
            frames=frames,
            gender=gender,
            train=False,
            rngs={"dropout": key},
            mutable=False,
        )
        logits, state = model.apply(
            variables, inputs, frames, train=False, mutable=["intermediates"]
        )
        return plain, logits, state["intermediates"]["temporal_attention"][0]

    return run


@pytest.fixture(scope="module")
def train_step(tiny):
    """jit(value_and_grad) of the cross-entropy in train mode."""
    model = tiny["model"]

    def loss(params, batch_stats, inputs, frames, key):
        logits, updates = model.apply(
            {"params": params, "batch_stats": batch_stats},
            inputs,
            frames,
            train=True,
            rngs={"dropout": key},
            mutable=["batch_stats"],
        )
        labels = jnp.arange(inputs.shape[0]) % NUM_CLASSES
        xent = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return xent.mean(), (logits, updates["batch_stats"])

    return jax.jit(jax.value_and_grad(loss, has_aux=True))


def test_eval_padding_invariance_and_attention(tiny, evaluate):
    variables = tiny["variables"]
    plain, logits, alpha = evaluate(variables, tiny["inputs"], FRAMES, _key(1))
    plain_pad, logits_pad, alpha_pad = evaluate(
        variables, tiny["padded"], FRAMES, _key(2)
    )
    assert logits.shape == (3, NUM_CLASSES) and np.all(np.isfinite(logits))
    np.testing.assert_array_equal(plain, logits)
    np.testing.assert_allclose(logits_pad, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(plain_pad, plain, rtol=1e-5, atol=1e-5)

    # Attention over ceil(frames / 2) pooled frames (>= 1), exactly 0 beyond.
    assert alpha.shape == (3, TIME // 2) and alpha_pad.shape == (3, 10)
    lengths = np.maximum(-(-FRAMES // 2), 1)
    for b, length in enumerate(lengths):
        np.testing.assert_allclose(alpha[b].sum(), 1.0, rtol=1e-6)
        np.testing.assert_array_equal(alpha[b, length:], 0.0)
        np.testing.assert_array_equal(alpha_pad[b, length:], 0.0)
        np.testing.assert_allclose(alpha_pad[b, :length], alpha[b, :length], atol=1e-6)


def test_train_mode_stats_dropout_and_grads(tiny, train_step):
    variables = tiny["variables"]
    params, stats = variables["params"], variables["batch_stats"]
    (loss, (logits, new_stats)), grads = train_step(
        params, stats, tiny["inputs"], FRAMES, _key(3)
    )
    assert np.isfinite(loss)
    for old, new in zip(
        jax.tree_util.tree_leaves(stats), jax.tree_util.tree_leaves(new_stats)
    ):
        assert not np.allclose(old, new)  # Running statistics moved.
    for grad in jax.tree_util.tree_leaves(grads):
        assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0.0

    # Another dropout key changes train-mode logits (eval: see evaluate()).
    (_, (other_logits, _)), _ = train_step(
        params, stats, tiny["inputs"], FRAMES, _key(4)
    )
    assert not np.allclose(other_logits, logits)


def test_eval_ignores_dropout_rng(tiny, evaluate):
    first = evaluate(tiny["variables"], tiny["inputs"], FRAMES, _key(5))[0]
    second = evaluate(tiny["variables"], tiny["inputs"], FRAMES, _key(6))[0]
    np.testing.assert_array_equal(first, second)


def test_bfloat16_compute(tiny, evaluate):
    model = MODELS["_acrnn_tiny"](num_classes=NUM_CLASSES, dtype=jnp.bfloat16)
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), tiny["inputs"], train=False)
    )
    for leaf in jax.tree_util.tree_leaves(shapes):  # Weights stay float32.
        assert leaf.dtype == jnp.float32
    logits = jax.jit(lambda v, x: model.apply(v, x, FRAMES, train=False))(
        tiny["variables"], tiny["inputs"]
    )
    assert logits.dtype == jnp.float32 and logits.shape == (3, NUM_CLASSES)
    assert np.all(np.isfinite(logits))
    reference = evaluate(tiny["variables"], tiny["inputs"], FRAMES, _key(1))[0]
    np.testing.assert_allclose(logits, reference, atol=0.1)
