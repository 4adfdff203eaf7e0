"""Results files of a run: results.json, predictions.csv, the logged summary.

`results.json` schema (stable):
  {"config": {...}, "model": {"name", "num_params"},
   "corpus": {"name", "root", "labels", "counts", "excluded", "warnings",
              "unreadable", "vad_no_speech" (count), "no_speech" (ids),
              "speech_check"},
   "selection": {"metric", "validation"} (how checkpoints were chosen),
   "splits": {"<split>": {"uar", "wa", "f1_macro", "n_utterances", "labels",
              "confusion_matrix", "per_class_recall", "n_skipped", and where
              they apply "sensitivity", "specificity", "uar_ci95",
              "icbhi_score", "baseline_uar"}},
   models with branches (card C1 fusion) also: "branches": {"<branch>":
              {"splits": {...}}} (each branch's own posteriors, same run),
   protocol runs also: "folds": [{"fold", "seed", "splits": {...}[,
              "branches"]}],
                       "summary": {"<split>": {"uar_mean", "uar_std",
                                   "wa_mean", "wa_std", "n_folds", "n_seeds",
                                   "per_fold": [{"fold", "n_seeds",
                                   "uar_mean", "uar_std", "wa_mean",
                                   "wa_std"}]}} (seeds averaged per fold,
                                   then mean +- ddof-0 std over folds: card
                                   C5, `aggregation.summarise`),
                       "summary_pooled": {"<split>": {"uar_mean", "uar_std",
                                   "wa_mean", "wa_std", "n"}} (all fold x
                                   seed results, ddof 1)}
For protocol runs, top-level "splits" pools the utterance predictions of all
folds of the first seed (each utterance of the corpus once). File names come
from `jaxpara.rundir`.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from jaxpara import aggregation, metrics, rundir


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
            # Utterances with no speech found (kept whole) and by what check
            # (`pipeline.speech_check`: VAD, else the energy floor).
            "vad_no_speech": len(store.no_speech),
            "no_speech": list(store.no_speech),
            "speech_check": store.speech_check,
        },
    }
    results["selection"] = {
        "metric": config.train.selection_metric,
        # False: no validation split; the final checkpoint of the fixed
        # `train.num_epochs` is the one evaluated (cards C3 FAU, C4 IEM4).
        "validation": any(r["has_validation"] for r in fold_results),
        "checkpoint": "best"
        if any(r["has_validation"] for r in fold_results)
        else "final",
    }
    results.update(fold_splits(config, corpus.labels, fold_results))
    if len(fold_results) == 1:
        results["fold_warnings"] = fold_results[0]["warnings"]
    results["wall_time_s"] = round(wall_time_s, 1)
    return results


def _if(value, key: str) -> dict:
    """{key: value} when value is non-empty, else {}."""
    return {key: value} if value else {}


def fold_splits(config, labels, fold_results: list[dict]) -> dict:
    """The split reports of a run: {"splits"} for one fold and seed, else
    {"folds" (each fold x seed), "summary" (per fold over seeds, then over
    folds), "summary_pooled" (over all fold x seed results), "splits"
    (validation/test pooled over the folds of the first seed)}."""
    if len(fold_results) == 1:
        branches = fold_results[0].get("branches")
        return {"splits": fold_results[0]["splits"], **_if(branches, "branches")}
    folds = [
        {
            "fold": r["fold"],
            "seed": r["seed"],
            "splits": r["splits"],
            **_if(r.get("branches"), "branches"),
        }
        for r in fold_results
    ]
    first = [r for r in fold_results if r["seed"] == config.seed]
    return {
        "folds": folds,
        "summary": aggregation.summarise(folds),
        "summary_pooled": aggregation.summarise_pooled(folds),
        "splits": {
            name: rep
            for name in ("validation", "test")
            if (rep := pooled_report(first, name, list(labels), config.eval))
        },
    }


def write_results(workdir: str, results: dict, fold_results: list[dict]) -> None:
    """Writes results.json and predictions.csv (rows tagged with fold and seed)."""
    write_json(os.path.join(workdir, rundir.RESULTS), results)
    rows = []
    for r in fold_results:
        rows.extend(
            {"fold": r["fold"], "seed": r["seed"], **row} for row in r["predictions"]
        )
    write_predictions(os.path.join(workdir, rundir.PREDICTIONS), rows)


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
