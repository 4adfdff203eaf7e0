"""TFDS-prepared corpora: every corpus reader as a TensorFlow Datasets builder.

Importing this module registers one builder per corpus, `jaxpara_<corpus>`
(`jaxpara_ccs`, `jaxpara_icbhi`, `jaxpara_iemocap`, `jaxpara_fau_aibo`,
`jaxpara_emodb`, `jaxpara_manifest`). Nothing is ever downloaded: the manual
dir is the user's own licensed copy in the corpus's own layout. The builder
config is a `FrontEndConfig` carrying `config.data`; its name is the front-end
fingerprint, so records of different front-ends never mix::

    <data_dir>/jaxpara_emodb/<fingerprint>/1.0.0/
        jaxpara_emodb-corpus.tfrecord-00000-of-00001 ... split 'corpus', in order
        dataset_info.json  features.json  label.labels.txt  metadata.json
        failed.json        {utterance id: why it could not be read}
        no_speech.json     [utterance ids with no speech found]
        jaxpara_index.json per shard file: utterance ids, num_frames, labels
    <data_dir>/jaxpara_emodb/<fingerprint>/.chunks/     while preparing

Each record holds the raw (not normalised) front-end output of one utterance,
exactly what `pipeline.FeatureStore` holds for it: `features` [T, F, C]
float32, `num_frames` T, `label` (class index), `utterance_id`, `speaker`,
`session`, `gender`, `split` (the corpus's own) and `speech_found`. The one
tfds split, 'corpus', holds every example of the corpus in corpus order (tfds
reserves the name 'all', which reads it too): the engine's protocols choose
folds by utterance id.

Features are extracted in chunks of examples by `FeatureStore.build`, chunks in
parallel threads; each finished chunk is cached as an npz under `.chunks/`, so
an interrupted preparation resumes without recomputing finished chunks (the
cache is removed once the records are written, unless `keep_chunks`).

Outside the engine::

    import tensorflow_datasets as tfds
    from jaxpara.data import records

    config = records.frontend_config(cfg.data)
    builder = tfds.builder("jaxpara_emodb", data_dir=D, config=config)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="/data/EmoDB"))
    ds = tfds.load("jaxpara_emodb", data_dir=D, split="corpus",
                   builder_kwargs={"config": config})

or `records.prepare(cfg.data, D)`, which also checks `data.on_error`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import importlib
import json
import logging
import os
import shutil
import time
import zipfile
from collections.abc import Iterator, Sequence

import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from jaxpara.audio import features as features_lib
from jaxpara.data import corpora, pipeline
from jaxpara.data.types import Corpus, CorpusError, Example
from jaxpara.errors import ConfigError

VERSION = "1.0.0"
SPLIT = "corpus"  # tfds reserves "all" (= every split, so also this one).
NUM_WORKERS = 2  # Chunks featurised at once (threads).
CHUNK_SIZE = 64  # Examples per cached chunk.
INDEX_FILE = "jaxpara_index.json"
FAILED_FILE = "failed.json"
NO_SPEECH_FILE = "no_speech.json"
CHUNK_DIR = ".chunks"
ON_ERROR = ("raise", "skip")

# Corpus -> the manual dir's layout (MANUAL_DOWNLOAD_INSTRUCTIONS).
LAYOUTS = {
    "ccs": "wav/<filename>.wav and lab/{train,devel,test}.csv (filename,label)",
    "icbhi": "ICBHI_final_database/<recording>.{wav,txt} and "
    "ICBHI_challenge_train_test.txt",
    "iemocap": "Session1 .. Session5, e.g. Session1/sentences/wav/Ses01F_impro01/"
    "Ses01F_impro01_F000.wav and Session1/dialog/EmoEvaluation/Ses01F_impro01.txt",
    "fau_aibo": "wav/Ohm_01_001_00.wav ... and labels/chunk_labels_5cl_corpus.txt",
    "emodb": "wav/<speaker><sentence><emotion><version>.wav, e.g. wav/03a01Wa.wav",
    "manifest": "manifest.csv (columns path, label; optional id, speaker, session, "
    "gender, split; paths absolute or relative to it), or the CSV data.root names",
}


def _data_dict(data_cfg) -> dict:
    """`config.data` (ConfigDict, FrozenConfigDict or dict) as a JSON-able dict."""
    return json.loads(ml_collections.ConfigDict(data_cfg).to_json())


@dataclasses.dataclass(eq=False)
class FrontEndConfig(tfds.core.BuilderConfig):
    """A builder config: `config.data` (front-end and corpus options).

    Attributes:
      data: `config.data` as a dict; `name` is its front-end fingerprint
        (`config_name(data)`).
    """

    data: dict = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:  # Not the whole config (tfds logs it).
        return f"FrontEndConfig(name={self.name!r}, corpus={self.data.get('corpus')!r})"

    @property
    def data_cfg(self) -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(self.data)


def config_name(data_cfg) -> str:
    """The records' config name: the front-end fingerprint (`frontend_fingerprint`),
    with `_improvised` when `data.improvised_only` keeps a subset of IEMOCAP."""
    name = pipeline.frontend_fingerprint(data_cfg)
    return f"{name}_improvised" if data_cfg.improvised_only else name


def frontend_config(data_cfg) -> FrontEndConfig:
    """The `FrontEndConfig` of `config.data` (pass it as `config=` to tfds)."""
    data = _data_dict(data_cfg)
    cfg = ml_collections.ConfigDict(data)
    return FrontEndConfig(
        name=config_name(cfg),
        description=f"jaxpara front end {pipeline.frontend_fingerprint(cfg)} "
        f"({cfg.features.kind}, {cfg.sample_rate} Hz)",
        data=data,
    )


class CorpusBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Records of one corpus; `make_builder_class` makes the registered ones.

    Args (besides tfds's `data_dir`, `config`, `version`):
      num_workers: chunks featurised at once (threads).
      chunk_size: examples per cached chunk.
      keep_chunks: keep the chunk cache after the records are written.
    """

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {"1.0.0": "Front-end features of every example, one split."}
    CORPUS = ""

    def __init__(
        self,
        *,
        num_workers: int = NUM_WORKERS,
        chunk_size: int = CHUNK_SIZE,
        keep_chunks: bool = False,
        **kwargs,
    ):
        if num_workers < 1 or chunk_size < 1:
            raise ValueError(
                f"num_workers ({num_workers}) and chunk_size ({chunk_size}) must "
                "be >= 1"
            )
        self.num_workers = num_workers
        self.chunk_size = chunk_size
        self.keep_chunks = keep_chunks
        super().__init__(**kwargs)

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        """This file (tfds's own lookup needs the `importlib_resources` package)."""
        return epath.Path(__file__)

    # ------------------------------------------------------------- info
    @property
    def data_cfg(self) -> ml_collections.ConfigDict:
        config = self.builder_config
        if not isinstance(config, FrontEndConfig):
            raise ConfigError(
                f"{self.name} needs config=jaxpara.data.records.frontend_config("
                "config.data) (its name is the front-end fingerprint)"
            )
        return config.data_cfg

    def _info(self) -> tfds.core.DatasetInfo:
        data_cfg = self.data_cfg
        spec = features_lib.FeatureSpec.from_config(
            data_cfg.features, data_cfg.sample_rate
        )
        labels = _fixed_labels(self.CORPUS)
        # Manifest classes come from its CSV: set by `_split_generators`, or
        # restored from label.labels.txt of prepared records.
        label = tfds.features.ClassLabel(names=labels) if labels else None
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                f"jaxpara {self.CORPUS}: raw front-end features [T, "
                f"{spec.num_bins}, {spec.num_channels}] of every example, in "
                f"corpus order, split '{SPLIT}'."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "features": tfds.features.Tensor(
                        shape=(None, spec.num_bins, spec.num_channels),
                        dtype=np.float32,
                    ),
                    "num_frames": tfds.features.Scalar(dtype=np.int32),
                    "label": label or tfds.features.ClassLabel(),
                    "utterance_id": tfds.features.Text(),
                    "speaker": tfds.features.Text(),
                    "session": tfds.features.Text(),
                    "gender": tfds.features.Text(),
                    "split": tfds.features.Text(),
                    "speech_found": tfds.features.Scalar(dtype=np.bool_),
                }
            ),
            supervised_keys=("features", "label"),
            disable_shuffling=True,  # Corpus order: a fold's files stay together.
            metadata=tfds.core.MetadataDict(
                fingerprint=pipeline.frontend_fingerprint(data_cfg),
                speech_check=pipeline.speech_check(data_cfg),
                data=self.builder_config.data,
            ),
        )

    # ------------------------------------------------------- generation
    def _corpus_root(self, dl_manager) -> str:
        manual = os.path.abspath(os.fspath(dl_manager.manual_dir))
        root = self.data_cfg.root
        if (
            self.CORPUS == "manifest"
            and root
            and os.path.isfile(root)
            and os.path.dirname(os.path.abspath(root)) == manual
        ):
            return root  # A CSV not named manifest.csv.
        return manual

    def _split_generators(self, dl_manager):
        data_cfg = self.data_cfg
        data_cfg.root = self._corpus_root(dl_manager)
        corpus, _ = corpora.load_corpus(data_cfg, workdir="", seed=0)
        label = self.info.features["label"]
        if label.num_classes is None:
            label.names = list(corpus.labels)
        elif list(label.names) != list(corpus.labels):
            raise CorpusError(
                f"{self.name}: corpus classes {list(corpus.labels)} differ from "
                f"the builder's {label.names}"
            )
        return {SPLIT: self._generate_examples(corpus)}

    def _generate_examples(self, corpus: Corpus):
        """Yields (utterance id, record) in corpus order; see the module doc."""
        on_error = self.data_cfg.on_error
        if on_error not in ON_ERROR:
            raise ConfigError(
                f"data.on_error={on_error!r}: expected one of {list(ON_ERROR)}"
            )
        examples = corpus.examples
        chunks = [
            examples[i : i + self.chunk_size]
            for i in range(0, len(examples), self.chunk_size)
        ]
        t0 = time.time()
        failed: dict[str, str] = {}
        no_speech: list[str] = []
        for chunk, store in self._chunk_stores(chunks):
            for e in chunk:
                if e.utterance_id not in store:
                    reason = store.failed.get(e.utterance_id, "no features computed")
                    reason = " ".join(reason.split())
                    if e.path not in reason:
                        reason = f"{e.path}: {reason}"
                    if on_error == "raise":
                        raise CorpusError(
                            f"{self.name}: cannot use {e.utterance_id}: {reason}. "
                            "Fix or remove the file, or prepare with "
                            "data.on_error='skip' (listed in failed.json)"
                        )
                    failed[e.utterance_id] = reason
                    continue
                if e.utterance_id in store.no_speech:
                    no_speech.append(e.utterance_id)
                yield e.utterance_id, _record(e, store, corpus)
        _write_json(os.path.join(self.data_dir, FAILED_FILE), failed)
        _write_json(os.path.join(self.data_dir, NO_SPEECH_FILE), no_speech)
        logging.log(
            logging.WARNING if failed else logging.INFO,
            "%s: %d of %d examples featurised in %.1fs; %d unreadable skipped "
            "(data.on_error='skip', listed in %s)%s; %d with no speech found",
            self.name,
            len(examples) - len(failed),
            len(examples),
            time.time() - t0,
            len(failed),
            FAILED_FILE,
            f": {', '.join(list(failed)[:10])}" if failed else "",
            len(no_speech),
        )

    @property
    def chunk_dir(self) -> str:
        """The chunk cache (outside the version folder, so it survives a crash)."""
        return os.path.join(
            os.fspath(self.data_dir_root),
            self.name,
            self.builder_config.name,
            CHUNK_DIR,
        )

    def _chunk_stores(
        self, chunks: Sequence[list[Example]]
    ) -> Iterator[tuple[list[Example], pipeline.FeatureStore]]:
        """(chunk, its FeatureStore) in order; at most 2 x num_workers in flight."""
        pending: collections.deque = collections.deque()
        todo = iter(enumerate(chunks))
        with concurrent.futures.ThreadPoolExecutor(self.num_workers) as pool:

            def submit():
                for i, chunk in todo:
                    pending.append((chunk, pool.submit(self._chunk_store, i, chunk)))
                    return

            try:
                for _ in range(2 * self.num_workers):
                    submit()
                while pending:
                    chunk, future = pending.popleft()
                    store = future.result()
                    submit()
                    yield chunk, store
            finally:
                for _, future in pending:
                    future.cancel()

    def _chunk_store(self, i: int, chunk: list[Example]) -> pipeline.FeatureStore:
        """Features of one chunk, from the chunk cache or `FeatureStore.build`."""
        path = os.path.join(self.chunk_dir, f"chunk_{i:06d}_{chunk_key(chunk)}.npz")
        if os.path.exists(path):
            try:
                return pipeline.FeatureStore.load(path)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
                logging.warning(
                    "%s: unreadable chunk %s (%s): recomputing", self.name, path, err
                )
        store = pipeline.FeatureStore.build(chunk, self.data_cfg, num_threads=2)
        os.makedirs(self.chunk_dir, exist_ok=True)
        store.save(path)
        return store

    def _post_download_and_prepare_hook(self) -> None:
        write_index(self)
        if not self.keep_chunks:
            shutil.rmtree(self.chunk_dir, ignore_errors=True)


