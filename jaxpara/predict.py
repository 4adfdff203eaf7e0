"""Inference with a trained workdir: new audio -> label and class posteriors.

    python -m jaxpara.predict --workdir=DIR [--checkpoint=best|latest|STEP]
        [--fold=NAME] [--seed_index=0] FILE_OR_DIR ... [--gender=m|f]
        [--output=preds.csv]

`Predictor.from_workdir(DIR).predict(paths)` is the Python API. It rebuilds
the run's config from `DIR/config.json`, restores one replica of the
checkpointed (stacked) train state and the run's normalisation statistics,
and runs the training front-end unchanged: `pipeline.FeatureStore.build`
(decode at any sample rate / channel count, resample, VAD, band-pass, JAX
features), `pipeline.build_split` (segmentation), `evaluate.predict` (padded
eval batches through `train.eval_step`) and `aggregation.aggregate` with
`config.eval.aggregation`. Files are processed in chunks, each featurised and
scored in batches; a file that cannot be used gets an error (naming it) and
the others are still predicted. The CLI prints one tab-separated line per
file (`path, prediction, p_<class>...` or `path, ERROR, message`), optionally
writes them as CSV, and exits with status 1 if any file failed (2 if the
workdir cannot be used).

Run layout (see `jaxpara.train.train_and_evaluate`): a single fold with one
seed is `DIR/checkpoints`; protocol runs keep one model per fold in
`DIR/<fold>/` (vmapped seeds: replica `seed_index` of the stacked state) or
`DIR/<fold>/seed<k>/` (`train.vmap_seeds=False`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import glob
import importlib.util
import json
import logging
import os
import sys

import jax
import ml_collections
import numpy as np

from jaxpara import aggregation, checkpointing, evaluate, models, sharding, train
from jaxpara import state as state_lib
from jaxpara.audio import features as features_lib
from jaxpara.audio import stats
from jaxpara.data import pipeline
from jaxpara.data.types import Corpus, Example

# Extensions collected from a folder argument (anything libsndfile decodes).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
CHECKPOINT_KINDS = ("best", "latest")


# ------------------------------------------------------------------ config
def _default_config() -> ml_collections.ConfigDict:
    """configs/default.py's get_config(), loaded by path (any working dir)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(repo, "configs", "default.py")
    spec = importlib.util.spec_from_file_location("_jaxpara_default_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def _update(cfg: ml_collections.ConfigDict, values: dict, prefix: str) -> None:
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in cfg:
            logging.warning("config.json key %s is unknown to this version", name)
            continue
        current = cfg[key]
        if isinstance(current, ml_collections.ConfigDict):
            _update(current, value, f"{name}.")
        elif isinstance(current, tuple):
            cfg[key] = tuple(value)  # JSON turned tuples into lists.
        elif isinstance(current, float) and isinstance(value, int):
            cfg[key] = float(value)
        else:
            cfg[key] = value


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The run's config: `configs/default.get_config()` updated from config.json.

    Starting from the defaults restores the types JSON loses (tuples), so
    `models.create_model` builds exactly the trained module.

    Raises:
      FileNotFoundError: `workdir/config.json` does not exist.
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: --workdir must be a directory trained by "
            "`python -m jaxpara.main` (it writes config.json at the start)"
        )
    with open(path) as f:
        values = json.load(f)
    cfg = _default_config()
    _update(cfg, values, "")
    return cfg


def run_dir(workdir: str, config, *, fold: str = "", seed_index: int = 0):
    """(directory of one trained program, replica index, seeds it stacks).

    Mirrors `train.train_and_evaluate`'s layout (module docstring). `fold` may
    be empty when the workdir holds a single run or a single fold.
    """
    if not 0 <= seed_index < config.num_seeds:
        raise ValueError(
            f"--seed_index={seed_index}: the run has num_seeds={config.num_seeds}"
        )
    if not fold and os.path.isdir(os.path.join(workdir, "checkpoints")):
        return workdir, seed_index, 1
    if not fold:
        folds = sorted(
            d
            for d in os.listdir(workdir)
            if os.path.isdir(os.path.join(workdir, d, "checkpoints"))
            or glob.glob(os.path.join(workdir, d, "seed*", "checkpoints"))
        )
        if len(folds) != 1:
            raise ValueError(
                f"{workdir}: cannot pick a model, found folds {folds}; pass --fold "
                "(a protocol run keeps one model per fold)"
            )
        fold = folds[0]
    base = os.path.join(workdir, fold)
    if not os.path.isdir(base):
        raise FileNotFoundError(f"fold directory {base} not found")
    if config.train.vmap_seeds and config.num_seeds > 1:
        return base, seed_index, config.num_seeds
    return os.path.join(base, f"seed{seed_index}"), 0, 1


