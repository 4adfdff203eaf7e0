"""The protocol set-up: config + workdir -> corpus, folds, feature store, runs.

`Protocol.from_config(config, workdir)` checks the config, reads the corpus
(or writes its synthetic stand-in, once, on process 0), builds the folds of
`config.protocol` and extracts the features of every utterance the folds use
(cached in the workdir), or, with `data.source='records'`, prepares the
corpus's TFDS records once (process 0; `data.records_dir`) and opens their
index (`stream.RecordStore`): the splits then stream from the records.
`plan()` is the fold x seed loop: which seeds one program trains and where
it lives (`jaxpara.rundir`). `fold_data` segments one fold's splits. Training (`jaxpara.train`) and the deep-spectrum export
(`jaxpara.export`) both start here.
"""

from __future__ import annotations

import dataclasses
import os

import jax
from jax.experimental import multihost_utils

from jaxpara import rundir
from jaxpara.data import pipeline
from jaxpara.data.types import Corpus, CorpusError, Fold
from jaxpara.errors import ConfigError

ON_ERROR = ("raise", "skip")
SOURCES = ("memory", "records")  # data.source: FeatureStore | jaxpara.data.stream.


def check_config(config) -> None:
    """Fails fast, before any data work, on a config value that cannot be used.

    Builds every object a config value turns into (features, model, optimizer,
    augmentation, selection rule) once, so a bad value is reported naming its key.

    Raises:
      ConfigError: naming the key.
    """
    from jaxpara import augment, models, selection
    from jaxpara import state as state_lib
    from jaxpara.audio import features as features_lib
    from jaxpara.audio import io

    if config.data.on_error not in ON_ERROR:
        raise ConfigError(
            f"data.on_error={config.data.on_error!r}; expected one of {list(ON_ERROR)}"
        )
    if config.data.waveform_norm not in io.WAVEFORM_NORMS:
        raise ConfigError(
            f"data.waveform_norm={config.data.waveform_norm!r}; expected one of "
            f"{list(io.WAVEFORM_NORMS)}"
        )
    _check_source(config.data, config.train.batch_size)
    _check_speed_factors(config)
    _check_speaker_norm(config.data)
    if config.eval.aggregation not in ("vote", "mean", "max"):
        raise ConfigError(
            f"eval.aggregation={config.eval.aggregation!r}; expected vote, mean or max"
        )
    selection.Rule.from_config(config)
    for build in (
        lambda: features_lib.FeatureSpec.from_config(
            config.data.features, config.data.sample_rate
        ),
        lambda: models.create_model(config.model, max(config.model.num_classes, 2)),
        lambda: state_lib.make_optimizer(config.train),
        lambda: augment.Augment.from_config(config),
    ):
        try:
            build()
        except ConfigError:
            raise
        except ValueError as err:
            raise ConfigError(str(err)) from err


def _check_speed_factors(config) -> None:
    """`augment.speed_factors`: distinct factors > 0 other than 1, in-memory data."""
    factors = tuple(config.augment.speed_factors)
    if not factors:
        return
    if any(not f > 0 or f == 1.0 for f in factors) or len(set(factors)) < len(factors):
        raise ConfigError(
            f"augment.speed_factors={factors}: expected distinct factors > 0 other "
            "than 1 (1 is the original copy), e.g. (0.9, 1.1)"
        )
    if config.data.source != "memory":
        raise ConfigError(
            f"augment.speed_factors={factors} needs data.source='memory': the "
            "perturbed copies are extracted with the features; records hold one "
            "copy per utterance"
        )


def _check_speaker_norm(data_cfg) -> None:
    """`data.speaker_norm` works on the in-memory features only."""
    if data_cfg.speaker_norm and data_cfg.source != "memory":
        raise ConfigError(
            "data.speaker_norm needs data.source='memory': records hold raw "
            "features and the stream normalises with one set of statistics"
        )


def read_shards(data_cfg) -> int:
    """`data.read_shards` resolved: 0 = one reading pipeline per process."""
    return data_cfg.read_shards or jax.process_count()


def _check_source(data_cfg, batch_size: int) -> None:
    """The `data.source` keys (ConfigError naming the key)."""
    if data_cfg.source not in SOURCES:
        raise ConfigError(
            f"data.source={data_cfg.source!r}; expected one of {list(SOURCES)}"
        )
    if not isinstance(data_cfg.records_dir, str):
        raise ConfigError(f"data.records_dir={data_cfg.records_dir!r}: expected a path")
    if data_cfg.shuffle_buffer < 1:
        raise ConfigError(f"data.shuffle_buffer={data_cfg.shuffle_buffer}: need >= 1")
    shards, processes = data_cfg.read_shards, jax.process_count()
    if shards < 0 or (shards or processes) % processes:
        raise ConfigError(
            f"data.read_shards={shards}: need 0 (one per process) or a multiple "
            f"of the {processes} processes"
        )
    if data_cfg.source == "records" and batch_size % (shards or processes):
        raise ConfigError(
            f"data.read_shards={shards or processes}: train.batch_size="
            f"{batch_size} is not divisible by it"
        )


@dataclasses.dataclass(frozen=True)
class Run:
    """One trained program of the plan: a fold and the seeds it trains."""

    fold: Fold
    seeds: list[int]
    program: rundir.Program