def _fixed_labels(corpus: str) -> tuple[str, ...]:
    """The class order a reader fixes (empty for 'manifest': its CSV's)."""
    module = importlib.import_module(f"jaxpara.data.corpora.{corpus}")
    return tuple(module.LABELS)


def _record(e: Example, store: pipeline.FeatureStore, corpus: Corpus) -> dict:
    feats = np.asarray(store.get(e.utterance_id), np.float32)
    return {
        "features": feats,
        "num_frames": np.int32(feats.shape[0]),
        "label": corpus.label_index(e.label),
        "utterance_id": e.utterance_id,
        "speaker": e.speaker,
        "session": e.session,
        "gender": e.gender,
        "split": e.split,
        "speech_found": e.utterance_id not in store.no_speech,
    }


def chunk_key(chunk: Sequence[Example]) -> str:
    """Hash of a chunk's examples and their files (size, mtime): a changed or
    repaired file is featurised again."""
    h = hashlib.sha1()
    for e in chunk:
        try:
            st = os.stat(e.path)
            file_key = (st.st_size, st.st_mtime_ns)
        except OSError:
            file_key = None
        h.update(repr((e.utterance_id, e.path, e.start, e.end, file_key)).encode())
    return h.hexdigest()[:12]


def make_builder_class(corpus: str) -> type[CorpusBuilder]:
    """The registered TFDS builder class `jaxpara_<corpus>` of a corpus reader."""
    name = f"jaxpara_{corpus}"
    layout = LAYOUTS.get(corpus, f"what jaxpara.data.corpora.{corpus} reads")
    return type(
        "".join(part.capitalize() for part in name.split("_")),
        (CorpusBuilder,),
        {
            "name": name,
            "CORPUS": corpus,
            "__module__": __name__,
            "__doc__": f"jaxpara records of the {corpus} corpus.",
            "MANUAL_DOWNLOAD_INSTRUCTIONS": (
                "Nothing is downloaded. The manual dir is your own licensed copy "
                "of the corpus in its own layout, the folder holding "
                f"{layout}. Pass it as tfds.download.DownloadConfig(manual_dir=...) "
                "(jaxpara.prepare: --config.data.root)."
            ),
        },
    )