def _checkpointer(directory: str, step) -> checkpointing.Checkpointer | None:
    if not os.path.isdir(directory):
        return None
    ckpt = checkpointing.Checkpointer(directory)
    if (step is None and ckpt.latest_step() is None) or (
        step is not None and step not in ckpt.all_steps()
    ):
        ckpt.close()
        return None
    return ckpt


def abstract_state(config, num_classes: int, num_seeds: int):
    """The run's stacked train state as ShapeDtypeStructs on one device.

    Built like `train.train_fold` builds it (traced, nothing compiled), so a
    checkpoint saved on any number of devices restores onto this process's
    first device.
    """
    model = models.create_model(config.model, num_classes)
    tx = state_lib.make_optimizer(config.train)
    spec = features_lib.FeatureSpec.from_config(
        config.data.features, config.data.sample_rate
    )
    input_shape = (config.data.segment.length, spec.num_bins, spec.num_channels)
    mesh = sharding.make_mesh(1)
    abstract = jax.eval_shape(
        lambda: state_lib.stack(
            [
                state_lib.create_state(
                    model, tx, input_shape, jax.random.key(s, impl="rbg"), mesh
                )
                for s in range(num_seeds)
            ]
        )
    )
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract
    )


def restore_replica(run: str, abstract, checkpoint: str = "best", replica: int = 0):
    """Variables {"params", "batch_stats"} (host arrays) of one replica.

    Args:
      run: the program's directory (holds `checkpoints/best`, `.../latest`).
      abstract: its stacked state, from `abstract_state`.
      checkpoint: 'best' (the best-on-validation checkpoint; the latest when
        the run has none, as the final evaluation does), 'latest', or a step
        number found in either.
      replica: index on the state's leading seed axis.

    Returns:
      (variables, {"kind", "step"}).
    """
    if checkpoint in CHECKPOINT_KINDS:
        kinds = ("best", "latest") if checkpoint == "best" else ("latest",)
        step = None
    elif str(checkpoint).isdigit():
        kinds, step = CHECKPOINT_KINDS, int(checkpoint)
    else:
        raise ValueError(
            f"--checkpoint={checkpoint!r}; expected best, latest or a step number"
        )
    num = jax.tree_util.tree_leaves(abstract.params)[0].shape[0]
    if not 0 <= replica < num:
        raise ValueError(f"replica {replica} of a state with {num} seeds")
    for kind in kinds:
        ckpt = _checkpointer(os.path.join(run, "checkpoints", kind), step)
        if ckpt is None:
            continue
        found = ckpt.latest_step() if step is None else step
        state, _ = ckpt.restore(abstract, found)
        ckpt.close()
        variables = jax.device_get(
            {"params": state.params, "batch_stats": state.batch_stats}
        )
        variables = jax.tree_util.tree_map(lambda x: np.asarray(x[replica]), variables)
        return variables, {"kind": kind, "step": int(found)}
    raise FileNotFoundError(
        f"no {checkpoint!r} checkpoint in {os.path.join(run, 'checkpoints')}"
    )


def _labels(workdir: str, run: str, config) -> list[str]:
    """Class names: results.json, else a fold_result.json, else the corpus."""
    path = os.path.join(workdir, "results.json")
    if os.path.isfile(path):
        with open(path) as f:
            return list(json.load(f)["corpus"]["labels"])
    for path in sorted(
        glob.glob(os.path.join(run, "**", "fold_result.json"), recursive=True)
    ):
        with open(path) as f:
            for report in json.load(f)["splits"].values():
                return list(report["labels"])
    from jaxpara.data import corpora  # Unfinished run: read the corpus.

    corpus, _ = corpora.load_corpus(config.data, workdir, seed=config.seed)
    return list(corpus.labels)


# --------------------------------------------------------------- predictor
# One compiled program per (model, batch shape), shared by all Predictors.
_eval_step = jax.jit(train.eval_step, static_argnames="model")


@dataclasses.dataclass
class Prediction:
    """One file's result.

    Attributes:
      path: the file.
      label: predicted class name (None when the file failed).
      posteriors: [K] utterance posteriors (aggregated; None when failed).
      num_segments: segments the file was cut into.
      error: why the file could not be used (None when it was).
    """

    path: str
    label: str | None = None
    posteriors: np.ndarray | None = None
    num_segments: int = 0
    error: str | None = None


