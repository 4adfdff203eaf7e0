"""Deep-spectrum export and a linear SVM on it (card C3, `--mode=export_features`).

`export_features(config, workdir)` runs on a workdir that `jaxpara.train`
trained with the same config. For every fold and seed it

1. restores the best-on-validation checkpoint (the last one when the run has
   no best checkpoint) and the run's training normalisation statistics
   (`jaxpara.predict.load_model`: the `jaxpara.rundir` layout, any device
   count), on the folds of `jaxpara.protocol` (the same set-up as training);
2. computes the model's fused vector, intermediates['deep_spectrum'] [D]
   (seed 002: the concatenated Attention-BLSTM and Attention-FCN vectors),
   for every segment of every split, and averages an utterance's segments
   (card C3 crops each utterance to one segment, so this is the identity);
3. writes `deep_spectrum.npz` next to the seed's fold_result.json: ids [U]
   (str), vectors [U, D] float32, labels [U] int32 (index into label_names),
   split [U] (str), label_names [K] (str), U = every utterance of the fold's
   train, validation and test splits;
4. fits a linear SVM (scikit-learn `SGDClassifier(loss='hinge')`, features
   standardised with training-split statistics, class_weight='balanced' when
   `train.class_weights`) on the train vectors and scores every split with
   `jaxpara.metrics.split_report`, like the network.

It writes `workdir/deep_spectrum_svm.json` ({"model", "svm", "feature_dim",
"features"} plus the results.json layout: "splits" for one run; "folds",
"summary" and pooled "splits" for protocol runs, see `jaxpara.evaluate`) and
`workdir/deep_spectrum_svm_predictions.csv`.
"""

from __future__ import annotations

import functools
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpara import evaluate, models, predict, protocol, sharding
from jaxpara import results as results_lib
from jaxpara.data import pipeline
from jaxpara.data.types import Fold
from jaxpara.errors import ConfigError

FEATURES_FILE = "deep_spectrum.npz"
RESULTS_FILE = "deep_spectrum_svm.json"
PREDICTIONS_FILE = "deep_spectrum_svm_predictions.csv"
INTERMEDIATE = "deep_spectrum"


# ---------------------------------------------------------------- network
def deep_spectrum_step(variables, batch, *, model):
    """Deep-spectrum vectors [B, D] (float32) of a batch, in inference mode."""
    sown = models.intermediates(model, variables, batch)
    if INTERMEDIATE not in sown:
        raise ConfigError(
            f"model {type(model).__name__} sows no intermediates[{INTERMEDIATE!r}]; "
            "--mode=export_features needs a model that exposes its deep-spectrum "
            "vector (card C3: fcn, attention_fcn, attention_lstm, attention_blstm, "
            "attention_blstm_fcn)"
        )
    return sown[INTERMEDIATE].astype(jnp.float32)


def utterance_vectors(segment_vectors: np.ndarray, split: pipeline.SplitData):
    """Mean over each utterance's segments: [S, D] -> [U, D] float32."""
    sums = np.zeros((split.num_utterances, segment_vectors.shape[1]), np.float64)
    np.add.at(sums, split.utterance_index, segment_vectors)
    counts = np.bincount(split.utterance_index, minlength=split.num_utterances)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


# -------------------------------------------------------------------- SVM
def fit_linear_svm(
    train_x: np.ndarray, train_y: np.ndarray, *, seed: int, balanced: bool
):
    """Linear SVM trained by SGD on standardised features (seed 002, Table 7).

    Args:
      train_x: [N, D] training vectors.
      train_y: [N] int class indices.
      seed: SGD shuffling seed.
      balanced: class weights N / (K N_k) (the network's r_k, rescaled).

    Returns:
      A fitted scikit-learn pipeline (StandardScaler -> SGDClassifier with the
      hinge loss); `.predict(x [M, D]) -> [M]` class indices.
    """
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(train_y)) < 2:
        raise ValueError(
            "linear SVM: the train split holds a single class "
            f"{np.unique(train_y).tolist()}; nothing to separate"
        )
    classifier = SGDClassifier(
        loss="hinge",
        penalty="l2",
        alpha=1e-4,
        max_iter=1000,
        tol=1e-3,
        class_weight="balanced" if balanced else None,
        random_state=seed,
    )
    return make_pipeline(StandardScaler(), classifier).fit(train_x, train_y)


