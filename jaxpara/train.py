"""Training: `train_and_evaluate(config, workdir)` and the pure jitted steps.

One fold is trained by `train_fold`, with S seeds as one vmapped program
(vectorised seeds; S = 1 is a plain run): data-parallel `jax.jit` over a
`jax.make_mesh` data axis (one device works the same as eight, one process the
same as several), periodic and best checkpoints (a run always resumes from its
workdir; SIGTERM checkpoints and stops), validation UAR for model selection,
early stopping and reduce-on-plateau, per seed. `train_and_evaluate` loops over
folds; results files and reports live in `jaxpara.evaluate`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from clu import metric_writers
from jax.experimental import multihost_utils

from jaxpara import checkpointing, evaluate, models, sharding
from jaxpara import state as state_lib
from jaxpara.data import pipeline
from jaxpara.data.types import Corpus, Fold


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss."""


# -------------------------------------------------------------------- steps
def _model_inputs(batch):
    return dict(frames=batch["frames"], gender=batch["gender"])


def train_step(state: state_lib.TrainState, batch, rng, *, model, tx, weights):
    """One optimizer update. Pure: (state, batch, rng) -> (state, metrics).

    Args:
      state: current TrainState.
      batch: {"inputs" [B, T, F, C], "label" [B], "frames" [B], "gender" [B],
        "mask" [B], ...}, sharded over the data axis.
      rng: base PRNG key; the step's dropout key is fold_in(rng, step).
      model: the flax module.
      tx: the optax transformation.
      weights: [K] class weights of the cross-entropy.
    """
    dropout_rng = jax.random.fold_in(rng, state.step)

    def loss_fn(params):
        outputs, updates = model.apply(
            {"params": params, "batch_stats": state.batch_stats},
            batch["inputs"],
            **_model_inputs(batch),
            train=True,
            rngs={"dropout": dropout_rng},
            mutable=["batch_stats"],
        )
        logits, aux = split_outputs(outputs)
        w = weights[batch["label"]] * batch["mask"]
        loss = 0.0
        for out in (logits, *aux):  # Fusion models: + one term per branch (C1).
            ce = optax.softmax_cross_entropy_with_integer_labels(
                out.astype(jnp.float32), batch["label"]
            )
            loss = loss + jnp.sum(ce * w) / jnp.maximum(jnp.sum(batch["mask"]), 1.0)
        return loss, (logits, updates)

    (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params
    )
    upd, opt_state = tx.update(grads, state.opt_state, state.params)
    upd = jax.tree_util.tree_map(lambda u: u * state.lr_scale, upd)
    params = optax.apply_updates(state.params, upd)
    correct = (jnp.argmax(logits, -1) == batch["label"]) * batch["mask"]
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


def split_outputs(outputs):
    """A model returns logits [B, K], or {"logits", "aux_logits": (...)}.

    `aux_logits` are extra heads trained with their own cross-entropy term (the
    branches of a fusion model); only `logits` is used for prediction.
    """
    if isinstance(outputs, dict):
        return outputs["logits"], tuple(outputs.get("aux_logits", ()))
    return outputs, ()


def eval_step(state: state_lib.TrainState, batch, *, model):
    """Class posteriors [B, K] (float32) of a batch, in inference mode."""
    outputs = model.apply(
        {"params": state.params, "batch_stats": state.batch_stats},
        batch["inputs"],
        **_model_inputs(batch),
        train=False,
    )
    logits, _ = split_outputs(outputs)
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


_multiply = jax.jit(jnp.multiply)  # Global arrays x NumPy, on every process.


# -------------------------------------------------------------------- fold
def _fold_data(config, corpus: Corpus, fold: Fold, store) -> tuple[dict, Any, int]:
    """The fold's segmented splits, the split training steps draw from, and the
    random-crop length (0 = none)."""
    if config.data.on_error not in ("raise", "skip"):
        raise ValueError(
            f"data.on_error={config.data.on_error!r}; expected 'raise' or 'skip'"
        )
    skip = config.data.on_error == "skip"
    data = {
        name: pipeline.build_split(
            name,
            examples,
            corpus,
            store,
            config.data,
            allow_skips=skip and name == "train",
        )
        for name, examples in fold.items()
    }
    train = data["train"]
    # Card C2: training steps see whole utterances cut to `segment.length`
    # frames at a random start; every reported split (train included) is
    # segmented as configured (mode 'first': the crop from frame 0, padded).
    crop = config.data.segment.length if config.data.segment.random_crop else 0
    if crop:
        train = pipeline.build_split(
            "train",
            fold.train,
            corpus,
            store,
            config.data,
            allow_skips=skip,
            whole_utterances=True,
        )
    return data, train, crop


