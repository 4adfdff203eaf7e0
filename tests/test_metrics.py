"""Tests of jaxpara.metrics against scikit-learn, SciPy and hand computations."""

import json
import math

import numpy as np
import pytest
import scipy.stats
from sklearn import metrics as skm

from jaxpara import metrics


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_scores_match_sklearn(k):
    rng = np.random.default_rng(k)
    labels = rng.integers(0, k, size=200)
    preds = np.where(rng.random(200) < 0.6, labels, rng.integers(0, k, size=200))
    cm = metrics.confusion_matrix(labels, preds, k)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(
        cm, skm.confusion_matrix(labels, preds, labels=list(range(k)))
    )
    np.testing.assert_allclose(
        metrics.per_class_recall(cm),
        skm.recall_score(labels, preds, average=None, labels=list(range(k))),
    )
    assert metrics.uar(cm) == pytest.approx(skm.balanced_accuracy_score(labels, preds))
    assert metrics.wa(cm) == pytest.approx(skm.accuracy_score(labels, preds))


def test_absent_class_is_nan_and_left_out_of_uar():
    labels = np.array([0, 0, 1, 1, 1])
    preds = np.array([0, 2, 1, 1, 0])
    cm = metrics.confusion_matrix(labels, preds, 3)
    recall = metrics.per_class_recall(cm)
    np.testing.assert_allclose(recall[:2], [0.5, 2 / 3])
    assert math.isnan(recall[2])
    assert metrics.uar(cm) == pytest.approx((0.5 + 2 / 3) / 2)
    with pytest.warns(UserWarning):  # sklearn warns about the absent class.
        assert metrics.uar(cm) == pytest.approx(
            skm.balanced_accuracy_score(labels, preds)
        )


def test_confusion_matrix_rejects_out_of_range():
    with pytest.raises(ValueError, match="labels outside"):
        metrics.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="predictions outside"):
        metrics.confusion_matrix([0, 1], [-1, 1], 3)


def test_sensitivity_specificity_binary_and_multiclass():
    cm = np.array([[8, 2], [3, 7]])  # class 1 = positive.
    se, sp = metrics.sensitivity_specificity(cm, positive=1)
    assert (se, sp) == pytest.approx((0.7, 0.8))
    cm3 = np.array([[5, 3, 2], [1, 6, 3], [0, 4, 6]])
    se, sp = metrics.sensitivity_specificity(cm3, positive=2)
    assert se == pytest.approx(0.6)
    # Negatives (rows 0, 1): 20 items, 5 predicted positive -> 15 correct.
    assert sp == pytest.approx(15 / 20)


def test_icbhi_scores_hand_case():
    # classes: normal, crackle, wheeze, both.
    cm = np.array(
        [
            [40, 5, 3, 2],  # normal: 40 / 50 correct.
            [4, 10, 4, 2],  # crackle: 10 exact.
            [2, 3, 9, 1],  # wheeze: 9 exact.
            [1, 2, 2, 5],  # both: 5 exact.
        ]
    )
    s = metrics.icbhi_scores(cm, normal=0)
    assert s["sp"] == pytest.approx(0.8)
    assert s["se"] == pytest.approx(24 / 45)  # crackle-as-wheeze is wrong.
    assert s["score"] == pytest.approx((0.8 + 24 / 45) / 2)


def test_two_proportion_z_test_hand_case():
    z, p = metrics.two_proportion_z_test(80, 100, 70, 100)
    pooled = 150 / 200
    z_hand = 0.1 / math.sqrt(pooled * (1 - pooled) * (2 / 100))
    assert z == pytest.approx(z_hand)
    assert z == pytest.approx(1.632993, rel=1e-6)
    assert p == pytest.approx(scipy.stats.norm.sf(z_hand))
    assert p == pytest.approx(0.0512, abs=1e-4)
    z2, p2 = metrics.two_proportion_z_test(70, 100, 80, 100)
    assert z2 == pytest.approx(-z) and p2 == pytest.approx(1 - p)
    assert metrics.two_proportion_z_test(10, 10, 5, 5) == (0.0, 0.5)
    with pytest.raises(ValueError):
        metrics.two_proportion_z_test(11, 10, 5, 5)


