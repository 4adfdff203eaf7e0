"""Tests of segment -> utterance aggregation and fold summaries."""

import math

import numpy as np
import pytest

from jaxpara import aggregation


def _case():
    # Utterance 0: three segments; utterance 1: two segments (a vote tie).
    index = np.array([0, 0, 0, 1, 1])
    post = np.array(
        [
            [0.6, 0.3, 0.1],
            [0.2, 0.7, 0.1],
            [0.5, 0.1, 0.4],
            [0.9, 0.1, 0.0],  # votes class 0, strongly
            [0.45, 0.55, 0.0],  # votes class 1, weakly
        ]
    )
    return index, post, np.ones(5, bool)


def test_vote_majority_and_tie():
    index, post, valid = _case()
    utt_post, pred = aggregation.aggregate(index, post, valid, 2, "vote")
    # Utterance 0: votes 0, 1, 0 -> class 0. Utterance 1: tie 0 vs 1, mean
    # posteriors 0.675 vs 0.325 -> class 0.
    np.testing.assert_array_equal(pred, [0, 0])
    np.testing.assert_allclose(utt_post[1], [0.675, 0.325, 0.0])


def test_vote_tie_uses_mean_posterior_not_first_class():
    index = np.array([0, 0])
    post = np.array([[0.5, 0.4, 0.1], [0.0, 0.9, 0.1]])
    _, pred = aggregation.aggregate(index, post, np.ones(2, bool), 1, "vote")
    np.testing.assert_array_equal(pred, [1])  # tie 0/1; mean 0.25 vs 0.65.
    # Majority beats a higher mean posterior.
    index = np.array([0, 0, 0])
    post = np.array([[0.4, 0.6], [0.4, 0.6], [1.0, 0.0]])
    utt_post, pred = aggregation.aggregate(index, post, np.ones(3, bool), 1, "vote")
    np.testing.assert_array_equal(pred, [1])
    np.testing.assert_allclose(utt_post, [[0.6, 0.4]])


def test_mean_and_max():
    index, post, valid = _case()
    utt_post, pred = aggregation.aggregate(index, post, valid, 2, "mean")
    np.testing.assert_allclose(utt_post[0], [1.3 / 3, 1.1 / 3, 0.6 / 3])
    np.testing.assert_array_equal(pred, [0, 0])
    utt_post, pred = aggregation.aggregate(index, post, valid, 2, "max")
    # Utterance 0: per-class max [0.6, 0.7, 0.4] -> class 1, renormalised.
    np.testing.assert_allclose(utt_post[0], np.array([0.6, 0.7, 0.4]) / 1.7)
    np.testing.assert_allclose(utt_post[1], np.array([0.9, 0.55, 0.0]) / 1.45)
    np.testing.assert_array_equal(pred, [1, 0])


@pytest.mark.parametrize("method", aggregation.METHODS)
def test_padding_rows_are_ignored(method):
    index, post, valid = _case()
    ref = aggregation.aggregate(index, post, valid, 2, method)
    junk_index = np.concatenate([index, [-1, 0, 7]])
    junk_post = np.concatenate([post, [[np.nan, 0, 0], [0, 0, 50.0], [1, 0, 0]]])
    junk_valid = np.concatenate([valid, [False, False, False]])
    out = aggregation.aggregate(junk_index, junk_post, junk_valid, 2, method)
    np.testing.assert_allclose(out[0], ref[0])
    np.testing.assert_array_equal(out[1], ref[1])


def test_missing_utterance_raises():
    index, post, valid = _case()
    valid[3:] = False  # utterance 1 loses both segments.
    with pytest.raises(ValueError, match=r"2 of 3 utterances.*\[1, 2\]"):
        aggregation.aggregate(index, post, valid, 3, "mean")
    with pytest.raises(ValueError, match=r"1 of 2 utterances.*\[1\]"):
        aggregation.aggregate(index, post, valid, 2, "vote")


def test_bad_method_and_index():
    index, post, valid = _case()
    with pytest.raises(ValueError, match="vote.*mean.*max"):
        aggregation.aggregate(index, post, valid, 2, "median")
    with pytest.raises(ValueError, match="outside"):
        aggregation.aggregate(index, post, valid, 1, "mean")


def _reference(index, post, valid, num_utterances, method):
    k = post.shape[1]
    preds, posts = [], []
    for u in range(num_utterances):
        rows = [post[i] for i in range(len(index)) if valid[i] and index[i] == u]
        rows = np.array(rows)
        mean = rows.mean(axis=0)
        if method == "mean":
            posts.append(mean)
            preds.append(int(np.argmax(mean)))
        elif method == "max":
            m = rows.max(axis=0)
            posts.append(m / m.sum())
            preds.append(int(np.argmax(m)))
        else:
            votes = [0] * k
            for r in rows:
                votes[int(np.argmax(r))] += 1
            best = max(votes)
            tied = [c for c in range(k) if votes[c] == best]
            preds.append(max(tied, key=lambda c: (mean[c], -c)))
            posts.append(mean)
    return np.array(posts), np.array(preds)


