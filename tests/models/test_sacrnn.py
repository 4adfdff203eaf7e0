"""SACRNN and the SACRNN + ACRNN fusion (card C1): sizes, registry, padding, fusion.

Shape and size questions use `jax.eval_shape` (no compile); the compiled tests
use the tiny registry variants with NumPy-drawn variables, LLVM optimisation
off and 'rbg' keys, and share one compiled SACRNN evaluation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.default import get_config
from jaxpara.models import MODELS, count_params, create_model
from jaxpara.models.crnn import ACRNN
from jaxpara.models.sacrnn import SACRNN, SACRNNACRNNFusion, fuse_posteriors
from tests.model_variables import abstract_init, numpy_variables

TIME, EXTRA, FREQ, CHANNELS = 12, 8, 8, 3
FRAMES = np.array([12, 7, 0], np.int32)  # Full, padded inside, empty.
NUM_CLASSES = 3
TINY_ITERATIONS = 2  # convlstm_iterations of the tiny variants.


def _key(seed):
    return jax.random.key(seed, impl="rbg")


# ------------------------------------------------------------ static sizes


def _conv(c_in, c_out, k=3, bias=False):
    return k * k * c_in * c_out + (c_out if bias else 0)


def _dense(d_in, d_out, bias=True):
    return d_in * d_out + (d_out if bias else 0)


def _bn(c):  # scale + bias ('batch_stats' mean/var are not params).
    return 2 * c


def _same_tree(x, y):
    return jax.tree_util.tree_structure(x) == jax.tree_util.tree_structure(y)


def test_default_param_counts():
    """Hand counts for input [batch, 300, 40, 3], K = 2 (card C1 sizes)."""
    cnn = _conv(3, 32) + _bn(32) + _conv(32, 32) + _bn(32)
    cnn += _conv(32, 64) + _bn(64) + _conv(64, 64) + _bn(64)
    c, f, a = 64, 128, 128  # ConvLSTM input, hidden, attention widths.
    # W_a (+ b_a), U_a, R_a (1x1); gates W (+ b), U for [i, f, o, g].
    attention = _conv(c, a, bias=True) + _conv(f, a) + _conv(a, 1, k=1)
    gates = _conv(c, 4 * f, bias=True) + _conv(f, 4 * f)
    head = _dense(f, 64) + _dense(64, 2)
    lstm = 4 * 128 * (256 + 128) + 4 * 128
    acrnn_after_cnn = (
        _dense(10 * 64, 256)  # frame
        + lstm
        + _dense(128, 64, bias=False)
        + _dense(64, 1, bias=False)  # temporal attention, no bias (card C1)
        + _dense(128, 64)
        + _dense(64, 2)  # head, logits
    )
    assert (cnn, attention, gates) == (65_760, 221_440, 885_248)
    assert cnn + attention + gates + head == 1_180_834
    assert cnn + attention + gates + head + acrnn_after_cnn == 1_558_692

    shape = (1, 300, 40, 3)
    sacrnn = abstract_init(SACRNN(2), shape)
    assert count_params(sacrnn["params"]) == cnn + attention + gates + head
    plain = abstract_init(SACRNN(2, attention="none"), shape)
    assert count_params(plain["params"]) == cnn + gates + head
    fusion = abstract_init(SACRNNACRNNFusion(2), shape)
    assert count_params(fusion["params"]) == (
        cnn + attention + gates + head + acrnn_after_cnn
    )
    # The fusion is SACRNN and ACRNN with one shared 'cnn'.
    acrnn = abstract_init(ACRNN(2), shape)
    assert count_params(acrnn["params"]) == cnn + acrnn_after_cnn
    assert _same_tree(fusion["params"]["cnn"], sacrnn["params"]["cnn"])
    assert _same_tree(
        fusion["params"]["sacrnn"],
        {k: v for k, v in sacrnn["params"].items() if k != "cnn"},
    )
    assert _same_tree(
        fusion["params"]["acrnn"],
        {k: v for k, v in acrnn["params"].items() if k != "cnn"},
    )
    assert count_params(fusion["batch_stats"]) == 2 * 2 * (32 + 64)


def test_sown_spatial_attention_shape():
    model = SACRNN(2)
    variables = abstract_init(model, (2, 300, 40, 3))
    logits, state = jax.eval_shape(
        lambda v: model.apply(
            v, jnp.zeros((2, 300, 40, 3)), train=False, mutable=["intermediates"]
        ),
        variables,
    )
    assert logits.shape == (2, 2) and logits.dtype == jnp.float32
    (maps,) = state["intermediates"]["convlstm"]["spatial_attention"]
    assert maps.shape == (2, 4, 150, 10)  # [B, T_s, T/2, F/4]


# ----------------------------------------------------------------- registry


def test_create_model_maps_nested_config_and_validates():
    cfg = get_config()
    cfg.model.name = "sacrnn"
    assert create_model(cfg.model, 2) == SACRNN(2)  # Config defaults = class's.
    cfg.model.convlstm.features = 32
    cfg.model.convlstm.iterations = 7
    cfg.model.convlstm.kernel_size = 5
    cfg.model.attention = "none"
    model = create_model(cfg.model, 2)
    assert (model.convlstm_features, model.convlstm_iterations) == (32, 7)
    assert model.convlstm_kernel_size == 5 and model.attention == "none"

    cfg.model.name = "sacrnn_acrnn_fusion"
    cfg.model.fusion_loss = "fused"
    cfg.model.lstm_features = 16
    fusion = create_model(cfg.model, 2)
    assert fusion.fusion_loss == "fused" and fusion.convlstm_iterations == 7
    assert fusion.lstm_features == 16 and fusion.attention == "none"
    cfg.model.name = "_fusion_tiny"  # Bound sizes win over the config.
    tiny = create_model(cfg.model, 2)
    assert tiny.convlstm_iterations == TINY_ITERATIONS and tiny.lstm_features == 8
    assert tiny.convlstm_kernel_size == 5 and tiny.fusion_loss == "fused"
    assert {"sacrnn", "sacrnn_acrnn_fusion", "_sacrnn_tiny"} <= set(MODELS)

    cfg.model.fusion_loss = "branches"
    with pytest.raises(ValueError, match="model.fusion_loss"):
        create_model(cfg.model, 2)
    cfg.model.fusion_loss = "fused"
    for name in ("sacrnn", "sacrnn_acrnn_fusion"):
        cfg.model.name = name
        cfg.model.attention = "se"
        with pytest.raises(ValueError, match="model.attention"):
            create_model(cfg.model, 2)
    cfg.model.name = "acrnn"  # ACRNN has no attention variants: key ignored.
    assert create_model(cfg.model, 2) == ACRNN(2, lstm_features=16)


# ------------------------------------------------------- compiled tiny models


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    # Frames beyond FRAMES[b] hold junk, not zeros: they must not matter.
    padded = rng.normal(size=(3, TIME + EXTRA, FREQ, CHANNELS)).astype(np.float32)
    return dict(inputs=padded[:, :TIME], padded=padded)


@pytest.fixture(scope="module")
def sacrnn_eval():
    """Compiled eval-mode tiny SACRNN: (logits, spatial attention maps)."""
    model = MODELS["_sacrnn_tiny"](num_classes=NUM_CLASSES)

    @jax.jit
    def run(variables, inputs, frames):
        logits, state = model.apply(
            variables, inputs, frames, train=False, mutable=["intermediates"]
        )
        return logits, state["intermediates"]["convlstm"]["spatial_attention"][0]

    return run


@pytest.fixture(scope="module")
def fusion(data):
    """Tiny fusion model ('fused_and_branches'), NumPy variables, eval outputs."""
    model = MODELS["_fusion_tiny"](num_classes=NUM_CLASSES)
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), data["inputs"], FRAMES, train=False)
    )
    variables = numpy_variables(shapes, seed=1)
    apply = jax.jit(lambda v, x, f: model.apply(v, x, f, train=False))
    return dict(
        model=model,
        variables=variables,
        outputs=apply(variables, data["inputs"], FRAMES),
    )


def test_sacrnn_eval_padding_invariance_and_maps(data, sacrnn_eval):
    model = MODELS["_sacrnn_tiny"](num_classes=NUM_CLASSES)
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), data["inputs"], FRAMES, train=False)
    )
    variables = numpy_variables(shapes)
    logits, maps = sacrnn_eval(variables, data["inputs"], FRAMES)
    logits_pad, maps_pad = sacrnn_eval(variables, data["padded"], FRAMES)
    assert logits.shape == (3, NUM_CLASSES) and np.all(np.isfinite(logits))
    np.testing.assert_allclose(logits_pad, logits, rtol=1e-5, atol=1e-5)

    # [B, T_s, T', F']; valid rows ceil(frames / 2) (>= 1), exactly 0 beyond.
    assert maps.shape == (3, TINY_ITERATIONS, TIME // 2, FREQ // 4)
    assert maps_pad.shape == (3, TINY_ITERATIONS, (TIME + EXTRA) // 2, FREQ // 4)
    for b, rows in enumerate(np.maximum(-(-FRAMES // 2), 1)):
        np.testing.assert_allclose(maps[b, :, :rows].sum((1, 2)), 1.0, rtol=1e-6)
        np.testing.assert_array_equal(maps_pad[b, :, rows:], 0.0)
        np.testing.assert_allclose(maps_pad[b, :, :rows], maps[b, :, :rows], atol=1e-6)


def test_fused_posterior_is_mean_of_branch_posteriors(fusion):
    outputs = fusion["outputs"]
    assert set(outputs) == {"logits", "aux_logits", "branches"}
    sacrnn_logits, acrnn_logits = outputs["aux_logits"]
    # (A jitted dict comes back with sorted keys: order is `branch_names`.)
    assert set(outputs["branches"]) == {"sacrnn", "acrnn"}
    np.testing.assert_array_equal(outputs["branches"]["sacrnn"], sacrnn_logits)
    assert outputs["logits"].shape == sacrnn_logits.shape == (3, NUM_CLASSES)
    mean = (jax.nn.softmax(sacrnn_logits) + jax.nn.softmax(acrnn_logits)) / 2
    np.testing.assert_allclose(jax.nn.softmax(outputs["logits"]), mean, atol=1e-6)
    np.testing.assert_allclose(np.exp(outputs["logits"]), mean, atol=1e-6)
    assert not np.allclose(sacrnn_logits, acrnn_logits)
    # fuse_posteriors is stable for large logits.
    big = fuse_posteriors(jnp.array([[1e4, 0.0]]), jnp.array([[0.0, 1e4]]))
    np.testing.assert_allclose(jnp.exp(big), [[0.5, 0.5]], atol=1e-6)


def test_fusion_branches_are_sacrnn_and_acrnn_on_one_cnn(data, fusion, sacrnn_eval):
    variables, (sacrnn_logits, acrnn_logits) = (
        fusion["variables"],
        fusion["outputs"]["aux_logits"],
    )
    params, stats = variables["params"], variables["batch_stats"]
    alone = {
        "params": {"cnn": params["cnn"], **params["sacrnn"]},
        "batch_stats": stats,
    }
    logits, _ = sacrnn_eval(alone, data["inputs"], FRAMES)
    np.testing.assert_allclose(logits, sacrnn_logits, rtol=1e-5, atol=1e-6)
    acrnn = MODELS["_acrnn_tiny"](num_classes=NUM_CLASSES)
    alone = {"params": {"cnn": params["cnn"], **params["acrnn"]}, "batch_stats": stats}
    logits = jax.jit(lambda v, x, f: acrnn.apply(v, x, f, train=False))(
        alone, data["inputs"], FRAMES
    )
    np.testing.assert_allclose(logits, acrnn_logits, rtol=1e-5, atol=1e-6)

    # fusion_loss='fused' gives the same fused logits and trains no branch head.
    fused_only = fusion["model"].clone(fusion_loss="fused")
    out = jax.jit(lambda v, x, f: fused_only.apply(v, x, f, train=False))(
        variables, data["inputs"], FRAMES
    )
    assert out["aux_logits"] == ()
    np.testing.assert_allclose(out["logits"], fusion["outputs"]["logits"], atol=1e-6)


def test_fusion_train_mode_grads_reach_every_parameter(data, fusion):
    model, variables = fusion["model"], fusion["variables"]
    labels = jnp.arange(3) % NUM_CLASSES

    def loss(params, key):
        outputs, updates = model.apply(
            {"params": params, "batch_stats": variables["batch_stats"]},
            data["inputs"],
            FRAMES,
            train=True,
            rngs={"dropout": key},
            mutable=["batch_stats"],
        )
        total = 0.0
        for logits in (outputs["logits"], *outputs["aux_logits"]):
            total += -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(3), labels])
        return total

    value, grads = jax.jit(jax.value_and_grad(loss))(variables["params"], _key(3))
    assert np.isfinite(value)
    for path, grad in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(grad)), jax.tree_util.keystr(path)
        assert np.abs(grad).sum() > 0.0, jax.tree_util.keystr(path)


def test_fusion_reports_both_branches_and_fuses_their_posteriors():
    """The fusion's output carries each branch's logits (card C1 Table 3 from
    one run); the fused logits are log of the mean branch posterior, in both
    loss modes; 'fused' trains no auxiliary head."""
    from jaxpara import models

    x = jax.random.normal(jax.random.key(0), (2, 40, 16, 3))
    for loss, num_aux in (("fused_and_branches", 2), ("fused", 0)):
        model = SACRNNACRNNFusion(
            2,
            conv_features=(4, 8),
            convlstm_features=4,
            frame_features=8,
            lstm_features=4,
            attention_features=4,
            head_features=4,
            fusion_loss=loss,
        )
        variables = model.init(jax.random.key(1), x, train=False)
        out = model.apply(variables, x, train=False)
        logits, aux = models.split_outputs(out)
        assert len(aux) == num_aux
        branches = models.branch_outputs(out)
        assert models.branch_names(model) == ("sacrnn", "acrnn")
        assert set(branches) == {"sacrnn", "acrnn"}
        mean = (
            jax.nn.softmax(branches["sacrnn"]) + jax.nn.softmax(branches["acrnn"])
        ) / 2
        np.testing.assert_allclose(jax.nn.softmax(logits), mean, rtol=1e-5, atol=1e-6)
    assert models.branch_names(SACRNN(2)) == ()
