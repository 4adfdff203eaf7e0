"""The evaluator: segment outputs -> utterance predictions -> reports and rows.

One `Evaluator` (a predict function, the normalisation statistics, the eval
config and the class names) serves validation, the final evaluation, the
deep-spectrum export and `jaxpara.predict`: every segment of a split goes
through the predict function exactly once in padded, masked batches
(`outputs`), segments are aggregated to utterances with
`config.eval.aggregation` (`aggregate`) and scored (`report`). The
results.json assembly lives in `jaxpara.results`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxpara import aggregation, metrics, models, rundir
from jaxpara.data import pipeline


@dataclasses.dataclass(frozen=True)
class Evaluator:
    """Scores splits with one predict function.

    Attributes:
      predict_fn: this process's slice of a global eval batch -> outputs of
        the whole global batch [B, ...] (e.g. posteriors [B, K], or [B, S, K]
        for S vmapped seeds; replicated output).
      norm: normalisation statistics (or None).
      eval_cfg: `config.eval` (aggregation, positive / ICBHI labels, bootstrap).
      labels: class names.
      batch_size: global evaluation batch; the last batch is padded + masked.
      process_index, process_count: this process's slice of each batch.
    """

    predict_fn: Callable
    norm: Any
    eval_cfg: Any
    labels: tuple
    batch_size: int
    process_index: int = 0
    process_count: int = 1

    def with_predict(self, predict_fn: Callable) -> Evaluator:
        """The same evaluator with another predict function (another state)."""
        return dataclasses.replace(self, predict_fn=predict_fn)

    def outputs(self, split: pipeline.SplitData) -> np.ndarray:
        """Outputs [S, ...] of every segment of `split`, each exactly once."""
        outs = [
            np.asarray(self.predict_fn(batch))
            for batch in pipeline.eval_batches(
                split,
                self.norm,
                global_batch=self.batch_size,
                process_index=self.process_index,
                process_count=self.process_count,
            )
        ]
        # eval_batches puts segment i at global row i and pads at the end only.
        out = np.concatenate(outs)[: split.num_segments]
        if out.shape[0] != split.num_segments:
            raise AssertionError(
                f"{split.name}: {out.shape[0]} outputs for {split.num_segments} segments"
            )
        return out

    def all_outputs(self, data: dict) -> dict[str, np.ndarray]:
        """{split name: outputs} of every non-empty split of `data`."""
        return {n: self.outputs(s) for n, s in data.items() if s.num_utterances}

    def aggregate(self, split: pipeline.SplitData, posteriors: np.ndarray):
        """(utterance posteriors [U, K], predictions [U]) of segment posteriors."""
        utt_post, preds = aggregation.aggregate(
            split.utterance_index,
            posteriors,
            np.ones(len(posteriors), bool),
            split.num_utterances,
            self.eval_cfg.aggregation,
        )
        if len(preds) != split.num_utterances:
            raise AssertionError(
                f"{split.name}: {len(preds)} predictions for {split.num_utterances} "
                "utterances"
            )
        return utt_post, preds

    def report(self, split: pipeline.SplitData, predictions: np.ndarray) -> dict:
        """The split report (`metrics.split_report`) of utterance predictions,
        with the split's skipped utterances counted and listed."""
        cfg = self.eval_cfg
        report = metrics.split_report(
            split.utterance_labels,
            predictions,
            self.labels,
            positive=cfg.positive_label,
            icbhi_normal=cfg.icbhi_normal_label,
            bootstrap_draws=cfg.bootstrap,
        )
        report["n_skipped"] = len(split.skipped)
        if split.skipped:
            report["skipped"] = [
                {"utterance_id": u, "reason": r} for u, r in split.skipped
            ]
        return report

    def rows(self, split: pipeline.SplitData, predictions, posteriors=None):
        """predictions.csv rows: split, utterance id, label, prediction[, p_*]."""
        rows = []
        for i, u in enumerate(split.utterance_ids):
            row = {
                "split": split.name,
                "utterance_id": u,
                "label": self.labels[split.utterance_labels[i]],
                "prediction": self.labels[predictions[i]],
            }
            if posteriors is not None:
                for k, name in enumerate(self.labels):
                    row[f"p_{name}"] = round(float(posteriors[i, k]), 6)
            rows.append(row)
        return rows

    def evaluate(self, data: dict, posteriors: dict[str, np.ndarray]):
        """Reports and rows of every split that has posteriors.

        Args:
          data: {split name: SplitData}.
          posteriors: {split name: segment posteriors [S, K]} (one replica).

        Returns:
          ({split: report}, prediction rows of all splits).
        """
        reports, rows = {}, []
        for name, post in posteriors.items():
            split = data[name]
            utt_post, preds = self.aggregate(split, post)
            reports[name] = self.report(split, preds)
            rows.extend(self.rows(split, preds, utt_post))
        return reports, rows


# ---------------------------------------------------- sown attention (C4)
@functools.partial(jax.jit, static_argnums=0)
def sown_intermediates(model, variables, batch):
    """`models.intermediates` of a batch, jitted (one program per model)."""
    return models.intermediates(model, variables, batch)


def save_attention(
    model,
    variables,
    data: dict,
    labels,
    norm,
    out_dir: str,
    *,
    global_batch: int = 64,
    splits=("validation", "test"),
) -> list[str]:
    """Writes the time-attention vectors a model sows, per utterance (card C4).

    Keeps each sown [batch, time'] array (MOMA's `attention_layer1` and
    `attention_mixture`, ACRNN's `temporal_attention`, ...; names as
    `models.intermediates` gives them); other shapes are skipped. An
    utterance's vector is its segments' weights over their real steps,
    concatenated in time order: each segment's weights sum to 1 over its own
    real steps. One step is `stride` frames of `data.features.hop_ms`, stride
    = ceil(time / time').

    `<out_dir>/attention_<split>.npz` holds `utterance_ids` [U] and `labels`
    [U] (str), and per sown name: `<name>` [N] float32, `<name>_offsets`
    [U + 1] int64 (utterance u is `<name>[offsets[u]:offsets[u + 1]]`) and
    `<name>_stride` (int).

    Args:
      model: the flax module; variables: one replica's {"params",
        "batch_stats"}.
      data: {split name: SplitData}; labels: class names.
      norm: normalisation statistics (or None).
      out_dir: the seed's result folder.
      global_batch: evaluation batch size.
      splits: the splits to write (missing or empty ones are skipped).

    Returns:
      The paths written (none on processes other than 0, which write nothing).
    """
    if jax.process_index() > 0:
        return []
    variables = jax.device_get(variables)
    paths = []
    for name in splits:
        split = data.get(name)
        if split is None or split.num_utterances == 0:
            continue
        per_utt: dict[str, list[list[np.ndarray]]] = {}
        strides: dict[str, int] = {}
        for batch in pipeline.eval_batches(split, norm, global_batch=global_batch):
            sown = jax.device_get(sown_intermediates(model, variables, batch))
            time = batch["inputs"].shape[1]
            for key, arr in sown.items():
                if np.ndim(arr) != 2:
                    continue
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
        path = os.path.join(out_dir, rundir.attention_file(name))
        np.savez(path, **out)
        paths.append(path)
    return paths