BUILDERS: dict[str, type[CorpusBuilder]] = {
    c: make_builder_class(c) for c in corpora.CORPORA
}


def builder(data_cfg, data_dir: str, **kwargs) -> CorpusBuilder:
    """The builder of `data_cfg.corpus` at `data_dir` (kwargs: `CorpusBuilder`)."""
    if data_cfg.corpus not in BUILDERS:
        raise ConfigError(
            f"unknown corpus {data_cfg.corpus!r} (config key data.corpus); "
            f"expected one of {list(BUILDERS)}"
        )
    return BUILDERS[data_cfg.corpus](
        data_dir=data_dir, config=frontend_config(data_cfg), **kwargs
    )


# ------------------------------------------------------------------ index
def _write_json(path: str, value) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(tmp, path)


def _read_json(path: str, default):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def _read_shard(path: str) -> tuple[list[str], list[int], list[int]]:
    """(utterance ids, num_frames, labels) of one TFRecord file, in file order;
    the features are never decoded."""
    tf = pipeline.tf_cpu()
    spec = {
        "utterance_id": tf.io.FixedLenFeature([], tf.string),
        "num_frames": tf.io.FixedLenFeature([], tf.int64),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }
    ids, frames, labels = [], [], []
    ds = tf.data.TFRecordDataset([path]).batch(1024)
    for batch in ds.map(lambda x: tf.io.parse_example(x, spec)).as_numpy_iterator():
        ids.extend(u.decode() for u in batch["utterance_id"])
        frames.extend(int(n) for n in batch["num_frames"])
        labels.extend(int(n) for n in batch["label"])
    return ids, frames, labels


