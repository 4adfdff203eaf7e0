"""Attention plots: what a model sows, drawn over the input spectrogram.

The `--attention` half of `python -m jaxpara.report` (see that module's
docstring for what is drawn); `write_attention` is its entry point.
"""

from __future__ import annotations

import os

import numpy as np

from jaxpara import figures, rundir
from jaxpara.figures import plt

# How a sown attention array [batch, ...] is drawn, by its name (the last
# part of the sow path); names not listed are drawn by rank: [B, T'] as a
# time vector, [B, H, W] as a map, [B, I, H, W] as one map per iteration
# (convlstm's and ResNet's `spatial_attention`).
TIME, BLOCKS, MAP, MAPS = "time", "blocks", "map", "maps"
CHANNEL_MAP, CHANNELS, PAIRS = "channel_map", "channels", "pairs"
_KIND_BY_NAME = {
    "temporal_attention": TIME,  # ACRNN, CNN-BiLSTM [B, T'].
    "blstm_attention": TIME,  # BLSTM-FCN [B, T].
    "attention_layer1": TIME,  # MOMA [B, T].
    "attention_mixture": TIME,  # MOMA [B, T].
    "attention_blocks": BLOCKS,  # MOMA [B, n, T].
    "fcn_attention": MAP,  # BLSTM-FCN [B, T', F'].
    "component_attention": CHANNEL_MAP,  # ResNet [B, T', F', C].
    "se_attention": CHANNELS,  # ResNet [B, C].
    "local_attention": PAIRS,  # CNN-BiLSTM [B, T, T].
}
_KIND_BY_RANK = {1: TIME, 2: MAP, 3: MAPS}
_PANELS_PER_ROW = 4  # Maps of several blocks / stages drawn side by side.


def attention_kind(name: str, ndim: int) -> str | None:
    """How to draw sown array `name` with `ndim` dims after the batch axis."""
    leaf = name.split("/")[-1].split("#")[0]
    if "attention" not in leaf:
        return None
    return _KIND_BY_NAME.get(leaf, _KIND_BY_RANK.get(ndim))


def sown_attention(model, variables, split, norm, *, batch_size: int) -> dict:
    """Every attention array the model sows, per segment of a split.

    Runs the model in inference mode over the split's padded evaluation
    batches (`jaxpara.evaluate.sown_intermediates`).

    Returns:
      {name: [S, ...] float32}; names as `jaxpara.models.intermediates`
      gives them (sow path joined with '/', '#i' for repeats).
    """
    import jax

    from jaxpara import evaluate
    from jaxpara.data import pipeline

    chunks: dict[str, list[np.ndarray]] = {}
    for batch in pipeline.eval_batches(split, norm, global_batch=batch_size):
        sown = jax.device_get(evaluate.sown_intermediates(model, variables, batch))
        for name, value in sown.items():
            if attention_kind(name, np.ndim(value) - 1) is not None:
                chunks.setdefault(name, []).append(np.asarray(value, np.float32))
    return {k: np.concatenate(v)[: split.num_segments] for k, v in chunks.items()}


def segment_starts(num_frames: int, seg_cfg) -> list[int]:
    """Start frame of each segment `build_split` cut (`audio.segment` rules)."""
    from jaxpara.audio import segment

    if seg_cfg.mode == "first":
        return [0]
    return segment.segment_starts(
        num_frames, seg_cfg.length, seg_cfg.hop, seg_cfg.min_frames
    )


