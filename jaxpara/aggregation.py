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
    """Mean +- std of UAR / WA per split over folds, seeds averaged first.

    Card C5's (seed 004 Table 1, SPEC Metrics) way: each fold's value is the
    mean over its seeds; the summary is the mean and the POPULATION std
    (ddof = 0) of the fold values (Table 1's UWA column gives 59.43 +- 11.57
    and 62.86 +- 9.44). Within a fold the seed std is also ddof = 0 (0.0 for
    one seed). A None score (undefined, NaN written as None) makes the
    affected means and stds None.

    Args:
      fold_results: entries `{"fold": str, "seed": int, "splits": {split:
        {"uar": float, "wa": float, ...}}}`.

    Returns:
      `{split: {"uar_mean", "uar_std", "wa_mean", "wa_std", "n_folds",
      "n_seeds", "per_fold": [{"fold", "n_seeds", "uar_mean", "uar_std",
      "wa_mean", "wa_std"}]}}`, splits and folds in order of first
      appearance; "n_seeds" is the largest seed count of a fold.
    """
    per_split = _collect(fold_results, by_fold=True)
    out: dict[str, dict] = {}
    for split, folds in per_split.items():
        rows = []
        for fold, entry in folds.items():
            row = {"fold": fold, "n_seeds": len(entry["uar"])}
            for key in ("uar", "wa"):
                row.update(_mean_std(entry[key], ddof=0, prefix=key))
            rows.append(row)
        summary: dict = {}
        for key in ("uar", "wa"):
            means = [
                math.nan if r[f"{key}_mean"] is None else r[f"{key}_mean"] for r in rows
            ]
            summary.update(_mean_std(means, ddof=0, prefix=key))
        summary["n_folds"] = len(rows)
        summary["n_seeds"] = max(r["n_seeds"] for r in rows)
        summary["per_fold"] = rows
        out[split] = summary
    return out


def summarise_pooled(fold_results: Sequence[dict]) -> dict[str, dict]:
    """Mean and sample std (ddof = 1) of UAR / WA over all fold x seed results.

    Not a paper's summary (see `summarise`); kept as `summary_pooled` in
    results.json. 0.0 std for a single result; a None score makes that
    split's mean and std None.

    Returns:
      `{split: {"uar_mean", "uar_std", "wa_mean", "wa_std", "n"}}`; n = number
      of results for that split.
    """
    out: dict[str, dict] = {}
    for split, entry in _collect(fold_results, by_fold=False).items():
        row: dict = {}
        for key in ("uar", "wa"):
            row.update(_mean_std(entry[key], ddof=1, prefix=key))
        row["n"] = len(entry["uar"])
        out[split] = row
    return out


def _collect(fold_results: Sequence[dict], *, by_fold: bool) -> dict:
    """{split: {"uar": [...], "wa": [...]}} or, by fold, {split: {fold: {...}}}."""
    if not fold_results:
        raise ValueError("summarise needs at least one fold result")
    values: dict = {}
    for result in fold_results:
        for split, scores in result["splits"].items():
            entry = values.setdefault(split, {})
            if by_fold:
                entry = entry.setdefault(result["fold"], {})
            for key in ("uar", "wa"):
                v = scores[key]
                entry.setdefault(key, []).append(math.nan if v is None else float(v))
    return values


def _mean_std(values: Sequence[float], *, ddof: int, prefix: str) -> dict:
    """{"<prefix>_mean", "<prefix>_std"}; std 0.0 for one value, None with a NaN."""
    arr = np.asarray(values, np.float64)
    std = float(arr.std(ddof=ddof)) if arr.size > 1 else 0.0
    undefined = bool(np.isnan(arr).any())
    return {
        f"{prefix}_mean": None if undefined else float(arr.mean()),
        f"{prefix}_std": None if undefined else std,
    }
