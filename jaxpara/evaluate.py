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
import json
import os

import numpy as np

from jaxpara import aggregation, metrics
from jaxpara.data import pipeline


def predict(
    step_fn, split: pipeline.SplitData, norm, *, global_batch: int
) -> np.ndarray:
    """Segment posteriors [S, K] of a split, every segment exactly once.

    Args:
      step_fn: batch dict -> posteriors [B, K] (the jitted eval step).
      split: the split's segments.
      norm: normalisation statistics (or None).
      global_batch: evaluation batch size; the last batch is padded + masked.
    """
    outs, masks = [], []
    for batch in pipeline.eval_batches(split, norm, global_batch=global_batch):
        outs.append(np.asarray(step_fn(batch)))
        masks.append(batch["mask"] > 0)
    posteriors = np.concatenate(outs)[np.concatenate(masks)]
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
    if len(fold_results) == 1:
        results["splits"] = fold_results[0]["splits"]
        results["fold_warnings"] = fold_results[0]["warnings"]
    else:
        results["folds"] = [
            {"fold": r["fold"], "seed": r["seed"], "splits": r["splits"]}
            for r in fold_results
        ]
        results["summary"] = aggregation.summarise(results["folds"])
        first = [r for r in fold_results if r["seed"] == config.seed]
        results["splits"] = {
            name: rep
            for name in ("validation", "test")
            if (rep := pooled_report(first, name, list(corpus.labels), config.eval))
        }
    results["wall_time_s"] = round(wall_time_s, 1)
    return results


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
