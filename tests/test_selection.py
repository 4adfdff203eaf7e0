"""Model selection (`jaxpara.selection`): best score, PyTorch's
ReduceLROnPlateau, early stopping, the selection score, config errors."""

from __future__ import annotations

import json
import math

import pytest

from configs import default
from jaxpara import metrics, selection
from jaxpara.errors import ConfigError

# Scores chosen so that the two "bests" differ: selection's best is strict
# (any gain), the plateau's needs a relative gain of more than 1e-4.
SCORES = [0.50, 0.50, 0.50004, 0.40, 0.60, 0.60003, 0.59, 0.58, 0.57, 0.61]

# Hand trace of torch.optim.lr_scheduler.ReduceLROnPlateau(mode='max',
# factor=0.5, patience=2, threshold=1e-4, threshold_mode='rel', cooldown=0):
#   step(m): if m > best * (1 + 1e-4): best, bad = m, 0 else bad += 1;
#            if bad > patience: lr *= factor; bad = 0.
# eval  score    better?                   bad  lr after
#  1    0.50     yes (best = -inf)          0   1
#  2    0.50     no  (0.5 <= 0.50005)       1   1
#  3    0.50004  no  (<= 0.50005)           2   1
#  4    0.40     no                         3 > 2 -> 0, lr 0.5
#  5    0.60     yes                        0   0.5
#  6    0.60003  no  (<= 0.60006)           1   0.5
#  7    0.59     no                         2   0.5
#  8    0.58     no                         3 > 2 -> 0, lr 0.25
#  9    0.57     no                         1   0.25
# 10    0.61     yes                        0   0.25
TRACE_BAD = [0, 1, 2, 0, 0, 1, 2, 0, 1, 0]
TRACE_BEST = [0.50, 0.50, 0.50, 0.50, 0.60, 0.60, 0.60, 0.60, 0.60, 0.61]
TRACE_LR = [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
# Selection's strict best: a new best at evals 1, 3, 5, 6, 10.
TRACE_IMPROVED = [True, False, True, False, True, True, False, False, False, True]
TRACE_WITHOUT_GAIN = [0, 1, 0, 1, 0, 0, 1, 2, 3, 0]

RULE = selection.Rule(plateau_patience=2, plateau_factor=0.5, plateau_threshold=1e-4)


def _run(scores, rule):
    replica, decisions, replicas = selection.Replica(seed=3), [], []
    for i, value in enumerate(scores):
        replica, decision = selection.update(replica, value, 10 * (i + 1), rule)
        replicas.append(replica)
        decisions.append(decision)
    return replicas, decisions


def test_reduce_on_plateau_follows_the_hand_trace_of_pytorch():
    replicas, decisions = _run(SCORES, RULE)
    assert [r.plateau_bad_evals for r in replicas] == TRACE_BAD
    assert [r.plateau_best for r in replicas] == TRACE_BEST
    assert [r.lr_scale for r in replicas] == TRACE_LR
    assert [d.lr_factor for d in decisions] == [
        0.5 if i in (3, 7) else 1.0 for i in range(len(SCORES))
    ]
    assert [d.improved for d in decisions] == TRACE_IMPROVED
    assert [r.evals_without_gain for r in replicas] == TRACE_WITHOUT_GAIN
    assert replicas[-1].best_score == 0.61 and replicas[-1].best_step == 100
    assert replicas[5].best_score == 0.60003 and replicas[5].best_step == 60
    assert not any(d.stop for d in decisions)  # early_stopping = 0: off.
    assert [h["lr_scale"] for h in replicas[-1].history] == TRACE_LR
    assert [h["validation_uar"] for h in replicas[-1].history] == SCORES
    assert [h["step"] for h in replicas[-1].history] == list(range(10, 101, 10))


def test_reduce_on_plateau_equals_pytorch_when_installed():
    """The same trace from PyTorch itself (the `bench` extra installs it)."""
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="max", factor=0.5, patience=2, threshold=1e-4
    )
    lrs = []
    for value in SCORES:
        sched.step(value)
        lrs.append(opt.param_groups[0]["lr"])
    replicas, _ = _run(SCORES, RULE)
    assert [r.lr_scale for r in replicas] == lrs == TRACE_LR


def test_patience_zero_turns_the_plateau_rule_off():
    replicas, decisions = _run(SCORES, selection.Rule())
    assert all(d.lr_factor == 1.0 for d in decisions)
    assert all(r.lr_scale == 1.0 and r.plateau_best is None for r in replicas)