class Predictor:
    """A trained model with its front-end, ready to score audio files.

    Attributes:
      config: the run's config; labels: class names; model: the flax module;
      variables: one replica's {"params", "batch_stats"}; norm: the run's
      training normalisation statistics (None if `data.normalise` is off);
      checkpoint: {"run", "kind", "step", "replica"} of the restored state.
    """

    def __init__(self, config, labels, variables, norm, checkpoint):
        self.config = config
        self.labels = list(labels)
        self.variables = variables
        self.norm = norm
        self.checkpoint = checkpoint
        self.model = models.create_model(
            config.model, config.model.num_classes or len(self.labels)
        )
        self.batch_size = config.train.eval_batch_size
        self._state = state_lib.TrainState(
            step=np.int32(checkpoint["step"]),
            params=variables["params"],
            batch_stats=variables["batch_stats"],
            opt_state=(),
            lr_scale=np.float32(1.0),
        )

    @classmethod
    def from_workdir(
        cls,
        workdir: str,
        *,
        checkpoint: str = "best",
        fold: str = "",
        seed_index: int = 0,
    ) -> Predictor:
        """Loads config, labels, normalisation statistics and a checkpoint."""
        config = load_config(workdir)
        run, replica, stacked = run_dir(
            workdir, config, fold=fold, seed_index=seed_index
        )
        labels = _labels(workdir, run, config)
        abstract = abstract_state(
            config, config.model.num_classes or len(labels), stacked
        )
        variables, info = restore_replica(run, abstract, checkpoint, replica)
        norm = None
        if config.data.normalise:
            norm = stats.NormStats.load(os.path.join(run, "norm_stats.npz"))
        info.update(run=run, replica=replica)
        logging.info(
            "Predictor: %s checkpoint step %d of %s", info["kind"], info["step"], run
        )
        return cls(config, labels, variables, norm, info)

    # -- front-end
    def examples(self, paths, gender: str = "") -> list[Example]:
        """One Example per path (ids are unique; the label is a placeholder)."""
        return [
            Example(f"{i}:{p}", os.path.abspath(p), self.labels[0], gender=gender)
            for i, p in enumerate(paths)
        ]

    def featurise(self, examples: list[Example]):
        """(FeatureStore, SplitData or None, {utterance id: error}).

        The training front-end: decode + VAD + band-pass + features
        (`FeatureStore.build`), then `build_split`'s segmentation.
        """
        store = pipeline.FeatureStore.build(examples, self.config.data)
        errors = dict(store.failed)
        for e in examples:
            if e.utterance_id in store and store.get(e.utterance_id).shape[0] == 0:
                errors[e.utterance_id] = f"{e.path} yields zero feature frames"
        usable = [e for e in examples if e.utterance_id not in errors]
        if not usable:
            return store, None, errors
        corpus = Corpus("predict", tuple(self.labels), usable)
        split = pipeline.build_split(
            "predict", usable, corpus, store, self.config.data, allow_skips=False
        )
        return store, split, errors

    def segment_posteriors(self, split: pipeline.SplitData) -> np.ndarray:
        """Posteriors [S, K] of every segment (padded, masked eval batches)."""
        return evaluate.predict(
            lambda batch: np.asarray(_eval_step(self._state, batch, model=self.model)),
            split,
            self.norm,
            global_batch=self.batch_size,
        )

    # -- API
    def predict(
        self, paths, *, gender: str = "", chunk_files: int = 64
    ) -> list[Prediction]:
        """Labels and posteriors of audio files, in input order.

        Args:
          paths: audio files (any sample rate, channels, length).
          gender: 'm', 'f' or '' (unknown): fed to models that use it.
          chunk_files: files featurised at once (bounds memory).

        Returns:
          One `Prediction` per path; a file that cannot be used has `error`.
        """
        if gender not in pipeline.GENDER_CODE:
            raise ValueError(f"gender={gender!r}; expected 'm', 'f' or ''")
        paths = list(paths)
        out: list[Prediction] = []
        for start in range(0, len(paths), chunk_files):
            chunk = paths[start : start + chunk_files]
            examples = self.examples(chunk, gender)
            _, split, errors = self.featurise(examples)
            results = {e.utterance_id: Prediction(p) for e, p in zip(examples, chunk)}
            for u, message in errors.items():
                results[u].error = message
            if split is not None:
                posteriors = self.segment_posteriors(split)
                utt_post, preds = aggregation.aggregate(
                    split.utterance_index,
                    posteriors,
                    np.ones(len(posteriors), bool),
                    split.num_utterances,
                    self.config.eval.aggregation,
                )
                counts = np.bincount(split.utterance_index, minlength=len(preds))
                for i, u in enumerate(split.utterance_ids):
                    r = results[u]
                    r.label, r.posteriors = self.labels[preds[i]], utt_post[i]
                    r.num_segments = int(counts[i])
            out.extend(results[e.utterance_id] for e in examples)
        return out

    def rows(self, predictions: list[Prediction]) -> list[dict]:
        """CSV rows: path, prediction, p_<class>..., num_segments, error."""
        rows = []
        for p in predictions:
            row = {"path": p.path, "prediction": p.label or ""}
            for k, name in enumerate(self.labels):
                row[f"p_{name}"] = (
                    "" if p.posteriors is None else round(float(p.posteriors[k]), 6)
                )
            row.update(num_segments=p.num_segments, error=p.error or "")
            rows.append(row)
        return rows