def seed_dir(fold_dir: str, seed_index: int, num_seeds: int) -> str:
    """Where seed `seed_index` of a fold writes its fold_result.json."""
    return fold_dir if num_seeds == 1 else os.path.join(fold_dir, f"seed{seed_index}")


def train_fold(
    config,
    corpus: Corpus,
    fold: Fold,
    store: pipeline.FeatureStore,
    workdir: str,
    *,
    seeds: list[int],
) -> list[dict]:
    """Trains one fold with S = len(seeds) seeds as ONE vmapped program.

    The S replicas are independently initialised, each with its own dropout
    key and its own (seed, epoch) batch order, and stacked on a leading axis
    of every state leaf; a single jitted step updates them all. Model
    selection is per replica, exactly as S separate runs: each keeps its own
    best-on-validation parameters, reduce-on-plateau scale and early-stopping
    counter (a stopped replica is frozen while the others go on). S = 1 is
    an ordinary single run.

    Resumes from `workdir/checkpoints` when a checkpoint exists; a finished run
    is not retrained.

    Returns:
      Per seed, {"splits": {split: report}, "predictions": rows,
      "num_params", "checkpoint_step", "best_validation_uar", "history",
      "train_log"}; each is also written (without predictions) to
      `seed_dir(workdir, s, S)/fold_result.json`.
    """
    os.makedirs(workdir, exist_ok=True)
    tcfg = config.train
    num_seeds = len(seeds)
    data, train, crop = _fold_data(config, corpus, fold, store)
    norm = pipeline.training_stats(train, store) if config.data.normalise else None
    primary = jax.process_index() == 0  # Writes the files; all processes train.
    if norm is not None and primary:
        norm.save(os.path.join(workdir, "norm_stats.npz"))

    num_classes = config.model.num_classes or len(corpus.labels)
    model = models.create_model(config.model, num_classes)
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.model)
    sharding.check_batch_size(tcfg.batch_size, mesh)
    sharding.check_batch_size(tcfg.eval_batch_size, mesh, "train.eval_batch_size")
    tx = state_lib.make_optimizer(tcfg)
    weights = (
        state_lib.class_weights(train.utterance_labels, num_classes)
        if tcfg.class_weights
        else np.ones(num_classes, np.float32)
    )
    # Initialisation is replicated, so the cheaper-to-compile RBG generator
    # gives the same parameters on any mesh; dropout (sharded) uses threefry.
    # Each replica is initialised on its own (the same compiled init), so a
    # replica equals the single run of its seed.
    input_shape = (crop or train.segments.shape[1], *train.segments.shape[2:])
    state = state_lib.stack(
        state_lib.create_states(
            model, tx, input_shape, [jax.random.key(s, impl="rbg") for s in seeds], mesh
        )
    )
    dropout_rngs = jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in seeds])
    num_params = models.count_params(state.params) // len(seeds)

    repl = sharding.replicated(mesh)
    state_sh = sharding.state_shardings(state, mesh, leading=1)  # mesh.model
    state = jax.device_put(state, state_sh)
    seeds_data_sh = sharding.seeds_data_sharded(mesh)

    def step_fn(state, batch, rng, active):
        new_state, metrics = train_step(
            state, batch, rng, model=model, tx=tx, weights=jnp.asarray(weights)
        )
        return state_lib.select(active, new_state, state), metrics

    p_train = jax.jit(
        jax.vmap(step_fn),
        in_shardings=(state_sh, seeds_data_sh, repl, repl),
        out_shardings=(state_sh, repl),
        donate_argnums=(0,),
    )
    p_eval = jax.jit(
        jax.vmap(functools.partial(eval_step, model=model), in_axes=(0, None)),
        in_shardings=(state_sh, sharding.data_sharded(mesh)),
        out_shardings=repl,  # Every process gets all posteriors.
    )

    latest = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints", "latest"))
    best = checkpointing.Checkpointer(
        os.path.join(workdir, "checkpoints", "best"), max_to_keep=1
    )
    meta = {
        "finished": False,
        "seeds": [
            {
                "seed": s,
                "best_uar": -1.0,
                "best_step": -1,
                "evals_without_gain": 0,
                "plateau_wait": 0,
                "stopped": False,
                "history": [],
                "train_log": [],
            }
            for s in seeds
        ],
    }
    best_state = None  # Per replica: the parameters of its best validation UAR.
    if latest.latest_step() is not None:
        state, meta = latest.restore(checkpointing.abstract_like(state))
        if best.latest_step() is not None:
            best_state, _ = best.restore(checkpointing.abstract_like(state))
        logging.info(
            "Resuming %s from step %d (finished=%s)",
            workdir,
            int(jnp.max(state.step)),
            meta["finished"],
        )
    replicas = meta["seeds"]

    spe = pipeline.steps_per_epoch(train, tcfg.batch_size)
    if spe == 0:
        raise ValueError(
            f"train split has {train.num_segments} segments < train.batch_size="
            f"{tcfg.batch_size}"
        )
    total_steps = spe * tcfg.num_epochs
    if tcfg.max_steps:
        total_steps = min(total_steps, tcfg.max_steps)
    writer = metric_writers.create_default_writer(
        os.path.join(workdir, "logs"),
        just_logging=jax.process_index() > 0,
        asynchronous=False,
    )
    has_validation = data["validation"].num_utterances > 0

    def predict(split_data, state) -> np.ndarray:
        """Segment posteriors [S_segments, num_seeds, K] of a split."""
        return evaluate.predict(
            lambda b: np.swapaxes(
                np.asarray(p_eval(state, sharding.to_global(b, mesh))), 0, 1
            ),
            split_data,
            norm,
            global_batch=tcfg.eval_batch_size,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )

    pending_losses: list[tuple[int, jax.Array]] = []

    def check_finite():
        if not pending_losses:
            return
        values = jax.device_get([v for _, v in pending_losses])
        for (s, _), v in zip(pending_losses, values):
            if not np.all(np.isfinite(v)):
                raise NonFiniteLossError(
                    f"non-finite training loss {np.asarray(v).tolist()} at step {s} "
                    f"in {workdir}; stopping. The last good checkpoint (step "
                    f"{latest.latest_step()}) is left intact."
                )
        pending_losses.clear()

    def save_latest():
        check_finite()
        if not bool(state_lib.all_finite(state.params)):
            raise NonFiniteLossError(
                f"non-finite parameters at step {step} in {workdir}; stopping. "
                f"The last good checkpoint (step {latest.latest_step()}) is left "
                "intact."
            )
        latest.save(step, state, checkpointing.jsonable(meta))

    def validate(step: int) -> None:
        """Validation UAR of every replica; best / plateau / early stopping."""
        nonlocal state, best_state
        check_finite()
        posteriors = predict(data["validation"], state)
        improved = np.zeros(num_seeds, bool)
        lr_scale = np.ones(num_seeds, np.float32)
        for s, rep in enumerate(replicas):
            if rep["stopped"]:
                continue
            uar = float(
                evaluate.split_metrics(
                    posteriors[:, s], data["validation"], corpus.labels, config.eval
                )[0]["uar"]
            )
            rep["history"].append({"step": step, "validation_uar": uar})
            writer.write_scalars(step, {f"validation/uar_seed{s}": uar})
            if uar > rep["best_uar"]:
                rep.update(best_uar=uar, best_step=step, evals_without_gain=0)
                rep["plateau_wait"] = 0
                improved[s] = True
            else:
                rep["evals_without_gain"] += 1
                rep["plateau_wait"] += 1
                if (
                    tcfg.plateau_patience
                    and rep["plateau_wait"] >= tcfg.plateau_patience
                ):
                    lr_scale[s] = tcfg.plateau_factor
                    rep["plateau_wait"] = 0
                    logging.info(
                        "seed %d: validation UAR plateaued, learning rate x%.3g",
                        rep["seed"],
                        float(state.lr_scale[s]) * tcfg.plateau_factor,
                    )
            if tcfg.early_stopping and rep["evals_without_gain"] >= tcfg.early_stopping:
                logging.info("seed %d: early stopping at step %d", rep["seed"], step)
                rep["stopped"] = True
            logging.info(
                "step %d seed %d: validation UAR %.4f (best %.4f at step %d)",
                step,
                rep["seed"],
                uar,
                rep["best_uar"],
                rep["best_step"],
            )
        if (lr_scale != 1).any():
            state = state.replace(lr_scale=_multiply(state.lr_scale, lr_scale))
        if improved.any():
            previous = state if best_state is None else best_state
            best_state = state_lib.select(improved, state, previous)
            best.save(step, best_state, checkpointing.jsonable(meta))

    step = int(jnp.max(state.step))
    stop = meta["finished"]
    t_start, s_start, compiled = time.time(), step, False
    preemption = checkpointing.Preemption()  # SIGTERM: checkpoint, then stop.
    try:
        while not stop and step < total_steps:
            epoch, epoch_step = divmod(step, spe)
            iterators = [
                pipeline.train_batches(
                    train,
                    norm,
                    global_batch=tcfg.batch_size,
                    seed=rep["seed"],
                    epoch=epoch,
                    start_step=epoch_step,
                    process_index=jax.process_index(),
                    process_count=jax.process_count(),
                    random_crop=crop,
                )
                for rep in replicas
            ]
            active = np.asarray([not rep["stopped"] for rep in replicas])
            for batches in zip(*iterators):
                batch = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
                state, metrics = p_train(
                    state,
                    sharding.to_global(batch, mesh, seeds_axis=True),
                    dropout_rngs,
                    active,
                )
                step += 1
                if not compiled:  # Rate and ETA exclude the compilation.
                    jax.block_until_ready(metrics)
                    t_start, s_start, compiled = time.time(), step, True
                pending_losses.append((step, metrics["loss"]))
                if step % tcfg.log_every_steps == 0 or step == total_steps:
                    check_finite()
                    m = jax.device_get(metrics)
                    rate = (step - s_start) / max(time.time() - t_start, 1e-9)
                    eta = (total_steps - step) / rate if rate > 0 else float("nan")
                    lr = state_lib.learning_rate_fn(tcfg)(step) * np.asarray(
                        state.lr_scale
                    )
                    for s, rep in enumerate(replicas):
                        if not rep["stopped"]:
                            rep["train_log"].append(
                                {"step": step, "loss": float(m["loss"][s])}
                            )
                    scalars = {f"train/{k}": float(np.mean(v)) for k, v in m.items()}
                    scalars["train/learning_rate"] = float(np.mean(lr))
                    writer.write_scalars(step, scalars)
                    logging.info(
                        "[%s] step %d/%d epoch %d loss %.4f acc %.3f%s | %.2f steps/s "
                        "ETA %.0fs",
                        os.path.basename(workdir.rstrip("/")),
                        step,
                        total_steps,
                        epoch + 1,
                        scalars["train/loss"],
                        scalars["train/accuracy"],
                        f" (mean of {num_seeds} seeds)" if num_seeds > 1 else "",
                        rate,
                        eta,
                    )
                if step % tcfg.checkpoint_every_steps == 0 and step % spe:
                    save_latest()
                if step >= total_steps:
                    break
                if preemption.requested and step % spe:  # Mid-epoch.
                    save_latest()
                    raise checkpointing.PreemptedError(
                        f"SIGTERM: stopped at step {step} with a checkpoint in "
                        f"{workdir}; rerun the same command to continue from it"
                    )
            epoch_done = step % spe == 0
            if (
                epoch_done
                and has_validation
                and (step // spe) % tcfg.eval_every_epochs == 0
            ):
                validate(step)
                if all(rep["stopped"] for rep in replicas):
                    stop = True
            if stop or step >= total_steps:
                meta["finished"] = True
            if epoch_done or meta["finished"]:
                save_latest()
            if preemption.requested and not meta["finished"]:
                raise checkpointing.PreemptedError(
                    f"SIGTERM: stopped at step {step} with a checkpoint in "
                    f"{workdir}; rerun the same command to continue from it"
                )
    finally:
        preemption.restore()
    if not meta["finished"]:
        meta["finished"] = True
        save_latest()
    writer.flush()

    # Final evaluation with each replica's best-on-validation parameters.
    if has_validation and best_state is not None:
        state = best_state
    final_steps = [int(x) for x in jax.device_get(state.step)]
    posteriors = {
        name: predict(split_data, state)
        for name, split_data in data.items()
        if split_data.num_utterances
    }
    results = []
    for s, rep in enumerate(replicas):
        reports, rows = evaluate.evaluate_splits(
            lambda split_data, s=s: posteriors[split_data.name][:, s],
            data,
            corpus.labels,
            config.eval,
        )
        if config.eval.baseline and "test" in data:
            reports["test"]["baseline_uar"] = evaluate.logistic_baseline_uar(
                store, data["train"], data["test"], len(corpus.labels), rep["seed"]
            )
        out_dir = seed_dir(workdir, s, num_seeds)
        os.makedirs(out_dir, exist_ok=True)
        if config.eval.save_attention and primary:  # Card C4 attention vectors.
            evaluate.save_attention(
                model, state_lib.replica(state, s), data, corpus.labels, norm, out_dir
            )
        result = {
            "splits": reports,
            "predictions": rows,
            "num_params": num_params,
            "checkpoint_step": final_steps[s],
            "best_validation_uar": rep["best_uar"] if has_validation else None,
            "history": rep["history"],
            "train_log": rep["train_log"],
        }
        if primary:
            with open(os.path.join(out_dir, "fold_result.json"), "w") as f:
                json.dump(
                    {k: v for k, v in result.items() if k != "predictions"}, f, indent=1
                )
        results.append(result)
    latest.close()
    best.close()
    writer.close()
    return results


# ---------------------------------------------------------------- protocol
def train_and_evaluate(config, workdir: str) -> dict:
    """Runs the config's protocol (folds x seeds) and writes the results files.

    Writes `workdir/results.json` (schema in `jaxpara.evaluate`) and
    `workdir/predictions.csv`. A single fold with one seed trains directly in
    `workdir`; protocol runs use `workdir/<fold>/seed<k>/`.

    Returns:
      The results dict written to results.json.
    """
    from jaxpara.data import corpora, splits  # Heavy imports kept local.

    os.makedirs(workdir, exist_ok=True)
    t0 = time.time()
    if jax.process_index() == 0:  # What jaxpara.predict / report rebuild from.
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=1))
    if jax.process_count() > 1 and not config.data.root:
        # Process 0 writes the synthetic corpus; the others read it after.
        if jax.process_index() == 0:
            corpora.load_corpus(config.data, workdir, seed=config.seed)
        multihost_utils.sync_global_devices("jaxpara: synthetic corpus written")
    corpus, root = corpora.load_corpus(config.data, workdir, seed=config.seed)
    folds = splits.build_folds(corpus, config.protocol, seed=config.seed)
    needed = {e.utterance_id: e for f in folds for _, ex in f.items() for e in ex}
    store = pipeline.FeatureStore.build(
        [e for e in corpus.examples if e.utterance_id in needed],
        config.data,
        cache_dir=os.path.join(workdir, "cache") if config.data.cache else None,
    )
    seeds = [config.seed + s for s in range(config.num_seeds)]
    # One vmapped program per fold (train.vmap_seeds), or one run per seed.
    groups = [seeds] if config.train.vmap_seeds else [[s] for s in seeds]
    single = len(folds) == 1 and len(seeds) == 1
    fold_results = []
    for fold in folds:
        for group in groups:
            if single:
                subdir = workdir
            elif len(group) > 1:
                subdir = os.path.join(workdir, fold.name)
            else:
                subdir = os.path.join(
                    workdir, fold.name, f"seed{group[0] - config.seed}"
                )
            logging.info("=== fold %s, seeds %s -> %s", fold.name, group, subdir)
            for seed, r in zip(
                group, train_fold(config, corpus, fold, store, subdir, seeds=group)
            ):
                r.update(fold=fold.name, seed=seed, warnings=fold.warnings)
                fold_results.append(r)

    results = evaluate.protocol_results(
        config, corpus, root, store, fold_results, wall_time_s=time.time() - t0
    )
    if jax.process_index() == 0:
        evaluate.write_results(workdir, results, fold_results)
    evaluate.log_summary(results)
    return results
