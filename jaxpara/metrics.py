"""Classification scores computed from confusion matrices (NumPy, host side).

Conventions (SPEC "Metrics"): a confusion matrix `cm` has shape
`[num_classes, num_classes]`, rows = true class, columns = predicted class.
UAR (unweighted average recall, "UA") = mean over classes of per-class recall;
WA (weighted accuracy) = overall accuracy. Seed 003 swaps the two names; jaxpara
always reports the conventional ones.

Every function here is pure NumPy so it can run on accumulated sufficient
statistics (confusion matrices) after a device-side evaluation loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.stats

# Upper bound on `draws * num_utterances` index entries generated at once by
# `bootstrap_uar_ci`, so that memory stays bounded for large test sets.
_BOOTSTRAP_CHUNK_ELEMENTS = 4_000_000


def confusion_matrix(
    labels: np.ndarray | Sequence[int],
    predictions: np.ndarray | Sequence[int],
    num_classes: int,
) -> np.ndarray:
    """Counts (true, predicted) class pairs.

    Args:
      labels: `[N]` integer true classes in `[0, num_classes)`.
      predictions: `[N]` integer predicted classes in `[0, num_classes)`.
      num_classes: K.

    Returns:
      `[K, K]` int64 matrix; `cm[i, j]` = number of items of true class i
      predicted as class j.

    Raises:
      ValueError: shapes differ, `num_classes < 1`, or a value lies outside
        `[0, num_classes)`.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    labels, predictions = _paired_indices(labels, predictions, num_classes)
    flat = labels * num_classes + predictions
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall of each class.

    Args:
      cm: `[K, K]` confusion matrix (rows = true).

    Returns:
      `[K]` float64; `cm[k, k] / cm[k].sum()`, NaN for a class with no true
      examples (its recall is undefined, not 0).
    """
    cm = _as_confusion(cm)
    support = cm.sum(axis=1)
    correct = np.diag(cm).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, correct / np.maximum(support, 1), np.nan)


def uar(cm: np.ndarray) -> float:
    """Unweighted average recall.

    Classes without true examples (NaN recall) are left out of the mean, as in
    scikit-learn's `balanced_accuracy_score`; NaN if no class has examples.

    Args:
      cm: `[K, K]` confusion matrix.

    Returns:
      UAR in [0, 1] (or NaN for an empty matrix).
    """
    recall = per_class_recall(cm)
    present = ~np.isnan(recall)
    if not present.any():
        return math.nan
    return float(recall[present].mean())


def wa(cm: np.ndarray) -> float:
    """Weighted accuracy (overall accuracy): trace / total; NaN if empty.

    Args:
      cm: `[K, K]` confusion matrix.
    """
    cm = _as_confusion(cm)
    total = cm.sum()
    if total == 0:
        return math.nan
    return float(np.trace(cm) / total)


def f1_macro(cm: np.ndarray) -> float:
    """Macro-averaged F1 over the classes with true or predicted examples.

    Matches scikit-learn's `f1_score(average='macro')` restricted to the labels
    present in either `labels` or `predictions` (a class never seen has no
    defined F1); F1 of a present class with no true positives is 0. NaN for an
    empty matrix.

    Args:
      cm: `[K, K]` confusion matrix.
    """
    cm = _as_confusion(cm).astype(np.float64)
    tp = np.diag(cm)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return math.nan
    f1 = 2 * tp[present] / (support[present] + predicted[present])
    return float(f1.mean())


def sensitivity_specificity(cm: np.ndarray, positive: int) -> tuple[float, float]:
    """Sensitivity and specificity w.r.t. one positive class.

    For K = 2 these are the recalls of the positive and the negative class. For
    K > 2 every other class is merged into "negative": specificity is the
    fraction of non-positive items not predicted as `positive` (a confusion
    among negative classes still counts as a correct negative).

    Args:
      cm: `[K, K]` confusion matrix.
      positive: index of the positive class.

    Returns:
      (sensitivity, specificity); NaN where the denominator is 0.
    """
    cm = _as_confusion(cm)
    k = cm.shape[0]
    if not 0 <= positive < k:
        raise ValueError(f"positive class {positive} outside [0, {k})")
    pos_total = cm[positive].sum()
    se = cm[positive, positive] / pos_total if pos_total else math.nan
    negative = np.arange(k) != positive
    neg_total = cm[negative].sum()
    neg_correct = cm[np.ix_(negative, negative)].sum()
    sp = neg_correct / neg_total if neg_total else math.nan
    return float(se), float(sp)


def icbhi_scores(cm: np.ndarray, normal: int) -> dict[str, float]:
    """ICBHI 2017 challenge scores (SPEC "Metrics", card C2).

    SE = abnormal cycles classified as exactly their own class / all abnormal
    cycles (a crackle predicted as wheeze is an error); SP = normal cycles
    predicted normal / all normal cycles; score = (SE + SP) / 2.

    Args:
      cm: `[K, K]` confusion matrix.
      normal: index of the normal class.

    Returns:
      {"se", "sp", "score"}; NaN where a denominator is 0.
    """
    cm = _as_confusion(cm)
    k = cm.shape[0]
    if not 0 <= normal < k:
        raise ValueError(f"normal class {normal} outside [0, {k})")
    abnormal = np.arange(k) != normal
    abn_total = cm[abnormal].sum()
    abn_correct = np.diag(cm)[abnormal].sum()
    se = abn_correct / abn_total if abn_total else math.nan
    norm_total = cm[normal].sum()
    sp = cm[normal, normal] / norm_total if norm_total else math.nan
    se, sp = float(se), float(sp)
    return {"se": se, "sp": sp, "score": (se + sp) / 2.0}


def bootstrap_uar_ci(
    labels: np.ndarray | Sequence[int],
    predictions: np.ndarray | Sequence[int],
    num_classes: int,
    *,
    draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of UAR over utterances.

    Each draw resamples the N utterances with replacement (all draws at once,
    in memory-bounded chunks); UAR per draw leaves out classes absent from that
    draw's labels.

    Args:
      labels: `[N]` true classes.
      predictions: `[N]` predicted classes.
      num_classes: K.
      draws: number of bootstrap resamples (>= 1).
      seed: seed of `np.random.default_rng`; same inputs + seed -> same CI.
      level: confidence level in (0, 1).

    Returns:
      (lo, hi): the `(1 - level) / 2` and `(1 + level) / 2` percentiles.
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    labels, predictions = _paired_indices(labels, predictions, num_classes)
    n = labels.shape[0]
    if n == 0:
        raise ValueError("bootstrap_uar_ci needs at least one utterance")
    uars = np.empty(draws, np.float64)
    for start, idx in _resamples(n, draws, seed):
        uars[start : start + len(idx)] = _draw_uars(
            labels, predictions, idx, num_classes
        )
    alpha = (1.0 - level) / 2.0
    lo, hi = np.percentile(uars, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return float(lo), float(hi)


def two_proportion_z_test(
    correct_a: int, n_a: int, correct_b: int, n_b: int
) -> tuple[float, float]:
    """One-tailed two-proportion z-test (seed 002), H1: accuracy(A) > accuracy(B).

    z = (p_a - p_b) / sqrt(p (1 - p) (1 / n_a + 1 / n_b)) with the pooled
    proportion p = (correct_a + correct_b) / (n_a + n_b); p-value = P(Z > z).
    When p is 0 or 1 the two systems are identical: z = 0, p-value = 0.5.

    Args:
      correct_a: correctly classified items of system A.
      n_a: items evaluated for A (> 0).
      correct_b: correctly classified items of system B.
      n_b: items evaluated for B (> 0).

    Returns:
      (z, one-tailed p-value).
    """
    for name, c, n in (("a", correct_a, n_a), ("b", correct_b, n_b)):
        if n <= 0 or not 0 <= c <= n:
            raise ValueError(
                f"system {name}: need 0 <= correct <= n and n > 0, got {c}/{n}"
            )
    p_a, p_b = correct_a / n_a, correct_b / n_b
    pooled = (correct_a + correct_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    if se == 0.0:
        return 0.0, 0.5
    z = (p_a - p_b) / se
    return float(z), float(scipy.stats.norm.sf(z))


def mcnemar_exact(correct_a, correct_b) -> dict:
    """Exact (binomial) McNemar test of two systems on the same items.

    b = items A gets right and B wrong, c = the reverse; under H0 (equal
    error rates) b ~ Binomial(b + c, 1/2). Two-sided p-value
    min(1, 2 P(X <= min(b, c))); 1.0 when the systems never disagree.

    Args:
      correct_a: `[N]` bool, A's prediction is right.
      correct_b: `[N]` bool, B's, on the same N items in the same order.

    Returns:
      {"b", "c", "p_value"}.
    """
    a = np.asarray(correct_a, bool)
    b_ = np.asarray(correct_b, bool)
    if a.shape != b_.shape or a.ndim != 1:
        raise ValueError(f"need two [N] arrays, got shapes {a.shape} and {b_.shape}")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    n = b + c
    p = (
        1.0
        if n == 0
        else min(1.0, 2.0 * float(scipy.stats.binom.cdf(min(b, c), n, 0.5)))
    )
    return {"b": b, "c": c, "p_value": p}


def paired_bootstrap_uar_difference(
    labels,
    predictions_a,
    predictions_b,
    num_classes: int,
    *,
    draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Paired percentile bootstrap of UAR(B) - UAR(A) over the same utterances.

    Each draw resamples the N utterances with replacement, the same
    utterances for both systems; UAR per draw leaves out classes absent from
    the draw's labels (as `bootstrap_uar_ci`).

    Returns:
      {"difference" (on all utterances), "ci95": [lo, hi], "draws", "seed"}
      (the key says 95 only when level = 0.95: it is `ci<100 level>`).
    """
    labels, pa = _paired_indices(labels, predictions_a, num_classes)
    _, pb = _paired_indices(labels, predictions_b, num_classes)
    n, k = labels.shape[0], num_classes
    if n == 0:
        raise ValueError("paired_bootstrap_uar_difference needs at least one utterance")
    if draws < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"need draws >= 1 and 0 < level < 1, got {draws}, {level}")
    diffs = np.empty(draws, np.float64)
    for start, idx in _resamples(n, draws, seed):
        diffs[start : start + len(idx)] = _draw_uars(labels, pb, idx, k) - _draw_uars(
            labels, pa, idx, k
        )
    alpha = (1.0 - level) / 2.0
    lo, hi = np.percentile(diffs, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    full = uar(confusion_matrix(labels, pb, k)) - uar(confusion_matrix(labels, pa, k))
    return {
        "difference": float(full),
        f"ci{round(100 * level)}": [float(lo), float(hi)],
        "draws": draws,
        "seed": seed,
    }


def split_report(
    labels: np.ndarray | Sequence[int],
    predictions: np.ndarray | Sequence[int],
    class_names: Sequence[str],
    *,
    positive: str = "",
    icbhi_normal: str = "",
    bootstrap_draws: int = 1000,
    seed: int = 0,
) -> dict:
    """All scores of one evaluated split as a JSON-ready dict.

    Args:
      labels: `[N]` true class indices (utterance level).
      predictions: `[N]` predicted class indices.
      class_names: K class names; index k is `class_names[k]`.
      positive: binary tasks: name of the positive class; adds `sensitivity`,
        `specificity` and `uar_ci95` (bootstrap over utterances).
      icbhi_normal: ICBHI: name of the normal class; adds `icbhi_score` and
        ICBHI `sensitivity` / `specificity`. Mutually exclusive with `positive`
        (the two define sensitivity differently).
      bootstrap_draws: draws for `uar_ci95`; 0 -> `uar_ci95` is None.
      seed: bootstrap seed.

    Returns:
      Dict with plain Python values (json.dumps-able, NaN written as None):
      uar, wa, f1_macro, n_utterances, labels, confusion_matrix (nested lists),
      per_class_recall ({class: recall or None}) and the optional keys above.
    """
    class_names = [str(c) for c in class_names]
    k = len(class_names)
    if positive and icbhi_normal:
        raise ValueError(
            "give either positive (binary SE/SP) or icbhi_normal (ICBHI SE/SP), "
            f"not both: got positive={positive!r}, icbhi_normal={icbhi_normal!r}"
        )
    cm = confusion_matrix(labels, predictions, k)
    n = int(cm.sum())
    if n == 0:
        raise ValueError("split_report needs at least one utterance")
    recall = per_class_recall(cm)
    report: dict = {
        "uar": _json_float(uar(cm)),
        "wa": _json_float(wa(cm)),
        "f1_macro": _json_float(f1_macro(cm)),
        "n_utterances": n,
        "labels": class_names,
        "confusion_matrix": cm.tolist(),
        "per_class_recall": {
            name: _json_float(r) for name, r in zip(class_names, recall)
        },
    }
    if positive:
        pos = _class_index(class_names, positive, "positive")
        se, sp = sensitivity_specificity(cm, pos)
        report["sensitivity"] = _json_float(se)
        report["specificity"] = _json_float(sp)
        if bootstrap_draws > 0:
            lo, hi = bootstrap_uar_ci(
                labels, predictions, k, draws=bootstrap_draws, seed=seed
            )
            report["uar_ci95"] = [_json_float(lo), _json_float(hi)]
        else:
            report["uar_ci95"] = None
    if icbhi_normal:
        normal = _class_index(class_names, icbhi_normal, "icbhi_normal")
        scores = icbhi_scores(cm, normal)
        report["icbhi_score"] = _json_float(scores["score"])
        report["sensitivity"] = _json_float(scores["se"])
        report["specificity"] = _json_float(scores["sp"])
    return report


def _as_index_array(values, name: str, num_classes: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold integer class indices, got {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= num_classes)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} {name} outside [0, {num_classes}), e.g. "
            f"{sorted(set(arr[bad].tolist()))[:5]}"
        )
    return arr