def attention_figure(
    features: np.ndarray,
    frames: np.ndarray,
    starts,
    sown: dict,
    *,
    length: int,
    hop_s: float,
    segment: int = 0,
    title: str = "",
):
    """Draws sown attention over an utterance's spectrogram.

    Args:
      features: [T, F, C] the utterance's (unnormalised) features.
      frames: [S] real frames of each segment; starts: [S] their start frames.
      sown: {name: [S, ...]} from `sown_attention`.
      length: segment length L in frames (a step of an axis of size n covers
        ceil(L / n) frames).
      hop_s: seconds per frame.
      segment: the segment whose maps are drawn.
      title: figure title.

    Returns:
      (figure, drawn): drawn[name] is exactly the array given to matplotlib:
      time vectors [S, T'] (row s drawn over its real steps at its segment's
      position), MOMA blocks [S, n, T'], and for segment `segment`: maps
      [T', F'], per-iteration maps [I, T', F'], component maps' channel mean
      [T', F'], SE weights [C], local attention [T (query), T (key)]. Maps
      are drawn transposed (time on x) over the segment's L frames.
    """
    frames = np.asarray(frames)
    num_segments = len(frames)
    if not 0 <= segment < num_segments:
        raise ValueError(f"segment {segment}: the utterance has {num_segments}")
    items = [(n, attention_kind(n, a.ndim - 1), a) for n, a in sorted(sown.items())]
    items = [item for item in items if item[1] is not None]  # Not attention.
    vectors = [(n, k, a) for n, k, a in items if k in (TIME, BLOCKS)]
    # Map panels of segment `segment`: (kind, title, array drawn).
    drawn: dict[str, np.ndarray] = {}
    singles, rows = {}, []
    for name, kind, arr in items:
        if kind in (TIME, BLOCKS):
            continue
        value = arr[segment].mean(-1) if kind == CHANNEL_MAP else arr[segment]
        drawn[name] = value
        if kind == MAPS:  # One row per leaf, a panel per iteration.
            rows.append([(kind, f"{name} it. {i + 1}", v) for i, v in enumerate(value)])
        else:  # Blocks / stages side by side, grouped by kind.
            singles.setdefault(kind, []).append((kind, name, value))
    ncols = max([len(r) for r in rows] + [_PANELS_PER_ROW if singles else 1])
    for panels in singles.values():
        rows += [panels[i : i + ncols] for i in range(0, len(panels), ncols)]
    nrows = 1 + len(vectors) + len(rows)
    fig = plt.figure(
        figsize=(max(10.0, 3.0 * ncols), 2.3 * nrows), layout="constrained"
    )
    grid = fig.add_gridspec(nrows, ncols)
    spec = features[:, :, 0].T  # [F, T]
    bins, total = spec.shape[0], features.shape[0] * hop_s
    top = fig.add_subplot(grid[0, :])
    top.imshow(
        spec, origin="lower", aspect="auto", cmap="magma", extent=(0, total, 0, bins)
    )
    for start in starts[1:]:
        top.axvline(start * hop_s, color="w", linestyle=":", linewidth=0.8)
    top.set(
        xlabel="time (s)",
        ylabel="bin",
        xlim=(0, total),
        title="log-Mel spectrogram (channel 0)",
    )
    for row, (name, kind, arr) in enumerate(vectors, start=1):
        ax = fig.add_subplot(grid[row, :], sharex=top)
        _draw_weights(ax, name, kind, arr, starts, frames, length=length, hop_s=hop_s)
        drawn[name] = arr
    t0 = starts[segment]
    x0, x1 = t0 * hop_s, (t0 + length) * hop_s
    real_end = (t0 + int(frames[segment])) * hop_s
    background = features[t0 : t0 + int(frames[segment]), :, 0].T
    for row, panels in enumerate(rows, start=1 + len(vectors)):
        for col, (kind, label, panel) in enumerate(panels):
            ax = fig.add_subplot(grid[row, col])
            ax.set_title(label, fontsize="x-small")
            _draw_map(ax, kind, panel, background, span=(x0, x1, real_end), bins=bins)
    fig.suptitle(f"{title} (maps: segment {segment})" if rows else title)
    return fig, drawn