def _noisy(n, k, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    preds = np.where(rng.random(n) < 0.7, labels, rng.integers(0, k, size=n))
    return labels, preds


def test_bootstrap_ci_contains_point_and_narrows():
    labels, preds = _noisy(100, 2, 0)
    point = metrics.uar(metrics.confusion_matrix(labels, preds, 2))
    lo, hi = metrics.bootstrap_uar_ci(labels, preds, 2, draws=500, seed=0)
    assert lo < point < hi
    big_labels, big_preds = _noisy(5000, 2, 1)
    big_point = metrics.uar(metrics.confusion_matrix(big_labels, big_preds, 2))
    blo, bhi = metrics.bootstrap_uar_ci(big_labels, big_preds, 2, draws=500, seed=0)
    assert blo < big_point < bhi
    assert bhi - blo < (hi - lo) / 3  # ~ 1 / sqrt(50) of the width.
    again = metrics.bootstrap_uar_ci(labels, preds, 2, draws=500, seed=0)
    assert again == (lo, hi)
    other = metrics.bootstrap_uar_ci(labels, preds, 2, draws=500, seed=1)
    assert other != (lo, hi)


def test_bootstrap_matches_loop_reference():
    labels, preds = _noisy(30, 3, 2)
    lo, hi = metrics.bootstrap_uar_ci(labels, preds, 3, draws=200, seed=3)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 30, size=(200, 30))
    uars = [skm.balanced_accuracy_score(labels[i], preds[i]) for i in idx]
    ref = np.percentile(uars, [2.5, 97.5])
    assert (lo, hi) == pytest.approx(tuple(ref))


def test_split_report_binary_is_json_ready():
    labels, preds = _noisy(60, 2, 4)
    r = metrics.split_report(
        labels,
        preds,
        ["negative", "positive"],
        positive="positive",
        bootstrap_draws=200,
    )
    json.dumps(r, allow_nan=False)
    assert r["uar"] == pytest.approx(skm.balanced_accuracy_score(labels, preds))
    assert r["wa"] == pytest.approx(skm.accuracy_score(labels, preds))
    assert r["n_utterances"] == 60
    assert r["labels"] == ["negative", "positive"]
    assert r["confusion_matrix"] == skm.confusion_matrix(labels, preds).tolist()
    assert r["sensitivity"] == pytest.approx(skm.recall_score(labels, preds))
    assert r["specificity"] == pytest.approx(
        skm.recall_score(labels, preds, pos_label=0)
    )
    lo, hi = r["uar_ci95"]
    assert lo <= r["uar"] <= hi
    assert "icbhi_score" not in r


def test_split_report_icbhi_and_absent_class():
    labels = [0, 0, 1, 2, 1]
    preds = [0, 1, 1, 1, 2]
    names = ["normal", "crackle", "wheeze", "both"]
    r = metrics.split_report(labels, preds, names, icbhi_normal="normal")
    json.dumps(r, allow_nan=False)
    assert r["per_class_recall"] == {
        "normal": 0.5,
        "crackle": 0.5,
        "wheeze": 0.0,
        "both": None,
    }
    assert r["uar"] == pytest.approx(1 / 3)
    assert r["sensitivity"] == pytest.approx(1 / 3)
    assert r["specificity"] == pytest.approx(0.5)
    assert r["icbhi_score"] == pytest.approx((1 / 3 + 0.5) / 2)
    assert "uar_ci95" not in r
    with pytest.raises(ValueError, match="not a class"):
        metrics.split_report(labels, preds, names, icbhi_normal="healthy")
    with pytest.raises(ValueError, match="not both"):
        metrics.split_report(
            labels, preds, names, positive="both", icbhi_normal="normal"
        )
