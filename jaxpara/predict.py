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
file (`path, prediction, p_<class>..., speech, num_segments` or `path, ERROR,
message`), optionally writes them as CSV, and exits with status 1 if any
file failed (2 if the workdir cannot be used).

Speaker normalisation: a run trained with `data.speaker_norm` normalised
each speaker with their own statistics, so one call's files are taken as ONE
speaker (normalised together with their own statistics): call once per
speaker. With a held-out speaker's files this reproduces the run's test
predictions.

No speech: a file in which the run's front-end finds none
(`pipeline.speech_check`: webrtcvad when the run trims with VAD, else the
energy floor `vad.ENERGY_FLOOR_DBFS` on 30 ms frames) is still scored whole,
as in training, but marked: `speech` is `no` (else `yes`), a warning names
it, and the summary line counts it. It is not an error and does not change
the exit status: the posteriors of silence or hiss are simply not evidence
of anything.

The run layout (which program and replica holds fold F, seed k) is
`jaxpara.rundir`'s; the model call is `jaxpara.models.apply`; scoring is a
`jaxpara.evaluate.Evaluator`. Errors with the workdir or the arguments print
one line `error: ...` and exit with status 2 (`--verbose` shows the
traceback).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import sys

import jax
import ml_collections
import numpy as np
from absl import logging

from jaxpara import errors, evaluate, models, rundir, train
from jaxpara import state as state_lib
from jaxpara.audio import features as features_lib
from jaxpara.audio import stats
from jaxpara.data import pipeline
from jaxpara.data.types import Corpus, Example
from jaxpara.errors import ArgumentError, WorkdirError

# Extensions collected from a folder argument (anything libsndfile decodes).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """One trained replica of a workdir, ready to run.

    Attributes:
      config: the run's config; labels: class names; model: the flax module;
      variables: the replica's {"params", "batch_stats"} (host arrays);
      norm: training normalisation statistics (None if `data.normalise` is
      off); program: where it was trained (`jaxpara.rundir.Program`);
      checkpoint: {"kind", "step"} of the restored checkpoint.
    """

    config: ml_collections.ConfigDict
    labels: tuple
    model: object
    variables: dict
    norm: object
    program: rundir.Program
    checkpoint: dict


def load_model(
    workdir: str, *, checkpoint: str = "best", fold: str = "", seed_index: int = 0
) -> TrainedModel:
    """Restores seed `seed_index` of `fold` from a trained workdir.

    Raises:
      WorkdirError: the workdir, fold, seed or checkpoint cannot be used.
    """
    config = rundir.load_config(workdir)
    program = rundir.find_program(workdir, config, fold=fold, seed_index=seed_index)
    labels = rundir.labels(workdir, program, config)
    num_classes = config.model.num_classes or len(labels)
    model = models.create_model(config.model, num_classes)
    spec = features_lib.FeatureSpec.from_config(
        config.data.features, config.data.sample_rate
    )
    input_shape = (config.data.segment.length, spec.num_bins, spec.num_channels)
    abstract = state_lib.abstract_state(
        model, state_lib.make_optimizer(config.train), input_shape, program.num_replicas
    )
    variables, info = rundir.restore_variables(program, abstract, checkpoint)
    norm = None
    if config.data.normalise:
        if not os.path.isfile(program.norm_stats):
            raise WorkdirError(f"{program.norm_stats} not found (data.normalise=True)")
        norm = stats.NormStats.load(program.norm_stats)
    return TrainedModel(config, tuple(labels), model, variables, norm, program, info)


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
      speech_found: whether the front-end found speech in it
        (`pipeline.speech_check`; None when the file failed).
      error: why the file could not be used (None when it was).
    """

    path: str
    label: str | None = None
    posteriors: np.ndarray | None = None
    num_segments: int = 0
    speech_found: bool | None = None
    error: str | None = None