@dataclasses.dataclass
class Protocol:
    """A run's corpus, folds and features (module docstring)."""

    config: object
    workdir: str
    corpus: Corpus
    root: str
    folds: list[Fold]
    store: pipeline.FeatureStore  # Or a stream.RecordStore (data.source).

    @classmethod
    def from_config(cls, config, workdir: str) -> Protocol:
        from jaxpara.data import corpora, splits  # Heavy imports kept local.

        check_config(config)
        if jax.process_count() > 1 and not config.data.root:
            # Process 0 writes the synthetic corpus; the others read it after.
            if jax.process_index() == 0:
                corpora.load_corpus(config.data, workdir, seed=config.seed)
            multihost_utils.sync_global_devices("jaxpara: synthetic corpus written")
        corpus, root = corpora.load_corpus(config.data, workdir, seed=config.seed)
        try:
            folds = splits.build_folds(corpus, config.protocol, seed=config.seed)
        except CorpusError:
            raise
        except ValueError as err:  # Unknown protocol or fold name.
            raise ConfigError(str(err)) from err
        if config.data.source == "records":
            store = _open_records(config, workdir, root)
            return cls(config, workdir, corpus, root, folds, store)
        needed = {e.utterance_id for f in folds for _, ex in f.items() for e in ex}
        trained = {e.utterance_id for f in folds for e in f.train}
        examples = [e for e in corpus.examples if e.utterance_id in needed]
        examples += pipeline.speed_copies(
            [e for e in examples if e.utterance_id in trained],
            config.augment.speed_factors,
        )
        store = pipeline.FeatureStore.build(
            examples,
            config.data,
            cache_dir=os.path.join(workdir, rundir.CACHE)
            if config.data.cache
            else None,
        )
        if config.data.speaker_norm:  # The cache holds the raw features.
            store = pipeline.speaker_normalise(store, examples)
        return cls(config, workdir, corpus, root, folds, store)

    @property
    def seeds(self) -> list[int]:
        """The run's seeds: `seed + s` for s < `num_seeds`."""
        return [self.config.seed + s for s in range(self.config.num_seeds)]

    def plan(self) -> list[Run]:
        """The fold x seed loop: one program per fold (vmapped seeds,
        `train.vmap_seeds`) or per fold and seed."""
        seeds = self.seeds
        groups = [seeds] if self.config.train.vmap_seeds else [[s] for s in seeds]
        runs = []
        for fold in self.folds:
            for group in groups:
                program = rundir.program_for(
                    self.workdir,
                    fold.name,
                    [s - self.config.seed for s in group],
                    num_folds=len(self.folds),
                    num_seeds=len(seeds),
                )
                runs.append(Run(fold, group, program))
        return runs

    def fold_data(self, fold: Fold):
        """`fold_data` of one fold of this protocol."""
        return fold_data(self.config, self.corpus, fold, self.store)


def _open_records(config, workdir: str, root: str):
    """The run's records (a `stream.RecordStore`): prepared once (process 0;
    the others wait), then opened by every process. Split members missing
    from them are handled like unreadable files (`data.on_error`)."""
    import ml_collections

    from jaxpara.data import records, stream  # Heavy imports kept local.

    data_cfg = ml_collections.ConfigDict(config.data.to_dict())
    data_cfg.root = root  # The corpus copy actually read (synthetic or not).
    data_dir = config.data.records_dir or os.path.join(workdir, rundir.RECORDS)
    if jax.process_count() > 1:
        if jax.process_index() == 0:
            records.prepare(data_cfg, data_dir)
        multihost_utils.sync_global_devices("jaxpara: records prepared")
    return stream.open_records(data_cfg, data_dir, read_shards=read_shards(config.data))


def fold_data(config, corpus: Corpus, fold: Fold, store) -> tuple[dict, object, int]:
    """A fold's segmented splits, the split training steps draw from, and the
    random-crop length (0 = none).

    A split the fold leaves empty (validation under `protocol.validation=none`)
    has no entry; every other split must have usable utterances.

    Returns:
      ({split name: SplitData}, training SplitData, crop length); from a
      `stream.RecordStore`, `stream.RecordSplit`s (no features in memory).
    """
    if config.data.on_error not in ON_ERROR:
        raise ConfigError(
            f"data.on_error={config.data.on_error!r}; expected one of {list(ON_ERROR)}"
        )
    skip = config.data.on_error == "skip"
    build_split = pipeline.build_split
    if not isinstance(store, pipeline.FeatureStore):
        from jaxpara.data import stream  # Heavy imports kept local.

        # Records: the same splits from their index, streamed.
        build_split = stream.build_split
    data = {
        name: build_split(
            name,
            examples,
            corpus,
            store,
            config.data,
            allow_skips=skip and name == "train",
        )
        for name, examples in fold.items()
        if examples or name == "train"
    }
    train = data["train"]
    # Card C2: training steps see whole utterances cut to `segment.length`
    # frames at a random start; every reported split (train included) is
    # segmented as configured (mode 'first': the crop from frame 0, padded).
    # Speed perturbation adds its copies to what the steps see only: the
    # reported train split and the normalisation statistics are the originals'.
    crop = config.data.segment.length if config.data.segment.random_crop else 0
    copies = pipeline.speed_copies(fold.train, config.augment.speed_factors)
    if crop or copies:
        train = build_split(
            "train",
            fold.train + copies,
            corpus,
            store,
            config.data,
            allow_skips=skip,
            whole_utterances=bool(crop),
        )
    return data, train, crop