def write_index(b: CorpusBuilder) -> dict:
    """Reads the written records back once and writes `jaxpara_index.json`.

    Returns:
      The index: {'builder', 'config', 'version', 'corpus', 'fingerprint',
      'speech_check', 'root', 'labels' (class names), 'num_examples',
      'shards': [{'file', 'num_examples', 'utterance_ids', 'num_frames',
      'labels' (class indices)}] in file order, 'failed' {id: message},
      'no_speech' [ids]}.
    """
    split = b.info.splits[SPLIT]
    shards = []
    for path, length in zip(split.filepaths, split.shard_lengths, strict=True):
        ids, frames, labels = _read_shard(os.fspath(path))
        if len(ids) != length:
            raise CorpusError(
                f"{path}: {len(ids)} records, dataset_info.json says {length}"
            )
        shards.append(
            {
                "file": path.name,
                "num_examples": length,
                "utterance_ids": ids,
                "num_frames": frames,
                "labels": labels,
            }
        )
    data_cfg = b.data_cfg
    index = {
        "builder": b.name,
        "config": b.builder_config.name,
        "version": str(b.version),
        "corpus": b.CORPUS,
        "fingerprint": pipeline.frontend_fingerprint(data_cfg),
        "speech_check": pipeline.speech_check(data_cfg),
        "root": data_cfg.root,
        "labels": list(b.info.features["label"].names),
        "num_examples": sum(s["num_examples"] for s in shards),
        "shards": shards,
        "failed": _read_json(os.path.join(b.data_dir, FAILED_FILE), {}),
        "no_speech": _read_json(os.path.join(b.data_dir, NO_SPEECH_FILE), []),
    }
    _write_json(os.path.join(b.data_dir, INDEX_FILE), index)
    return index


