"""Deep-spectrum export and a linear SVM on it (card C3, `--mode=export_features`).

`export_features(config, workdir)` runs on a workdir that `jaxpara.train`
trained with the same config. For every fold and seed it

1. restores the best-on-validation checkpoint (the last one when the run has
   no best checkpoint) and the run's training normalisation statistics, with
   `jaxpara.predict`'s run layout and restore (any device count);
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

from jaxpara import evaluate, metrics, models, predict, sharding, train
from jaxpara.audio import stats
from jaxpara.data import pipeline
from jaxpara.data.types import Corpus, Fold

FEATURES_FILE = "deep_spectrum.npz"
RESULTS_FILE = "deep_spectrum_svm.json"
PREDICTIONS_FILE = "deep_spectrum_svm_predictions.csv"
INTERMEDIATE = "deep_spectrum"


# ---------------------------------------------------------------- network
def deep_spectrum_step(variables, batch, *, model):
    """Deep-spectrum vectors [B, D] (float32) of a batch, in inference mode."""
    _, state = model.apply(
        variables,
        batch["inputs"],
        frames=batch["frames"],
        gender=batch["gender"],
        train=False,
        mutable=["intermediates"],
    )
    intermediates = state.get("intermediates", {})
    if INTERMEDIATE not in intermediates:
        raise ValueError(
            f"model {type(model).__name__} sows no intermediates[{INTERMEDIATE!r}]; "
            "--mode=export_features needs a model that exposes its deep-spectrum "
            "vector (card C3: fcn, attention_fcn, attention_lstm, attention_blstm, "
            "attention_blstm_fcn)"
        )
    return intermediates[INTERMEDIATE][0].astype(jnp.float32)


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
def export_run(
    config,
    corpus: Corpus,
    fold: Fold,
    store: pipeline.FeatureStore,
    workdir: str,
    *,
    single: bool,
) -> list[dict]:
    """Exports every seed of one fold and scores the SVM on each.

    Args:
      single: the workdir holds one run (one fold, one seed) in its root.

    Returns:
      Per seed, {"fold", "seed", "splits": {split: report}, "predictions":
      rows, "features": npz path, "feature_dim": D, "checkpoint": {"kind",
      "step"}}.
    """
    data = {
        name: pipeline.build_split(
            name,
            examples,
            corpus,
            store,
            config.data,
            allow_skips=(name == "train" and config.data.on_error == "skip"),
        )
        for name, examples in fold.items()
    }
    num_classes = config.model.num_classes or len(corpus.labels)
    model = models.create_model(config.model, num_classes)
    mesh = sharding.make_mesh(config.mesh.data)
    batch_size = config.train.eval_batch_size
    sharding.check_batch_size(batch_size, mesh, "train.eval_batch_size")
    repl, data_sh = sharding.replicated(mesh), sharding.data_sharded(mesh)
    step = jax.jit(
        functools.partial(deep_spectrum_step, model=model),
        in_shardings=(repl, data_sh),
        out_shardings=data_sh,
    )
    results, abstract = [], {}
    for k in range(config.num_seeds):
        # The run layout and checkpoint restore of `jaxpara.predict`.
        run, replica, stacked = predict.run_dir(
            workdir, config, fold="" if single else fold.name, seed_index=k
        )
        if stacked not in abstract:
            abstract[stacked] = predict.abstract_state(config, num_classes, stacked)
        variables, checkpoint = predict.restore_replica(
            run, abstract[stacked], "best", replica=replica
        )
        norm = None
        if config.data.normalise:
            norm = stats.NormStats.load(os.path.join(run, "norm_stats.npz"))
        vectors = {}
        for name, split in data.items():
            if split.num_utterances == 0:
                continue
            seg = evaluate.predict(
                lambda b, v=variables: step(v, sharding.to_global(b, mesh)),
                split,
                norm,
                global_batch=batch_size,
            )
            vectors[name] = utterance_vectors(seg, split)
        out_dir = train.seed_dir(run, replica, stacked)
        os.makedirs(out_dir, exist_ok=True)
        result = _write_and_score(
            config, corpus, data, vectors, out_dir, config.seed + k
        )
        result.update(fold=fold.name, seed=config.seed + k, checkpoint=checkpoint)
        results.append(result)
    return results


def _write_and_score(config, corpus, data, vectors, out_dir, seed) -> dict:
    """Writes deep_spectrum.npz into `out_dir`; fits and scores the SVM."""
    names = list(vectors)
    path = os.path.join(out_dir, FEATURES_FILE)
    np.savez(
        path,
        ids=np.asarray([u for n in names for u in data[n].utterance_ids]),
        vectors=np.concatenate([vectors[n] for n in names]),
        labels=np.concatenate([data[n].utterance_labels for n in names]),
        split=np.asarray([n for n in names for _ in data[n].utterance_ids]),
        label_names=np.asarray(list(corpus.labels)),
    )
    svm = fit_linear_svm(
        vectors["train"],
        data["train"].utterance_labels,
        seed=seed,
        balanced=config.train.class_weights,
    )
    reports, rows = {}, []
    for name in names:
        split = data[name]
        preds = svm.predict(vectors[name])
        reports[name] = metrics.split_report(
            split.utterance_labels,
            preds,
            list(corpus.labels),
            positive=config.eval.positive_label,
            icbhi_normal=config.eval.icbhi_normal_label,
            bootstrap_draws=config.eval.bootstrap,
        )
        rows.extend(
            {
                "split": name,
                "utterance_id": u,
                "label": corpus.labels[y],
                "prediction": corpus.labels[p],
            }
            for u, y, p in zip(split.utterance_ids, split.utterance_labels, preds)
        )
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
    from jaxpara.data import corpora, splits  # Heavy imports kept local.

    t0 = time.time()
    corpus, _ = corpora.load_corpus(config.data, workdir, seed=config.seed)
    folds = splits.build_folds(corpus, config.protocol, seed=config.seed)
    needed = {e.utterance_id for f in folds for _, ex in f.items() for e in ex}
    store = pipeline.FeatureStore.build(
        [e for e in corpus.examples if e.utterance_id in needed],
        config.data,
        cache_dir=os.path.join(workdir, "cache") if config.data.cache else None,
    )
    single = len(folds) == 1 and config.num_seeds == 1
    fold_results = []
    for fold in folds:
        fold_results.extend(
            export_run(config, corpus, fold, store, workdir, single=single)
        )

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
    results.update(evaluate.fold_splits(config, corpus.labels, fold_results))
    results["wall_time_s"] = round(time.time() - t0, 1)
    if jax.process_index() == 0:
        evaluate.write_json(os.path.join(workdir, RESULTS_FILE), results)
        evaluate.write_predictions(
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
