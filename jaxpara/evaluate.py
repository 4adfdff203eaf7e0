"""Evaluation: segment posteriors -> utterance predictions -> reports and files.

`results.json` schema (stable):
  {"config": {...}, "model": {"name", "num_params"},
   "corpus": {"name", "root", "labels", "counts", "excluded", "warnings"},
   "splits": {"<split>": {"uar", "wa", "n_utterances", "labels",
              "confusion_matrix", "per_class_recall", "n_skipped", and where
              they apply "sensitivity", "specificity", "uar_ci95",
              "icbhi_score", "baseline_uar"}},
   protocol runs also: "folds": [{"fold", "seed", "splits": {...}}],
                       "summary": {"<split>": {"uar_mean", "uar_std",
                                   "wa_mean", "wa_std", "n"}}}
For protocol runs, top-level "splits" pools the utterance predictions of all
folds of the first seed (each utterance of the corpus once).
"""

from __future__ import annotations

import csv
import functools
import json
import os

import jax
import numpy as np

from jaxpara import aggregation, metrics
from jaxpara.data import pipeline


def predict(
    step_fn,
    split: pipeline.SplitData,
    norm,
    *,
    global_batch: int,
    process_index: int = 0,
    process_count: int = 1,
) -> np.ndarray:
    """Segment posteriors [S, ...] of a split, every segment exactly once.

    Args:
      step_fn: this process's slice of a global batch -> posteriors of the
        whole global batch [B, ...] (the jitted eval step, replicated output).
      split: the split's segments.
      norm: normalisation statistics (or None).
      global_batch: evaluation batch size; the last batch is padded + masked.
      process_index, process_count: this process's slice of each batch.
    """
    outs = [
        np.asarray(step_fn(batch))
        for batch in pipeline.eval_batches(
            split,
            norm,
            global_batch=global_batch,
            process_index=process_index,
            process_count=process_count,
        )
    ]
    # eval_batches puts segment i at global row i and pads at the end only.
    posteriors = np.concatenate(outs)[: split.num_segments]
    if posteriors.shape[0] != split.num_segments:
        raise AssertionError(
            f"{split.name}: {posteriors.shape[0]} predictions for "
            f"{split.num_segments} segments"
        )
    return posteriors


def split_metrics(posteriors: np.ndarray, split: pipeline.SplitData, labels, eval_cfg):
    """Aggregates segments to utterances and scores them.

    Returns:
      (report dict, utterance posteriors [U, K], utterance predictions [U]).
    """
    utt_post, preds = aggregation.aggregate(
        split.utterance_index,
        posteriors,
        np.ones(len(posteriors), bool),
        split.num_utterances,
        eval_cfg.aggregation,
    )
    if len(preds) != split.num_utterances:
        raise AssertionError(
            f"{split.name}: {len(preds)} predictions for {split.num_utterances} "
            "utterances"
        )
    report = metrics.split_report(
        split.utterance_labels,
        preds,
        list(labels),
        positive=eval_cfg.positive_label,
        icbhi_normal=eval_cfg.icbhi_normal_label,
        bootstrap_draws=eval_cfg.bootstrap,
    )
    return report, utt_post, preds


def prediction_rows(split_name, split: pipeline.SplitData, labels, utt_post, preds):
    """predictions.csv rows: split, utterance id, label, prediction, posteriors."""
    rows = []
    for i, u in enumerate(split.utterance_ids):
        row = {
            "split": split_name,
            "utterance_id": u,
            "label": labels[split.utterance_labels[i]],
            "prediction": labels[preds[i]],
        }
        for k, name in enumerate(labels):
            row[f"p_{name}"] = round(float(utt_post[i, k]), 6)
        rows.append(row)
    return rows


