"""Run reports and attention plots (matplotlib, Agg backend, PNG).

    python -m jaxpara.report --workdir=DIR
    python -m jaxpara.report --workdir=DIR --attention=UTTERANCE_ID_OR_FILE
        [--checkpoint=best|latest|STEP] [--fold=NAME] [--seed_index=0]
        [--segment=0]

The first writes `DIR/report/`: `confusion_<split>.png` (counts and
row-normalised, from results.json), `curves.png` (training loss and
validation UAR of every fold x seed from their fold_result.json, the learning
rate from the TensorBoard logs when logged), `folds.png` (per fold / seed
UAR bars, protocol runs only) and `report.md` linking them with the results
table.

`--attention` draws what the model sows into the 'intermediates' collection
for one utterance (a corpus utterance id, or any audio file run through the
same front-end as `jaxpara.predict`), over its log-Mel (channel 0)
spectrogram: time-attention vectors [segments, time'] aligned under the
spectrogram (every segment at its position; a step covers
ceil(segment length / time') frames), and maps of one segment (`--segment`)
overlaid on that segment's spectrogram: spatial maps [time', freq'] (ResNet
per block, BLSTM-FCN's FCN cells), SACRNN's [iterations, time', freq'] one
panel per iteration, ResNet component maps [time', freq', C] as their channel
mean, SE channel weights [C] as bars, local self-attention [time, time] as a
query x key image. It writes `report/attention_<id>.png` and
`report/attention_<id>.npz` holding exactly the arrays drawn (`drawn` below).
Sown arrays whose name does not contain 'attention' (e.g. 'deep_spectrum')
are not attention weights and are ignored.
"""

from __future__ import annotations

import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

REPORT_DIR = "report"
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


def _save(fig, path: str) -> str:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# -------------------------------------------------------------- run report
def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def plot_confusion(split_report: dict, title: str):
    """Counts and row-normalised confusion matrix side by side.

    Returns:
      (figure, {"counts": [K, K], "normalised": [K, K]}, the arrays drawn).
    """
    labels = split_report["labels"]
    counts = np.asarray(split_report["confusion_matrix"], np.float64)
    rows = counts.sum(1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    k = len(labels)
    fig, axes = plt.subplots(
        1, 2, figsize=(4.0 + 2.2 * k, 1.8 + 0.9 * k), layout="constrained"
    )
    for ax, values, name, fmt in (
        (axes[0], counts, "counts", "{:.0f}"),
        (axes[1], normalised, "row-normalised (recall)", "{:.2f}"),
    ):
        im = ax.imshow(values, cmap="Blues", vmin=0)
        ax.set(
            xticks=range(k),
            yticks=range(k),
            xlabel="predicted",
            ylabel="true",
            title=name,
        )
        ax.set_xticklabels(labels, rotation=45, ha="right")
        ax.set_yticklabels(labels)
        top = values.max() if values.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    fmt.format(values[i, j]),
                    ha="center",
                    va="center",
                    color="white" if values[i, j] > 0.6 * top else "black",
                )
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(
        f"{title}: UAR {_pct(split_report['uar'])} %, WA {_pct(split_report['wa'])} "
        f"%, {split_report['n_utterances']} utterances"
    )
    return fig, {"counts": counts, "normalised": normalised}


def find_runs(workdir: str) -> list[tuple[str, str]]:
    """(name, directory) of every fold_result.json of a workdir, sorted."""
    found = []
    for path in glob.glob(
        os.path.join(workdir, "**", "fold_result.json"), recursive=True
    ):
        rel = os.path.relpath(os.path.dirname(path), workdir)
        if rel.split(os.sep)[0] in ("data", "cache", REPORT_DIR):
            continue
        found.append((rel, os.path.dirname(path)))
    return sorted(found)


