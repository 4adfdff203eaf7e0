"""Run reports: results tables, confusion matrices, curves, fold bars (PNG).

    python -m jaxpara.report --workdir=DIR
    python -m jaxpara.report --workdir=DIR --attention=UTTERANCE_ID_OR_FILE
        [--checkpoint=best|latest|STEP] [--fold=NAME] [--seed_index=0]
        [--segment=0]

The first writes `DIR/report/`: `confusion_<split>.png` (counts and
row-normalised, from results.json), `curves.png` (training loss and the
validation selection metric (`train.selection_metric`) of every fold x seed
from their fold_result.json, the learning
rate from the TensorBoard logs when logged), `folds.png` (per fold / seed
UAR bars, protocol runs only) and `report.md` linking them with the results
table and, per reported split, how many of its utterances the front-end found
no speech in (results.json `corpus.no_speech`, decided at feature extraction
by `corpus.speech_check`: VAD, else the energy floor; they are scored whole).

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

import numpy as np

from jaxpara import figures, rundir
from jaxpara.figures import plt


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


def read_learning_rate(run: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, learning rates) of `train/learning_rate` in the TensorBoard logs
    covering a seed dir (`rundir.logs_of`); None if absent. With vmapped
    seeds this is the mean over the seeds."""
    logs = rundir.logs_of(run)
    if logs is None:
        return None
    files = sorted(glob.glob(os.path.join(logs, "events.out.tfevents.*")))
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
    metric = next((r.get("selection_metric") for _, r, _ in runs), None) or "uar"
    ncols = 3 if with_lr else 2
    fig, axes = plt.subplots(1, ncols, figsize=(4.6 * ncols, 3.4))
    for name, result, lr in runs:
        label = "run" if name == "." else name
        log = result.get("train_log", [])
        axes[0].plot([e["step"] for e in log], [e["loss"] for e in log], label=label)
        hist = result.get("history", [])
        axes[1].plot(
            [e["step"] for e in hist],
            [e[f"validation_{metric}"] for e in hist],
            marker="o",
            markersize=3,
            label=label,
        )
        if lr is not None:
            axes[2].plot(*lr, label=label)
    axes[0].set(xlabel="step", ylabel="training loss", title="loss")
    axes[1].set(xlabel="step", ylabel=metric, title=f"validation {metric} (selection)")
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
                f"{_pct(summary['uar_std'])} % over {summary['n_folds']} folds"
            )
        ax.set_title(title)
        ax.set_xticks(x + 0.4 - width / 2)
        ax.set_xticklabels(names, rotation=45, ha="right")
        ax.set(ylabel="UAR", ylim=(0, 1))
        if len(seeds) > 1:
            ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def summary_tables(summary: dict) -> list[str]:
    """Markdown lines: per split, the per-fold table in the layout of seed 004
    Table 1 (fold, seeds, UAR, WA; seed means, +- the seed std when there are
    several) and its last row, mean +- ddof-0 std over the fold values."""
    lines = [
        "Protocol runs: the table above pools the first seed's folds. Per fold "
        "(mean over seeds), then mean +- std (ddof = 0) over folds:",
    ]

    def cell(row, key):
        text = _pct(row[f"{key}_mean"])
        return text + (f" +- {_pct(row[f'{key}_std'])}" if row["n_seeds"] > 1 else "")

    for name, s in summary.items():
        lines += [
            "",
            f"**{name}**",
            "",
            "| fold | seeds | UAR | WA |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['fold']} | {r['n_seeds']} | {cell(r, 'uar')} | {cell(r, 'wa')} |"
            for r in s["per_fold"]
        ]
        lines.append(
            f"| {s['n_folds']}-fold mean +- std | {s['n_seeds']} | "
            f"{_pct(s['uar_mean'])} +- {_pct(s['uar_std'])} | "
            f"{_pct(s['wa_mean'])} +- {_pct(s['wa_std'])} |"
        )
    return lines


def no_speech_line(results: dict, predictions: list[dict] | None) -> str:
    """The report's line on utterances with no speech found.

    Reuses what feature extraction recorded (results.json `corpus`:
    `no_speech` ids and `speech_check`; older runs only the count
    `vad_no_speech`). Per split of `results["splits"]` it counts those among
    the split's utterances in `predictions` (predictions.csv rows of the
    first seed, as the pooled splits are); '' when nothing was recorded.
    """
    corpus = results["corpus"]
    if "no_speech" not in corpus:
        if "vad_no_speech" not in corpus:
            return ""
        return (
            f"No speech found by VAD in {corpus['vad_no_speech']} of the run's "
            "utterances (kept whole and scored)."
        )
    silent = set(corpus["no_speech"])
    if predictions is None:
        counts = f"{len(silent)} of the run's utterances"
    else:
        seed, per_split = str(results["config"]["seed"]), []
        for name in results["splits"]:
            ids = {
                r["utterance_id"]
                for r in predictions
                if r["split"] == name and r["seed"] == seed
            }
            per_split.append(f"{name} {len(ids & silent)} of {len(ids)}")
        counts = ", ".join(per_split) + " utterances"
    text = (
        f"No speech found ({corpus['speech_check']}; such utterances are kept "
        f"whole and scored): {counts}."
    )
    if silent:
        shown = sorted(silent)[:10]
        text += " " + ", ".join(f"`{u}`" for u in shown)
        text += " ..." if len(silent) > len(shown) else ""
    return text


def markdown(
    workdir: str,
    results: dict,
    images: dict[str, str],
    predictions: list[dict] | None = None,
) -> str:
    """report.md: the results table with links to the images.

    Args:
      predictions: predictions.csv rows, for the per-split no-speech counts.
    """
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
    if line := no_speech_line(results, predictions):
        lines += ["", line]
    if "summary" in results:
        lines += ["", *summary_tables(results["summary"])]
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
    results = rundir.read_results(workdir)
    out = os.path.join(workdir, rundir.REPORT)
    os.makedirs(out, exist_ok=True)
    images = {}
    for name, rep in results["splits"].items():
        fig, _ = plot_confusion(rep, name)
        images[f"confusion_{name}"] = figures.save(
            fig, os.path.join(out, f"confusion_{name}.png")
        )
    runs = []
    for name, run in rundir.fold_results(workdir):
        with open(os.path.join(run, rundir.FOLD_RESULT)) as f:
            runs.append((name, json.load(f), read_learning_rate(run)))
    if runs:
        images["curves"] = figures.save(
            plot_curves(runs), os.path.join(out, "curves.png")
        )
    if "folds" in results:
        images["folds"] = figures.save(
            plot_fold_bars(results), os.path.join(out, "folds.png")
        )
    rel = {k: os.path.basename(v) for k, v in images.items()}
    md = os.path.join(out, "report.md")
    with open(md, "w") as f:
        f.write(markdown(workdir, results, rel, rundir.read_predictions(workdir)))
    return {**images, "report": md}


# --------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    """The CLI (module docstring); returns the exit status (2 on an input
    error, printed as one line `error: ...`)."""
    from jaxpara import errors

    return errors.run_cli(_report, argv)


def _report(argv) -> int:
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
    if args.attention:
        from jaxpara.attention_plots import write_attention

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
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    sys.exit(main())