def logistic_baseline_uar(store, train, test, num_classes: int, seed: int) -> float:
    """Test UAR of logistic regression on utterance-mean static features.

    The reference point that shows a synthetic task is not trivial: a linear
    model on the utterance-mean log-Mel vector (channel 0), standardised with
    training statistics.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def means(split):
        return np.stack([store.get(u)[:, :, 0].mean(0) for u in split.utterance_ids])

    scaler = StandardScaler().fit(means(train))
    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(scaler.transform(means(train)), train.utterance_labels)
    pred = clf.predict(scaler.transform(means(test)))
    cm = metrics.confusion_matrix(test.utterance_labels, pred, num_classes)
    return float(metrics.uar(cm))


def pooled_report(
    fold_results: list[dict], split: str, labels, eval_cfg
) -> dict | None:
    """One report over the concatenated utterance predictions of several folds."""
    y, p = [], []
    for r in fold_results:
        for row in r["predictions"]:
            if row["split"] == split:
                y.append(labels.index(row["label"]))
                p.append(labels.index(row["prediction"]))
    if not y:
        return None
    return metrics.split_report(
        np.asarray(y),
        np.asarray(p),
        list(labels),
        positive=eval_cfg.positive_label,
        icbhi_normal=eval_cfg.icbhi_normal_label,
        bootstrap_draws=eval_cfg.bootstrap,
    )


def write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, allow_nan=False)
    os.replace(tmp, path)


def write_predictions(path: str, rows: list[dict]) -> None:
    if not rows:
        return
    fields = list(rows[0])
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def evaluate_splits(predict_fn, data: dict, labels, eval_cfg):
    """Reports and prediction rows of every non-empty split of a fold.

    Args:
      predict_fn: SplitData -> segment posteriors [S, K].
      data: {split name: SplitData}.
      labels: class names.
      eval_cfg: `config.eval`.

    Returns:
      ({split: report}, prediction rows of all splits).
    """
    reports, rows = {}, []
    for name, split_data in data.items():
        if split_data.num_utterances == 0:
            continue
        report, utt_post, preds = split_metrics(
            predict_fn(split_data), split_data, labels, eval_cfg
        )
        report["n_skipped"] = len(split_data.skipped)
        if split_data.skipped:
            report["skipped"] = [
                {"utterance_id": u, "reason": r} for u, r in split_data.skipped
            ]
        reports[name] = report
        rows.extend(prediction_rows(name, split_data, labels, utt_post, preds))
    return reports, rows


@functools.partial(jax.jit, static_argnums=0)
def sown_intermediates(model, variables, batch):
    """The 'intermediates' a model sows on a batch, in inference mode."""
    _, state = model.apply(
        variables,
        batch["inputs"],
        frames=batch["frames"],
        gender=batch["gender"],
        train=False,
        mutable=["intermediates"],
    )
    return state.get("intermediates", {})


def save_attention(
    model,
    state,
    data: dict,
    labels,
    norm,
    workdir: str,
    *,
    global_batch: int = 64,
    splits=("validation", "test"),
) -> list[str]:
    """Writes the time-attention vectors a model sows, per utterance (card C4).

    Runs `model` in inference mode with mutable=['intermediates'] over every
    segment of each split and keeps each sown [batch, time'] array (MOMA's
    `attention_layer1` and `attention_mixture`, ACRNN's `temporal_attention`,
    ...); other shapes are skipped. An utterance's vector is its segments'
    weights over their real steps, concatenated in time order: each segment's
    weights sum to 1 over its own real steps. One step is `stride` frames of
    `data.features.hop_ms`, stride = ceil(time / time').

    `<workdir>/attention_<split>.npz` holds `utterance_ids` [U] and `labels`
    [U] (str), and per sown name (the sow path joined with '.'): `<name>`
    [N] float32, `<name>_offsets` [U + 1] int64 (utterance u is
    `<name>[offsets[u]:offsets[u + 1]]`) and `<name>_stride` (int).

    Args:
      model: the flax module; state: one seed's TrainState (anything with
        `params` and `batch_stats`).
      data: {split name: SplitData}; labels: class names.
      norm: normalisation statistics (or None).
      workdir: output folder.
      global_batch: evaluation batch size.
      splits: the splits to write (missing or empty ones are skipped).

    Returns:
      The paths written (none on processes other than 0, which write nothing).
    """
    from flax import traverse_util

    if jax.process_index() > 0:
        return []
    variables = jax.device_get(
        {"params": state.params, "batch_stats": state.batch_stats}
    )
    paths = []
    for name in splits:
        split = data.get(name)
        if split is None or split.num_utterances == 0:
            continue
        per_utt: dict[str, list[list[np.ndarray]]] = {}
        strides: dict[str, int] = {}
        for batch in pipeline.eval_batches(split, norm, global_batch=global_batch):
            inter = jax.device_get(sown_intermediates(model, variables, batch))
            time = batch["inputs"].shape[1]
            for path, values in traverse_util.flatten_dict(inter).items():
                for i, arr in enumerate(values):
                    if np.ndim(arr) != 2:
                        continue
                    key = ".".join(path) + (f".{i}" if len(values) > 1 else "")
                    stride = strides.setdefault(key, -(-time // arr.shape[1]))
                    lists = per_utt.setdefault(
                        key, [[] for _ in range(split.num_utterances)]
                    )
                    for row in np.flatnonzero(batch["mask"] > 0):
                        steps = -(-int(batch["frames"][row]) // stride)
                        u = int(batch["utterance_id"][row])
                        lists[u].append(np.asarray(arr[row, :steps], np.float32))
        out = {
            "utterance_ids": np.asarray(split.utterance_ids),
            "labels": np.asarray([labels[k] for k in split.utterance_labels]),
        }
        for key, lists in per_utt.items():
            vectors = [np.concatenate(v) for v in lists]
            out[key] = np.concatenate(vectors).astype(np.float32)
            out[f"{key}_offsets"] = np.cumsum([0] + [len(v) for v in vectors])
            out[f"{key}_stride"] = np.int64(strides[key])
        path = os.path.join(workdir, f"attention_{name}.npz")
        np.savez(path, **out)
        paths.append(path)
    return paths


def _count_reasons(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, reason in items:
        out[reason] = out.get(reason, 0) + 1
    return out


def protocol_results(
    config, corpus, root: str, store, fold_results: list[dict], *, wall_time_s: float
) -> dict:
    """The results.json dict of a run (schema at the top of this module).

    Args:
      fold_results: `train.train_fold` outputs, each with "fold", "seed" and
        "warnings" added, in (fold, seed) order.
    """
    results = {
        "config": json.loads(config.to_json_best_effort()),
        "model": {
            "name": config.model.name,
            "num_params": fold_results[0]["num_params"],
        },
        "corpus": {
            "name": corpus.name,
            "root": root,
            "synthetic": not config.data.root,
            "labels": list(corpus.labels),
            "counts": corpus.counts(),
            "n_excluded": len(corpus.excluded),
            "excluded_reasons": _count_reasons(corpus.excluded),
            "warnings": corpus.warnings,
            "unreadable": store.failed,
            "vad_no_speech": len(store.no_speech),
        },
    }
    results.update(fold_splits(config, corpus.labels, fold_results))
    if len(fold_results) == 1:
        results["fold_warnings"] = fold_results[0]["warnings"]
    results["wall_time_s"] = round(wall_time_s, 1)
    return results


def fold_splits(config, labels, fold_results: list[dict]) -> dict:
    """The split reports of a run: {"splits"} for one fold and seed, else
    {"folds" (each fold x seed), "summary" (mean/std over them), "splits"
    (validation/test pooled over the folds of the first seed)}."""
    if len(fold_results) == 1:
        return {"splits": fold_results[0]["splits"]}
    folds = [
        {"fold": r["fold"], "seed": r["seed"], "splits": r["splits"]}
        for r in fold_results
    ]
    first = [r for r in fold_results if r["seed"] == config.seed]
    return {
        "folds": folds,
        "summary": aggregation.summarise(folds),
        "splits": {
            name: rep
            for name in ("validation", "test")
            if (rep := pooled_report(first, name, list(labels), config.eval))
        },
    }


def write_results(workdir: str, results: dict, fold_results: list[dict]) -> None:
    """Writes results.json and predictions.csv (rows tagged with fold and seed)."""
    write_json(os.path.join(workdir, "results.json"), results)
    rows = []
    for r in fold_results:
        rows.extend(
            {"fold": r["fold"], "seed": r["seed"], **row} for row in r["predictions"]
        )
    write_predictions(os.path.join(workdir, "predictions.csv"), rows)


def log_summary(results: dict) -> None:
    from absl import logging

    for name, rep in results["splits"].items():
        logging.info(
            "%s: UAR %.4f WA %.4f (%d utterances)%s",
            name,
            rep["uar"],
            rep["wa"],
            rep["n_utterances"],
            f" baseline UAR {rep['baseline_uar']:.4f}" if "baseline_uar" in rep else "",
        )
