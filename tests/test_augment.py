"""Training-step augmentation (`jaxpara.augment`) and the regularisation keys."""

import dataclasses
import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from jaxpara import augment, protocol, sharding, train
from jaxpara import state as state_lib
from jaxpara.audio import features
from jaxpara.audio.stats import NormStats
from jaxpara.data import pipeline
from jaxpara.errors import ConfigError
from tests import fake_models

ALL_ON = augment.Augment(
    time_masks=2,
    time_mask_frames=5,
    freq_masks=2,
    freq_mask_bins=3,
    mixup_alpha=0.4,
    noise=True,
    noise_snr_min=5.0,
    noise_snr_max=20.0,
    gain_db=6.0,
    gain_per_db=np.full((8, 3), 0.1, np.float32),
)


def _batch(b=6, t=20, f=8, c=3, seed=0, frames=None):
    """A batch whose valid frames are all non-zero; padding frames are 0."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(1, t + 1, b) if frames is None else np.asarray(frames)
    x = rng.standard_normal((b, t, f, c)).astype(np.float32) + 3.0
    x[np.arange(t)[None, :] >= frames[:, None]] = 0.0
    return {
        "inputs": jnp.asarray(x),
        "frames": jnp.asarray(frames, jnp.int32),
        "label": jnp.asarray(rng.integers(0, 3, b), jnp.int32),
        "gender": jnp.asarray(rng.integers(0, 2, b), jnp.int32),
        "mask": jnp.ones(b, jnp.float32),
    }


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a
    )


# ------------------------------------------------------------------- masks
def test_mask_widths_within_bounds_and_inside_the_valid_frames():
    lengths = jnp.asarray([0, 1, 3, 7, 20, 50] * 20, jnp.int32)
    starts, widths = augment.mask_spans(jax.random.key(0), lengths, 3, 7)
    starts, widths, n = np.asarray(starts), np.asarray(widths), np.asarray(lengths)
    assert starts.shape == widths.shape == (120, 3)
    assert (widths >= 0).all() and (widths <= np.minimum(7, n)[:, None]).all()
    assert (starts >= 0).all() and (starts + widths <= n[:, None]).all()
    assert widths.max() == 7 and (widths[n >= 7] == 0).any()  # Full range drawn.

    batch = _batch(b=64, t=30, frames=np.arange(64) % 31)
    aug = augment.Augment(time_masks=2, time_mask_frames=6)
    out = np.asarray(augment.apply(aug, batch, jax.random.key(1))["inputs"])
    x = np.asarray(batch["inputs"])
    zeroed = (out == 0) & (x != 0)  # [B, T, F, C]
    frames = np.asarray(batch["frames"])
    t = np.arange(30)[None, :]
    assert zeroed.any()
    assert not (zeroed.any(axis=(2, 3)) & (t >= frames[:, None])).any()
    np.testing.assert_array_equal(out[out != 0], x[out != 0])  # Rest untouched.
    per_frame = zeroed.all(axis=(2, 3))  # A time mask covers every bin/channel.
    np.testing.assert_array_equal(per_frame, zeroed.any(axis=(2, 3)))
    assert (per_frame.sum(1) <= 2 * 6).all()

    aug = augment.Augment(freq_masks=2, freq_mask_bins=3)
    out = np.asarray(augment.apply(aug, batch, jax.random.key(2))["inputs"])
    zeroed = (out == 0) & (x != 0)
    per_bin = zeroed.any(axis=(1, 3))  # [B, F]
    assert per_bin.any() and (per_bin.sum(1) <= 2 * 3).all()
    assert not (zeroed.any(axis=(2, 3)) & (t >= frames[:, None])).any()
    valid = (t < frames[:, None])[..., None, None]
    np.testing.assert_array_equal(  # All valid frames and channels of a bin.
        zeroed, per_bin[:, None, :, None] & valid & np.ones_like(zeroed)
    )


# ------------------------------------------------------------------- mixup
def test_mixup_soft_labels_sum_to_one_and_mix_two_examples():
    b = 32
    batch = _batch(b=b, t=10, frames=np.full(b, 10))
    batch["inputs"] = jnp.broadcast_to(  # Row i is the constant i + 1.
        jnp.arange(1.0, b + 1)[:, None, None, None], (b, 10, 8, 3)
    )
    batch["mask"] = batch["mask"].at[-4:].set(0.0)  # Padding rows.
    out = augment.apply(augment.Augment(mixup_alpha=0.4), batch, jax.random.key(3))
    lam = np.asarray(out["mix"])
    assert ((lam >= 0) & (lam <= 1)).all() and (lam < 1).any()
    x = np.asarray(out["inputs"])[:, 0, 0, 0]
    i = np.arange(b)
    mixed = lam < 1
    partner = (x[mixed] - lam[mixed] * (i[mixed] + 1)) / (1 - lam[mixed]) - 1
    np.testing.assert_allclose(partner, np.round(partner), atol=2e-3)
    partner = np.round(partner).astype(int)
    assert (partner < b - 4).all()  # A padded row is never mixed in.
    np.testing.assert_array_equal(
        np.asarray(out["label_b"])[mixed], np.asarray(batch["label"])[partner]
    )
    weights = jnp.asarray([1.0, 2.0, 5.0])
    w, soft = augment.targets(out, weights)
    np.testing.assert_allclose(np.asarray(soft).sum(-1), 1.0, rtol=1e-6)
    y, yb = np.asarray(batch["label"]), np.asarray(out["label_b"])
    wn = np.asarray(weights)
    expected = (lam * wn[y] + (1 - lam) * wn[yb]) * np.asarray(batch["mask"])
    np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-6)
    dominant = np.asarray(augment.dominant_label(out))
    np.testing.assert_array_equal(dominant, np.where(lam >= 0.5, y, yb))
    np.testing.assert_array_equal(np.asarray(soft).argmax(-1)[lam != 0.5], dominant)


# ------------------------------------------------------------ noise, gain
def _realised_snr(clean, noisy, frames):
    frames = np.asarray(frames)
    t = np.arange(clean.shape[1])[None, :, None, None]
    valid = t < frames[:, None, None, None]
    signal = np.where(valid, clean, 0.0).astype(np.float64)
    noise = np.where(valid, noisy - clean, 0.0).astype(np.float64)
    return 10 * np.log10((signal**2).sum((1, 2, 3)) / (noise**2).sum((1, 2, 3)))


def test_noise_is_at_the_requested_snr():
    batch = _batch(b=4, t=200, f=40, c=3, frames=[200, 150, 60, 1])
    snr = jnp.asarray([0.0, 10.0, 25.0, 40.0])
    x, frames = batch["inputs"], batch["frames"]
    noisy = augment.add_noise(x, frames, jax.random.key(0), snr)
    realised = _realised_snr(np.asarray(x), np.asarray(noisy), np.asarray(frames))
    np.testing.assert_allclose(realised, snr, atol=0.5)
    np.testing.assert_allclose(realised, snr, atol=1e-3)  # Exact by construction.
    padding = np.arange(200)[None, :] >= np.asarray(frames)[:, None]
    assert (np.asarray(noisy)[padding] == 0).all()
    # Drawn through `apply`: every segment's SNR inside [min, max].
    aug = augment.Augment(noise=True, noise_snr_min=5.0, noise_snr_max=15.0)
    big = _batch(b=16, t=100, f=40, frames=np.full(16, 100), seed=1)
    out = augment.apply(aug, big, jax.random.key(1))["inputs"]
    realised = _realised_snr(np.asarray(big["inputs"]), np.asarray(out), big["frames"])
    assert (realised > 5.0 - 0.5).all() and (realised < 15.0 + 0.5).all()
    assert realised.std() > 1.0


@pytest.mark.parametrize("kind, deltas", [("log_mel", True), ("stft", False)])
def test_gain_is_exact_for_the_front_ends_log(kind, deltas):
    """A gain of G dB on the waveform = the `gain_db` offset on the normalised
    features (static channel / std; deltas unchanged), up to the log floor."""
    cfg = default.get_config()
    cfg.data.features.kind, cfg.data.features.deltas = kind, deltas
    cfg.data.features.n_mels = 16
    cfg.data.features.win_ms = 16.0 if kind == "stft" else 25.0  # 129 STFT bins.
    cfg.augment.gain_db = 6.0
    spec = features.FeatureSpec.from_config(cfg.data.features, 16000)
    rng = np.random.default_rng(0)
    signal = 0.3 * rng.standard_normal((1, 4000)).astype(np.float32)
    g = -4.5  # dB
    lengths = jnp.asarray([4000])
    clean = np.asarray(features.compute(jnp.asarray(signal), lengths, spec))
    loud = np.asarray(
        features.compute(jnp.asarray(signal * 10 ** (g / 20)), lengths, spec)
    )
    shape = clean.shape[2:]
    norm = NormStats(
        mean=rng.standard_normal(shape).astype(np.float32),
        std=rng.uniform(0.5, 3.0, shape).astype(np.float32),
        count=1,
    )
    aug = augment.Augment.from_config(cfg, norm)
    frames = jnp.asarray([clean.shape[1]])
    gained = augment.apply_gain(
        jnp.asarray(norm.apply(clean)), frames, jnp.asarray([g]), aug.gain_per_db
    )
    np.testing.assert_allclose(np.asarray(gained), norm.apply(loud), atol=2e-4)
    # Exact on the floored spectrum: log(a (P + floor)) = log(P + floor) + ln a.
    power = rng.uniform(1e-7, 10.0, (2, 12, spec.num_bins)).astype(np.float64)
    exponent = 10.0 if kind == "log_mel" else 20.0
    a = 10 ** (g / exponent)
    static = np.log(power + 1e-6)
    expected = np.log(a * (power + 1e-6))
    per_db = aug.gain_per_db[:, :1] * norm.std[:, :1]  # Without normalisation.
    x = jnp.asarray(static[..., None], jnp.float32)
    out = augment.apply_gain(x, jnp.asarray([12, 12]), jnp.asarray([g, g]), per_db)
    np.testing.assert_allclose(np.asarray(out)[..., 0], expected, atol=1e-5)
    if deltas:
        np.testing.assert_array_equal(aug.gain_per_db[:, 1:], 0.0)
    assert aug.gain_per_db[0, 0] == pytest.approx(
        math.log(10) / exponent / norm.std[0, 0], rel=1e-6
    )


# -------------------------------------------------------- determinism, vmap
def test_same_rng_and_step_give_the_same_batch_and_steps_differ():
    aug, batch, rng = ALL_ON, _batch(), jax.random.key(7)

    def fn(b, r, s):
        return augment.apply(aug, b, augment.step_rng(r, s))

    step = jax.jit(fn)
    a = step(batch, rng, 5)
    assert _equal(a, step(batch, rng, 5))
    assert _equal(a, jax.jit(fn)(batch, rng, 5))  # A restarted process: the same.
    b = step(batch, rng, 6)
    assert not np.array_equal(a["inputs"], b["inputs"])
    assert not np.array_equal(a["mix"], b["mix"])
    # The dropout key is unchanged: the augmentation key is a separate branch.
    assert not np.array_equal(
        jax.random.key_data(augment.step_rng(rng, 5)),
        jax.random.key_data(jax.random.fold_in(rng, 5)),
    )


def test_vmapped_seeds_draw_their_own_augmentation():
    aug, batch = ALL_ON, _batch()
    rngs = jnp.stack([jax.random.key(0), jax.random.key(1)])
    stacked = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), batch)
    out = jax.jit(
        jax.vmap(lambda b, r, s: augment.apply(aug, b, augment.step_rng(r, s)))
    )(stacked, rngs, jnp.asarray([3, 3]))
    single_fn = jax.jit(lambda b, r: augment.apply(aug, b, augment.step_rng(r, 3)))
    for s in range(2):
        single = single_fn(batch, rngs[s])
        mine = {k: v[s] for k, v in out.items()}
        for k in single:
            np.testing.assert_allclose(mine[k], single[k], rtol=1e-6, atol=1e-6)
    assert not np.array_equal(out["inputs"][0], out["inputs"][1])


# ---------------------------------------------------------- the train step
_Linear = fake_models.Linear


def _reference_step(state, batch, rng, *, model, tx, weights):
    """`train.train_step` as it was before augmentation existed (verbatim)."""
    from jaxpara import models

    dropout_rng = jax.random.fold_in(rng, state.step)

    def loss_fn(params):
        outputs, updates = models.apply(
            model,
            {"params": params, "batch_stats": state.batch_stats},
            batch,
            train=True,
            rngs={"dropout": dropout_rng},
            mutable=["batch_stats"],
        )
        logits, aux = models.split_outputs(outputs)
        w = weights[batch["label"]] * batch["mask"]
        loss = 0.0
        for out in (logits, *aux):
            ce = optax.softmax_cross_entropy_with_integer_labels(
                out.astype(jnp.float32), batch["label"]
            )
            loss = loss + jnp.sum(ce * w) / jnp.maximum(jnp.sum(batch["mask"]), 1.0)
        return loss, (logits, updates)

    (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params
    )
    upd, opt_state = tx.update(grads, state.opt_state, state.params)
    upd = jax.tree_util.tree_map(lambda u: u * state.lr_scale, upd)
    params = optax.apply_updates(state.params, upd)
    correct = (jnp.argmax(logits, -1) == batch["label"]) * batch["mask"]
    metrics = {
        "loss": loss,
        "accuracy": jnp.sum(correct) / jnp.maximum(jnp.sum(batch["mask"]), 1.0),
        "grad_norm": optax.global_norm(grads),
        "param_norm": optax.global_norm(params),
    }
    new_state = state.replace(
        step=state.step + 1,
        params=params,
        batch_stats=updates.get("batch_stats", state.batch_stats),
        opt_state=opt_state,
    )
    return new_state, metrics


def _setup(dropout=0.5, **train_kw):
    cfg = default.get_config()
    for k, v in train_kw.items():
        setattr(cfg.train, k, v)
    model = _Linear(dropout=dropout)
    tx = state_lib.make_optimizer(cfg.train)
    state = state_lib.create_state(
        model, tx, (20, 8, 3), jax.random.key(0), sharding.make_mesh(1)
    )
    return cfg, model, tx, state


def test_augment_off_is_bit_identical_to_the_step_without_augmentation():
    cfg, model, tx, state = _setup(weight_decay=1e-2)
    weights = jnp.asarray([1.0, 2.0, 0.5])
    kw = dict(model=model, tx=tx, weights=weights)
    off = augment.Augment.from_config(cfg)  # Defaults: all off, smoothing 0.
    assert not off.batch_ops and off.label_smoothing == 0.0
    batch, rng = _batch(), jax.random.key(4)
    steps = {
        "reference": functools.partial(_reference_step, **kw),
        "none": functools.partial(train.train_step, **kw),
        "off": functools.partial(train.train_step, augment=off, **kw),
    }
    jaxprs = {k: str(jax.make_jaxpr(f)(state, batch, rng)) for k, f in steps.items()}
    assert jaxprs["none"] == jaxprs["reference"] == jaxprs["off"]
    results = {k: jax.jit(f)(state, batch, rng) for k, f in steps.items()}
    ref = jax.tree_util.tree_leaves(results["reference"])
    for k in ("none", "off"):
        for a, b in zip(jax.tree_util.tree_leaves(results[k]), ref, strict=True):
            np.testing.assert_array_equal(a, b)


def test_label_smoothing_equals_optax_with_smoothed_labels():
    cfg, model, tx, state = _setup(dropout=0.0, label_smoothing=0.1)
    weights = jnp.asarray([1.0, 2.0, 0.5])
    aug = augment.Augment.from_config(cfg)
    batch = _batch()
    step = jax.jit(
        functools.partial(
            train.train_step, model=model, tx=tx, weights=weights, augment=aug
        )
    )
    _, m = step(state, batch, jax.random.key(1))
    logits = model.apply({"params": state.params}, batch["inputs"], train=False)
    smoothed = optax.smooth_labels(jax.nn.one_hot(batch["label"], 3), 0.1)
    ce = optax.softmax_cross_entropy(logits, smoothed)
    expected = float(jnp.sum(ce * weights[batch["label"]]) / 6)
    assert float(m["loss"]) == pytest.approx(expected, rel=1e-6)
    hard = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    assert float(m["loss"]) != pytest.approx(
        float(jnp.sum(hard * weights[batch["label"]]) / 6), rel=1e-4
    )


def test_augmented_step_is_deterministic_per_step_and_vmaps_over_seeds():
    """Through the engine's step: same (state, rng) -> same update; a later
    step draws another augmentation (dropout 0, lr 0: only it changes)."""
    cfg, model, tx, state = _setup(dropout=0.0, learning_rate=0.0)
    aug = dataclasses.replace(ALL_ON, label_smoothing=0.05)
    step = functools.partial(
        train.train_step, model=model, tx=tx, weights=jnp.ones(3), augment=aug
    )
    batch, rng = _batch(), jax.random.key(2)
    s1, m1 = jax.jit(step)(state, batch, rng)
    _, m1b = jax.jit(step)(state, batch, rng)
    _, m2 = jax.jit(step)(s1, batch, rng)
    assert float(m1["loss"]) == float(m1b["loss"]) != float(m2["loss"])
    assert np.isfinite(float(m1["loss"]))
    states = state_lib.stack([state, state])
    batches = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), batch)
    rngs = jnp.stack([rng, jax.random.key(3)])
    _, mv = jax.jit(jax.vmap(step))(states, batches, rngs)
    _, m3 = jax.jit(step)(state, batch, rngs[1])
    np.testing.assert_allclose(mv["loss"], [m1["loss"], m3["loss"]], rtol=1e-5)
    assert mv["loss"][0] != mv["loss"][1]


# -------------------------------------------------------- regularisation
def test_weight_decay_is_decoupled_adamw_and_dropout_is_honoured():
    from jaxpara import models

    cfg = default.get_config()
    cfg.train.optimizer, cfg.train.learning_rate = "adam", 0.01
    cfg.train.weight_decay = 0.1
    tx, ref = state_lib.make_optimizer(cfg.train), optax.adamw(0.01, weight_decay=0.1)
    p = q = {"w": jnp.array([1.0, -2.0, 3.0])}
    s, r = tx.init(p), ref.init(q)
    for i in range(4):
        g = {"w": jnp.array([0.3, -0.1, 0.2]) * (i + 1)}
        u, s = tx.update(g, s, p)
        v, r = ref.update(g, r, q)
        p, q = optax.apply_updates(p, u), optax.apply_updates(q, v)
    np.testing.assert_allclose(p["w"], q["w"], rtol=1e-6)
    cfg.model.dropout = 0.37
    assert models.create_model(cfg.model, 4).dropout == 0.37


# ----------------------------------------------------------------- config
PAPER = (
    ("covid_cough_sacrnn", "fusion,aug", "health"),
    ("icbhi_resnet18", "se_spatial,aug", "health"),
    ("iemocap_blstm_fcn", "blstm_fcn_2,aug", "emotion"),
    ("fau_blstm_fcn", "blstm_fcn_2,holdout,aug", "emotion"),
    ("iemocap_cnn_bilstm", "model2,aug", "emotion"),
    ("iemocap_moma", "iem4,aug", "emotion"),
)


@pytest.mark.parametrize("name, arg, preset", PAPER)
def test_every_paper_configs_aug_variant_passes_the_schema_check(name, arg, preset):
    import importlib

    module = importlib.import_module(f"configs.{name}")
    plain, aug = module.get_config(arg.replace(",aug", "")), module.get_config(arg)
    assert not augment.Augment.from_config(plain).batch_ops  # Paper: all off.
    protocol.check_config(aug)
    built = augment.Augment.from_config(aug)
    assert built.time_masks and built.freq_masks
    assert bool(built.mixup_alpha) == (preset == "emotion")
    assert built.noise == (preset == "health")
    assert set(aug.to_dict()) == set(default.get_config().to_dict())
    assert plain.to_dict() | {"augment": {}} == aug.to_dict() | {"augment": {}}
    # `+` separates options too (a sweep axis lists `variant=v,v+aug`).
    assert module.get_config(arg.replace(",", "+")).to_dict() == aug.to_dict()
    with pytest.raises(ValueError, match="unknown option 'agu'"):
        module.get_config(arg.replace(",aug", ",agu"))


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("augment.mixup_alpha", -1.0, "augment.mixup_alpha=-1.0"),
        ("augment.freq_mask_bins", 41, "augment.freq_mask_bins=41"),
        ("augment.time_masks", -2, "augment.time_masks=-2"),
        ("augment.noise_snr_min", 40.0, "augment.noise_snr_min=40.0"),
        ("train.label_smoothing", 1.0, "train.label_smoothing=1.0"),
        ("augment.speed_factors", (0.9, 1.0), "augment.speed_factors=(0.9, 1.0)"),
        ("augment.speed_factors", (1.1, 1.1), "augment.speed_factors=(1.1, 1.1)"),
        ("augment.speed_factors", (-0.9,), "augment.speed_factors=(-0.9,)"),
    ],
)
def test_bad_values_are_one_line_config_errors(key, value, match):
    cfg = default.get_config()
    cfg.augment.freq_masks, cfg.augment.noise = 1, True
    section, name = key.split(".")
    setattr(getattr(cfg, section), name, value)
    with pytest.raises(ConfigError, match=re.escape(match)) as err:
        protocol.check_config(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "section, key, value",
    [("augment", "speed_factors", (0.9, 1.1)), ("data", "speaker_norm", True)],
)
def test_speed_perturbation_and_speaker_norm_need_in_memory_features(
    section, key, value
):
    cfg = default.get_config()
    setattr(getattr(cfg, section), key, value)
    protocol.check_config(cfg)
    cfg.data.source = "records"
    with pytest.raises(
        ConfigError, match=rf"{section}\.{key}.* needs data.source='memory'"
    ):
        protocol.check_config(cfg)


def test_tiny_training_run_with_augmentation(tmp_path, monkeypatch):
    """configs/demo.py at test size (`tests.test_train.tiny_config`) with every
    augmentation and label smoothing on, 2 vmapped seeds, through
    `train_and_evaluate` (config check, FoldTraining's step, evaluation): it
    trains 3 steps and every loss is finite. The model is the fake linear one
    (registered for the test) so that compiling stays cheap."""
    import json

    from jaxpara import models
    from jaxpara.data import corpora
    from tests.test_train import tiny_config

    monkeypatch.setitem(models.MODELS, "_test_linear", _Linear)
    cfg = tiny_config("")
    root = corpora.generate_synthetic(
        "iemocap", str(tmp_path / "corpus"), cfg.data.synthetic, seed=0
    )
    cfg = tiny_config(root)
    cfg.model.name = "_test_linear"
    default.augment(cfg, "emotion")
    cfg.augment.noise, cfg.augment.gain_db = True, 3.0
    cfg.augment.speed_factors = (0.9, 1.1)
    cfg.train.label_smoothing = 0.1
    cfg.num_seeds, cfg.train.num_epochs, cfg.train.max_steps = 2, 1, 3
    cfg.eval.baseline = False
    train.train_and_evaluate(cfg, str(tmp_path / "run"))
    results = sorted(tmp_path.joinpath("run").rglob("fold_result.json"))
    assert len(results) == 2
    for path in results:
        log = json.loads(path.read_text())["train_log"]
        assert [r["step"] for r in log] == [1, 2, 3]
        assert all(np.isfinite(r["loss"]) for r in log)
    # The speed copies of every training utterance were extracted (the run's
    # feature cache), none of the evaluation splits'.
    (cache,) = tmp_path.joinpath("run", "cache").glob("features_*.npz")
    ids = pipeline.FeatureStore.load(str(cache)).ids
    originals = [u for u in ids if "@" not in u]
    copies = [u for u in ids if "@" in u]
    assert copies and len(copies) % 2 == 0
    assert {u.rsplit("@", 1)[1] for u in copies} == {"speed0.9", "speed1.1"}
    trained = {u.rsplit("@", 1)[0] for u in copies}
    assert trained < set(originals)
    # The normalisation statistics are the original training utterances'.
    store = pipeline.FeatureStore.load(str(cache))
    (stats_file,) = tmp_path.joinpath("run").rglob("norm_stats.npz")
    count = NormStats.load(stats_file).count
    assert count == sum(store.get(u).shape[0] for u in trained)