class Predictor:
    """A trained model with its front-end, ready to score audio files.

    Attributes:
      config: the run's config; labels: class names; model: the flax module;
      variables: one replica's {"params", "batch_stats"}; norm: the run's
      training normalisation statistics (None if `data.normalise` is off);
      checkpoint: {"run", "kind", "step", "replica"} of the restored state;
      speech_check: what decides that a file holds no speech
      (`pipeline.speech_check` of the run's front-end).
    """

    def __init__(self, config, labels, model, variables, norm, checkpoint):
        self.config = config
        self.labels = list(labels)
        self.model = model
        self.variables = variables
        self.norm = norm
        self.checkpoint = checkpoint
        self.batch_size = config.train.eval_batch_size
        self.speech_check = pipeline.speech_check(config.data)

    @property
    def evaluator(self) -> evaluate.Evaluator:
        """The run's evaluator: this replica's eval step, norm, eval config."""
        return evaluate.Evaluator(
            lambda batch: _eval_step(self.variables, batch, model=self.model),
            self.norm,
            self.config.eval,
            tuple(self.labels),
            batch_size=self.batch_size,
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
        m = load_model(workdir, checkpoint=checkpoint, fold=fold, seed_index=seed_index)
        info = dict(m.checkpoint, run=m.program.dir, replica=m.program.replica)
        logging.info(
            "Predictor: %s checkpoint step %d of %s",
            info["kind"],
            info["step"],
            info["run"],
        )
        return cls(m.config, m.labels, m.model, m.variables, m.norm, info)

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
        (`FeatureStore.build`), `data.speaker_norm` (`examples` taken as one
        speaker), then `build_split`'s segmentation.
        """
        store = pipeline.FeatureStore.build(examples, self.config.data)
        if self.config.data.speaker_norm:  # `predict`: the call is one speaker.
            store = pipeline.speaker_normalise(store, examples, one_speaker=True)
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
        return self.evaluator.outputs(split)

    # -- API
    def predict(
        self, paths, *, gender: str = "", chunk_files: int = 64
    ) -> list[Prediction]:
        """Labels and posteriors of audio files, in input order.

        Args:
          paths: audio files (any sample rate, channels, length).
          gender: 'm', 'f' or '' (unknown): fed to models that use it.
          chunk_files: files featurised at once (bounds memory). A run
            trained with `data.speaker_norm` takes all `paths` as ONE
            speaker, normalised with their own statistics, in one chunk.

        Returns:
          One `Prediction` per path; a file that cannot be used has `error`,
          one without speech `speech_found=False` (and a warning is logged).
        """
        if gender not in pipeline.GENDER_CODE:
            raise ArgumentError(f"gender={gender!r}; expected 'm', 'f' or ''")
        paths = list(paths)
        if self.config.data.speaker_norm and paths:
            chunk_files = len(paths)
            logging.info(
                "data.speaker_norm: the %d files are normalised as one speaker, "
                "with their own statistics (call once per speaker)",
                len(paths),
            )
        out: list[Prediction] = []
        for start in range(0, len(paths), chunk_files):
            chunk = paths[start : start + chunk_files]
            examples = self.examples(chunk, gender)
            store, split, errors = self.featurise(examples)
            results = {e.utterance_id: Prediction(p) for e, p in zip(examples, chunk)}
            no_speech = set(store.no_speech)
            for u, message in errors.items():
                results[u].error = message
            if split is not None:
                evaluator = self.evaluator
                utt_post, preds = evaluator.aggregate(split, evaluator.outputs(split))
                counts = np.bincount(split.utterance_index, minlength=len(preds))
                for i, u in enumerate(split.utterance_ids):
                    r = results[u]
                    r.label, r.posteriors = self.labels[preds[i]], utt_post[i]
                    r.num_segments = int(counts[i])
                    r.speech_found = u not in no_speech
                    if not r.speech_found:
                        logging.warning(
                            "%s: no speech found (%s); scored whole as in "
                            "training, its prediction %r means nothing",
                            r.path,
                            self.speech_check,
                            r.label,
                        )
            out.extend(results[e.utterance_id] for e in examples)
        return out

    def rows(self, predictions: list[Prediction]) -> list[dict]:
        """CSV rows: path, prediction, p_<class>..., speech ('yes' | 'no' | ''
        for a failed file), num_segments, error."""
        rows = []
        for p in predictions:
            row = {"path": p.path, "prediction": p.label or ""}
            for k, name in enumerate(self.labels):
                row[f"p_{name}"] = (
                    "" if p.posteriors is None else round(float(p.posteriors[k]), 6)
                )
            speech = {None: "", True: "yes", False: "no"}[p.speech_found]
            row.update(speech=speech, num_segments=p.num_segments, error=p.error or "")
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
    parser.add_argument(
        "--verbose",
        action="store_true",
        help=f"Show tracebacks of input errors (or {errors.VERBOSE_ENV}=1).",
    )


def main(argv=None) -> int:
    """The CLI (module docstring). Returns the exit status: 0 when every file
    was predicted, 1 when any failed, 2 when the workdir or an argument cannot
    be used (one line `error: ...` on stderr)."""
    return errors.run_cli(_predict_files, argv)


def _predict_files(argv) -> int:
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
    predictor = Predictor.from_workdir(
        args.workdir,
        checkpoint=args.checkpoint,
        fold=args.fold,
        seed_index=args.seed_index,
    )
    if args.batch_size:
        predictor.batch_size = args.batch_size
    files, failed = expand_paths(args.inputs)
    predictions = predictor.predict(files, gender=args.gender) + failed
    rows = predictor.rows(predictions)
    header = ["path", "prediction", *(f"p_{k}" for k in predictor.labels)]
    header += ["speech", "num_segments"]
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
    silent = sum(p.speech_found is False for p in predictions)
    print(
        f"{len(predictions) - bad} of {len(predictions)} files predicted"
        + (f", {bad} failed" if bad else "")
        + (
            f", {silent} with no speech found ({predictor.speech_check})"
            if silent
            else ""
        )
        + f" ({predictor.checkpoint['kind']} checkpoint, step "
        f"{predictor.checkpoint['step']}, {predictor.checkpoint['run']})",
        file=sys.stderr,
    )
    return 1 if bad else 0


if __name__ == "__main__":
    import logging as std_logging

    std_logging.basicConfig(level=std_logging.INFO, format="%(levelname)s %(message)s")
    sys.exit(main())
