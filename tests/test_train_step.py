"""Unit tests of the optimizer, loss weighting and the pure train/eval steps."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from jaxpara import sharding, train
from jaxpara import state as state_lib
from tests import fake_models

_Linear = fake_models.Linear


def _train_cfg(**kw):
    c = default.get_config().train
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def test_class_weights_are_n_over_n_k():
    labels = np.array([0, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(
        state_lib.class_weights(labels, 4), [6 / 3, 6 / 1, 6 / 2, 0.0], rtol=1e-6
    )


def test_loss_weights_count_training_segments_not_utterances():
    """Card C3's r_k = N / N_k over what the loss sums over (SPEC Metrics):
    2 class-0 utterances of 3 segments and 1 class-1 utterance of 1 segment
    give N = 7 segments -> [7/6, 7/1] (per utterance it would be [3/2, 3/1])."""
    from jaxpara.data import pipeline

    index = np.array([0, 0, 0, 1, 1, 1, 2], np.int32)
    split = pipeline.SplitData(
        name="train",
        utterance_ids=["a", "b", "c"],
        utterance_labels=np.array([0, 0, 1], np.int32),
        utterance_gender=np.zeros(3, np.int32),
        segments=np.zeros((7, 4, 2, 1), np.float32),
        frames=np.full(7, 4, np.int32),
        utterance_index=index,
        skipped=[],
    )
    np.testing.assert_allclose(train.loss_weights(split, 2, True), [7 / 6, 7 / 1])
    np.testing.assert_array_equal(train.loss_weights(split, 2, False), [1.0, 1.0])


def test_per_step_decay_schedule():
    lr = state_lib.learning_rate_fn(_train_cfg(learning_rate=1e-3, lr_decay=1e-2))
    np.testing.assert_allclose([lr(0), lr(100)], [1e-3, 1e-3 / 2], rtol=1e-6)


@pytest.mark.parametrize(
    "name, reference", [("adam", optax.adam), ("nadam", optax.nadam)]
)
def test_optimizer_matches_optax(name, reference):
    tx = state_lib.make_optimizer(_train_cfg(optimizer=name, learning_rate=0.01))
    ref = reference(0.01)
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    s, r = tx.init(params), ref.init(params)
    p, q = params, params
    for i in range(5):
        g = {"w": jnp.array([0.3, -0.1, 0.2]) * (i + 1)}
        u, s = tx.update(g, s, p)
        v, r = ref.update(g, r, q)
        p, q = optax.apply_updates(p, u), optax.apply_updates(q, v)
    np.testing.assert_allclose(p["w"], q["w"], rtol=1e-6)


def _keras2_nadam_trace(params, grads, lr, decay, b1=0.9, b2=0.999, eps=1e-7):
    """float64 trace of Keras 2's Nadam (tf.keras optimizer_v2 up to TF 2.10,
    schedule_decay `decay`, 0.004 there): m_schedule, g', m', v', m_bar as its
    source names them."""
    p, m, v, m_schedule = np.asarray(params, np.float64), 0.0, 0.0, 1.0
    for t, g in enumerate(grads, start=1):
        cache_t = b1 * (1.0 - 0.5 * 0.96 ** (decay * t))
        cache_t1 = b1 * (1.0 - 0.5 * 0.96 ** (decay * (t + 1)))
        m_schedule_new = m_schedule * cache_t
        m_schedule_next = m_schedule_new * cache_t1
        m_schedule = m_schedule_new
        g_prime = g / (1.0 - m_schedule_new)
        m = b1 * m + (1.0 - b1) * g
        v = b2 * v + (1.0 - b2) * g * g
        m_bar = (1.0 - cache_t) * g_prime + cache_t1 * m / (1.0 - m_schedule_next)
        p = p - lr * m_bar / (np.sqrt(v / (1.0 - b2**t)) + eps)
    return p


def _run_tx(tx, params, grads):
    p, s = {"w": jnp.asarray(params, jnp.float32)}, None
    s = tx.init(p)
    for g in grads:
        u, s = tx.update({"w": jnp.asarray(g, jnp.float32)}, s, p)
        p = optax.apply_updates(p, u)
    return np.asarray(p["w"])


_PARAMS = np.array([1.0, -2.0, 3.0])
_GRADS = [np.array([0.3, -0.1, 0.2]) * (i + 1) * (-1) ** i for i in range(8)]


@pytest.mark.parametrize("decay", [0.004, 0.3])
def test_nadam_keras_is_keras_2_nadam(decay):
    cfg = _train_cfg(
        optimizer="nadam_keras", learning_rate=0.01, nadam_schedule_decay=decay
    )
    ours = _run_tx(state_lib.make_optimizer(cfg), _PARAMS, _GRADS)
    expected = _keras2_nadam_trace(_PARAMS, _GRADS, 0.01, decay)
    np.testing.assert_allclose(ours, expected, rtol=2e-6)
    # Not optax's nadam: Keras' schedule starts the momentum at 0.45 b1.
    plain = _run_tx(optax.nadam(0.01, eps=1e-7), _PARAMS, _GRADS)
    assert np.max(np.abs(ours - plain)) > 1e-3


def test_nadam_keras_schedule_1_is_keras_3_nadam():
    """schedule_decay=1.0 against keras.optimizers.Nadam itself (Keras 3)."""
    keras = pytest.importorskip("keras")
    var = keras.Variable(_PARAMS.astype(np.float32))
    opt = keras.optimizers.Nadam(learning_rate=0.01)
    for g in _GRADS:
        opt.apply_gradients([(keras.ops.convert_to_tensor(g.astype(np.float32)), var)])
    cfg = _train_cfg(
        optimizer="nadam_keras", learning_rate=0.01, nadam_schedule_decay=1.0
    )
    ours = _run_tx(state_lib.make_optimizer(cfg), _PARAMS, _GRADS)
    np.testing.assert_allclose(ours, np.asarray(var.numpy()), rtol=2e-6)


def test_unknown_optimizer_names_the_key():
    with pytest.raises(ValueError, match="train.optimizer"):
        state_lib.make_optimizer(_train_cfg(optimizer="sgd"))


def test_gradient_clipping_bounds_the_update():
    tx = state_lib.make_optimizer(_train_cfg(grad_clip=0.5, optimizer="adam"))
    clip = tx.update  # Clipping then Adam: the first Adam step is lr * sign.
    params = {"w": jnp.zeros(2)}
    u, _ = clip({"w": jnp.array([30.0, 40.0])}, tx.init(params), params)
    np.testing.assert_allclose(np.abs(u["w"]), 1e-3, rtol=1e-3)


def _toy(batch_size=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, batch_size).astype(np.int32)
    inputs = rng.standard_normal((batch_size, 4, 2, 3)).astype(np.float32)
    inputs[np.arange(batch_size), :, :, labels] += 2.0  # Class = hot channel.
    return {
        "inputs": inputs,
        "label": labels,
        "frames": np.full(batch_size, 4, np.int32),
        "gender": np.zeros(batch_size, np.int32),
        "mask": np.ones(batch_size, np.float32),
    }


def test_train_step_learns_a_separable_problem():
    model = _Linear()
    tx = state_lib.make_optimizer(_train_cfg(learning_rate=0.05))
    mesh = sharding.make_mesh(1)
    state = state_lib.create_state(model, tx, (4, 2, 3), jax.random.key(0), mesh)
    step = jax.jit(
        functools.partial(train.train_step, model=model, tx=tx, weights=jnp.ones(3))
    )
    batch = _toy()
    losses = []
    for _ in range(60):
        state, m = step(state, batch, jax.random.key(1))
        losses.append(float(m["loss"]))
    assert int(state.step) == 60
    assert losses[-1] < 0.5 * losses[0]
    assert float(m["grad_norm"]) > 0 and float(m["param_norm"]) > 0
    posteriors = np.asarray(
        train.eval_step(state_lib.variables(state), batch, model=model)
    )
    np.testing.assert_allclose(posteriors.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(posteriors.argmax(-1), batch["label"])


def test_masked_rows_change_neither_loss_nor_update():
    model = _Linear(dropout=0.0)
    tx = state_lib.make_optimizer(_train_cfg(class_weights=True))
    state = state_lib.create_state(
        model, tx, (4, 2, 3), jax.random.key(0), sharding.make_mesh(1)
    )
    step = functools.partial(
        train.train_step, model=model, tx=tx, weights=jnp.array([1.0, 2.0, 3.0])
    )
    batch = _toy(8)
    padded = {k: np.concatenate([v, v[:8]]) for k, v in batch.items()}
    padded["mask"][8:] = 0.0
    padded["label"][8:] = 2
    padded["inputs"][8:] = 1e3
    s1, m1 = jax.jit(step)(state, batch, jax.random.key(1))
    s2, m2 = jax.jit(step)(state, padded, jax.random.key(1))
    assert float(m1["loss"]) == pytest.approx(float(m2["loss"]), rel=1e-6)
    for a, b in zip(
        jax.tree_util.tree_leaves(s1.params), jax.tree_util.tree_leaves(s2.params)
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # Class weights: loss = sum_i w[y_i] ce_i / n.
    logits = model.apply({"params": state.params}, batch["inputs"], train=False)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    expected = float(jnp.sum(ce * jnp.array([1.0, 2.0, 3.0])[batch["label"]]) / 8)
    assert float(m1["loss"]) == pytest.approx(expected, rel=1e-5)


def test_dropout_key_depends_on_step():
    model = _Linear()
    tx = state_lib.make_optimizer(_train_cfg(learning_rate=0.0))
    state = state_lib.create_state(
        model, tx, (4, 2, 3), jax.random.key(0), sharding.make_mesh(1)
    )
    step = jax.jit(
        functools.partial(train.train_step, model=model, tx=tx, weights=jnp.ones(3))
    )
    batch = _toy()
    s1, m1 = step(state, batch, jax.random.key(5))
    _, m1b = step(state, batch, jax.random.key(5))
    _, m2 = step(s1, batch, jax.random.key(5))  # Same params (lr 0), step + 1.
    assert float(m1["loss"]) == float(m1b["loss"])
    assert float(m1["loss"]) != float(m2["loss"])


class _Wide(nn.Module):
    """Large enough kernels (>= 1024 elements per shard) to be model-sharded."""

    @nn.compact
    def __call__(self, inputs, frames=None, gender=None, *, train: bool):
        x = inputs.reshape(inputs.shape[0], -1)  # [B, 24]
        x = nn.relu(nn.Dense(256)(x))
        x = nn.relu(nn.Dense(128)(x))
        return nn.Dense(3)(x)


def test_parameter_sharding_axis_matches_replicated_training():
    """mesh.model = 2 shards the big kernels over a 'model' axis; the training
    trajectory equals plain data parallelism on the same 8 devices."""
    model = _Wide()
    tx = state_lib.make_optimizer(_train_cfg(learning_rate=0.01))
    batch = _toy()
    params = {}
    for data, model_axis in ((8, 1), (4, 2)):
        mesh = sharding.make_mesh(data, model_axis)
        assert dict(mesh.shape) == {"data": data, "model": model_axis}
        state = state_lib.create_state(model, tx, (4, 2, 3), jax.random.key(0), mesh)
        state_sh = sharding.state_shardings(state, mesh)
        state = jax.device_put(state, state_sh)
        kernel_sh = state_sh.params["Dense_1"]["kernel"]
        if model_axis == 2:  # [256, 128]: the larger dimension is split.
            assert kernel_sh.spec == jax.sharding.PartitionSpec("model", None)
            assert state.params["Dense_1"]["kernel"].addressable_shards[
                0
            ].data.shape == (128, 128)
            # Small leaves (biases, the 3-class head) stay replicated.
            assert (
                state_sh.params["Dense_2"]["kernel"].spec
                == jax.sharding.PartitionSpec()
            )
        else:
            assert kernel_sh.spec == jax.sharding.PartitionSpec()
        step = jax.jit(
            functools.partial(
                train.train_step, model=model, tx=tx, weights=jnp.ones(3)
            ),
            in_shardings=(state_sh, sharding.data_sharded(mesh), None),
            out_shardings=(state_sh, None),
        )
        global_batch = sharding.to_global(batch, mesh)
        for _ in range(5):
            state, _ = step(state, global_batch, jax.random.key(1))
        params[model_axis] = jax.device_get(state.params)
    for a, b in zip(
        jax.tree_util.tree_leaves(params[1]), jax.tree_util.tree_leaves(params[2])
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_mesh_rejects_a_model_axis_that_does_not_divide():
    with pytest.raises(ValueError, match="mesh.model=3"):
        sharding.make_mesh(-1, 3)
