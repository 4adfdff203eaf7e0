"""Model selection: best score, reduce-on-plateau and early stopping, per replica.

Pure and host-side: `update(replica, score, step, rule)` returns the replica's
new selection state and what the training loop must do (keep these
parameters as the best, scale the learning rate, stop). The state is a plain
JSON-able dataclass, saved in and restored from every checkpoint's metadata,
so a resumed run selects exactly as an uninterrupted one.

Three rules, each per replica (vectorised seeds select independently):

- best checkpoint: the evaluation whose score is strictly the highest so far
  (`train.selection_metric` on the validation split);
- early stopping (`train.early_stopping = N`): stop after N evaluations in a
  row without a new best (Keras' EarlyStopping, min_delta 0);
- reduce-on-plateau: exactly PyTorch's `ReduceLROnPlateau(mode='max',
  threshold_mode='rel', threshold=train.plateau_threshold,
  patience=train.plateau_patience, factor=train.plateau_factor, cooldown=0,
  min_lr=0)`, as the papers that use it cite (card C4): it tracks its own
  best, a score is better when `score > best * (1 + threshold)`; the number
  of bad evaluations counts up otherwise and the learning rate is multiplied
  by `factor` when it EXCEEDS `patience` (the (patience + 1)-th bad
  evaluation), after which the count restarts at 0. `plateau_patience = 0`
  turns it off (PyTorch's patience 0, a reduction on every bad evaluation,
  is not offered).
"""

from __future__ import annotations

import dataclasses
import math

from jaxpara.errors import ConfigError

METRICS = ("uar", "wa", "icbhi_score", "f1_macro")


@dataclasses.dataclass(frozen=True)
class Rule:
    """The selection settings (from `config.train`, `config.eval`)."""

    metric: str = "uar"
    early_stopping: int = 0
    plateau_patience: int = 0
    plateau_factor: float = 0.1
    plateau_threshold: float = 1e-4

    @classmethod
    def from_config(cls, config) -> Rule:
        """Raises ConfigError on an unknown metric or one the run cannot score."""
        t = config.train
        if t.selection_metric not in METRICS:
            raise ConfigError(
                f"train.selection_metric={t.selection_metric!r}; expected one of "
                f"{list(METRICS)}"
            )
        if t.selection_metric == "icbhi_score" and not config.eval.icbhi_normal_label:
            raise ConfigError(
                "train.selection_metric='icbhi_score' needs eval.icbhi_normal_label "
                "(the ICBHI normal class)"
            )
        for key in ("early_stopping", "plateau_patience"):
            if getattr(t, key) < 0:
                raise ConfigError(f"train.{key}={getattr(t, key)}; expected >= 0")
        if not 0 < t.plateau_factor < 1 and t.plateau_patience:
            raise ConfigError(
                f"train.plateau_factor={t.plateau_factor}; expected 0 < factor < 1"
            )
        return cls(
            metric=t.selection_metric,
            early_stopping=t.early_stopping,
            plateau_patience=t.plateau_patience,
            plateau_factor=t.plateau_factor,
            plateau_threshold=t.plateau_threshold,
        )

    @property
    def history_key(self) -> str:
        """The key of the selection score in history entries."""
        return f"validation_{self.metric}"


@dataclasses.dataclass(frozen=True)
class Replica:
    """One replica's selection state (JSON-able: `to_json` / `from_json`).

    Attributes:
      seed: the replica's seed.
      best_score: highest score so far (None before the first evaluation).
      best_step: the step it was reached at (-1 before).
      evals_without_gain: evaluations since the last new best.
      plateau_best: ReduceLROnPlateau's own best (None before).
      plateau_bad_evals: its count of bad evaluations.
      stopped: early stopping has ended this replica's training.
      lr_scale: the product of the plateau reductions so far (the factor the
        training step multiplies its updates by).
      history: [{"step", "validation_<metric>", "lr_scale" (after the
        evaluation)}] of every evaluation.
    """

    seed: int
    best_score: float | None = None
    best_step: int = -1
    evals_without_gain: int = 0
    plateau_best: float | None = None
    plateau_bad_evals: int = 0
    stopped: bool = False
    lr_scale: float = 1.0
    history: tuple = ()

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["history"] = [dict(h) for h in self.history]
        return out

    @classmethod
    def from_json(cls, values: dict) -> Replica:
        return cls(**{**values, "history": tuple(values["history"])})


@dataclasses.dataclass(frozen=True)
class Decision:
    """What an evaluation asks of the training loop, for one replica.

    Attributes:
      improved: a new best: keep the current parameters as the best.
      lr_factor: multiply the learning-rate scale by this (1.0 = unchanged).
      stop: the replica stops training now.
    """

    improved: bool = False
    lr_factor: float = 1.0
    stop: bool = False


def update(replica: Replica, score: float, step: int, rule: Rule):
    """One evaluation of a replica that is still training.

    Args:
      replica: its selection state before the evaluation.
      score: the evaluation's score (`rule.metric`); NaN counts as no gain.
      step: the training step evaluated.
      rule: the selection settings.

    Returns:
      (the new `Replica`, the `Decision`).
    """
    if replica.stopped:
        raise ValueError(f"seed {replica.seed}: update() after early stopping")
    valid = not math.isnan(score)
    improved = valid and (replica.best_score is None or score > replica.best_score)
    new = dataclasses.replace(
        replica,
        best_score=score if improved else replica.best_score,
        best_step=step if improved else replica.best_step,
        evals_without_gain=0 if improved else replica.evals_without_gain + 1,
    )
    lr_factor = 1.0
    if rule.plateau_patience:
        best = new.plateau_best
        better = valid and (best is None or score > best * (1 + rule.plateau_threshold))
        bad = 0 if better else new.plateau_bad_evals + 1
        if bad > rule.plateau_patience:
            lr_factor, bad = rule.plateau_factor, 0
        new = dataclasses.replace(
            new, plateau_best=score if better else best, plateau_bad_evals=bad
        )
    stop = bool(rule.early_stopping and new.evals_without_gain >= rule.early_stopping)
    lr_scale = new.lr_scale * lr_factor
    entry = {"step": step, rule.history_key: score, "lr_scale": lr_scale}
    new = dataclasses.replace(
        new, stopped=stop, lr_scale=lr_scale, history=(*new.history, entry)
    )
    return new, Decision(improved=improved, lr_factor=lr_factor, stop=stop)


def score(report: dict, rule: Rule) -> float:
    """The selection score of a split report (NaN when undefined)."""
    value = report.get(rule.metric)
    return math.nan if value is None else float(value)
