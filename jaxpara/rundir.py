"""The run directory: every file name and layout of a workdir, in one place.

A workdir holds one protocol run (folds x seeds). Its layout:

    <workdir>/config.json            the run's config (written first)
    <workdir>/results.json           results of the whole run (jaxpara.results)
    <workdir>/predictions.csv        utterance predictions, tagged fold and seed
    <workdir>/data/                  the synthetic corpus (data.root = '')
    <workdir>/cache/                 the feature cache
    <workdir>/report/                jaxpara.report's figures and report.md
    <program>/checkpoints/{latest,best}/   one trained program's checkpoints
    <program>/norm_stats.npz         its training normalisation statistics
    <program>/logs/                  its TensorBoard logs
    <seed dir>/fold_result.json      one fold x seed's result (+ attention_*.npz,
                                     deep_spectrum.npz)
    <sweep>/cells/<cell>/            one jaxpara.sweep cell (a workdir as above)
    <sweep>/table.md, table.csv      the sweep's table

A *program* is what one `train.train_fold` call trains (S seeds stacked on
a leading axis when `train.vmap_seeds`). Where it lives:

- one fold and one seed: the workdir itself;
- several folds or seeds, vmapped seeds: `<workdir>/<fold>/` (seed k's
  results in `<workdir>/<fold>/seed<k>/` when S > 1);
- `train.vmap_seeds=False`: `<workdir>/<fold>/seed<k>/`, one program per seed.

train, predict, export and report find every file through this module.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os

import ml_collections

from jaxpara import config_schema
from jaxpara.errors import ArgumentError, WorkdirError

CONFIG = "config.json"
RESULTS = "results.json"
PREDICTIONS = "predictions.csv"
FOLD_RESULT = "fold_result.json"
NORM_STATS = "norm_stats.npz"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
CACHE = "cache"
DATA = "data"
RECORDS = "records"  # TFDS records when data.source='records' and records_dir ''.
REPORT = "report"
CHECKPOINT_KINDS = ("best", "latest")
# A sweep (jaxpara.sweep): <sweep dir>/cells/<cell>/ is each cell's workdir
# (its data/ and cache/ link to the sweep's), and the table files.
CELLS = "cells"
SWEEP_TABLE_MD = "table.md"
SWEEP_TABLE_CSV = "table.csv"
# Folders of a workdir that never hold a program.
_NOT_RUNS = (DATA, CACHE, REPORT)


def cell_dir(sweep_dir: str, cell: str) -> str:
    """The workdir of one sweep cell."""
    return os.path.join(sweep_dir, CELLS, cell)


def attention_file(split: str) -> str:
    """Per seed dir: the sown attention vectors of a split (card C4)."""
    return f"attention_{split}.npz"


@dataclasses.dataclass(frozen=True)
class Program:
    """Where one trained program lives and which replica of it is meant.

    Attributes:
      dir: the program's directory (holds checkpoints/, norm_stats.npz, logs/).
      replica: index on the state's leading seed axis.
      num_replicas: seeds stacked in the program's state.
    """

    dir: str
    replica: int = 0
    num_replicas: int = 1

    @property
    def checkpoints(self) -> str:
        return os.path.join(self.dir, CHECKPOINTS)

    def checkpoint_dir(self, kind: str) -> str:
        """`kind` in CHECKPOINT_KINDS."""
        return os.path.join(self.dir, CHECKPOINTS, kind)

    @property
    def norm_stats(self) -> str:
        return os.path.join(self.dir, NORM_STATS)

    @property
    def logs(self) -> str:
        return os.path.join(self.dir, LOGS)

    def seed_dir(self, replica: int | None = None) -> str:
        """Where replica `replica` (default: this one) writes its results."""
        replica = self.replica if replica is None else replica
        if self.num_replicas == 1:
            return self.dir
        return os.path.join(self.dir, f"seed{replica}")


# ------------------------------------------------------------ layout rules
def program_for(
    workdir: str,
    fold: str,
    seed_indices: list[int],
    *,
    num_folds: int,
    num_seeds: int,
) -> Program:
    """The program that trains seeds `seed_indices` (0-based) of `fold`.

    Args:
      workdir: the run's workdir.
      fold: the fold's name.
      seed_indices: the seeds one program trains: all of them (vmapped) or one.
      num_folds, num_seeds: the run's totals.
    """
    if num_folds == 1 and num_seeds == 1:
        return Program(workdir)
    if len(seed_indices) > 1:
        return Program(os.path.join(workdir, fold), 0, len(seed_indices))
    return Program(os.path.join(workdir, fold, f"seed{seed_indices[0]}"))


def find_program(workdir: str, config, *, fold: str = "", seed_index: int = 0):
    """The trained program (and replica) of seed `seed_index` of `fold`.

    `fold` may be empty when the workdir holds a single run or a single fold.

    Raises:
      WorkdirError: no such seed or fold, or several folds and none chosen.
    """
    if not 0 <= seed_index < config.num_seeds:
        raise ArgumentError(
            f"--seed_index={seed_index}: the run has num_seeds={config.num_seeds}"
        )
    if not fold and os.path.isdir(os.path.join(workdir, CHECKPOINTS)):
        return Program(workdir, seed_index, 1)
    if not fold:
        folds = sorted(
            d
            for d in os.listdir(workdir)
            if d not in _NOT_RUNS
            and (
                os.path.isdir(os.path.join(workdir, d, CHECKPOINTS))
                or glob.glob(os.path.join(workdir, d, "seed*", CHECKPOINTS))
            )
        )
        if len(folds) != 1:
            raise ArgumentError(
                f"{workdir}: cannot pick a model, found folds {folds}; pass --fold "
                "(a protocol run keeps one model per fold)"
            )
        fold = folds[0]
    base = os.path.join(workdir, fold)
    if not os.path.isdir(base):
        raise WorkdirError(f"fold directory {base} not found")
    if config.train.vmap_seeds and config.num_seeds > 1:
        return Program(base, seed_index, config.num_seeds)
    return Program(os.path.join(base, f"seed{seed_index}"))


def fold_results(workdir: str) -> list[tuple[str, str]]:
    """(name relative to the workdir, directory) of every fold_result.json."""
    found = []
    for path in glob.glob(os.path.join(workdir, "**", FOLD_RESULT), recursive=True):
        rel = os.path.relpath(os.path.dirname(path), workdir)
        if rel.split(os.sep)[0] in _NOT_RUNS:
            continue
        found.append((rel, os.path.dirname(path)))
    return sorted(found)


def logs_of(seed_dir: str) -> str | None:
    """The TensorBoard log folder that covers a seed dir (its own, or its
    vmapped program's one level up); None if neither has event files."""
    for logs in (os.path.join(seed_dir, LOGS), os.path.join(seed_dir, os.pardir, LOGS)):
        if glob.glob(os.path.join(logs, "events.out.tfevents.*")):
            return logs
    return None


# ----------------------------------------------------------------- config
def write_config(workdir: str, config) -> None:
    """config.json: what predict / report / export rebuild the run from."""
    with open(os.path.join(workdir, CONFIG), "w") as f:
        f.write(config.to_json_best_effort(indent=1))


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
    """The run's config: the schema's defaults updated from config.json.

    Starting from the defaults (`jaxpara.config_schema`, inside the package)
    restores the types JSON loses (tuples), so `models.create_model` builds
    exactly the trained module.

    Raises:
      WorkdirError: `workdir/config.json` does not exist or is not JSON.
    """
    path = os.path.join(workdir, CONFIG)
    if not os.path.isfile(path):
        raise WorkdirError(
            f"{path} not found: --workdir must be a directory trained by "
            "`python -m jaxpara.main` (it writes config.json at the start)"
        )
    try:
        with open(path) as f:
            values = json.load(f)
    except json.JSONDecodeError as err:
        raise WorkdirError(f"{path} is not valid JSON: {err}") from err
    cfg = config_schema.get_config()
    _update(cfg, values, "")
    return cfg


def labels(workdir: str, program: Program, config) -> list[str]:
    """Class names: results.json, else a fold_result.json, else the corpus."""
    path = os.path.join(workdir, RESULTS)
    if os.path.isfile(path):
        with open(path) as f:
            return list(json.load(f)["corpus"]["labels"])
    for path in sorted(
        glob.glob(os.path.join(program.dir, "**", FOLD_RESULT), recursive=True)
    ):
        with open(path) as f:
            for report in json.load(f)["splits"].values():
                return list(report["labels"])
    from jaxpara.data import corpora  # Unfinished run: read the corpus.

    corpus, _ = corpora.load_corpus(config.data, workdir, seed=config.seed)
    return list(corpus.labels)


def finished_file(workdir: str, name: str) -> str:
    """The path of a file a finished run writes (results.json,
    predictions.csv).

    Raises:
      WorkdirError: the run has not finished (the file is missing).
    """
    path = os.path.join(workdir, name)
    if not os.path.isfile(path):
        raise WorkdirError(
            f"{path} not found: train the workdir to the end first "
            "(python -m jaxpara.main resumes it)"
        )
    return path


def read_results(workdir: str) -> dict:
    """results.json of a finished run (`finished_file`)."""
    with open(finished_file(workdir, RESULTS)) as f:
        return json.load(f)


def read_predictions(workdir: str) -> list[dict]:
    """predictions.csv of a finished run (`finished_file`): one dict per
    (fold, seed, split, utterance) with the columns as strings."""
    import csv

    with open(finished_file(workdir, PREDICTIONS), newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------- checkpoints
def restore_variables(program: Program, abstract, checkpoint: str = "best"):
    """Variables {"params", "batch_stats"} (host arrays) of the program's replica.

    Args:
      program: the trained program and replica (`find_program`).
      abstract: its stacked state as ShapeDtypeStructs
        (`jaxpara.state.abstract_state`).
      checkpoint: 'best' (the best-on-validation checkpoint; the latest when
        the run has none, as the final evaluation does), 'latest', or a step
        number found in either.

    Returns:
      (variables, {"kind", "step"}).

    Raises:
      WorkdirError: bad `checkpoint`, or no such checkpoint in the program.
    """
    import jax
    import numpy as np

    from jaxpara import checkpointing

    if checkpoint in CHECKPOINT_KINDS:
        kinds = ("best", "latest") if checkpoint == "best" else ("latest",)
        step = None
    elif str(checkpoint).isdigit():
        kinds, step = CHECKPOINT_KINDS, int(checkpoint)
    else:
        raise ArgumentError(
            f"--checkpoint={checkpoint!r}; expected best, latest or a step number"
        )
    num = jax.tree_util.tree_leaves(abstract.params)[0].shape[0]
    if not 0 <= program.replica < num:
        raise ArgumentError(f"replica {program.replica} of a state with {num} seeds")
    for kind in kinds:
        directory = program.checkpoint_dir(kind)
        if not os.path.isdir(directory):
            continue
        ckpt = checkpointing.Checkpointer(directory)
        try:
            found = ckpt.latest_step() if step is None else step
            if found is None or found not in ckpt.all_steps():
                continue
            state, _ = ckpt.restore(abstract, found)
        finally:
            ckpt.close()
        variables = jax.device_get(
            {"params": state.params, "batch_stats": state.batch_stats}
        )
        variables = jax.tree_util.tree_map(
            lambda x: np.asarray(x[program.replica]), variables
        )
        return variables, {"kind": kind, "step": int(found)}
    raise WorkdirError(f"no {checkpoint!r} checkpoint in {program.checkpoints}")
