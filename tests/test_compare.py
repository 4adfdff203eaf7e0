"""Paired significance tests (`jaxpara.metrics`, `jaxpara.compare`)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import scipy.stats

from jaxpara import compare, metrics

LABELS = ["neutral", "happy", "sad"]


def test_mcnemar_exact_hand_case_and_scipy():
    # b = 1 (A right, B wrong), c = 6: p = 2 P(X <= 1 | n = 7) = 2 * 8 / 128.
    a = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1, 0], bool)
    b = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 0], bool)
    got = metrics.mcnemar_exact(a, b)
    assert got == {"b": 1, "c": 6, "p_value": pytest.approx(0.125)}
    assert got["p_value"] == pytest.approx(scipy.stats.binomtest(1, 7, 0.5).pvalue)
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.random((2, 40)) < [[0.6], [0.7]]
        got = metrics.mcnemar_exact(a, b)
        n = got["b"] + got["c"]
        ref = scipy.stats.binomtest(got["b"], n, 0.5).pvalue
        assert got["p_value"] == pytest.approx(ref, rel=1e-12)
    assert metrics.mcnemar_exact(a, a)["p_value"] == 1.0  # Never disagree.
    with pytest.raises(ValueError, match="two \\[N\\] arrays"):
        metrics.mcnemar_exact(a, a[:-1])


def test_paired_bootstrap_matches_a_loop_reference():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 30)
    pa = np.where(rng.random(30) < 0.6, y, rng.integers(0, 3, 30))
    pb = np.where(rng.random(30) < 0.8, y, rng.integers(0, 3, 30))
    got = metrics.paired_bootstrap_uar_difference(y, pa, pb, 3, draws=200, seed=7)

    def uar(t, p):  # Classes absent from the draw are left out.
        return np.mean([np.mean(p[t == k] == k) for k in np.unique(t)])

    idx = np.random.default_rng(7).integers(0, 30, size=(200, 30))
    diffs = [uar(y[i], pb[i]) - uar(y[i], pa[i]) for i in idx]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    assert got["ci95"] == pytest.approx([lo, hi], abs=1e-12)
    assert got["difference"] == pytest.approx(uar(y, pb) - uar(y, pa), abs=1e-12)
    assert got["draws"] == 200 and got["seed"] == 7


def _fake_run(path, rows, labels=LABELS):
    """A finished workdir as far as compare reads it: results.json's class
    names and predictions.csv."""
    path.mkdir()
    (path / "results.json").write_text(json.dumps({"corpus": {"labels": labels}}))
    with open(path / "predictions.csv", "w", newline="") as f:
        w = csv.DictWriter(
            f, ["fold", "seed", "split", "utterance_id", "label", "prediction"]
        )
        w.writeheader()
        w.writerows(rows)


def _rows(truth, predictions, *, seed=0, fold="Session5", split="test", names=LABELS):
    return [
        {
            "fold": fold,
            "seed": seed,
            "split": split,
            "utterance_id": f"u{i:03d}",
            "label": names[t],
            "prediction": names[p],
        }
        for i, (t, p) in enumerate(zip(truth, predictions))
    ]


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 60)
    pa = np.where(rng.random(60) < 0.5, y, rng.integers(0, 3, 60))
    pb = np.where(rng.random(60) < 0.8, y, rng.integers(0, 3, 60))
    # Run A also has a second seed and a validation split, which are ignored;
    # B lists its rows in another order.
    _fake_run(
        tmp_path / "a",
        _rows(y, pa) + _rows(y, pb, seed=1) + _rows(y, y, split="validation"),
    )
    _fake_run(tmp_path / "b", _rows(y, pb)[::-1])
    return tmp_path, y, pa, pb


def test_cli_tests_each_run_against_the_first(runs, capsys):
    tmp_path, y, pa, pb = runs
    out = tmp_path / "cmp.json"
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert compare.main([a, b, f"--output={out}", "--draws=300"]) == 0
    result = json.loads(out.read_text())
    assert result["reference"] == a and result["n"] == 60
    ref, other = result["systems"]
    assert "z_test" not in ref
    cm_a = metrics.confusion_matrix(y, pa, 3)
    cm_b = metrics.confusion_matrix(y, pb, 3)
    assert ref["uar"] == pytest.approx(metrics.uar(cm_a))
    assert other["wa"] == pytest.approx(metrics.wa(cm_b))
    z, p = metrics.two_proportion_z_test(
        int((pb == y).sum()), 60, int((pa == y).sum()), 60
    )
    assert other["z_test"] == {"z": pytest.approx(z), "p_value": pytest.approx(p)}
    assert other["mcnemar"] == metrics.mcnemar_exact(pa == y, pb == y)
    want = metrics.paired_bootstrap_uar_difference(y, pa, pb, 3, draws=300)
    got = other["uar_difference"]
    assert got["ci95"] == pytest.approx(want["ci95"])
    assert got["difference"] == pytest.approx(want["difference"])
    assert (got["draws"], got["seed"]) == (300, 0)
    assert other["uar_difference"]["difference"] > 0  # B is the better system.
    table = capsys.readouterr().out
    assert "Paired on 60 utterances" in table
    assert f"| {b} | {100 * other['wa']:.2f} |" in table


def test_cli_refuses_runs_on_different_utterances(runs, capsys):
    tmp_path, y, pa, pb = runs
    _fake_run(tmp_path / "c", _rows(y[:-1], pb[:-1]))
    other = ["n", "h", "s"]
    _fake_run(tmp_path / "d", _rows(y, pb, names=other), labels=other)
    _fake_run(tmp_path / "f", _rows(y, pb), labels=other)
    flipped = y.copy()
    flipped[4] = (flipped[4] + 1) % 3
    _fake_run(tmp_path / "e", _rows(flipped, pb))
    a = str(tmp_path / "a")
    for name, message in (
        ("c", "1 only in " + a + " (e.g. [('Session5', 'u059')]), 0 only in"),
        ("d", "classes ['n', 'h', 's'] differ"),
        ("e", "1 utterances carry other true labels"),
        ("f", "predictions.csv holds classes ['happy', 'neutral', 'sad']"),
    ):
        assert compare.main([a, str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, err
    assert compare.main([a, str(tmp_path / "b"), "--seed_index=1"]) == 2
    assert "--seed_index=1, but the run has seeds [0]" in capsys.readouterr().err
    assert compare.main([a, str(tmp_path / "missing")]) == 2
    assert "results.json not found" in capsys.readouterr().err
