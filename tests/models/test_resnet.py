"""ResNet-18 and its attention blocks (card C2, seed 001): sizes, equations, steps.

Parameter counts use `jax.eval_shape` (no compile) against closed-form counts;
the attention modules are checked against a float64 NumPy computation of seed
001 eq. 1-7; every attention variant of the tiny ResNet takes real optimizer
steps through the engine's `train_step` (LLVM optimisation off, NumPy-drawn
variables, so nothing but the step is compiled).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.default import get_config
from jaxpara import state as state_lib
from jaxpara import train
from jaxpara.models import MODELS, count_params, create_model
from jaxpara.models.resnet import (
    ATTENTION_VARIANTS,
    ComponentAttention,
    ResidualAttention,
    ResNet,
    SpatialAttention,
    SqueezeExcitation,
)
from tests.model_variables import abstract_init, numpy_variables

WIDTHS = (64, 128, 256, 512)
C2_INPUT = (1, 63, 201, 1)  # 2.5 s of 4 kHz log-STFT: 63 frames x 201 bins.


# ------------------------------------------------------------ closed forms


def resnet18_params(in_channels, num_classes, widths=WIDTHS, stem_kernel=7):
    """Standard ResNet-18 count: bias-free convs, BN scale + bias, linear head."""
    total = stem_kernel**2 * in_channels * widths[0] + 2 * widths[0]
    c_in = widths[0]
    for c in widths:
        for _ in range(2):
            total += 9 * c_in * c + 2 * c + 9 * c * c + 2 * c  # conv-BN x 2
            if c_in != c:  # first block of stages 2-4: 1x1 / 2 shortcut + BN
                total += c_in * c + 2 * c
            c_in = c
    return total + widths[-1] * num_classes + num_classes


def attention_params(kind, channels, reduction=16):
    """Extra parameters of one block's attention (dense / 1x1 conv, biases)."""
    hidden = max(1, channels // reduction)
    se = channels * hidden + hidden + hidden * channels + channels
    spatial = channels + 1
    component = channels * channels + channels
    return {
        "none": 0,
        "se": se,
        "spatial": spatial,
        "se_spatial": se + spatial,
        "component": component,
    }[kind]


def test_standard_resnet18_counts():
    # torchvision.models.resnet18(): 11,689,512 parameters (3 channels, 1000
    # classes); its BN running statistics are buffers, here 'batch_stats'.
    assert resnet18_params(3, 1000) == 11_689_512
    variables = abstract_init(ResNet(1000), (1, 224, 224, 3))
    assert count_params(variables["params"]) == 11_689_512
    bn_channels = 64 + 4 * sum(WIDTHS) + sum(WIDTHS[1:])  # + shortcut BNs
    assert count_params(variables["batch_stats"]) == 2 * bn_channels == 9_600
    # Card C2: one log-STFT channel, 4 ICBHI classes.
    assert resnet18_params(1, 4) == 11_172_292
    c2 = abstract_init(ResNet(4), C2_INPUT)
    assert count_params(c2["params"]) == 11_172_292
    small_stem = abstract_init(ResNet(4, resnet_stem="3x3"), C2_INPUT)
    assert count_params(small_stem["params"]) == resnet18_params(1, 4, stem_kernel=3)


@pytest.mark.parametrize("kind", ATTENTION_VARIANTS)
def test_attention_variants_add_exactly_their_parameters(kind):
    extra = sum(2 * attention_params(kind, c) for c in WIDTHS)  # 2 blocks/stage
    expected_extra = {
        "none": 0,
        "se": 89_080,
        "spatial": 1_928,
        "se_spatial": 91_008,
        "component": 698_240,
    }[kind]
    assert extra == expected_extra
    variables = abstract_init(ResNet(4, attention=kind), C2_INPUT)
    assert count_params(variables["params"]) == 11_172_292 + extra
    # Attention only in stages 3 and 4 (the per-stage ablation).
    late = abstract_init(
        ResNet(4, attention=kind, resnet_attention_stages=(3, 4)), C2_INPUT
    )
    assert count_params(late["params"]) == 11_172_292 + sum(
        2 * attention_params(kind, c) for c in WIDTHS[2:]
    )
    assert ("attention" in late["params"]["stage3_block1"]) == (kind != "none")
    assert "attention" not in late["params"]["stage2_block0"]
    # SE reduction ratio from the model (config.model.resnet.se_reduction).
    r8 = abstract_init(ResNet(4, attention=kind, resnet_se_reduction=8), C2_INPUT)
    assert count_params(r8["params"]) == 11_172_292 + sum(
        2 * attention_params(kind, c, reduction=8) for c in WIDTHS
    )


def test_attention_maps_are_sown_per_block():
    model = ResNet(4, attention="se_spatial")
    variables = abstract_init(model, C2_INPUT)
    logits, state = jax.eval_shape(
        lambda v: model.apply(
            v, jnp.zeros((2, *C2_INPUT[1:])), train=False, mutable=["intermediates"]
        ),
        variables,
    )
    assert logits.shape == (2, 4) and logits.dtype == jnp.float32
    maps = state["intermediates"]
    # 63 x 201 -> stem /2 -> 32 x 101 -> pool /2 -> 16 x 51 -> 8 x 26 -> ...
    sizes = {1: (16, 51), 2: (8, 26), 3: (4, 13), 4: (2, 7)}
    assert len(maps) == 8
    for stage, channels in enumerate(WIDTHS, start=1):
        for block in range(2):
            att = maps[f"stage{stage}_block{block}"]["attention"]
            assert att["se_attention"][0].shape == (2, channels)
            assert att["spatial_attention"][0].shape == (2, *sizes[stage])
    component = ResNet(4, attention="component")
    _, state = jax.eval_shape(
        lambda v: component.apply(
            v, jnp.zeros((2, *C2_INPUT[1:])), train=False, mutable=["intermediates"]
        ),
        abstract_init(component, C2_INPUT),
    )
    att = state["intermediates"]["stage4_block1"]["attention"]
    assert att["component_attention"][0].shape == (2, 2, 7, 512)


# --------------------------------------------------- eq. 1-7 against NumPy


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _reference(kind, params, features):
    """Seed 001 eq. 1-7 in float64: (output, {map name: map})."""
    f = np.asarray(features, np.float64)
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    maps, weight = {}, 1.0
    if kind in ("se", "se_spatial"):  # eq. 2
        se = p["se"]
        squeezed = f.mean(axis=(1, 2))  # avg-pool over time and frequency
        hidden = np.maximum(
            squeezed @ se["squeeze"]["kernel"] + se["squeeze"]["bias"], 0
        )
        a_se = _sigmoid(hidden @ se["excite"]["kernel"] + se["excite"]["bias"])
        maps["se_attention"] = a_se
        weight = weight * a_se[:, None, None, :]
    if kind in ("spatial", "se_spatial"):  # eq. 4
        conv = p["spatial"]["conv"]
        a_sp = _sigmoid(
            np.einsum("btfc,c->btf", f, conv["kernel"][0, 0, :, 0]) + conv["bias"][0]
        )
        maps["spatial_attention"] = a_sp
        weight = weight * a_sp[..., None]
    if kind == "component":  # eq. 7
        conv = p["component"]["conv"]
        a_co = _sigmoid(
            np.einsum("btfc,cd->btfd", f, conv["kernel"][0, 0]) + conv["bias"]
        )
        maps["component_attention"] = a_co
        weight = a_co
    return weight * f, maps  # eq. 1, 3, 5, 6


@pytest.mark.parametrize("kind", ATTENTION_VARIANTS[1:])
def test_attention_equations_match_numpy(kind):
    rng = np.random.default_rng(7)
    features = rng.normal(size=(2, 5, 7, 16)).astype(np.float32)
    module = ResidualAttention(kind, reduction=4)
    shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), features))
    params = numpy_variables(shapes["params"], seed=3)
    out, state = module.apply({"params": params}, features, mutable=["intermediates"])
    expected, expected_maps = _reference(kind, params, features)
    assert out.shape == features.shape and out.dtype == jnp.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    sown = {k: v[0] for k, v in state["intermediates"].items()}
    assert set(sown) == set(expected_maps)
    for name, value in expected_maps.items():
        np.testing.assert_allclose(sown[name], value, rtol=1e-5, atol=1e-6)
        assert np.all((value > 0) & (value < 1))
    if kind in ("se", "se_spatial"):  # C / r hidden units
        assert params["se"]["squeeze"]["kernel"].shape == (16, 4)