# -------------------------------------------------------------------- runs
def export_run(config, setup: protocol.Protocol, fold: Fold, *, single: bool):
    """Exports every seed of one fold and scores the SVM on each.

    Args:
      setup: the run's protocol (corpus, folds, feature store).
      single: the workdir holds one run (one fold, one seed) in its root.

    Returns:
      Per seed, {"fold", "seed", "splits": {split: report}, "predictions":
      rows, "features": npz path, "feature_dim": D, "checkpoint": {"kind",
      "step"}}.
    """
    data, _, _ = setup.fold_data(fold)
    mesh = sharding.make_mesh(config.mesh.data)
    batch_size = config.train.eval_batch_size
    sharding.check_batch_size(batch_size, mesh, "train.eval_batch_size")
    repl, data_sh = sharding.replicated(mesh), sharding.data_sharded(mesh)
    results, step = [], None
    for k in range(config.num_seeds):
        trained = predict.load_model(
            setup.workdir, fold="" if single else fold.name, seed_index=k
        )
        if step is None:
            step = jax.jit(
                functools.partial(deep_spectrum_step, model=trained.model),
                in_shardings=(repl, data_sh),
                out_shardings=data_sh,
            )
        evaluator = evaluate.Evaluator(
            lambda b, v=trained.variables, f=step: f(v, sharding.to_global(b, mesh)),
            trained.norm,
            config.eval,
            tuple(setup.corpus.labels),
            batch_size=batch_size,
        )
        vectors = {
            name: utterance_vectors(seg, data[name])
            for name, seg in evaluator.all_outputs(data).items()
        }
        out_dir = trained.program.seed_dir()
        os.makedirs(out_dir, exist_ok=True)
        result = _write_and_score(
            config, evaluator, data, vectors, out_dir, config.seed + k
        )
        result.update(
            fold=fold.name, seed=config.seed + k, checkpoint=trained.checkpoint
        )
        results.append(result)
    return results


def _write_and_score(config, evaluator, data, vectors, out_dir, seed) -> dict:
    """Writes deep_spectrum.npz into `out_dir`; fits and scores the SVM."""
    names = list(vectors)
    path = os.path.join(out_dir, FEATURES_FILE)
    np.savez(
        path,
        ids=np.asarray([u for n in names for u in data[n].utterance_ids]),
        vectors=np.concatenate([vectors[n] for n in names]),
        labels=np.concatenate([data[n].utterance_labels for n in names]),
        split=np.asarray([n for n in names for _ in data[n].utterance_ids]),
        label_names=np.asarray(list(evaluator.labels)),
    )
    svm = fit_linear_svm(
        vectors["train"],
        data["train"].utterance_labels,
        seed=seed,
        balanced=config.train.class_weights,
    )
    reports, rows = {}, []
    for name in names:
        preds = svm.predict(vectors[name])
        reports[name] = evaluator.report(data[name], preds)
        rows.extend(evaluator.rows(data[name], preds))
    logging.info(
        "%s: %d-d deep-spectrum vectors of %s; linear SVM %s",
        path,
        vectors["train"].shape[1],
        {n: len(v) for n, v in vectors.items()},
        ", ".join(f"{n} UAR {r['uar']:.4f}" for n, r in reports.items()),
    )
    return {
        "splits": reports,
        "predictions": rows,
        "features": path,
        "feature_dim": int(vectors["train"].shape[1]),
    }


def export_features(config, workdir: str) -> dict:
    """Exports every run of a trained workdir and writes the SVM results.

    Returns:
      The dict written to `workdir/deep_spectrum_svm.json`.
    """
    t0 = time.time()
    setup = protocol.Protocol.from_config(config, workdir)
    single = len(setup.folds) == 1 and config.num_seeds == 1
    fold_results = []
    for fold in setup.folds:
        fold_results.extend(export_run(config, setup, fold, single=single))

    results = {
        "model": {"name": config.model.name},
        "svm": {
            "classifier": "SGDClassifier(loss='hinge', penalty='l2', alpha=1e-4)",
            "standardised": True,
            "class_weight": "balanced" if config.train.class_weights else None,
        },
        "feature_dim": fold_results[0]["feature_dim"],
        "features": [
            {k: r[k] for k in ("fold", "seed", "features", "checkpoint")}
            for r in fold_results
        ],
    }
    results.update(results_lib.fold_splits(config, setup.corpus.labels, fold_results))
    results["wall_time_s"] = round(time.time() - t0, 1)
    if jax.process_index() == 0:
        results_lib.write_json(os.path.join(workdir, RESULTS_FILE), results)
        results_lib.write_predictions(
            os.path.join(workdir, PREDICTIONS_FILE),
            [
                {"fold": r["fold"], "seed": r["seed"], **row}
                for r in fold_results
                for row in r["predictions"]
            ],
        )
    for name, rep in results["splits"].items():
        logging.info(
            "deep spectrum + linear SVM, %s: UAR %.4f WA %.4f (%d utterances)",
            name,
            rep["uar"],
            rep["wa"],
            rep["n_utterances"],
        )
    return results