def test_early_stopping_after_n_evaluations_without_a_new_best():
    """early_stopping = 3: evals 7, 8, 9 bring no new best -> stop at 9; an
    equal score is no gain (strict >)."""
    rule = selection.Rule(early_stopping=3)
    replicas, decisions = _run(SCORES[:9], rule)
    assert [d.stop for d in decisions] == [False] * 8 + [True]
    assert replicas[-1].stopped and replicas[-1].best_step == 60
    with pytest.raises(ValueError, match="seed 3: update\\(\\) after early stopping"):
        selection.update(replicas[-1], 0.9, 100, rule)
    # Two equal scores after the first: no gain, stop at the 3rd evaluation.
    replicas, decisions = _run([0.5, 0.5, 0.5], selection.Rule(early_stopping=2))
    assert [d.stop for d in decisions] == [False, False, True]
    assert [d.improved for d in decisions] == [True, False, False]


def test_nan_score_is_no_gain_for_either_rule():
    rule = selection.Rule(early_stopping=2, plateau_patience=1, plateau_factor=0.5)
    replicas, decisions = _run([math.nan, 0.3, math.nan, math.nan], rule)
    assert [d.improved for d in decisions] == [False, True, False, False]
    assert [r.plateau_bad_evals for r in replicas] == [1, 0, 1, 0]
    assert [d.lr_factor for d in decisions] == [1.0, 1.0, 1.0, 0.5]
    assert [d.stop for d in decisions] == [False, False, False, True]
    assert replicas[-1].best_score == 0.3


def test_replica_state_round_trips_through_json():
    """Saved in checkpoint metadata: a resumed run continues the same trace."""
    replicas, _ = _run(SCORES[:5], RULE)
    restored = selection.Replica.from_json(
        json.loads(json.dumps(replicas[-1].to_json()))
    )
    assert restored == replicas[-1]
    resumed = restored
    for i, value in enumerate(SCORES[5:], start=5):
        resumed, _ = selection.update(resumed, value, 10 * (i + 1), RULE)
    assert resumed == _run(SCORES, RULE)[0][-1]


@pytest.mark.parametrize(
    "metric, expected",
    [
        # cm rows = true: normal [3, 1, 0], crackle [1, 1, 0], wheeze [0, 0, 2].
        ("uar", (3 / 4 + 1 / 2 + 1) / 3),
        ("wa", 6 / 8),
        # F1 per class: 2*3/(4+4), 2*1/(2+2), 2*2/(2+2).
        ("f1_macro", (6 / 8 + 2 / 4 + 1) / 3),
        # ICBHI: SP = 3/4 (normal recall), SE = (1 + 2) / 4 (abnormal right).
        ("icbhi_score", (3 / 4 + 3 / 4) / 2),
    ],
)
def test_selection_score_of_each_metric(metric, expected):
    labels = [0, 0, 0, 0, 1, 1, 2, 2]
    predictions = [0, 0, 0, 1, 0, 1, 2, 2]
    report = metrics.split_report(
        labels,
        predictions,
        ["normal", "crackle", "wheeze"],
        icbhi_normal="normal",
        bootstrap_draws=0,
    )
    rule = selection.Rule(metric=metric)
    assert selection.score(report, rule) == pytest.approx(expected, abs=1e-12)
    assert rule.history_key == f"validation_{metric}"


def test_rule_from_config_errors_name_the_key():
    cfg = default.get_config()
    assert selection.Rule.from_config(cfg) == selection.Rule(
        metric="uar",
        early_stopping=cfg.train.early_stopping,
        plateau_patience=cfg.train.plateau_patience,
        plateau_factor=cfg.train.plateau_factor,
        plateau_threshold=cfg.train.plateau_threshold,
    )
    cfg.train.selection_metric = "accuracy"
    with pytest.raises(ConfigError, match="train.selection_metric='accuracy'"):
        selection.Rule.from_config(cfg)
    cfg.train.selection_metric = "icbhi_score"
    cfg.eval.icbhi_normal_label = ""
    with pytest.raises(ConfigError, match="needs eval.icbhi_normal_label"):
        selection.Rule.from_config(cfg)
    cfg.eval.icbhi_normal_label = "normal"
    assert selection.Rule.from_config(cfg).metric == "icbhi_score"
    cfg.train.early_stopping = -1
    with pytest.raises(ConfigError, match="train.early_stopping=-1"):
        selection.Rule.from_config(cfg)
    cfg.train.early_stopping = 0
    cfg.train.plateau_patience = 2
    cfg.train.plateau_factor = 1.5
    with pytest.raises(ConfigError, match="train.plateau_factor=1.5"):
        selection.Rule.from_config(cfg)


def test_score_missing_or_undefined_is_nan():
    """A report without the metric (or with it undefined, None) scores NaN,
    which selection counts as no gain."""
    rule = selection.Rule(metric="icbhi_score")
    assert math.isnan(selection.score({"uar": 0.5}, rule))
    assert math.isnan(selection.score({"icbhi_score": None}, rule))