def test_attention_modules_return_their_maps():
    x = jnp.ones((1, 3, 4, 8))

    def shapes(module):
        v = jax.eval_shape(lambda: module.init(jax.random.key(0), x))
        return v["params"], jax.eval_shape(lambda w: module.apply(w, x), v).shape

    params, out = shapes(SqueezeExcitation(reduction=16))
    assert params["squeeze"]["kernel"].shape == (8, 1)  # C // r = 0 -> 1 unit
    assert out == (1, 8)
    assert shapes(SpatialAttention())[1] == (1, 3, 4)
    assert shapes(ComponentAttention())[1] == (1, 3, 4, 8)


# ----------------------------------------------------------------- registry


def test_create_model_reads_config_and_validates():
    cfg = get_config()
    cfg.model.name = "resnet18"
    cfg.model.attention = "none"
    assert create_model(cfg.model, 4) == ResNet(4)  # Config defaults = class's.
    cfg.model.attention = "component"
    cfg.model.resnet.stage_features = (8, 16, 32, 64)
    cfg.model.resnet.blocks_per_stage = (1, 1, 1, 1)
    cfg.model.resnet.stem = "3x3"
    cfg.model.resnet.se_reduction = 4
    cfg.model.resnet.attention_stages = (2,)
    model = create_model(cfg.model, 4)
    assert model == ResNet(
        4,
        attention="component",
        resnet_stage_features=(8, 16, 32, 64),
        resnet_blocks_per_stage=(1, 1, 1, 1),
        resnet_stem="3x3",
        resnet_se_reduction=4,
        resnet_attention_stages=(2,),
    )
    cfg.model.name = "_resnet18_tiny"  # Bound widths win over the config.
    tiny = create_model(cfg.model, 4)
    assert tiny.resnet_stage_features == (4, 8, 8, 16)
    assert tiny.attention == "component" and tiny.resnet_stem == "3x3"
    assert {"resnet18", "_resnet18_tiny"} <= set(MODELS)

    for key, value in [
        ("attention", "cbam"),
        ("resnet.stem", "5x5"),
        ("resnet.attention_stages", (0, 5)),
        ("resnet.blocks_per_stage", (2, 2)),
        ("resnet.se_reduction", 0),
    ]:
        bad = get_config()
        bad.model.name = "resnet18"
        bad.model.attention = "se"
        section = bad.model.resnet if key.startswith("resnet.") else bad.model
        setattr(section, key.split(".")[-1], value)
        with pytest.raises(ValueError, match=f"model.{key}"):
            abstract_init(create_model(bad.model, 4), C2_INPUT)