@pytest.mark.parametrize("method", aggregation.METHODS)
def test_matches_loop_reference(method):
    rng = np.random.default_rng(0)
    u, k, n = 40, 4, 300
    index = np.concatenate([np.arange(u), rng.integers(0, u, size=n - u)])
    rng.shuffle(index)
    logits = rng.normal(size=(n, k))
    post = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    valid = np.ones(n, bool)
    valid[rng.choice(np.arange(u, n), size=50, replace=False)] = False
    valid[np.unique(index, return_index=True)[1]] = True  # keep one per utterance
    ref_post, ref_pred = _reference(index, post, valid, u, method)
    utt_post, pred = aggregation.aggregate(index, post, valid, u, method)
    np.testing.assert_allclose(utt_post, ref_post)
    np.testing.assert_array_equal(pred, ref_pred)
    assert pred.shape == (u,) and utt_post.shape == (u, k)


def test_summarise_pooled_hand_case():
    results = [
        {
            "fold": "a",
            "seed": 0,
            "splits": {
                "test": {"uar": 0.5, "wa": 0.6},
                "validation": {"uar": 0.7, "wa": 0.7},
            },
        },
        {"fold": "b", "seed": 0, "splits": {"test": {"uar": 0.7, "wa": 0.8}}},
        {"fold": "c", "seed": 1, "splits": {"test": {"uar": 0.9, "wa": 0.7}}},
    ]
    s = aggregation.summarise_pooled(results)
    assert list(s) == ["test", "validation"]
    assert s["test"]["n"] == 3
    assert s["test"]["uar_mean"] == pytest.approx(0.7)
    assert s["test"]["uar_std"] == pytest.approx(0.2)  # sample std (ddof=1)
    assert s["test"]["wa_mean"] == pytest.approx(0.7)
    assert s["test"]["wa_std"] == pytest.approx(0.1)
    assert s["validation"] == {
        "uar_mean": pytest.approx(0.7),
        "uar_std": 0.0,
        "wa_mean": pytest.approx(0.7),
        "wa_std": 0.0,
        "n": 1,
    }
    s = aggregation.summarise_pooled(
        results
        + [{"fold": "d", "seed": 0, "splits": {"test": {"uar": None, "wa": 1.0}}}]
    )
    assert s["test"]["uar_mean"] is None and s["test"]["uar_std"] is None
    assert not math.isnan(s["test"]["wa_mean"])


# Seed 004 Table 1, UWA (%) per fold (test speaker) of Models 1 and 2.
TABLE1_UWA = {
    "model1": [61.90, 63.50, 71.50, 74.80, 58.13, 57.46, 64.30, 64.92, 34.82, 43.00],
    "model2": [66.40, 67.11, 68.00, 74.93, 62.32, 70.00, 64.14, 65.00, 42.34, 48.40],
}


@pytest.mark.parametrize(
    "model, mean, std", [("model1", 59.43, 11.57), ("model2", 62.86, 9.44)]
)
def test_summarise_reproduces_seed_004_table_1(model, mean, std):
    """10 folds x 5 seeds whose seed mean is Table 1's value: the summary is
    the paper's 59.43 +- 11.57 / 62.86 +- 9.44 (population std over folds;
    ddof 1 would give 12.20 / 9.95)."""
    offsets = [-2.0, -1.0, 0.0, 1.0, 2.0]  # Seeds around the fold value.
    results = [
        {
            "fold": f"speaker_{f}",
            "seed": k,
            "splits": {"test": {"uar": (v + o) / 100, "wa": 0.5}},
        }
        for f, v in enumerate(TABLE1_UWA[model])
        for k, o in enumerate(offsets)
    ]
    s = aggregation.summarise(results)["test"]
    assert round(100 * s["uar_mean"], 2) == mean
    assert round(100 * s["uar_std"], 2) == std
    assert s["n_folds"] == 10 and s["n_seeds"] == 5
    assert [r["fold"] for r in s["per_fold"]] == [f"speaker_{f}" for f in range(10)]
    for row, v in zip(s["per_fold"], TABLE1_UWA[model]):
        assert row["uar_mean"] == pytest.approx(v / 100, abs=1e-12)
        assert row["uar_std"] == pytest.approx(np.std(offsets) / 100, abs=1e-12)
        assert row["n_seeds"] == 5
    assert s["wa_mean"] == pytest.approx(0.5) and s["wa_std"] == pytest.approx(0.0)
    pooled = aggregation.summarise_pooled(results)["test"]
    assert pooled["n"] == 50 and round(100 * pooled["uar_mean"], 2) == mean
    assert round(100 * pooled["uar_std"], 2) != std  # Not the paper's figure.


def test_summarise_averages_seeds_before_folds():
    """Fold a: seeds 0.4, 0.6 -> 0.5; fold b: one seed 0.9. Over folds: mean
    0.7, ddof-0 std 0.2 (pooled over the 3 results the mean would be 0.633)."""
    results = [
        {"fold": "a", "seed": 0, "splits": {"test": {"uar": 0.4, "wa": 0.4}}},
        {"fold": "a", "seed": 1, "splits": {"test": {"uar": 0.6, "wa": None}}},
        {"fold": "b", "seed": 0, "splits": {"test": {"uar": 0.9, "wa": 0.9}}},
    ]
    s = aggregation.summarise(results)["test"]
    assert s["uar_mean"] == pytest.approx(0.7) and s["uar_std"] == pytest.approx(0.2)
    a, b = s["per_fold"]
    assert a == {
        "fold": "a",
        "n_seeds": 2,
        "uar_mean": pytest.approx(0.5),
        "uar_std": pytest.approx(0.1),
        "wa_mean": None,
        "wa_std": None,
    }
    assert b["uar_std"] == 0.0 and b["n_seeds"] == 1
    assert s["wa_mean"] is None and s["wa_std"] is None
    with pytest.raises(ValueError, match="at least one fold result"):
        aggregation.summarise([])
