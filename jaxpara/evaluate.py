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