def read_learning_rate(run: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, learning rates) of `train/learning_rate` in a run's TensorBoard
    logs (`run/logs`, or the parent's for a vmapped seed's folder); None if
    absent. With vmapped seeds this is the mean over the seeds."""
    for logs in (os.path.join(run, "logs"), os.path.join(run, os.pardir, "logs")):
        files = sorted(glob.glob(os.path.join(logs, "events.out.tfevents.*")))
        if files:
            break
    else:
        return None
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    points = {}
    for path in files:
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                if value.tag != "train/learning_rate":
                    continue
                if value.HasField("tensor"):
                    points[event.step] = float(tensor_util.make_ndarray(value.tensor))
                else:
                    points[event.step] = float(value.simple_value)
    if not points:
        return None
    steps = np.asarray(sorted(points))
    return steps, np.asarray([points[s] for s in steps])


def plot_curves(runs: list[tuple[str, dict, tuple | None]]):
    """Training loss, validation UAR and (if logged) learning rate vs step.

    Args:
      runs: (name, fold_result dict, learning rate (steps, values) or None).
    """
    with_lr = any(lr is not None for _, _, lr in runs)
    ncols = 3 if with_lr else 2
    fig, axes = plt.subplots(1, ncols, figsize=(4.6 * ncols, 3.4))
    for name, result, lr in runs:
        label = "run" if name == "." else name
        log = result.get("train_log", [])
        axes[0].plot([e["step"] for e in log], [e["loss"] for e in log], label=label)
        hist = result.get("history", [])
        axes[1].plot(
            [e["step"] for e in hist],
            [e["validation_uar"] for e in hist],
            marker="o",
            markersize=3,
            label=label,
        )
        if lr is not None:
            axes[2].plot(*lr, label=label)
    axes[0].set(xlabel="step", ylabel="training loss", title="loss")
    axes[1].set(xlabel="step", ylabel="UAR", title="validation UAR")
    if with_lr:
        axes[2].set(xlabel="step", ylabel="learning rate", title="learning rate")
    if 1 < len(runs) <= 12:
        axes[1].legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_fold_bars(results: dict):
    """UAR per fold, one bar per seed, for validation and test (protocol runs)."""
    folds = results["folds"]
    names = list(dict.fromkeys(f["fold"] for f in folds))
    seeds = list(dict.fromkeys(f["seed"] for f in folds))
    splits = [s for s in ("validation", "test") if any(s in f["splits"] for f in folds)]
    fig, axes = plt.subplots(
        len(splits),
        1,
        figsize=(max(6.0, 0.7 * len(names) * len(seeds)), 3.0 * len(splits)),
        squeeze=False,
    )
    width, x = 0.8 / len(seeds), np.arange(len(names))
    for ax, split in zip(axes[:, 0], splits):
        uar = {
            (f["fold"], f["seed"]): f["splits"][split]["uar"]
            for f in folds
            if split in f["splits"]
        }
        for k, seed in enumerate(seeds):
            values = [uar.get((name, seed)) for name in names]
            values = [np.nan if v is None else v for v in values]
            ax.bar(x + k * width, values, width, label=f"seed {seed}")
        summary = results.get("summary", {}).get(split, {})
        title = f"{split} UAR per fold"
        if summary.get("uar_mean") is not None:
            ax.axhline(summary["uar_mean"], color="k", linestyle="--", linewidth=1)
            title += (
                f": mean {_pct(summary['uar_mean'])} +- "
                f"{_pct(summary['uar_std'])} % (n = {summary['n']})"
            )
        ax.set_title(title)
        ax.set_xticks(x + 0.4 - width / 2)
        ax.set_xticklabels(names, rotation=45, ha="right")
        ax.set(ylabel="UAR", ylim=(0, 1))
        if len(seeds) > 1:
            ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def markdown(workdir: str, results: dict, images: dict[str, str]) -> str:
    """report.md: the results table with links to the images."""
    model, corpus = results["model"], results["corpus"]
    lines = [
        f"# Run report: `{os.path.abspath(workdir)}`",
        "",
        f"Model `{model['name']}` ({model['num_params']:,} parameters); corpus "
        f"`{corpus['name']}`{' (synthetic)' if corpus.get('synthetic') else ''} "
        f"with classes {', '.join(corpus['labels'])}; wall time "
        f"{results.get('wall_time_s', float('nan')):.0f} s.",
        "",
        "## Results (utterance level, %)",
        "",
        "| split | utterances | UAR | WA | UAR 95% CI | SE | SP | ICBHI score "
        "| baseline UAR | skipped |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rep in results["splits"].items():
        ci = rep.get("uar_ci95")
        lines.append(
            f"| {name} | {rep['n_utterances']} | {_pct(rep['uar'])} | "
            f"{_pct(rep['wa'])} | "
            + (f"[{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "–")
            + f" | {_pct(rep.get('sensitivity'))} | {_pct(rep.get('specificity'))} "
            f"| {_pct(rep.get('icbhi_score'))} | {_pct(rep.get('baseline_uar'))} "
            f"| {rep.get('n_skipped', 0)} |"
        )
    if "summary" in results:
        lines += [
            "",
            "Protocol runs: the table pools the first seed's folds. Over all "
            "folds x seeds:",
            "",
            "| split | UAR mean +- std | WA mean +- std | n |",
            "|---|---|---|---|",
        ]
        for name, s in results["summary"].items():
            lines.append(
                f"| {name} | {_pct(s['uar_mean'])} +- {_pct(s['uar_std'])} | "
                f"{_pct(s['wa_mean'])} +- {_pct(s['wa_std'])} | {s['n']} |"
            )
    for title, key in (("Per fold / seed", "folds"), ("Training curves", "curves")):
        if key in images:
            lines += ["", f"## {title}", "", f"![{key}]({images[key]})"]
    confusions = [k for k in images if k.startswith("confusion_")]
    if confusions:
        lines += ["", "## Confusion matrices", ""]
        lines += [f"![{k}]({images[k]})" for k in confusions]
    skipped = [
        (name, s)
        for name, rep in results["splits"].items()
        for s in rep.get("skipped", [])
    ]
    unreadable = corpus.get("unreadable") or {}
    if skipped or unreadable:
        lines += ["", "## Unusable files", ""]
        lines += [
            f"- {name}: `{s['utterance_id']}`: {s['reason']}" for name, s in skipped
        ]
        listed = {s["utterance_id"] for _, s in skipped}
        lines += [f"- `{u}`: {r}" for u, r in unreadable.items() if u not in listed]
    return "\n".join(lines) + "\n"


def write_report(workdir: str) -> dict[str, str]:
    """Writes `workdir/report/` (module docstring).

    Returns:
      {name: path} of the files written.
    """
    path = os.path.join(workdir, "results.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: train the workdir to the end first "
            "(python -m jaxpara.main resumes it)"
        )
    with open(path) as f:
        results = json.load(f)
    out = os.path.join(workdir, REPORT_DIR)
    os.makedirs(out, exist_ok=True)
    images = {}
    for name, rep in results["splits"].items():
        fig, _ = plot_confusion(rep, name)
        images[f"confusion_{name}"] = _save(
            fig, os.path.join(out, f"confusion_{name}.png")
        )
    runs = []
    for name, run in find_runs(workdir):
        with open(os.path.join(run, "fold_result.json")) as f:
            runs.append((name, json.load(f), read_learning_rate(run)))
    if runs:
        images["curves"] = _save(plot_curves(runs), os.path.join(out, "curves.png"))
    if "folds" in results:
        images["folds"] = _save(plot_fold_bars(results), os.path.join(out, "folds.png"))
    rel = {k: os.path.basename(v) for k, v in images.items()}
    md = os.path.join(out, "report.md")
    with open(md, "w") as f:
        f.write(markdown(workdir, results, rel))
    return {**images, "report": md}


# ---------------------------------------------------------------- attention
def sown_attention(model, variables, split, norm, *, batch_size: int) -> dict:
    """Every attention array the model sows, per segment of a split.

    Runs the model in inference mode with mutable=['intermediates'] over the
    split's padded evaluation batches (`jaxpara.evaluate._sown`).

    Returns:
      {name: [S, ...] float32}; name = the sow path joined with '/', plus
      '#i' when a module sowed the name more than once.
    """
    import jax
    from flax import traverse_util

    from jaxpara import evaluate
    from jaxpara.data import pipeline

    chunks: dict[str, list[np.ndarray]] = {}
    for batch in pipeline.eval_batches(split, norm, global_batch=batch_size):
        inter = jax.device_get(evaluate._sown(model, variables, batch))
        for path, values in traverse_util.flatten_dict(inter).items():
            for i, value in enumerate(values):
                name = "/".join(path) + (f"#{i}" if len(values) > 1 else "")
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
        drawn[name] = arr
    t0 = starts[segment]
    x0, x1 = t0 * hop_s, (t0 + length) * hop_s
    real_end = (t0 + int(frames[segment])) * hop_s
    background = features[t0 : t0 + int(frames[segment]), :, 0].T
    for row, panels in enumerate(rows, start=1 + len(vectors)):
        for col, (kind, label, panel) in enumerate(panels):
            ax = fig.add_subplot(grid[row, col])
            ax.set_title(label, fontsize="x-small")
            if kind == CHANNELS:
                ax.bar(np.arange(panel.shape[0]), panel)
                ax.set(xlabel="channel", ylabel="weight")
                continue
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
    fig.suptitle(f"{title} (maps: segment {segment})" if rows else title)
    return fig, drawn


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
    out = os.path.join(workdir, REPORT_DIR)
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, f"attention_{_safe_name(target)}")
    np.savez(stem + ".npz", **{k.replace("/", "."): v for k, v in drawn.items()})
    return {
        "png": _save(fig, stem + ".png"),
        "npz": stem + ".npz",
        "drawn": drawn,
        "figure": fig,
        "prediction": predictor.labels[pred[0]],
    }


# --------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    """The CLI (module docstring); returns the exit status (1 on an error)."""
    import argparse

    from jaxpara import predict

    parser = argparse.ArgumentParser(
        prog="python -m jaxpara.report", description=__doc__.split("\n")[0]
    )
    predict.model_options(parser)
    parser.add_argument(
        "--attention",
        default="",
        metavar="UTTERANCE_ID_OR_FILE",
        help="Draw this utterance's attention weights instead of the report.",
    )
    parser.add_argument(
        "--segment", type=int, default=0, help="The segment whose maps are drawn."
    )
    args = parser.parse_args(argv)
    try:
        if args.attention:
            out = write_attention(
                args.workdir,
                args.attention,
                checkpoint=args.checkpoint,
                fold=args.fold,
                seed_index=args.seed_index,
                segment=args.segment,
                gender=args.gender,
            )
            paths = [out["png"], out["npz"]]
        else:
            paths = list(write_report(args.workdir).values())
    except (FileNotFoundError, ValueError) as err:
        print(f"jaxpara.report: error: {err}", file=sys.stderr)
        return 1
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    sys.exit(main())
