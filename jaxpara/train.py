"""Training: `train_and_evaluate(config, workdir)` and the pure jitted steps.

`train_and_evaluate` sets up the protocol (`jaxpara.protocol`: corpus,
folds, features, the fold x seed plan) and trains each planned program with
`train_fold`, which reads as build -> restore -> loop -> finalise: S seeds as
one vmapped program (vectorised seeds; S = 1 is a plain run), data-parallel
`jax.jit` over a `jax.make_mesh` data axis (one device works the same as
eight, one process the same as several), periodic checkpoints (a run always
resumes from its workdir; SIGTERM checkpoints and stops) and per-seed model
selection on the validation split (`jaxpara.selection`: best checkpoint on
`train.selection_metric`, reduce-on-plateau, early stopping). Without a
validation split a program trains its fixed `train.num_epochs` and the final
checkpoint is evaluated. Evaluation is `jaxpara.evaluate.Evaluator`; the
results files are `jaxpara.results`; file names are `jaxpara.rundir`.
"""

from __future__ import annotations

import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxpara import augment as augment_lib
from jaxpara import (
    checkpointing,
    evaluate,
    models,
    protocol,
    results,
    rundir,
    selection,
    sharding,
)
from jaxpara import state as state_lib
from jaxpara.data import pipeline

__all__ = [
    "NonFiniteLossError",
    "eval_step",
    "train_and_evaluate",
    "train_fold",
    "train_step",
]


# -------------------------------------------------------------------- steps
def train_step(
    state: state_lib.TrainState, batch, rng, *, model, tx, weights, augment=None
):
    """One optimizer update. Pure: (state, batch, rng) -> (state, metrics).

    Args:
      state: current TrainState.
      batch: {"inputs" [B, T, F, C], "label" [B], "frames" [B], "gender" [B],
        "mask" [B], ...}, sharded over the data axis.
      rng: base PRNG key; the step's dropout key is fold_in(rng, step), its
        augmentation key `augment.step_rng(rng, step)`.
      model: the flax module.
      tx: the optax transformation.
      weights: [K] class weights of the cross-entropy.
      augment: `jaxpara.augment.Augment` (batch augmentation, mixup's soft
        labels, label smoothing); None, or everything off, traces exactly the
        un-augmented step (the gates are Python, at trace time).
    """
    dropout_rng = jax.random.fold_in(rng, state.step)
    smoothing = augment.label_smoothing if augment is not None else 0.0
    if augment is not None and augment.batch_ops:
        batch = augment_lib.apply(augment, batch, augment_lib.step_rng(rng, state.step))

    def loss_fn(params):
        outputs, updates = models.apply(
            model,
            {"params": params, "batch_stats": state.batch_stats},
            batch,
            train=True,
            rngs={"dropout": dropout_rng},
            mutable=["batch_stats"],
        )
        logits, aux = models.split_outputs(outputs)
        # Mixup: class weights lambda w[y_i] + (1 - lambda) w[y_j] and soft
        # labels; label smoothing: (1 - e) y + e / K (`augment.targets`).
        w, soft = augment_lib.targets(batch, weights, smoothing)
        loss = 0.0
        for out in (logits, *aux):  # Fusion models: + one term per branch (C1).
            ce = augment_lib.cross_entropy(
                out.astype(jnp.float32), batch["label"], soft
            )
            loss = loss + jnp.sum(ce * w) / jnp.maximum(jnp.sum(batch["mask"]), 1.0)
        return loss, (logits, updates)

    (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params
    )
    upd, opt_state = tx.update(grads, state.opt_state, state.params)
    upd = jax.tree_util.tree_map(lambda u: u * state.lr_scale, upd)
    params = optax.apply_updates(state.params, upd)
    # Mixup: scored against the dominant label.
    label = augment_lib.dominant_label(batch)
    correct = (jnp.argmax(logits, -1) == label) * batch["mask"]
    metrics = {
        "loss": loss,
        "accuracy": jnp.sum(correct) / jnp.maximum(jnp.sum(batch["mask"]), 1.0),
        "grad_norm": optax.global_norm(grads),
        "param_norm": optax.global_norm(params),
    }
    new_state = state.replace(
        step=state.step + 1,
        params=params,
        batch_stats=updates.get("batch_stats", state.batch_stats),
        opt_state=opt_state,
    )
    return new_state, metrics