def _resamples(n: int, draws: int, seed: int):
    """Yields (first draw, [m, N] resampled indices) in memory-bounded chunks."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    for start in range(0, draws, chunk):
        m = min(chunk, draws - start)
        yield start, rng.integers(0, n, size=(m, n))


def _draw_uars(labels, predictions, idx: np.ndarray, k: int) -> np.ndarray:
    """UAR of each resample (row of `idx` [m, N]); classes absent from a
    resample's labels are left out of its mean."""
    m = idx.shape[0]
    flat = labels * k + predictions  # [N] cell index of each utterance.
    cells = flat[idx] + (np.arange(m) * k * k)[:, None]
    cms = np.bincount(cells.ravel(), minlength=m * k * k).reshape(m, k, k)
    support = cms.sum(axis=2)  # [m, K]
    correct = np.diagonal(cms, axis1=1, axis2=2)  # [m, K]
    present = support > 0
    recall = np.where(present, correct / np.maximum(support, 1), 0.0)
    return recall.sum(axis=1) / present.sum(axis=1)


def _paired_indices(labels, predictions, num_classes: int):
    """Validated int64 (labels, predictions) of equal shape."""
    labels = _as_index_array(labels, "labels", num_classes)
    predictions = _as_index_array(predictions, "predictions", num_classes)
    if labels.shape != predictions.shape:
        raise ValueError(
            f"labels and predictions differ in shape: {labels.shape} vs "
            f"{predictions.shape}"
        )
    return labels, predictions


def _as_confusion(cm) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be [K, K], got shape {cm.shape}")
    return cm


def _class_index(class_names: list[str], name: str, arg: str) -> int:
    try:
        return class_names.index(name)
    except ValueError:
        raise ValueError(
            f"{arg}={name!r} is not a class; expected one of {class_names}"
        ) from None


def _json_float(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x