def read_index(b: CorpusBuilder) -> dict:
    """The `write_index` index of prepared records (`prepare` writes it)."""
    path = os.path.join(b.data_dir, INDEX_FILE)
    if not os.path.exists(path):
        raise CorpusError(
            f"{path} does not exist: prepare the records first "
            "(python -m jaxpara.prepare or jaxpara.data.records.prepare)"
        )
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------- prepare
def prepare(
    data_cfg,
    data_dir: str,
    *,
    num_workers: int = NUM_WORKERS,
    chunk_size: int = CHUNK_SIZE,
    keep_chunks: bool = False,
) -> CorpusBuilder:
    """Prepares (once) the records of `data_cfg.corpus` read from `data_cfg.root`.

    Idempotent: with records present it returns at once. An interrupted run
    resumes from the chunk cache.

    Args:
      data_cfg: `config.data`; `root` is the local corpus copy (never empty:
        synthetic corpora are written by `corpora.generate_synthetic`).
      data_dir: the TFDS data dir.
      num_workers: chunks featurised at once (threads).
      chunk_size: examples per cached chunk.
      keep_chunks: keep the chunk cache after the records are written.

    Returns:
      The builder of the prepared records (`read_index(builder)` describes them).

    Raises:
      ConfigError: an empty `data.root` or a bad `data.on_error`.
      CorpusError: a missing or malformed corpus; with `data.on_error='raise'`,
        an unreadable file (named), also when earlier records list one.
    """
    root = data_cfg.root
    if not root:
        raise ConfigError(
            "data.root is empty: jaxpara.prepare reads a local corpus copy; set "
            "--config.data.root (synthetic corpora are generated by jaxpara.main)"
        )
    if data_cfg.on_error not in ON_ERROR:
        raise ConfigError(
            f"data.on_error={data_cfg.on_error!r}: expected one of {list(ON_ERROR)}"
        )
    if not os.path.exists(root):
        raise CorpusError(
            f"data.root {root!r} for corpus {data_cfg.corpus!r} does not exist"
        )
    pipeline.tf_cpu()
    b = builder(
        data_cfg,
        data_dir,
        num_workers=num_workers,
        chunk_size=chunk_size,
        keep_chunks=keep_chunks,
    )
    manual = root if os.path.isdir(root) else os.path.dirname(os.path.abspath(root))
    b.download_and_prepare(
        download_dir=os.path.join(data_dir, "downloads"),
        download_config=tfds.download.DownloadConfig(manual_dir=manual),
    )
    if os.path.exists(os.path.join(b.data_dir, INDEX_FILE)):
        index = read_index(b)
    else:  # Records written by another tool or a run killed before the index.
        index = write_index(b)
    if index["root"] and os.path.abspath(index["root"]) != os.path.abspath(root):
        logging.warning(
            "%s: reusing records prepared from %s, not %s (delete %s to prepare "
            "them again)",
            b.name,
            index["root"],
            root,
            b.data_dir,
        )
    if index["failed"] and data_cfg.on_error == "raise":
        uid, reason = next(iter(index["failed"].items()))
        raise CorpusError(
            f"{b.name}: {len(index['failed'])} unreadable files were skipped when "
            f"{b.data_dir} was prepared, first {uid}: {reason} "
            f"(data.on_error='raise'; see {FAILED_FILE})"
        )
    return b