# ------------------------------------------- every variant takes train steps


@pytest.mark.parametrize("kind", ["none", "se", "spatial", "component"])
def test_tiny_variant_trains(kind):
    """Three engine train steps on one batch: loss falls, everything moves.

    One BasicBlock per stage (every block runs the same code, so each stage
    still has an attention block) keeps the compile cheap; the fifth variant,
    se_spatial, trains end to end with the full `_resnet18_tiny` on the
    synthetic respiratory corpus in tests/test_icbhi_config.py.
    """
    model = MODELS["_resnet18_tiny"](
        num_classes=4, attention=kind, resnet_blocks_per_stage=(1, 1, 1, 1)
    )
    rng = np.random.default_rng(0)
    batch = {
        "inputs": rng.normal(size=(8, 63, 201, 1)).astype(np.float32),
        "label": np.arange(8, dtype=np.int32) % 4,
        "frames": np.full(8, 63, np.int32),
        "gender": np.zeros(8, np.int32),
        "mask": np.ones(8, np.float32),
    }
    shapes = abstract_init(model, (1, 63, 201, 1))
    variables = numpy_variables(shapes, seed=1)
    tx = state_lib.make_optimizer(get_config().train)
    state = state_lib.TrainState(
        step=jnp.zeros((), jnp.int32),
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        opt_state=tx.init(variables["params"]),
        lr_scale=jnp.ones((), jnp.float32),
    )
    step = jax.jit(
        functools.partial(
            train.train_step, model=model, tx=tx, weights=jnp.ones(4, jnp.float32)
        )
    )
    losses = []
    new = state
    for _ in range(3):
        new, metrics = step(new, batch, jax.random.key(0))
        losses.append(float(metrics["loss"]))
    assert int(new.step) == 3 and np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    # Every parameter (attention included) and every BN statistic moved.
    for tree in ("params", "batch_stats"):
        moved = jax.tree_util.tree_map(
            lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
            getattr(new, tree),
            getattr(state, tree),
        )
        assert all(jax.tree_util.tree_leaves(moved)), tree
    has_attention = "attention" in new.params["stage1_block0"]
    assert has_attention == (kind != "none")