def _draw_weights(ax, name, kind, arr, starts, frames, *, length, hop_s):
    """Time weights [S, T'] (or MOMA blocks [S, n, T']) of every segment."""
    stride = -(-length // arr.shape[-1])
    for s, start in enumerate(starts):
        real = -(-int(frames[s]) // stride)
        x = (start + stride * (np.arange(real) + 0.5)) * hop_s
        series = arr[s][None] if kind == TIME else arr[s]
        for b, values in enumerate(series):
            ax.plot(
                x,
                values[:real],
                color=f"C{b}",
                label=f"block {b}" if kind == BLOCKS and s == 0 else None,
            )
    if kind == BLOCKS:
        ax.legend(fontsize="small", loc="upper right")
    ax.set(
        xlabel="time (s)",
        ylabel="weight",
        title=f"{name} (1 step = {stride} frames)",
    )


def _draw_map(ax, kind, panel, background, *, span, bins):
    """One map panel of a segment: SE weights as bars, maps over its spectrogram.

    `span` = (segment start, segment end, end of its real frames) in seconds.
    """
    x0, x1, real_end = span
    if kind == CHANNELS:
        ax.bar(np.arange(panel.shape[0]), panel)
        ax.set(xlabel="channel", ylabel="weight")
        return
    if kind == PAIRS:
        extent, alpha = (x0, x1, x1, x0), 1.0
    else:
        extent, alpha = (x0, x1, 0, bins), 0.6
        ax.imshow(
            background,
            origin="lower",
            aspect="auto",
            cmap="gray",
            extent=(x0, real_end, 0, bins),
        )
    ax.imshow(
        panel.T,
        origin="upper" if kind == PAIRS else "lower",
        aspect="auto",
        cmap="viridis",
        alpha=alpha,
        extent=extent,
    )
    ax.set_xlim(x0, real_end)
    if kind == PAIRS:
        ax.set_ylim(real_end, x0)


def _safe_name(text: str) -> str:
    name = os.path.splitext(os.path.basename(text))[0]
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "input"


def resolve_example(predictor, workdir: str, target: str, gender: str = ""):
    """An Example for `target`: an audio file, else a corpus utterance id."""
    if os.path.exists(target):
        return predictor.examples([target], gender)[0]
    from jaxpara.data import corpora

    config = predictor.config
    corpus, root = corpora.load_corpus(config.data, workdir, seed=config.seed)
    example = corpus.by_id().get(target)
    if example is None:
        raise ValueError(
            f"--attention={target!r} is neither an existing file nor an utterance "
            f"id of the {corpus.name} corpus at {root}"
        )
    return example


def write_attention(
    workdir: str,
    target: str,
    *,
    checkpoint: str = "best",
    fold: str = "",
    seed_index: int = 0,
    segment: int = 0,
    gender: str = "",
) -> dict:
    """Attention figure of one utterance or file (module docstring).

    Returns:
      {"png", "npz" (paths), "drawn" (the arrays drawn), "figure" (closed),
      "prediction"}.
    """
    from jaxpara import aggregation, predict
    from jaxpara.audio import features as features_lib

    predictor = predict.Predictor.from_workdir(
        workdir, checkpoint=checkpoint, fold=fold, seed_index=seed_index
    )
    example = resolve_example(predictor, workdir, target, gender)
    store, split, errors = predictor.featurise([example])
    if errors:
        raise ValueError(f"--attention={target}: {next(iter(errors.values()))}")
    config = predictor.config
    sown = sown_attention(
        predictor.model,
        predictor.variables,
        split,
        predictor.norm,
        batch_size=predictor.batch_size,
    )
    if not sown:
        raise ValueError(
            f"model {config.model.name!r} sows no attention weights into "
            "'intermediates' (nothing to draw)"
        )
    posteriors = predictor.segment_posteriors(split)
    _, pred = aggregation.aggregate(
        split.utterance_index,
        posteriors,
        np.ones(len(posteriors), bool),
        1,
        config.eval.aggregation,
    )
    features = store.get(example.utterance_id)
    starts = segment_starts(features.shape[0], config.data.segment)
    if len(starts) != split.num_segments:
        raise AssertionError(f"{len(starts)} starts for {split.num_segments} segments")
    spec = features_lib.FeatureSpec.from_config(
        config.data.features, config.data.sample_rate
    )
    is_file = os.path.exists(target)
    label = "" if is_file else f"label {example.label}, "
    fig, drawn = attention_figure(
        features,
        split.frames,
        starts,
        sown,
        length=split.segments.shape[1],
        hop_s=spec.hop_length / spec.sample_rate,
        segment=segment,
        title=f"{target}: {label}predicted {predictor.labels[pred[0]]} "
        f"({config.model.name}, {predictor.checkpoint['kind']} checkpoint)",
    )
    out = os.path.join(workdir, rundir.REPORT)
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, f"attention_{_safe_name(target)}")
    np.savez(stem + ".npz", **drawn)
    return {
        "png": figures.save(fig, stem + ".png"),
        "npz": stem + ".npz",
        "drawn": drawn,
        "figure": fig,
        "prediction": predictor.labels[pred[0]],
    }
