"""Segment -> utterance aggregation and fold/seed summaries (NumPy, host side).

Models score fixed-length segments; papers report utterance-level results
(SPEC "Metrics"). Evaluation batches are padded so every segment counts once;
padded rows carry `valid=False` and are ignored here. Every utterance of a split
receives exactly one prediction: an utterance with no valid segment is an error,
never silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

METHODS = ("vote", "mean", "max")


def aggregate(
    utterance_index: np.ndarray,
    posteriors: np.ndarray,
    valid: np.ndarray,
    num_utterances: int,
    method: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Combines segment posteriors into one posterior and prediction per utterance.

    Methods:
      'vote': majority of the segment argmax classes. A tie is broken by the
        highest mean posterior among the tied classes (then by the lowest class
        index). The reported utterance posterior is the mean posterior.
      'mean': mean posterior over segments; prediction = its argmax.
      'max': per-class max over segments (card C5); prediction = its argmax.
        The reported posterior is that per-class max renormalised to sum to 1
        (the argmax is unchanged by the renormalisation).

    Args:
      utterance_index: `[N]` int, utterance (0..U-1) of each segment. Entries of
        invalid rows are ignored (they may be -1 or anything else).
      posteriors: `[N, K]` float class probabilities per segment (softmax
        outputs, non-negative). Invalid rows are ignored, even if NaN.
      valid: `[N]` bool, False for padding rows of the last eval batch.
      num_utterances: U, the number of utterances in the split.
      method: one of `METHODS`.

    Returns:
      (utterance_posteriors `[U, K]` float64, utterance_predictions `[U]` int64).

    Raises:
      ValueError: unknown method, mismatched shapes, a valid segment with an
        utterance index outside [0, U) or a non-finite posterior, or an
        utterance without any valid segment.
    """
    if method not in METHODS:
        raise ValueError(
            f"unknown aggregation method {method!r} (eval.aggregation); "
            f"expected one of {list(METHODS)}"
        )
    utterance_index = np.asarray(utterance_index)
    posteriors = np.asarray(posteriors)
    valid = np.asarray(valid, dtype=bool)
    if posteriors.ndim != 2:
        raise ValueError(f"posteriors must be [N, K], got shape {posteriors.shape}")
    n, k = posteriors.shape
    if utterance_index.shape != (n,) or valid.shape != (n,):
        raise ValueError(
            f"utterance_index {utterance_index.shape} and valid {valid.shape} "
            f"must both be [N] with N = {n} (posteriors {posteriors.shape})"
        )
    if num_utterances < 0:
        raise ValueError(f"num_utterances must be >= 0, got {num_utterances}")

    idx = utterance_index[valid].astype(np.int64)  # [M]
    post = posteriors[valid].astype(np.float64)  # [M, K]
    out_of_range = (idx < 0) | (idx >= num_utterances)
    if out_of_range.any():
        raise ValueError(
            f"{int(out_of_range.sum())} valid segments have an utterance index "
            f"outside [0, {num_utterances}), e.g. "
            f"{sorted(set(idx[out_of_range].tolist()))[:5]}"
        )
    if not np.isfinite(post).all():
        raise ValueError("non-finite posteriors in valid segments")

    counts = np.bincount(idx, minlength=num_utterances)  # [U]
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise ValueError(
            f"{missing.size} of {num_utterances} utterances have no valid segment "
            f"and would get no prediction; indices {missing[:10].tolist()}"
            + (" ..." if missing.size > 10 else "")
        )

    if method == "max":
        maxima = np.full((num_utterances, k), -np.inf)
        np.maximum.at(maxima, idx, post)
        predictions = maxima.argmax(axis=1)
        total = maxima.sum(axis=1, keepdims=True)
        utt_post = np.divide(
            maxima,
            total,
            out=np.full_like(maxima, 1.0 / max(k, 1)),
            where=total > 0,
        )
        return utt_post, predictions.astype(np.int64)

    sums = np.zeros((num_utterances, k))
    np.add.at(sums, idx, post)
    mean = sums / counts[:, None]  # [U, K]
    if method == "mean":
        return mean, mean.argmax(axis=1).astype(np.int64)

    # 'vote'
    votes = np.bincount(
        idx * k + post.argmax(axis=1), minlength=num_utterances * k
    ).reshape(num_utterances, k)
    tied = votes == votes.max(axis=1, keepdims=True)  # [U, K]
    predictions = np.where(tied, mean, -np.inf).argmax(axis=1)
    return mean, predictions.astype(np.int64)


def summarise(fold_results: Sequence[dict]) -> dict[str, dict]:
    """Mean and standard deviation of UAR / WA per split over folds x seeds.

    The std is the sample std (ddof = 1), as papers report (e.g. card C5's
    "62.86 +- 9.43" over 10 folds x 5 seeds); 0.0 when there is a single result.
    A None score (undefined, e.g. NaN written as None) makes that split's mean
    and std None.

    Args:
      fold_results: entries `{"fold": str, "seed": int, "splits": {split:
        {"uar": float, "wa": float, ...}}}`.

    Returns:
      `{split: {"uar_mean", "uar_std", "wa_mean", "wa_std", "n"}}` with splits
      in order of first appearance; n = number of results for that split.
    """
    if not fold_results:
        raise ValueError("summarise needs at least one fold result")
    values: dict[str, dict[str, list[float]]] = {}
    for result in fold_results:
        for split, scores in result["splits"].items():
            entry = values.setdefault(split, {"uar": [], "wa": []})
            for key in ("uar", "wa"):
                v = scores[key]
                entry[key].append(math.nan if v is None else float(v))
    out: dict[str, dict] = {}
    for split, entry in values.items():
        row: dict = {}
        for key in ("uar", "wa"):
            arr = np.asarray(entry[key])
            std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
            row[f"{key}_mean"] = _json_float(arr.mean())
            row[f"{key}_std"] = _json_float(std) if not np.isnan(arr).any() else None
        row["n"] = len(entry["uar"])
        out[split] = row
    return out


def _json_float(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x
