"""Training: `train_and_evaluate(config, workdir)` and the pure jitted steps.

One fold x seed is trained by `train_fold`: data-parallel `jax.jit` over a
`jax.make_mesh` data axis (one device works the same as eight), periodic and
best checkpoints (a run always resumes from its workdir), validation UAR for
model selection, early stopping and reduce-on-plateau. Protocol loops
(folds x seeds) and results files live in `jaxpara.evaluate`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from clu import metric_writers

from jaxpara import checkpointing, evaluate, models, sharding
from jaxpara.data import pipeline
from jaxpara.data.types import Corpus, Fold


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss."""


class TrainState(flax.struct.PyTreeNode):
    """Everything that changes during training; a pure pytree of arrays.

    Attributes:
      step: number of optimizer updates done.
      params: model parameters.
      batch_stats: BatchNorm running statistics ({} if the model has none).
      opt_state: optax state.
      lr_scale: reduce-on-plateau multiplier of the learning rate.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    lr_scale: jax.Array


# ---------------------------------------------------------------- optimizer
def learning_rate_fn(train_cfg):
    """lr / (1 + decay * step) (Keras-style per-step decay; card C3: 1e-6)."""
    lr, decay = train_cfg.learning_rate, train_cfg.lr_decay
    return lambda step: lr / (1.0 + decay * step)


def make_optimizer(train_cfg) -> optax.GradientTransformation:
    if train_cfg.optimizer not in ("adam", "nadam"):
        raise ValueError(
            f"train.optimizer={train_cfg.optimizer!r}; expected 'adam' or 'nadam'"
        )
    chain = []
    if train_cfg.grad_clip > 0:
        chain.append(optax.clip_by_global_norm(train_cfg.grad_clip))
    # nadam = Adam with Nesterov momentum (Dozat 2016), as optax.nadam.
    chain.append(optax.scale_by_adam(nesterov=train_cfg.optimizer == "nadam"))
    if train_cfg.weight_decay > 0:
        chain.append(optax.add_decayed_weights(train_cfg.weight_decay))
    chain.append(optax.scale_by_learning_rate(learning_rate_fn(train_cfg)))
    return optax.chain(*chain)


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """r_k = N / N_k over the training utterances (card C3); 0 for absent classes."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
    return w.astype(np.float32)


# -------------------------------------------------------------------- steps
def _model_inputs(batch):
    return dict(frames=batch["frames"], gender=batch["gender"])


def train_step(state: TrainState, batch, rng, *, model, tx, weights):
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


def eval_step(state: TrainState, batch, *, model):
    """Class posteriors [B, K] (float32) of a batch, in inference mode."""
    outputs = model.apply(
        {"params": state.params, "batch_stats": state.batch_stats},
        batch["inputs"],
        **_model_inputs(batch),
        train=False,
    )
    logits, _ = split_outputs(outputs)
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


# -------------------------------------------------------------------- setup
def create_state(model, tx, input_shape, rng, mesh) -> TrainState:
    """Builds the state abstractly first, then materialises it replicated."""

    def init(rng):
        dummy = jnp.zeros((1, *input_shape), jnp.float32)
        variables = model.init(
            {"params": rng, "dropout": rng},
            dummy,
            frames=jnp.full((1,), input_shape[0], jnp.int32),
            gender=jnp.zeros((1,), jnp.int32),
            train=False,
        )
        params = variables["params"]
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=tx.init(params),
            lr_scale=jnp.ones((), jnp.float32),
        )

    abstract = jax.eval_shape(init, rng)
    shardings = jax.tree_util.tree_map(lambda _: sharding.replicated(mesh), abstract)
    return jax.jit(init, out_shardings=shardings)(rng)