def expand_paths(args) -> tuple[list[str], list[Prediction]]:
    """Files to predict from FILE_OR_DIR arguments (folders: recursive, sorted).

    Returns:
      (audio files, failures for folders without audio files or unreadable).
    """
    files, failed = [], []

    def unreadable(err: OSError):
        failed.append(Prediction(err.filename, error=f"cannot read folder: {err}"))

    for arg in args:
        if not os.path.isdir(arg):
            files.append(arg)  # A missing file fails later, named.
            continue
        found = []
        for root, dirs, names in os.walk(arg, onerror=unreadable):
            dirs.sort()
            found.extend(
                os.path.join(root, n)
                for n in sorted(names)
                if n.lower().endswith(AUDIO_EXTENSIONS)
            )
        if not found:
            failed.append(
                Prediction(arg, error=f"no audio files ({', '.join(AUDIO_EXTENSIONS)})")
            )
        files.extend(found)
    return files, failed


# --------------------------------------------------------------------- CLI
def model_options(parser: argparse.ArgumentParser) -> None:
    """The flags that pick a trained model (shared with jaxpara.report)."""
    parser.add_argument("--workdir", required=True, help="A trained workdir.")
    parser.add_argument(
        "--checkpoint", default="best", help="best | latest | a step number."
    )
    parser.add_argument(
        "--fold", default="", help="Protocol runs: the fold whose model to use."
    )
    parser.add_argument(
        "--seed_index", type=int, default=0, help="Which seed's model (0-based)."
    )
    parser.add_argument(
        "--gender", default="", choices=["", "m", "f"], help="Speaker gender."
    )


def main(argv=None) -> int:
    """The CLI (module docstring). Returns the exit status: 0 when every file
    was predicted, 1 when any failed, 2 when the workdir cannot be used."""
    parser = argparse.ArgumentParser(
        prog="python -m jaxpara.predict", description=__doc__.split("\n")[0]
    )
    model_options(parser)
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR")
    parser.add_argument("--output", default="", help="Also write a CSV here.")
    parser.add_argument(
        "--batch_size", type=int, default=0, help="Segments per batch (0: the run's)."
    )
    args = parser.parse_args(argv)
    try:
        predictor = Predictor.from_workdir(
            args.workdir,
            checkpoint=args.checkpoint,
            fold=args.fold,
            seed_index=args.seed_index,
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"jaxpara.predict: error: {err}", file=sys.stderr)
        return 2
    if args.batch_size:
        predictor.batch_size = args.batch_size
    files, failed = expand_paths(args.inputs)
    predictions = predictor.predict(files, gender=args.gender) + failed
    rows = predictor.rows(predictions)
    header = ["path", "prediction", *(f"p_{k}" for k in predictor.labels)]
    print("\t".join(header))
    for p, row in zip(predictions, rows):
        if p.error:
            print(f"{p.path}\tERROR\t{p.error}")
        else:
            print("\t".join(str(row[k]) for k in header))
    if args.output:
        with open(args.output, "w", newline="") as out:
            w = csv.DictWriter(out, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    bad = sum(p.error is not None for p in predictions)
    print(
        f"{len(predictions) - bad} of {len(predictions)} files predicted"
        + (f", {bad} failed" if bad else "")
        + f" ({predictor.checkpoint['kind']} checkpoint, step "
        f"{predictor.checkpoint['step']}, {predictor.checkpoint['run']})",
        file=sys.stderr,
    )
    return 1 if bad else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    sys.exit(main())