def eval_step(variables, batch, *, model):
    """Class posteriors [B, K] (float32) of a batch, in inference mode.

    Args:
      variables: {"params", "batch_stats"} (`state.variables(train_state)`).
    """
    outputs = models.apply(model, variables, batch, train=False)
    logits, _ = models.split_outputs(outputs)
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


def branch_eval_step(variables, batch, *, model):
    """Class posteriors [B, nb, K] of each of the model's branches
    (`models.branch_names`: the fusion model's SACRNN and ACRNN, card C1)."""
    outputs = models.branch_outputs(models.apply(model, variables, batch, train=False))
    logits = jnp.stack([outputs[b] for b in models.branch_names(model)], axis=1)
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


_multiply = jax.jit(jnp.multiply)  # Global arrays x NumPy, on every process.


def loss_weights(split: pipeline.SplitData, num_classes: int, enabled: bool):
    """Per-class loss weights [K]: r_k = N / N_k (card C3) or all ones.

    N and N_k count what the loss sums over, the training split's SEGMENTS
    (SPEC Metrics), not its utterances: an utterance of 5 segments weighs 5.
    """
    if not enabled:
        return np.ones(num_classes, np.float32)
    labels = split.utterance_labels[split.utterance_index]
    return state_lib.class_weights(labels, num_classes)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss."""


class LossMonitor:
    """Checks the losses of past steps for NaN/inf without a sync per step."""

    def __init__(self, workdir: str, latest: checkpointing.Checkpointer):
        self.workdir, self.latest, self.pending = workdir, latest, []

    def add(self, step: int, loss: jax.Array) -> None:
        self.pending.append((step, loss))

    def check(self) -> None:
        """Raises NonFiniteLossError at the first non-finite pending loss."""
        values = jax.device_get([v for _, v in self.pending])
        for (step, _), v in zip(self.pending, values):
            if not np.all(np.isfinite(v)):
                raise NonFiniteLossError(
                    f"non-finite training loss {np.asarray(v).tolist()} at step "
                    f"{step} in {self.workdir}; stopping. The last good checkpoint "
                    f"(step {self.latest.latest_step()}) is left intact."
                )
        self.pending.clear()


class Progress:
    """The progress line and training scalars; rate and ETA exclude compiling."""

    def __init__(self, name: str, total_steps: int, num_seeds: int, writer):
        self.name, self.total, self.num_seeds, self.writer = (
            name,
            total_steps,
            num_seeds,
            writer,
        )
        self.t0, self.s0, self.compiled = time.time(), 0, False

    def started(self, step: int, metrics) -> None:
        """After the first step of this process: start the clock."""
        if not self.compiled:
            jax.block_until_ready(metrics)
            self.t0, self.s0, self.compiled = time.time(), step, True

    def log(self, step: int, epoch: int, metrics: dict, lr: np.ndarray) -> None:
        rate = (step - self.s0) / max(time.time() - self.t0, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        scalars = {f"train/{k}": float(np.mean(v)) for k, v in metrics.items()}
        scalars["train/learning_rate"] = float(np.mean(lr))
        self.writer.write_scalars(step, scalars)
        logging.info(
            "[%s] step %d/%d epoch %d loss %.4f acc %.3f%s | %.2f steps/s ETA %.0fs",
            self.name,
            step,
            self.total,
            epoch + 1,
            scalars["train/loss"],
            scalars["train/accuracy"],
            f" (mean of {self.num_seeds} seeds)" if self.num_seeds > 1 else "",
            rate,
            eta,
        )


def _preempted(step: int, workdir: str) -> checkpointing.PreemptedError:
    return checkpointing.PreemptedError(
        f"SIGTERM: stopped at step {step} with a checkpoint in {workdir}; rerun "
        "the same command to continue from it"
    )


# -------------------------------------------------------------------- fold
class FoldTraining:
    """One program (a fold, S seeds): built here, then restore/loop/finalise.

    Attributes set by the build: the fold's data and normalisation, the
    model, mesh, optimizer and class weights, the stacked state, the
    compiled steps, the evaluator, the checkpointers and the selection rule.
    """

    def __init__(self, config, corpus, fold, store, program: rundir.Program, seeds):
        self.config, self.tcfg, self.corpus, self.store = (
            config,
            config.train,
            corpus,
            store,
        )
        self.program, self.seeds, self.workdir = program, list(seeds), program.dir
        self.rule = selection.Rule.from_config(config)
        self.data, self.train, self.crop = protocol.fold_data(
            config, corpus, fold, store
        )
        self.has_validation = "validation" in self.data
        if not self.has_validation and (
            self.rule.plateau_patience or self.rule.early_stopping
        ):
            logging.warning(
                "no validation split: train.plateau_patience=%d and "
                "train.early_stopping=%d have no score to watch; training runs "
                "its %d epochs and the final checkpoint is reported",
                self.rule.plateau_patience,
                self.rule.early_stopping,
                self.tcfg.num_epochs,
            )
        self.norm = (
            pipeline.training_stats(self.data["train"], store)
            if config.data.normalise
            else None
        )
        self.primary = jax.process_index() == 0  # Writes files; all processes train.
        os.makedirs(program.dir, exist_ok=True)
        if self.norm is not None and self.primary:
            self.norm.save(program.norm_stats)
        self.num_classes = config.model.num_classes or len(corpus.labels)
        self.model = models.create_model(config.model, self.num_classes)
        self.mesh = sharding.make_mesh(config.mesh.data, config.mesh.model)
        sharding.check_batch_size(self.tcfg.batch_size, self.mesh)
        sharding.check_batch_size(
            self.tcfg.eval_batch_size, self.mesh, "train.eval_batch_size"
        )
        self.tx = state_lib.make_optimizer(self.tcfg)
        self._build_state()
        self._compile_steps()
        self.latest = checkpointing.Checkpointer(program.checkpoint_dir("latest"))
        self.best = checkpointing.Checkpointer(
            program.checkpoint_dir("best"), max_to_keep=1
        )
        self.replicas = [selection.Replica(seed=s) for s in self.seeds]
        self.train_logs: list[list[dict]] = [[] for _ in self.seeds]
        self.finished, self.best_state = False, None
        self.spe = pipeline.steps_per_epoch(self.train, self.tcfg.batch_size)
        if self.spe == 0:
            raise ValueError(
                f"train split has {self.train.num_segments} segments < "
                f"train.batch_size={self.tcfg.batch_size}"
            )
        self.total_steps = self.spe * self.tcfg.num_epochs
        if self.tcfg.max_steps:
            self.total_steps = min(self.total_steps, self.tcfg.max_steps)
        from clu import metric_writers

        self.writer = metric_writers.create_default_writer(
            program.logs, just_logging=not self.primary, asynchronous=False
        )
        self.losses = LossMonitor(self.workdir, self.latest)

    def _build_state(self) -> None:
        """The stacked, sharded state: each replica initialised on its own."""
        # Initialisation is replicated, so the cheaper-to-compile RBG generator
        # gives the same parameters on any mesh; dropout (sharded) uses
        # threefry. Each replica gets the same compiled init, so a replica
        # equals the single run of its seed.
        shape = self.train.segment_shape  # (L, F, C).
        self.input_shape = (self.crop or shape[0], *shape[1:])
        keys = [jax.random.key(s, impl="rbg") for s in self.seeds]
        state = state_lib.stack(
            state_lib.create_states(
                self.model, self.tx, self.input_shape, keys, self.mesh
            )
        )
        self.num_params = models.count_params(state.params) // len(self.seeds)
        self.state_sh = sharding.state_shardings(state, self.mesh, leading=1)
        self.state = jax.device_put(state, self.state_sh)
        self.dropout_rngs = jnp.stack(
            [jax.random.fold_in(jax.random.key(s), 1) for s in self.seeds]
        )
        self.weights = jnp.asarray(
            loss_weights(self.train, self.num_classes, self.tcfg.class_weights)
        )

    def _compile_steps(self) -> None:
        model, tx, weights, mesh = self.model, self.tx, self.weights, self.mesh
        # Training only (config.augment, train.label_smoothing); the gain is
        # in units of the normalised features.
        augment = augment_lib.Augment.from_config(self.config, self.norm)

        def step_fn(state, batch, rng, active):
            new_state, metrics = train_step(
                state, batch, rng, model=model, tx=tx, weights=weights, augment=augment
            )
            return state_lib.select(active, new_state, state), metrics

        repl = sharding.replicated(mesh)
        self.p_train = jax.jit(
            jax.vmap(step_fn),
            in_shardings=(self.state_sh, sharding.seeds_data_sharded(mesh), repl, repl),
            out_shardings=(self.state_sh, repl),
            donate_argnums=(0,),
        )
        p_eval = jax.jit(
            jax.vmap(
                lambda st, b: eval_step(state_lib.variables(st), b, model=model),
                in_axes=(0, None),
            ),
            in_shardings=(self.state_sh, sharding.data_sharded(mesh)),
            out_shardings=repl,  # Every process gets all posteriors.
        )
        self.p_eval = p_eval
        self.branches = models.branch_names(model)
        self.p_branches = jax.jit(
            jax.vmap(
                lambda st, b: branch_eval_step(state_lib.variables(st), b, model=model),
                in_axes=(0, None),
            ),
            in_shardings=(self.state_sh, sharding.data_sharded(mesh)),
            out_shardings=repl,
        )
        self.evaluator = evaluate.Evaluator(
            None,
            self.norm,
            self.config.eval,
            tuple(self.corpus.labels),
            batch_size=self.tcfg.eval_batch_size,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )

    def posteriors(self, state, split, step_fn=None) -> np.ndarray:
        """Segment posteriors [N, S, K] of `split` under `state` (with
        `step_fn=self.p_branches`: [N, S, nb, K] of the model's branches)."""
        mesh, step_fn = self.mesh, step_fn or self.p_eval

        def predict(batch):
            out = step_fn(state, sharding.to_global(batch, mesh))
            return np.swapaxes(np.asarray(out), 0, 1)

        return self.evaluator.with_predict(predict).outputs(split)

    def branch_reports(self, state, s: int) -> dict:
        """{branch: {"splits": {split: report}}} of replica `s` (card C1 Table 3
        from one fusion run); {} for a model without branches."""
        if not self.branches:
            return {}
        post = {
            name: self.posteriors(state, split, self.p_branches)[:, s]
            for name, split in self.data.items()
        }
        return {
            b: {
                "splits": self.evaluator.evaluate(
                    self.data, {n: p[:, k] for n, p in post.items()}
                )[0]
            }
            for k, b in enumerate(self.branches)
        }

    # ------------------------------------------------------------ restore
    def restore(self) -> None:
        """Resumes from the program's latest checkpoint, if there is one."""
        if self.latest.latest_step() is None:
            return
        self.state, meta = self.latest.restore(checkpointing.abstract_like(self.state))
        if self.best.latest_step() is not None:
            self.best_state, _ = self.best.restore(
                checkpointing.abstract_like(self.state)
            )
        self.finished = meta["finished"]
        self.replicas = [
            selection.Replica.from_json(r["selection"]) for r in meta["seeds"]
        ]
        self.train_logs = [list(r["train_log"]) for r in meta["seeds"]]
        logging.info(
            "Resuming %s from step %d (finished=%s)",
            self.workdir,
            int(jnp.max(self.state.step)),
            self.finished,
        )

    def meta(self) -> dict:
        """The host-side loop state saved with every checkpoint."""
        return checkpointing.jsonable(
            {
                "finished": self.finished,
                "seeds": [
                    {"selection": r.to_json(), "train_log": log}
                    for r, log in zip(self.replicas, self.train_logs)
                ],
            }
        )

    def save_latest(self, step: int) -> None:
        self.losses.check()
        if not bool(state_lib.all_finite(self.state.params)):
            raise NonFiniteLossError(
                f"non-finite parameters at step {step} in {self.workdir}; stopping. "
                f"The last good checkpoint (step {self.latest.latest_step()}) is "
                "left intact."
            )
        self.latest.save(step, self.state, self.meta())

    # --------------------------------------------------------------- loop
    def loop(self) -> None:
        """Epochs until the step budget is spent or every replica stopped."""
        step = int(jnp.max(self.state.step))
        self.progress = Progress(
            os.path.basename(self.workdir.rstrip("/")),
            self.total_steps,
            len(self.seeds),
            self.writer,
        )
        preemption = checkpointing.Preemption()  # SIGTERM: checkpoint, then stop.
        try:
            while not self.finished and step < self.total_steps:
                step = self.run_epoch(step, preemption)
                epoch_done = step % self.spe == 0
                if (
                    epoch_done
                    and self.has_validation
                    and (step // self.spe) % self.tcfg.eval_every_epochs == 0
                ):
                    self.validate(step)
                if all(r.stopped for r in self.replicas) or step >= self.total_steps:
                    self.finished = True
                if epoch_done or self.finished:
                    self.save_latest(step)
                if preemption.requested and not self.finished:
                    raise _preempted(step, self.workdir)
        finally:
            preemption.restore()
        if not self.finished:
            self.finished = True
            self.save_latest(step)
        self.writer.flush()

    def run_epoch(self, step: int, preemption) -> int:
        """Trains from `step` to the end of its epoch (or the step budget)."""
        epoch, epoch_step = divmod(step, self.spe)
        iterators = [
            pipeline.train_batches(
                self.train,
                self.norm,
                global_batch=self.tcfg.batch_size,
                seed=r.seed,
                epoch=epoch,
                start_step=epoch_step,
                process_index=jax.process_index(),
                process_count=jax.process_count(),
                random_crop=self.crop,
            )
            for r in self.replicas
        ]
        active = np.asarray([not r.stopped for r in self.replicas])
        for batches in zip(*iterators):
            batch = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
            self.state, metrics = self.p_train(
                self.state,
                sharding.to_global(batch, self.mesh, seeds_axis=True),
                self.dropout_rngs,
                active,
            )
            step += 1
            self.progress.started(step, metrics)
            self.losses.add(step, metrics["loss"])
            if step % self.tcfg.log_every_steps == 0 or step == self.total_steps:
                self.log(step, epoch, metrics)
            if step % self.tcfg.checkpoint_every_steps == 0 and step % self.spe:
                self.save_latest(step)
            if step >= self.total_steps:
                break
            if preemption.requested and step % self.spe:  # Mid-epoch.
                self.save_latest(step)
                raise _preempted(step, self.workdir)
        return step

    def log(self, step: int, epoch: int, metrics) -> None:
        self.losses.check()
        m = jax.device_get(metrics)
        lr = state_lib.learning_rate_fn(self.tcfg)(step) * np.asarray(
            self.state.lr_scale
        )
        for s, r in enumerate(self.replicas):
            if not r.stopped:
                self.train_logs[s].append({"step": step, "loss": float(m["loss"][s])})
        self.progress.log(step, epoch, m, lr)

    def validate(self, step: int) -> None:
        """Scores every training replica on validation; applies the selection."""
        self.losses.check()
        split = self.data["validation"]
        posteriors = self.posteriors(self.state, split)
        improved = np.zeros(len(self.seeds), bool)
        lr_factor = np.ones(len(self.seeds), np.float32)
        metric = self.rule.metric
        for s, r in enumerate(self.replicas):
            if r.stopped:
                continue
            _, preds = self.evaluator.aggregate(split, posteriors[:, s])
            value = selection.score(self.evaluator.report(split, preds), self.rule)
            self.writer.write_scalars(step, {f"validation/{metric}_seed{s}": value})
            r, decision = selection.update(r, value, step, self.rule)
            self.replicas[s] = r
            improved[s], lr_factor[s] = decision.improved, decision.lr_factor
            if decision.lr_factor != 1.0:
                logging.info(
                    "seed %d: validation %s plateaued, learning rate x%.3g",
                    r.seed,
                    metric,
                    float(self.state.lr_scale[s]) * decision.lr_factor,
                )
            if decision.stop:
                logging.info("seed %d: early stopping at step %d", r.seed, step)
            logging.info(
                "step %d seed %d: validation %s %.4f (best %.4f at step %d)",
                step,
                r.seed,
                metric,
                value,
                r.best_score if r.best_score is not None else float("nan"),
                r.best_step,
            )
        if (lr_factor != 1).any():
            self.state = self.state.replace(
                lr_scale=_multiply(self.state.lr_scale, lr_factor)
            )
        if improved.any():
            previous = self.state if self.best_state is None else self.best_state
            self.best_state = state_lib.select(improved, self.state, previous)
            self.best.save(step, self.best_state, self.meta())

    # ----------------------------------------------------------- finalise
    def finalise(self) -> list[dict]:
        """Evaluates each replica's selected parameters; writes fold_result.json.

        Selected: the best on validation; without a validation split (or
        before any validation) the final state.
        """
        use_best = self.has_validation and self.best_state is not None
        state = self.best_state if use_best else self.state
        final_steps = [int(x) for x in jax.device_get(state.step)]
        posteriors = {
            name: self.posteriors(state, split)
            for name, split in self.data.items()
            if split.num_utterances
        }
        out = []
        for s, r in enumerate(self.replicas):
            reports, rows = self.evaluator.evaluate(
                self.data, {n: p[:, s] for n, p in posteriors.items()}
            )
            if self.config.eval.baseline and "test" in self.data:
                reports["test"]["baseline_uar"] = results.logistic_baseline_uar(
                    self.store,
                    self.data["train"],
                    self.data["test"],
                    len(self.corpus.labels),
                    r.seed,
                )
            out_dir = self.program.seed_dir(s)
            os.makedirs(out_dir, exist_ok=True)
            if self.config.eval.save_attention and self.primary:  # Card C4.
                evaluate.save_attention(
                    self.model,
                    state_lib.variables(state_lib.replica(state, s)),
                    self.data,
                    self.corpus.labels,
                    self.norm,
                    out_dir,
                )
            result = {
                "splits": reports,
                "branches": self.branch_reports(state, s),
                "predictions": rows,
                "num_params": self.num_params,
                "selection_metric": self.rule.metric,
                "has_validation": self.has_validation,
                "checkpoint": "best" if use_best else "final",
                "checkpoint_step": final_steps[s],
                f"best_{self.rule.history_key}": (
                    r.best_score if self.has_validation else None
                ),
                "history": list(r.history),
                "train_log": self.train_logs[s],
            }
            if self.primary:
                results.write_json(
                    os.path.join(out_dir, rundir.FOLD_RESULT),
                    {k: v for k, v in result.items() if k != "predictions"},
                )
            out.append(result)
        return out

    def close(self) -> None:
        self.latest.close()
        self.best.close()
        self.writer.close()


def train_fold(
    config, corpus, fold, store, program: rundir.Program, *, seeds: list[int]
) -> list[dict]:
    """Trains one fold with S = len(seeds) seeds as ONE vmapped program.

    The S replicas are independently initialised, each with its own dropout
    key and its own (seed, epoch) batch order, and stacked on a leading axis
    of every state leaf; a single jitted step updates them all. Model
    selection is per replica, exactly as S separate runs (`jaxpara.selection`;
    a stopped replica is frozen while the others go on). S = 1 is an
    ordinary single run. Resumes from the program's checkpoints; a finished
    run is not retrained.

    Returns:
      Per seed, {"splits": {split: report}, "branches" ({branch: {"splits"}}
      for a model with branches, else {}), "predictions": rows, "num_params",
      "selection_metric", "has_validation", "checkpoint" (best | final),
      "checkpoint_step", "best_validation_<metric>", "history", "train_log"};
      each is also written (without predictions) to the seed's
      fold_result.json.
    """
    run = FoldTraining(config, corpus, fold, store, program, seeds)  # build
    try:
        run.restore()
        run.loop()
        return run.finalise()
    finally:
        run.close()


# ---------------------------------------------------------------- protocol
def remaining_estimate(durations: list[float], remaining: int) -> str:
    """'; ~M min left (...)' for the fold-start line, '' before any program.

    Args:
      durations: wall seconds of each program (fold x seed group) finished in
        this process so far (a finished program a resume skips counts too, at
        its near-zero cost, so the estimate starts low after a resume).
      remaining: programs still to run, including the one starting now.
    """
    if not durations:
        return ""
    mean = sum(durations) / len(durations)
    return (
        f"; ~{mean * remaining / 60:.0f} min left ({remaining} programs at "
        f"{mean / 60:.1f} min, the mean of the {len(durations)} done)"
    )


def train_and_evaluate(config, workdir: str) -> dict:
    """Runs the config's protocol (folds x seeds) and writes the results files.

    Writes `workdir/results.json` (schema in `jaxpara.results`) and
    `workdir/predictions.csv`; the layout is `jaxpara.rundir`'s.

    Returns:
      The results dict written to results.json.
    """
    os.makedirs(workdir, exist_ok=True)
    t0 = time.time()
    protocol.check_config(config)
    if jax.process_index() == 0:  # What jaxpara.predict / report rebuild from.
        rundir.write_config(workdir, config)
    setup = protocol.Protocol.from_config(config, workdir)
    fold_results, runs, durations = [], setup.plan(), []
    for k, run in enumerate(runs):
        logging.info(
            "=== fold %s (program %d of %d), seeds %s -> %s%s",
            run.fold.name,
            k + 1,
            len(runs),
            run.seeds,
            run.program.dir,
            remaining_estimate(durations, len(runs) - k),
        )
        t_run = time.time()
        trained = train_fold(
            config, setup.corpus, run.fold, setup.store, run.program, seeds=run.seeds
        )
        durations.append(time.time() - t_run)
        for seed, r in zip(run.seeds, trained):
            r.update(fold=run.fold.name, seed=seed, warnings=run.fold.warnings)
            fold_results.append(r)
    out = results.protocol_results(
        config,
        setup.corpus,
        setup.root,
        setup.store,
        fold_results,
        wall_time_s=time.time() - t0,
    )
    if jax.process_index() == 0:
        results.write_results(workdir, out, fold_results)
    results.log_summary(out)
    return out