@jax.jit
def _all_finite(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


# -------------------------------------------------------------------- fold
def train_fold(
    config,
    corpus: Corpus,
    fold: Fold,
    store: pipeline.FeatureStore,
    workdir: str,
    *,
    seed: int,
) -> dict:
    """Trains one fold with one seed in `workdir` and evaluates it.

    Resumes from `workdir/checkpoints` when a checkpoint exists; a finished run
    is not retrained. Returns {"splits": {split: report}, "predictions": rows,
    "skipped": ..., "history": ...}.
    """
    os.makedirs(workdir, exist_ok=True)
    tcfg = config.train
    data = {}
    for name, examples in fold.items():
        data[name] = pipeline.build_split(
            name,
            examples,
            corpus,
            store,
            config.data,
            allow_skips=(name == "train" and config.data.on_error == "skip"),
        )
    if config.data.on_error not in ("raise", "skip"):
        raise ValueError(
            f"data.on_error={config.data.on_error!r}; expected 'raise' or 'skip'"
        )
    train = data["train"]
    norm = pipeline.training_stats(train, store) if config.data.normalise else None
    if norm is not None:
        norm.save(os.path.join(workdir, "norm_stats.npz"))

    num_classes = config.model.num_classes or len(corpus.labels)
    model = models.create_model(config.model, num_classes)
    mesh = sharding.make_mesh(config.mesh.data)
    sharding.check_batch_size(tcfg.batch_size, mesh)
    sharding.check_batch_size(tcfg.eval_batch_size, mesh, "train.eval_batch_size")
    tx = make_optimizer(tcfg)
    weights = (
        class_weights(train.utterance_labels, num_classes)
        if tcfg.class_weights
        else np.ones(num_classes, np.float32)
    )
    # Initialisation is replicated, so the cheaper-to-compile RBG generator
    # gives the same parameters on any mesh; dropout (sharded) uses threefry.
    init_rng = jax.random.key(seed, impl="rbg")
    dropout_rng = jax.random.fold_in(jax.random.key(seed), 1)
    state = create_state(model, tx, train.segments.shape[1:], init_rng, mesh)
    num_params = models.count_params(state.params)

    repl = sharding.replicated(mesh)
    state_sh = jax.tree_util.tree_map(lambda _: repl, state)
    data_sh = sharding.data_sharded(mesh)
    p_train = jax.jit(
        functools.partial(train_step, model=model, tx=tx, weights=jnp.asarray(weights)),
        in_shardings=(state_sh, data_sh, repl),
        out_shardings=(state_sh, repl),
        donate_argnums=(0,),
    )
    p_eval = jax.jit(
        functools.partial(eval_step, model=model),
        in_shardings=(state_sh, data_sh),
        out_shardings=data_sh,
    )

    latest = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints", "latest"))
    best = checkpointing.Checkpointer(
        os.path.join(workdir, "checkpoints", "best"), max_to_keep=1
    )
    meta = {
        "best_uar": -1.0,
        "best_step": -1,
        "evals_without_gain": 0,
        "plateau_wait": 0,
        "finished": False,
        "history": [],
        "train_log": [],
    }
    if latest.latest_step() is not None:
        state, meta = latest.restore(checkpointing.abstract_like(state))
        logging.info(
            "Resuming %s from step %d (finished=%s)",
            workdir,
            int(state.step),
            meta["finished"],
        )

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

    def predict(split_data):
        return evaluate.predict(
            lambda b: p_eval(state, sharding.to_global(b, mesh)),
            split_data,
            norm,
            global_batch=tcfg.eval_batch_size,
        )

    def validate() -> float:
        posteriors = predict(data["validation"])
        report = evaluate.split_metrics(
            posteriors, data["validation"], corpus.labels, config.eval
        )[0]
        return float(report["uar"])

    pending_losses: list[tuple[int, jax.Array]] = []

    def check_finite():
        if not pending_losses:
            return
        values = jax.device_get([v for _, v in pending_losses])
        for (s, _), v in zip(pending_losses, values):
            if not np.isfinite(v):
                raise NonFiniteLossError(
                    f"non-finite training loss {float(v)} at step {s} in {workdir}; "
                    f"stopping. The last good checkpoint (step "
                    f"{latest.latest_step()}) is left intact."
                )
        pending_losses.clear()

    def save_latest():
        check_finite()
        if not bool(_all_finite(state.params)):
            raise NonFiniteLossError(
                f"non-finite parameters at step {int(state.step)} in {workdir}; "
                f"stopping. The last good checkpoint (step {latest.latest_step()}) "
                "is left intact."
            )
        latest.save(int(state.step), state, _jsonable(meta))

    step = int(state.step)
    stop = meta["finished"]
    t_start, s_start, compiled = time.time(), step, False
    while not stop and step < total_steps:
        epoch, epoch_step = divmod(step, spe)
        batches = pipeline.train_batches(
            train,
            norm,
            global_batch=tcfg.batch_size,
            seed=seed,
            epoch=epoch,
            start_step=epoch_step,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
        for batch in batches:
            state, metrics = p_train(
                state, sharding.to_global(batch, mesh), dropout_rng
            )
            step += 1
            if not compiled:  # Rate and ETA exclude the compilation.
                jax.block_until_ready(metrics)
                t_start, s_start, compiled = time.time(), step, True
            pending_losses.append((step, metrics["loss"]))
            if step % tcfg.log_every_steps == 0 or step == total_steps:
                check_finite()
                m = {k: float(v) for k, v in jax.device_get(metrics).items()}
                rate = (step - s_start) / max(time.time() - t_start, 1e-9)
                eta = (total_steps - step) / rate if rate > 0 else float("nan")
                m["learning_rate"] = float(
                    learning_rate_fn(tcfg)(step) * float(state.lr_scale)
                )
                writer.write_scalars(step, {f"train/{k}": v for k, v in m.items()})
                meta["train_log"].append({"step": step, "loss": m["loss"]})
                logging.info(
                    "[%s] step %d/%d epoch %d loss %.4f acc %.3f | %.2f steps/s "
                    "ETA %.0fs",
                    os.path.basename(workdir.rstrip("/")),
                    step,
                    total_steps,
                    epoch + 1,
                    m["loss"],
                    m["accuracy"],
                    rate,
                    eta,
                )
            if step % tcfg.checkpoint_every_steps == 0 and step % spe:
                save_latest()
            if step >= total_steps:
                break
        epoch_done = step % spe == 0
        if (
            epoch_done
            and has_validation
            and (step // spe) % tcfg.eval_every_epochs == 0
        ):
            check_finite()
            val_uar = validate()
            meta["history"].append({"step": step, "validation_uar": val_uar})
            writer.write_scalars(step, {"validation/uar": val_uar})
            if val_uar > meta["best_uar"]:
                meta.update(best_uar=val_uar, best_step=step, evals_without_gain=0)
                meta["plateau_wait"] = 0
                best.save(step, state, _jsonable(meta))
            else:
                meta["evals_without_gain"] += 1
                meta["plateau_wait"] += 1
                if (
                    tcfg.plateau_patience
                    and meta["plateau_wait"] >= tcfg.plateau_patience
                ):
                    state = state.replace(lr_scale=state.lr_scale * tcfg.plateau_factor)
                    meta["plateau_wait"] = 0
                    logging.info(
                        "Validation UAR plateaued: learning rate x%.3g",
                        float(state.lr_scale),
                    )
            logging.info(
                "step %d: validation UAR %.4f (best %.4f at step %d)",
                step,
                val_uar,
                meta["best_uar"],
                meta["best_step"],
            )
            if (
                tcfg.early_stopping
                and meta["evals_without_gain"] >= tcfg.early_stopping
            ):
                logging.info("Early stopping at step %d", step)
                stop = True
        if stop or step >= total_steps:
            meta["finished"] = True
        if epoch_done or meta["finished"]:
            save_latest()
    if not meta["finished"]:
        meta["finished"] = True
        save_latest()
    writer.flush()

    # Final evaluation with the best-on-validation checkpoint (else the last).
    eval_state_step = int(state.step)
    if has_validation and best.latest_step() is not None:
        state, _ = best.restore(checkpointing.abstract_like(state))
        eval_state_step = best.latest_step()
    reports, rows = evaluate.evaluate_splits(predict, data, corpus.labels, config.eval)
    if config.eval.baseline and "test" in data:
        reports["test"]["baseline_uar"] = evaluate.logistic_baseline_uar(
            store, data["train"], data["test"], len(corpus.labels), seed
        )
    latest.close()
    best.close()
    writer.close()
    result = {
        "splits": reports,
        "predictions": rows,
        "num_params": num_params,
        "checkpoint_step": eval_state_step,
        "best_validation_uar": meta["best_uar"] if has_validation else None,
        "history": meta["history"],
        "train_log": meta["train_log"],
    }
    with open(os.path.join(workdir, "fold_result.json"), "w") as f:
        json.dump({k: v for k, v in result.items() if k != "predictions"}, f, indent=1)
    return result


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
    corpus, root = corpora.load_corpus(config.data, workdir, seed=config.seed)
    folds = splits.build_folds(corpus, config.protocol, seed=config.seed)
    needed = {e.utterance_id: e for f in folds for _, ex in f.items() for e in ex}
    store = pipeline.FeatureStore.build(
        [e for e in corpus.examples if e.utterance_id in needed],
        config.data,
        cache_dir=os.path.join(workdir, "cache") if config.data.cache else None,
    )
    runs = [(f, s) for f in folds for s in range(config.num_seeds)]
    single = len(runs) == 1
    fold_results = []
    for fold, s in runs:
        seed = config.seed + s
        subdir = workdir if single else os.path.join(workdir, fold.name, f"seed{s}")
        logging.info("=== fold %s, seed %d -> %s", fold.name, seed, subdir)
        r = train_fold(config, corpus, fold, store, subdir, seed=seed)
        r.update(fold=fold.name, seed=seed, warnings=fold.warnings)
        fold_results.append(r)

    results = evaluate.protocol_results(
        config, corpus, root, store, fold_results, wall_time_s=time.time() - t0
    )
    if jax.process_index() == 0:
        evaluate.write_results(workdir, results, fold_results)
    evaluate.log_summary(results)
    return results
