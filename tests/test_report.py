"""jaxpara.report: run report files, and attention plots that draw exactly
what the model sows (compared with an independent `model.apply`)."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from configs import default
from jaxpara import attention_plots, checkpointing, models, report
from jaxpara.audio import stats
from jaxpara.data import pipeline
from jaxpara.data.types import Corpus, Example
from tests import demo_run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_run.trained_demo(tmp_path_factory)


def _sown_independently(model, variables, split, norm):
    """One jitted model.apply(..., mutable=['intermediates']) on all segments."""
    inputs = split.segments if norm is None else norm.apply(split.segments)
    t = np.arange(inputs.shape[1])[None, :, None, None]
    inputs = np.where(t < split.frames[:, None, None, None], inputs, 0.0)

    @jax.jit
    def apply(variables, inputs, frames):
        return model.apply(
            variables, inputs, frames=frames, train=False, mutable=["intermediates"]
        )[1]["intermediates"]

    inter = apply(variables, inputs.astype(np.float32), split.frames)
    flat = traverse_util.flatten_dict(jax.device_get(inter))
    return {"/".join(k): np.asarray(v[0]) for k, v in flat.items()}


def test_report_files_and_markdown(demo):
    paths = report.write_report(demo["workdir"])
    out = os.path.join(demo["workdir"], "report")
    names = {os.path.basename(p) for p in paths.values()}
    assert names == {
        "confusion_train.png",
        "confusion_validation.png",
        "confusion_test.png",
        "curves.png",
        "report.md",
    }  # One run: no per-fold bars.
    for name in names - {"report.md"}:
        with open(os.path.join(out, name), "rb") as f:
            assert f.read(8) == PNG
    with open(os.path.join(demo["workdir"], "results.json")) as f:
        results = json.load(f)
    with open(paths["report"]) as f:
        md = f.read()
    test = results["splits"]["test"]
    assert f"| test | 11 | {100 * test['uar']:.2f} | {100 * test['wa']:.2f} |" in md
    for name in names - {"report.md"}:
        assert f"]({name})" in md
    for utt in {**demo["corrupt"], **demo["unreadable"]}:
        assert f"train: `{utt}`" in md  # Skipped files are listed.


def test_confusion_plot_draws_the_results_matrix(demo):
    with open(os.path.join(demo["workdir"], "results.json")) as f:
        test = json.load(f)["splits"]["test"]
    fig, drawn = report.plot_confusion(test, "test")
    cm = np.asarray(test["confusion_matrix"])
    np.testing.assert_array_equal(drawn["counts"], cm)
    np.testing.assert_allclose(drawn["normalised"].sum(1), 1.0)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), cm)
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), drawn["normalised"])


def test_fold_bars_show_each_fold_and_seed():
    folds = [
        {"fold": f, "seed": s, "splits": {"test": {"uar": 0.1 * i + 0.05 * s}}}
        for i, f in enumerate(["a", "b", "c"])
        for s in (0, 1)
    ]
    from jaxpara import aggregation

    for f in folds:
        f["splits"]["test"]["wa"] = 0.5
    results = {"folds": folds, "summary": aggregation.summarise(folds)}
    fig = report.plot_fold_bars(results)
    (ax,) = fig.axes
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.0, 0.1, 0.2, 0.05, 0.15, 0.25])  # Seed 0, 1.
    # Fold means 0.025, 0.125, 0.225: mean 12.50, ddof-0 std 8.16 (%).
    assert ax.get_title() == "test UAR per fold: mean 12.50 +- 8.16 % over 3 folds"
    # The report's per-fold table (seed 004 Table 1 layout).
    lines = report.summary_tables(results["summary"])
    i = lines.index("| fold | seeds | UAR | WA |")
    assert lines[i + 2 : i + 6] == [
        "| a | 2 | 2.50 +- 2.50 | 50.00 +- 0.00 |",
        "| b | 2 | 12.50 +- 2.50 | 50.00 +- 0.00 |",
        "| c | 2 | 22.50 +- 2.50 | 50.00 +- 0.00 |",
        "| 3-fold mean +- std | 2 | 12.50 +- 8.16 | 50.00 +- 0.00 |",
    ]


def test_attention_of_a_corpus_utterance_is_the_models_sown_weights(demo):
    cfg = demo_run.demo_config(demo["root"])
    utt = "Ses02F_impro01_M000"
    out = attention_plots.write_attention(demo["workdir"], utt)
    drawn = out["drawn"]
    assert set(drawn) == {"temporal_attention"}
    with np.load(out["npz"]) as z:
        np.testing.assert_array_equal(
            z["temporal_attention"], drawn["temporal_attention"]
        )
    with open(out["png"], "rb") as f:
        assert f.read(8) == PNG
    # Independently: checkpoint arrays, the front-end, one model.apply.
    state, _ = checkpointing.Checkpointer(
        os.path.join(demo["workdir"], "checkpoints", "best")
    ).restore_arrays()
    variables = {
        k: jax.tree_util.tree_map(lambda x: np.asarray(x[0]), state[k])
        for k in ("params", "batch_stats")
    }
    from jaxpara.data import corpora

    example = corpora.read_corpus("iemocap", demo["root"]).by_id()[utt]
    store = pipeline.FeatureStore.build([example], cfg.data)
    corpus = Corpus("x", ("neutral", "happy", "sad", "angry"), [example])
    split = pipeline.build_split(
        "x", [example], corpus, store, cfg.data, allow_skips=False
    )
    norm = stats.NormStats.load(os.path.join(demo["workdir"], "norm_stats.npz"))
    model = models.create_model(cfg.model, 4)
    expected = _sown_independently(model, variables, split, norm)["temporal_attention"]
    vectors = drawn["temporal_attention"]
    assert vectors.shape == expected.shape == (split.num_segments, 30)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    # The figure's lines are those weights: one per segment over its real
    # steps (60-frame segments, 30 steps: 2 frames per step).
    (ax,) = [a for a in out["figure"].axes if "temporal_attention" in a.get_title()]
    lines = ax.get_lines()
    assert len(lines) == split.num_segments
    for s, line in enumerate(lines):
        real = -(-int(split.frames[s]) // 2)
        np.testing.assert_array_equal(line.get_ydata(), vectors[s, :real])


def _random_utterance(num_frames: int, seg_cfg):
    feats = (
        np.random.default_rng(0).standard_normal((num_frames, 40, 3)).astype(np.float32)
    )
    store = pipeline.FeatureStore(["u"], np.array([0, num_frames]), feats, {}, [])
    example = Example("u", "u.wav", "a")
    data = default.get_config().data
    data.segment.update(seg_cfg)
    split = pipeline.build_split(
        "x",
        [example],
        Corpus("x", ("a", "b"), [example]),
        store,
        data,
        allow_skips=False,
    )
    return feats, split, attention_plots.segment_starts(num_frames, data.segment)


def test_sacrnn_maps_per_iteration_are_drawn_exactly():
    feats, split, starts = _random_utterance(
        130, {"length": 60, "hop": 60, "min_frames": 5}
    )
    cfg = default.get_config().model
    cfg.name = "_sacrnn_tiny"
    model = models.create_model(cfg, 2)
    # Random weights of the right shapes (jax.eval_shape: nothing compiled).
    shapes = jax.eval_shape(
        functools.partial(model.init, train=False),
        {"params": jax.random.key(0), "dropout": jax.random.key(1)},
        jnp.zeros((1, 60, 40, 3)),
    )
    rng = np.random.default_rng(0)
    variables = {
        "params": jax.tree_util.tree_map(
            lambda x: 0.3 * rng.standard_normal(x.shape, np.float32), shapes["params"]
        ),
        "batch_stats": jax.tree_util.tree_map(
            lambda x: np.ones(x.shape, np.float32), shapes["batch_stats"]
        ),
    }
    sown = attention_plots.sown_attention(model, variables, split, None, batch_size=4)
    expected = _sown_independently(model, variables, split, None)
    name = "convlstm/spatial_attention"
    assert set(sown) == set(expected) == {name}
    np.testing.assert_allclose(sown[name], expected[name], atol=1e-6)
    assert sown[name].std() > 1e-4  # Not a trivially uniform map.
    fig, drawn = attention_plots.attention_figure(
        feats, split.frames, starts, sown, length=60, hop_s=0.01, segment=1
    )
    maps = drawn[name]
    assert maps.shape == (2, 30, 10)  # [iterations, time', freq'] of segment 1.
    np.testing.assert_array_equal(maps, sown[name][1])
    # One overlay image per iteration, time on x.
    overlays = [
        ax.images[-1].get_array() for ax in fig.axes if " it. " in ax.get_title()
    ]
    assert len(overlays) == 2
    for i, image in enumerate(overlays):
        np.testing.assert_array_equal(np.asarray(image), maps[i].T)


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("_blstm_fcn_tiny", {}),
        ("_moma_tiny", {}),
        ("_cnn_bilstm_tiny", {"attention": "local_self"}),
        ("_resnet18_tiny", {"attention": "se_spatial"}),
        ("_resnet18_tiny", {"attention": "component"}),
    ],
)
def test_every_sown_attention_array_of_a_model_is_drawn(name, overrides):
    """Shapes from jax.eval_shape (nothing compiled); random weights drawn."""
    feats, split, starts = _random_utterance(
        100, {"length": 60, "hop": 60, "min_frames": 5}
    )
    cfg = default.get_config().model
    cfg.name = name
    cfg.update(overrides)
    model = models.create_model(cfg, 2)
    x = jnp.zeros((split.num_segments, 60, 40, 3))

    def sown():
        v = model.init(
            {"params": jax.random.key(0), "dropout": jax.random.key(0)}, x, train=False
        )
        v = {k: v[k] for k in v if k != "intermediates"}
        return model.apply(
            v,
            x,
            frames=jnp.asarray(split.frames),
            train=False,
            mutable=["intermediates"],
        )[1]

    shapes = traverse_util.flatten_dict(jax.eval_shape(sown)["intermediates"])
    rng = np.random.default_rng(0)
    arrays = {
        "/".join(k): rng.random(v[0].shape).astype(np.float32)
        for k, v in shapes.items()
    }
    attention = {k: a for k, a in arrays.items() if "attention" in k.split("/")[-1]}
    assert attention and set(arrays) - set(attention) <= {"deep_spectrum"}
    fig, drawn = attention_plots.attention_figure(
        feats, split.frames, starts, arrays, length=60, hop_s=0.01
    )
    assert set(drawn) == set(attention)  # deep_spectrum is not attention.
    for key, value in drawn.items():
        kind = attention_plots.attention_kind(key, attention[key].ndim - 1)
        full = attention[key]
        want = {
            attention_plots.TIME: full,
            attention_plots.BLOCKS: full,
            attention_plots.CHANNEL_MAP: full[0].mean(-1),
        }.get(kind, full[0])
        np.testing.assert_array_equal(value, want)
    images = [np.asarray(im.get_array()) for ax in fig.axes for im in ax.images]
    for key, value in drawn.items():  # Maps are drawn as images, time on x.
        kind = attention_plots.attention_kind(key, attention[key].ndim - 1)
        panels = {
            attention_plots.MAPS: list(value),
            attention_plots.TIME: [],
            attention_plots.BLOCKS: [],
        }
        for panel in panels.get(kind, [value] if value.ndim == 2 else []):
            assert any(np.array_equal(im, panel.T) for im in images), key
