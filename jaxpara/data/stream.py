"""Streaming input from prepared TFDS records (`data.source='records'`).

The in-memory path (`pipeline.FeatureStore` -> `pipeline.SplitData`) holds
every utterance's features on the host; this one holds none. What it keeps
in memory is the records' index (`records.read_index`: per shard file, its
utterance ids and frame counts), so everything the engine plans with is
computed without reading a feature:

- `RecordStore` (in place of `FeatureStore`): the index of the records, which
  utterances they hold, where, and how many frames each has.
- `build_split` (in place of `pipeline.build_split`): a `RecordSplit`, the
  bookkeeping of `SplitData` (utterance ids, labels, gender, per-segment
  frames and utterance index, by the same card C0 rules: `window_starts`)
  and, instead of the segments, the shard files that hold the split.
- `train_batches` / `eval_batches` / `training_stats` / `steps_per_epoch`:
  what `pipeline`'s functions of the same names dispatch to for a
  `RecordSplit`; the batches are the same dicts.

Training: the split's shard files are dealt to `read_shards` reading
pipelines (pipeline p reads `files[p::P]`, in an order permuted per (seed,
epoch, p)); each reads its files interleaved, keeps the split's utterances,
cuts and normalises their segments, shuffles them in a buffer of
`data.shuffle_buffer` segments (seed from (seed, epoch, p)) and batches
`global_batch / P` of them. A process runs its `P / process_count`
pipelines and concatenates their batches, so the global batch is the same
for any process count at the same `read_shards`. Every pipeline yields
exactly `steps_per_epoch` batches (the smallest pipeline's count); a resumed
epoch skips its first `start_step` batches. Host memory is bounded by the
shuffle buffer, the interleave and the prefetch, not by the corpus.

Evaluation: every process reads the split's files in index order, so
segment i of the split is element i of the stream (the `RecordSplit` order),
pads to a multiple of the global batch and keeps its rows of each global
batch, exactly as `pipeline.eval_batches` does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator

import numpy as np

from jaxpara.audio import features as features_lib
from jaxpara.audio import segment, stats
from jaxpara.data import pipeline, records
from jaxpara.data.types import Corpus, CorpusError, Example
from jaxpara.errors import ConfigError

CYCLE_LENGTH = 4  # Shard files one training pipeline reads at once.
PREFETCH = 2  # Batches prepared ahead.


# ------------------------------------------------------------------ store
@dataclasses.dataclass
class RecordStore:
    """Prepared records, known from their index (no features in memory).

    Attributes:
      data_dir: the records' folder (the builder's version dir).
      files: shard file paths, in file order.
      ids: utterance ids in index order (file order, then record order).
      num_frames: [len(ids)] int64 frames per utterance.
      file_index: [len(ids)] int32 index into `files` of each utterance.
      feature_shape: (F, C) of one frame.
      failed: {utterance id: why it could not be read} (records.FAILED_FILE).
      no_speech: utterance ids with no speech found.
      speech_check: what decided `no_speech` (`pipeline.speech_check`).
      read_shards: reading pipelines of a training epoch (`data.read_shards`
        resolved).
      shuffle_buffer: segments in each training pipeline's shuffle buffer.
    """

    data_dir: str
    files: list[str]
    ids: list[str]
    num_frames: np.ndarray
    file_index: np.ndarray
    feature_shape: tuple[int, int]
    failed: dict[str, str]
    no_speech: list[str]
    speech_check: str
    read_shards: int = 1
    shuffle_buffer: int = 1024

    def __post_init__(self):
        self._position = {u: i for i, u in enumerate(self.ids)}
        self._cached: tuple[int, dict[str, np.ndarray]] = (-1, {})

    @classmethod
    def from_builder(cls, b, data_cfg, *, read_shards: int = 1) -> RecordStore:
        """The store of prepared records (`records.prepare`'s builder)."""
        index = records.read_index(b)
        spec = features_lib.FeatureSpec.from_config(
            data_cfg.features, data_cfg.sample_rate
        )
        ids, frames, file_index = [], [], []
        for i, shard in enumerate(index["shards"]):
            ids.extend(shard["utterance_ids"])
            frames.extend(shard["num_frames"])
            file_index.extend([i] * len(shard["utterance_ids"]))
        data_dir = os.fspath(b.data_dir)
        return cls(
            data_dir=data_dir,
            files=[os.path.join(data_dir, s["file"]) for s in index["shards"]],
            ids=ids,
            num_frames=np.asarray(frames, np.int64),
            file_index=np.asarray(file_index, np.int32),
            feature_shape=(spec.num_bins, spec.num_channels),
            failed=dict(index["failed"]),
            no_speech=list(index["no_speech"]),
            speech_check=index["speech_check"],
            read_shards=read_shards,
            shuffle_buffer=data_cfg.shuffle_buffer,
        )

    def __contains__(self, utterance_id: str) -> bool:
        return utterance_id in self._position

    def position(self, utterance_id: str) -> int:
        """Index order of an utterance (its place in `ids`)."""
        return self._position[utterance_id]

    def why_missing(self, utterance_id: str) -> str:
        """Why an utterance has no record (`pipeline.usable_examples`)."""
        return self.failed.get(
            utterance_id,
            f"not in the records at {self.data_dir} (prepared from "
            "another copy of the corpus? delete them to prepare again)",
        )

    def get(self, utterance_id: str) -> np.ndarray:
        """Features [T, F, C] of one utterance (not normalised).

        Reads the utterance's whole shard file and keeps that one file's
        features until another file is asked for: memory is one shard file,
        and a pass over utterances in index order reads each file once.
        """
        f = int(self.file_index[self.position(utterance_id)])
        if self._cached[0] != f:
            self._cached = (-1, {})
            tf = pipeline.tf_cpu()
            ds = tf.data.TFRecordDataset([self.files[f]]).map(
                parse_fn(self.feature_shape)
            )
            self._cached = (
                f,
                {
                    r["utterance_id"].decode(): r["features"]
                    for r in ds.as_numpy_iterator()
                },
            )
        return self._cached[1][utterance_id]


def open_records(data_cfg, data_dir: str, *, read_shards: int = 1) -> RecordStore:
    """Prepares (once; `records.prepare` is idempotent) and opens the records
    of `data_cfg` (whose `root` is the corpus copy actually read)."""
    b = records.prepare(data_cfg, data_dir)
    store = RecordStore.from_builder(b, data_cfg, read_shards=read_shards)
    logging.info(
        "Records: %d utterances in %d shard files at %s (%d unreadable)",
        len(store.ids),
        len(store.files),
        store.data_dir,
        len(store.failed),
    )
    return store


def parse_fn(feature_shape: tuple[int, int]):
    """Serialized record -> {"features" [T, F, C] float32, "utterance_id"}.

    TFDS 4.9 writes a `Tensor(shape=(None, F, C))` feature as one flat
    float list, read back as a `FixedLenSequenceFeature` of shape (F, C)
    (`example_parser`), and `Text` as a bytes list.
    """
    tf = pipeline.tf_cpu()
    spec = {
        "features": tf.io.FixedLenSequenceFeature(
            list(feature_shape), tf.float32, allow_missing=True
        ),
        "utterance_id": tf.io.FixedLenFeature([], tf.string),
    }
    return lambda serialized: tf.io.parse_single_example(serialized, spec)


# ------------------------------------------------------------------ split
def window_starts(num_frames: int, seg_cfg) -> list[int]:
    """Start frames of the segments `segment.segment` cuts (card C0 rules).

    Args:
      num_frames: T of the utterance.
      seg_cfg: `config.data.segment` or anything with `length`, `hop`,
        `min_frames` and `mode`.
    """
    length = seg_cfg.length
    if seg_cfg.mode == "first":
        return segment.segment_starts(num_frames, length, length, 0)[:1]
    if seg_cfg.mode not in segment.MODES:
        raise ValueError(f"segment: mode must be one of {segment.MODES}")
    return segment.segment_starts(num_frames, length, seg_cfg.hop, seg_cfg.min_frames)


@dataclasses.dataclass(frozen=True)
class _Segmentation:
    length: int
    hop: int
    min_frames: int
    mode: str


@dataclasses.dataclass
class RecordSplit:
    """A split streamed from the records: `SplitData` without the segments.

    Attributes (besides `SplitData`'s name, utterance_ids, utterance_labels,
    utterance_gender, frames, utterance_index, skipped):
      store: the records.
      starts: [S] int64 start frame of each segment in its utterance.
      segment_offsets: [U + 1] int64: utterance u's segments are
        `segment_offsets[u]:segment_offsets[u + 1]`.
      segment_shape: (L, F, C) of one segment.
      files: shard files holding the split's utterances, in file order.
      utterance_file: [U] int32 index into `files` of each utterance.
    """

    name: str
    utterance_ids: list[str]
    utterance_labels: np.ndarray
    utterance_gender: np.ndarray
    frames: np.ndarray
    utterance_index: np.ndarray
    skipped: list[tuple[str, str]]
    store: RecordStore
    starts: np.ndarray
    segment_offsets: np.ndarray
    segment_shape: tuple[int, int, int]
    files: list[str]
    utterance_file: np.ndarray

    @property
    def num_segments(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_utterances(self) -> int:
        return len(self.utterance_ids)

    # What `pipeline`'s functions of the same names dispatch to.
    def train_batches(self, norm, **kwargs):
        return train_batches(self, norm, **kwargs)

    def eval_batches(self, norm, **kwargs):
        return eval_batches(self, norm, **kwargs)

    def training_stats(self) -> stats.NormStats:
        return training_stats(self)

    def steps_per_epoch(self, global_batch: int) -> int:
        return steps_per_epoch(self, global_batch)


def build_split(
    name: str,
    examples: list[Example],
    corpus: Corpus,
    store: RecordStore,
    data_cfg,
    *,
    allow_skips: bool,
    whole_utterances: bool = False,
) -> RecordSplit:
    """`pipeline.build_split` from the index: no feature is read.

    Utterances are in index order (so the evaluation stream's segment i is
    the split's segment i); a split member without a record is skipped or
    raises like an unreadable file (`pipeline.usable_examples`).
    """
    usable, skipped = pipeline.usable_examples(
        name, examples, store, allow_skips=allow_skips
    )
    usable.sort(key=lambda e: store.position(e.utterance_id))
    positions = np.asarray([store.position(e.utterance_id) for e in usable], np.int64)
    num_frames = store.num_frames[positions] if usable else np.zeros(0, np.int64)
    for e, t in zip(usable, num_frames):
        if t == 0:
            raise CorpusError(f"{name} split: {e.path} yields zero feature frames")
    seg = data_cfg.segment
    if whole_utterances:  # One window of every frame (the random crop's input).
        longest = int(num_frames.max(initial=0))
        seg = _Segmentation(max(longest, seg.length), 1, 0, "first")
    starts, frames, index = [], [], []
    for u, t in enumerate(num_frames):
        s = window_starts(int(t), seg)
        starts.extend(s)
        frames.extend(min(int(t) - x, seg.length) for x in s)
        index.extend([u] * len(s))
    if not usable:
        raise CorpusError(f"{name} split has no usable utterances")
    counts = np.bincount(index, minlength=len(usable))
    held = store.file_index[positions]
    file_ids = sorted(set(held.tolist()))
    return RecordSplit(
        name=name,
        utterance_ids=[e.utterance_id for e in usable],
        utterance_labels=np.asarray(
            [corpus.label_index(e.label) for e in usable], np.int32
        ),
        utterance_gender=np.asarray(
            [pipeline.GENDER_CODE.get(e.gender, -1) for e in usable], np.int32
        ),
        frames=np.asarray(frames, np.int32),
        utterance_index=np.asarray(index, np.int32),
        skipped=skipped,
        store=store,
        starts=np.asarray(starts, np.int64),
        segment_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        segment_shape=(seg.length, *store.feature_shape),
        files=[store.files[f] for f in file_ids],
        utterance_file=np.searchsorted(file_ids, held).astype(np.int32),
    )


# -------------------------------------------------------------- tf.data
def _read(split: RecordSplit, files: list[str], *, interleave: bool):
    """(utterance index, features [T, F, C]) of the split's records in `files`:
    in file order, or read `CYCLE_LENGTH` files at once (deterministic)."""
    tf = pipeline.tf_cpu()
    if interleave and len(files) > 1:
        ds = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(CYCLE_LENGTH, len(files)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    else:
        ds = tf.data.TFRecordDataset(files)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(split.utterance_ids, tf.string),
            tf.range(split.num_utterances, dtype=tf.int64),
        ),
        default_value=-1,
    )
    parse = parse_fn(split.store.feature_shape)
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(lambda r: (table.lookup(r["utterance_id"]), r["features"]))
    return ds.filter(lambda u, _: u >= 0)


def _segments(split: RecordSplit, norm, files: list[str], *, interleave: bool):
    """Segment dicts {"inputs" [L, F, C] (normalised, padding exactly 0),
    "label", "utterance_id", "frames", "mask", "gender", "segment" (index
    into the split's segments)} of the split's utterances in `files`."""
    tf = pipeline.tf_cpu()
    length = split.segment_shape[0]
    offsets = tf.constant(split.segment_offsets, tf.int64)
    starts = tf.constant(split.starts, tf.int64)
    frames = tf.constant(split.frames, tf.int32)
    labels = tf.constant(split.utterance_labels, tf.int32)
    gender = tf.constant(split.utterance_gender, tf.int32)
    mean = std = None
    if norm is not None:
        mean, std = (
            tf.constant(norm.mean, tf.float32),
            tf.constant(norm.std, tf.float32),
        )

    def windows(u, x):
        if mean is not None:
            x = (x - mean) / std
        # L zero frames past the end: every window's padding is exactly 0.
        x = tf.concat([x, tf.zeros([length, *split.store.feature_shape])], 0)
        lo, hi = offsets[u], offsets[u + 1]
        t = starts[lo:hi][:, None] + tf.range(length, dtype=tf.int64)[None, :]
        seg = tf.range(lo, hi)
        n = hi - lo
        return {
            "inputs": tf.gather(x, t),
            "label": tf.fill([n], labels[u]),
            "utterance_id": tf.fill([n], tf.cast(u, tf.int32)),
            "frames": tf.gather(frames, seg),
            "mask": tf.ones([n], tf.float32),
            "gender": tf.fill([n], gender[u]),
            "segment": seg,
        }

    ds = _read(split, files, interleave=interleave)
    ds = ds.map(windows, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.unbatch()


def _numpy(ds, *, expected: int, name: str, with_segment: bool) -> Iterator[dict]:
    """NumPy batches; checks that `expected` real rows came."""
    seen = 0
    for batch in ds.as_numpy_iterator():
        seen += int(batch["mask"].sum())
        if not with_segment:
            batch.pop("segment")
        yield batch
    if seen != expected:
        raise CorpusError(
            f"{name} split: the records yielded {seen} segments, the index "
            f"promises {expected}: the records changed since their index was written"
        )


def eval_batches(
    split: RecordSplit,
    norm,
    *,
    global_batch: int,
    process_index: int = 0,
    process_count: int = 1,
    with_segment: bool = False,
):
    """`pipeline.eval_batches` streamed: every segment once, in split order,
    the last global batch padded (mask 0); this process's rows of each."""
    tf = pipeline.tf_cpu()
    n = split.num_segments
    steps = -(-n // global_batch)
    local = global_batch // process_count
    pad = steps * global_batch - n
    padding = tf.data.Dataset.from_tensors(
        {
            "inputs": tf.zeros(split.segment_shape, tf.float32),
            "label": tf.constant(0, tf.int32),
            "utterance_id": tf.constant(-1, tf.int32),
            "frames": tf.constant(0, tf.int32),
            "mask": tf.constant(0.0, tf.float32),
            "gender": tf.constant(-1, tf.int32),
            "segment": tf.constant(-1, tf.int64),
        }
    ).repeat(pad)
    ds = _segments(split, norm, split.files, interleave=False).concatenate(padding)
    ds = ds.enumerate().filter(
        lambda i, _: (i % global_batch) // local == process_index
    )
    ds = ds.map(lambda _, e: e).batch(local).prefetch(PREFETCH)
    mine = np.arange(n)
    mine = int(np.sum((mine % global_batch) // local == process_index))
    return _numpy(ds, expected=mine, name=split.name, with_segment=with_segment)


def pipeline_files(split: RecordSplit) -> list[list[str]]:
    """The shard files of each training pipeline: `files[p::read_shards]`."""
    shards = split.store.read_shards
    return [split.files[p::shards] for p in range(shards)]


def pipeline_segments(split: RecordSplit) -> list[int]:
    """Segments of the split each training pipeline reads."""
    shards = split.store.read_shards
    per_utterance = np.diff(split.segment_offsets)
    pipe = split.utterance_file % shards
    return [int(per_utterance[pipe == p].sum()) for p in range(shards)]


def steps_per_epoch(split: RecordSplit, global_batch: int) -> int:
    """Batches every pipeline can fill: min over pipelines of its segments //
    (global_batch / read_shards)."""
    shards = split.store.read_shards
    if len(split.files) < shards:
        raise ConfigError(
            f"data.read_shards={shards}: the {split.name} split lies in only "
            f"{len(split.files)} shard files of {split.store.data_dir}; lower "
            "data.read_shards or prepare the records in more shards"
        )
    if global_batch % shards:
        raise ConfigError(
            f"train.batch_size={global_batch} is not divisible by "
            f"data.read_shards={shards}"
        )
    return min(n // (global_batch // shards) for n in pipeline_segments(split))


def _stream_seeds(seed: int, epoch: int, p: int) -> tuple[np.ndarray, int, int]:
    """(file permutation rng, shuffle seed, crop key) of pipeline p's epoch."""
    rng = np.random.default_rng([seed, epoch, p])
    return rng, int(rng.integers(2**31)), int(rng.integers(2**31))


def _crop(length: int, key: int):
    """Element (position i, segment e) -> e cut to `length` frames at a start
    drawn from a stateless uniform of seed (key, i) (card C2)."""
    tf = pipeline.tf_cpu()

    def fn(i, e):
        frames = tf.cast(e["frames"], tf.int64)
        max_start = tf.maximum(frames - length, 0)
        u = tf.random.stateless_uniform(
            [], seed=tf.stack([tf.constant(key, tf.int64), i]), dtype=tf.float64
        )
        start = tf.minimum(
            tf.cast(tf.floor(u * tf.cast(max_start + 1, tf.float64)), tf.int64),
            max_start,
        )
        e = dict(e)
        # Frames past `frames` are zero, and start + length <= max(frames, L).
        e["inputs"] = tf.ensure_shape(
            e["inputs"][start : start + length], [length, *e["inputs"].shape[1:]]
        )
        e["frames"] = tf.cast(tf.minimum(frames - start, length), tf.int32)
        return e

    return fn


def train_batches(
    split: RecordSplit,
    norm,
    *,
    global_batch: int,
    seed: int,
    epoch: int,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    random_crop: int = 0,
    with_segment: bool = False,
):
    """`pipeline.train_batches` streamed (module docstring): this process's
    slice of each of the epoch's `steps_per_epoch` global batches, from
    `start_step` on."""
    tf = pipeline.tf_cpu()
    shards = split.store.read_shards
    if shards % process_count:
        raise ConfigError(
            f"data.read_shards={shards} is not a multiple of the {process_count} "
            "processes"
        )
    steps = steps_per_epoch(split, global_batch)
    if steps == 0:
        raise ValueError(
            f"{split.name} split: a reading pipeline has "
            f"{min(pipeline_segments(split))} segments, fewer than "
            f"train.batch_size / data.read_shards = {global_batch // shards}: "
            "lower the batch size or data.read_shards"
        )
    per = shards // process_count
    batches = []
    for p in range(process_index * per, (process_index + 1) * per):
        files = split.files[p::shards]
        rng, shuffle_seed, crop_key = _stream_seeds(seed, epoch, p)
        files = [files[i] for i in rng.permutation(len(files))]
        if epoch == 0 and start_step == 0:  # Which files each process reads.
            logging.info(
                "Records: %s split, pipeline %d of %d reads %s",
                split.name,
                p,
                shards,
                " ".join(sorted(os.path.basename(f) for f in files)),
            )
        ds = _segments(split, norm, files, interleave=True)
        ds = ds.shuffle(
            split.store.shuffle_buffer,
            seed=shuffle_seed,
            reshuffle_each_iteration=False,
        )
        if random_crop:
            ds = ds.enumerate().map(_crop(random_crop, crop_key))
        ds = ds.batch(global_batch // shards, drop_remainder=True)
        batches.append(ds.take(steps).skip(start_step))
    ds = batches[0]
    if len(batches) > 1:
        ds = tf.data.Dataset.zip(tuple(batches)).map(
            lambda *bs: {k: tf.concat([b[k] for b in bs], 0) for k in bs[0]}
        )
    expected = (steps - min(start_step, steps)) * (global_batch // process_count)
    return _numpy(
        ds.prefetch(PREFETCH),
        expected=expected,
        name=split.name,
        with_segment=with_segment,
    )


def training_stats(split: RecordSplit) -> stats.NormStats:
    """`pipeline.training_stats` in one streaming pass over the split's records."""
    running = stats.RunningStats(split.store.feature_shape)
    seen = 0
    for _, feats in _read(split, split.files, interleave=False).as_numpy_iterator():
        running.update(feats)
        seen += 1
    if seen != split.num_utterances:
        raise CorpusError(
            f"{split.name} split: {seen} records read for {split.num_utterances} "
            "utterances: the records changed since their index was written"
        )
    return running.result()
