"""Input pipeline: examples -> audio -> features -> segments -> tf.data batches.

Stages (STYLE 9: small named steps, each tested on its own):

1. `decode_example`: read + mix down + resample, VAD trim, band-pass,
   waveform normalisation (NumPy).
2. `FeatureStore.build`: JAX features for every example, batched on the
   accelerator, cached on disk keyed by a hash of the corpus and front-end config.
3. `build_split`: segmentation of one split's utterances (card C0 rules), with
   utterance ids kept for aggregation.
4. `train_batches` / `eval_batches`: tf.data over segment indices -> gather +
   (random crop) + normalise -> batch -> prefetch, yielding NumPy dicts
   {"inputs" [B, T, F, C] float32, "label" [B] int32, "utterance_id" [B] int32
   (index into `SplitData.utterance_ids`), "frames" [B] int32, "mask" [B]
   float32, "gender" [B] int32 (1 = male, 0 = female, -1 = unknown)}.

With `data.source='records'` the splits come from `jaxpara.data.stream`
(`RecordSplit`: no features in memory); `train_batches`, `eval_batches`,
`training_stats` and `steps_per_epoch` dispatch to it and yield the same dicts.

TensorFlow only ever runs on the CPU here; it never sees an accelerator.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import time

import numpy as np

from jaxpara.audio import features as features_lib
from jaxpara.audio import filters, io, segment, stats, vad
from jaxpara.data.types import Corpus, CorpusError, Example

GENDER_CODE = {"m": 1, "f": 0, "": -1}


def tf_cpu():
    """Imports TensorFlow with every accelerator hidden from it."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
        tf.config.set_visible_devices([], "TPU")
    except (RuntimeError, ValueError):  # Already initialised / no such type.
        pass
    return tf


# ---------------------------------------------------------------- 1. decode
def decode_example(example: Example, data_cfg) -> tuple[np.ndarray, bool]:
    """Reads one example's audio and applies the signal-level front-end.

    Args:
      example: the utterance / cycle to read.
      data_cfg: `config.data`.

    Returns:
      (signal [num_samples] float32 at `data_cfg.sample_rate`, speech_found):
      `speech_check(data_cfg)` decides speech_found, on the decoded signal
      before band-pass and waveform normalisation. An example with
      `speed != 1` is speed-perturbed (`io.speed_perturb`) right after reading,
      before every other stage.

    Raises:
      io.AudioError: naming the file, for unreadable or invalid audio.
    """
    rate = data_cfg.sample_rate
    signal = io.load_audio(example.path, rate, start=example.start, end=example.end)
    if example.speed != 1.0:
        signal = io.speed_perturb(signal, rate, example.speed)
    if data_cfg.vad.enabled:
        signal, speech_found = vad.vad_trim(
            signal,
            rate,
            aggressiveness=data_cfg.vad.aggressiveness,
            frame_ms=data_cfg.vad.frame_ms,
        )
    else:
        speech_found = vad.above_energy_floor(signal, rate)
    if data_cfg.bandpass.enabled:
        signal = filters.bandpass(
            signal,
            rate,
            low_hz=data_cfg.bandpass.low_hz,
            high_hz=data_cfg.bandpass.high_hz,
            order=data_cfg.bandpass.order,
        )
    # Last: the statistics are those of the (trimmed, filtered) speech.
    signal = io.normalise_waveform(signal, data_cfg.waveform_norm)
    return np.asarray(signal, np.float32), speech_found


def speed_copies(examples: list[Example], factors) -> list[Example]:
    """The speed-perturbed training copies of `examples` (`augment.speed_factors`):
    one per example and factor, in factor-major order, id
    `<utterance id>@speed<factor>` (the decoder reads `Example.speed`)."""
    return [
        dataclasses.replace(e, utterance_id=f"{e.utterance_id}@speed{f:g}", speed=f)
        for f in factors
        for e in examples
    ]


def speech_check(data_cfg) -> str:
    """How `decode_example` decides that a file holds no speech: webrtcvad
    when the front-end trims with it, else `vad.above_energy_floor`."""
    if data_cfg.vad.enabled:
        return f"webrtcvad mode {data_cfg.vad.aggressiveness}"
    return f"energy floor {vad.ENERGY_FLOOR_DBFS:g} dBFS"


def frontend_fingerprint(data_cfg) -> str:
    """Hash of every setting that changes the extracted features."""
    spec = features_lib.FeatureSpec.from_config(data_cfg.features, data_cfg.sample_rate)
    keys = {
        "sample_rate": data_cfg.sample_rate,
        "vad": data_cfg.vad.to_dict() if data_cfg.vad.enabled else None,
        "bandpass": data_cfg.bandpass.to_dict() if data_cfg.bandpass.enabled else None,
        "features": spec.fingerprint(),
    }
    if data_cfg.waveform_norm != "none":  # Absent: earlier caches stay valid.
        keys["waveform_norm"] = data_cfg.waveform_norm
    return hashlib.sha1(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:12]


def _examples_fingerprint(examples: list[Example]) -> str:
    h = hashlib.sha1()
    for e in examples:
        try:
            st = os.stat(e.path)
            file_key = (st.st_size, int(st.st_mtime))
        except OSError:
            file_key = None
        key = (e.utterance_id, e.path, e.start, e.end, file_key)
        # Speed appended only when perturbed: earlier caches stay valid.
        h.update(repr(key if e.speed == 1.0 else (*key, e.speed)).encode())
    return h.hexdigest()[:12]


# ------------------------------------------------------------ 2. features
@dataclasses.dataclass
class FeatureStore:
    """Per-example features of a corpus: frames concatenated, with offsets.

    Attributes:
      ids: utterance ids, in corpus order, of examples that decoded.
      offsets: [len(ids) + 1] frame offsets into `frames`.
      frames: [total_frames, F, C] float32 features (not normalised).
      failed: {utterance id: error message} for examples that could not be read.
      no_speech: utterance ids with no speech found (kept whole, C0).
      speech_check: what decided `no_speech` (`speech_check`).
    """

    ids: list[str]
    offsets: np.ndarray
    frames: np.ndarray
    failed: dict[str, str]
    no_speech: list[str]
    speech_check: str = ""

    def __post_init__(self):
        self._index = {u: i for i, u in enumerate(self.ids)}

    def __contains__(self, utterance_id: str) -> bool:
        return utterance_id in self._index

    def why_missing(self, utterance_id: str) -> str:
        """Why an utterance has no features (`usable_examples`)."""
        return self.failed.get(utterance_id, "no features computed")

    def span(self, utterance_id: str) -> slice:
        """The rows of `frames` that hold one utterance."""
        i = self._index[utterance_id]
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def get(self, utterance_id: str) -> np.ndarray:
        """Features [T, F, C] of one utterance."""
        return self.frames[self.span(utterance_id)]

    def save(self, path: str) -> None:
        tmp = f"{path}.{os.getpid()}.tmp.npz"  # Processes may share the cache.
        np.savez(
            tmp,
            offsets=self.offsets,
            frames=self.frames,
            meta=np.frombuffer(
                json.dumps(
                    {
                        "ids": self.ids,
                        "failed": self.failed,
                        "no_speech": self.no_speech,
                        "speech_check": self.speech_check,
                    }
                ).encode(),
                np.uint8,
            ),
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> FeatureStore:
        with np.load(path) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            return cls(
                ids=meta["ids"],
                offsets=z["offsets"],
                frames=z["frames"],
                failed=meta["failed"],
                no_speech=meta["no_speech"],
                speech_check=meta.get("speech_check", ""),  # Older caches: none.
            )

    @classmethod
    def build(
        cls,
        examples: list[Example],
        data_cfg,
        *,
        cache_dir: str | None = None,
        num_threads: int = 0,
    ) -> FeatureStore:
        """Decodes and featurises `examples`, reusing a cache when it matches.

        Unreadable examples are recorded in `failed` (never dropped silently);
        whether that is an error is decided per split by `build_split`.
        """
        cache_path = None
        if cache_dir:
            key = f"{frontend_fingerprint(data_cfg)}_{_examples_fingerprint(examples)}"
            cache_path = os.path.join(cache_dir, f"features_{key}.npz")
            if os.path.exists(cache_path):
                cached = cls.load(cache_path)
                # A cache from before the check records none: right for VAD
                # (the same decision), stale for the energy floor.
                valid = {speech_check(data_cfg), "" if data_cfg.vad.enabled else None}
                if cached.speech_check in valid:
                    cached.speech_check = speech_check(data_cfg)
                    logging.info("Features: cache hit %s", cache_path)
                    return cached
                logging.info(
                    "Features: %s records speech check %r, not %r: recomputing",
                    cache_path,
                    cached.speech_check,
                    speech_check(data_cfg),
                )
        spec = features_lib.FeatureSpec.from_config(
            data_cfg.features, data_cfg.sample_rate
        )
        extractor = features_lib.FeatureExtractor(spec)
        t0 = time.time()
        failed: dict[str, str] = {}
        no_speech: list[str] = []
        signals: dict[str, np.ndarray] = {}
        threads = num_threads or min(8, (os.cpu_count() or 1) * 2)

        def work(e):
            try:
                return e, decode_example(e, data_cfg), None
            except (io.AudioError, OSError, ValueError) as err:
                return e, None, f"{type(err).__name__}: {err}"

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            for e, out, err in pool.map(work, examples):
                if err is not None:
                    failed[e.utterance_id] = err
                    continue
                signal, speech = out
                signals[e.utterance_id] = signal
                if not speech:
                    no_speech.append(e.utterance_id)
        ids = [e.utterance_id for e in examples if e.utterance_id in signals]
        feats = extractor([signals[u] for u in ids]) if ids else []
        lengths = [f.shape[0] for f in feats]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        frames = (
            np.concatenate(feats, axis=0)
            if feats
            else np.zeros((0, spec.num_bins, spec.num_channels), np.float32)
        )
        store = cls(ids, offsets, frames, failed, no_speech, speech_check(data_cfg))
        logging.info(
            "Features: %d examples -> %d frames of %s in %.1fs (%d unreadable, "
            "%d with no speech found by %s)",
            len(ids),
            frames.shape[0],
            frames.shape[1:],
            time.time() - t0,
            len(failed),
            len(no_speech),
            store.speech_check,
        )
        if cache_path:
            os.makedirs(cache_dir, exist_ok=True)
            store.save(cache_path)
        return store


def speaker_normalise(
    store: FeatureStore, examples: list[Example], *, one_speaker: bool = False
) -> FeatureStore:
    """Speaker-level feature normalisation (`data.speaker_norm`): each
    speaker's frames z-normalised per (bin, channel) with that speaker's own
    mean and ddof-0 std over the real frames of all their original (speed 1)
    utterances in `examples`; speed copies take their speaker's statistics.

    It uses no label, only a speaker's audio: the statistics of a speaker held
    out for testing come from their own test utterances (the transductive
    speaker normalisation of speaker-independent emotion recognition).
    `data.normalise`'s training statistics are computed after it, as usual.

    Args:
      store: the features (not modified).
      examples: the examples of `store` (grouped by `Example.speaker`); ids not
        in `store` (unreadable files) are ignored.
      one_speaker: all examples are one speaker (prediction on new files).

    Returns:
      A `FeatureStore` with the same ids and offsets, frames normalised.

    Raises:
      CorpusError: an example without a speaker (when not `one_speaker`), or a
        speaker with no original utterance.
    """
    members: dict[str, list[Example]] = {}
    for e in examples:
        if e.utterance_id not in store:
            continue
        if not (e.speaker or one_speaker):
            raise CorpusError(
                f"data.speaker_norm: {e.path} ({e.utterance_id}) has no speaker; "
                "this corpus cannot be normalised per speaker"
            )
        members.setdefault("" if one_speaker else e.speaker, []).append(e)
    frames = store.frames.copy()
    for speaker, group in members.items():
        running = stats.RunningStats(store.frames.shape[1:])
        for e in group:
            if e.speed == 1.0:
                running.update(store.get(e.utterance_id))
        if running.count == 0:
            raise CorpusError(
                f"data.speaker_norm: speaker {speaker!r} has no original utterance "
                "with features"
            )
        norm = running.result()
        for e in group:
            rows = store.span(e.utterance_id)
            frames[rows] = norm.apply(store.frames[rows])
    return dataclasses.replace(store, frames=frames)


# ------------------------------------------------------------ 3. segments
@dataclasses.dataclass
class SplitData:
    """Segments of one split with the bookkeeping to aggregate them back.

    Attributes:
      name: split name.
      utterance_ids: [U] ids of the split's utterances that have features.
      utterance_labels: [U] int32 class indices.
      utterance_gender: [U] int32 (1 = male, 0 = female, -1 = unknown).
      segments: [S, L, F, C] float32, not normalised.
      frames: [S] int32 real frames per segment.
      utterance_index: [S] int32 index into `utterance_ids`.
      skipped: (utterance id, reason) of split members without features.
    """

    name: str
    utterance_ids: list[str]
    utterance_labels: np.ndarray
    utterance_gender: np.ndarray
    segments: np.ndarray
    frames: np.ndarray
    utterance_index: np.ndarray
    skipped: list[tuple[str, str]]

    @property
    def num_segments(self) -> int:
        return int(self.segments.shape[0])

    @property
    def num_utterances(self) -> int:
        return len(self.utterance_ids)

    @property
    def segment_shape(self) -> tuple[int, ...]:
        """(L, F, C) of one segment."""
        return tuple(self.segments.shape[1:])


def usable_examples(
    name: str, examples: list[Example], store, *, allow_skips: bool
) -> tuple[list[Example], list[tuple[str, str]]]:
    """The split members `store` has features of, and the skipped others.

    Args:
      name: split name (for messages).
      examples: the split's examples.
      store: a `FeatureStore` or `stream.RecordStore` (`in`, `why_missing`).
      allow_skips: whether members without features may be skipped (counted
        and logged); otherwise the first one raises, naming the file.

    Returns:
      (usable examples in the given order, [(utterance id, reason)] skipped).

    Raises:
      CorpusError: a member without features when skips are not allowed.
    """
    usable, skipped = [], []
    for e in examples:
        if e.utterance_id in store:
            usable.append(e)
            continue
        reason = store.why_missing(e.utterance_id)
        if not allow_skips:
            raise CorpusError(
                f"{name} split: cannot use {e.path} ({e.utterance_id}): {reason}. "
                "Evaluation splits are never shrunk silently; fix or remove the "
                "file (training splits may skip with data.on_error='skip')."
            )
        skipped.append((e.utterance_id, reason))
    if skipped:
        logging.warning(
            "%s split: skipped %d unreadable utterances (data.on_error='skip'): %s",
            name,
            len(skipped),
            ", ".join(u for u, _ in skipped[:10])
            + (" ..." if len(skipped) > 10 else ""),
        )
    return usable, skipped


def build_split(
    name: str,
    examples: list[Example],
    corpus: Corpus,
    store: FeatureStore,
    data_cfg,
    *,
    allow_skips: bool,
    whole_utterances: bool = False,
) -> SplitData:
    """Segments a split's utterances.

    Args:
      name: split name (for messages).
      examples: the split's examples.
      corpus: gives the label order.
      store: features of (at least) these examples.
      data_cfg: `config.data` (segment settings).
      allow_skips: whether unreadable members may be skipped (counted and
        reported); otherwise the first one raises, naming the file.
      whole_utterances: one segment per utterance holding all its frames,
        zero-padded to the split's longest utterance (at least
        `segment.length`); the input of `train_batches(random_crop=...)`.

    Raises:
      CorpusError: an unreadable file when skips are not allowed, or an empty split.
    """
    seg_cfg = data_cfg.segment
    length, hop = seg_cfg.length, seg_cfg.hop
    min_frames, mode = seg_cfg.min_frames, seg_cfg.mode
    if whole_utterances:
        present = [e.utterance_id for e in examples if e.utterance_id in store]
        longest = max((store.get(u).shape[0] for u in present), default=0)
        length = hop = max(longest, seg_cfg.length)
        min_frames, mode = 0, "first"
    usable, skipped = usable_examples(name, examples, store, allow_skips=allow_skips)
    ids, labels, genders, segs, frames, index = [], [], [], [], [], []
    for e in usable:
        feats = store.get(e.utterance_id)
        if feats.shape[0] == 0:
            raise CorpusError(f"{name} split: {e.path} yields zero feature frames")
        s, v = segment.segment(feats, length, hop, min_frames, mode=mode)
        index.extend([len(ids)] * len(s))
        ids.append(e.utterance_id)
        labels.append(corpus.label_index(e.label))
        genders.append(GENDER_CODE.get(e.gender, -1))
        segs.append(s)
        frames.append(v)
    if not ids:
        raise CorpusError(f"{name} split has no usable utterances")
    return SplitData(
        name=name,
        utterance_ids=ids,
        utterance_labels=np.asarray(labels, np.int32),
        utterance_gender=np.asarray(genders, np.int32),
        segments=np.concatenate(segs, axis=0),
        frames=np.concatenate(frames, axis=0).astype(np.int32),
        utterance_index=np.asarray(index, np.int32),
        skipped=skipped,
    )


def training_stats(split: SplitData, store: FeatureStore) -> stats.NormStats:
    """Per (bin, channel) mean/std over the real frames of the training utterances.

    A split streamed from records (`stream.RecordSplit`) computes them in one
    pass over its records.
    """
    if not isinstance(split, SplitData):
        return split.training_stats()
    running = stats.RunningStats(store.frames.shape[1:])
    for u in split.utterance_ids:
        running.update(store.get(u))
    return running.result()


# ---------------------------------------------------------------- 4. tf.data
def _gather(
    split: SplitData,
    norm: stats.NormStats | None,
    idx: np.ndarray,
    *,
    crop_rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Assembles a batch for segment indices `idx` (-1 = padding)."""
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    inputs = split.segments[safe]
    frames = split.frames[safe]
    if norm is not None:
        inputs = norm.apply(inputs)
        # Padding frames stay exactly zero after normalisation.
        t = np.arange(inputs.shape[1])[None, :]
        inputs = np.where((t < frames[:, None])[..., None, None], inputs, 0.0)
    inputs = np.where(valid[:, None, None, None], inputs, 0.0).astype(np.float32)
    uidx = split.utterance_index[safe]
    return {
        "inputs": inputs,
        "label": np.where(valid, split.utterance_labels[uidx], 0).astype(np.int32),
        "utterance_id": np.where(valid, uidx, -1).astype(np.int32),
        "frames": np.where(valid, frames, 0).astype(np.int32),
        "mask": valid.astype(np.float32),
        "gender": np.where(valid, split.utterance_gender[uidx], -1).astype(np.int32),
    }


def _to_tf_dataset(index_batches: np.ndarray, fn, prefetch: int = 2):
    """tf.data: index batches -> (NumPy gather in a py_function) -> prefetch."""
    tf = tf_cpu()
    keys = ("inputs", "label", "utterance_id", "frames", "mask", "gender")
    dtypes = (tf.float32, tf.int32, tf.int32, tf.int32, tf.float32, tf.int32)

    def py_fn(i, idx):
        out = fn(int(i), idx.numpy())
        return [out[k] for k in keys]

    ds = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(index_batches), dtype=np.int64), index_batches)
    )
    ds = ds.map(
        lambda i, idx: tf.py_function(py_fn, [i, idx], dtypes),
        # Batches stay in order (deterministic=True) and each is a pure function
        # of its index, so parallel calls change nothing but the speed.
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    ds = ds.map(lambda *xs: dict(zip(keys, xs)))
    return ds.prefetch(prefetch)


def epoch_permutation(num_segments: int, seed: int, epoch: int) -> np.ndarray:
    """The deterministic segment order of one training epoch."""
    return np.random.default_rng([seed, epoch]).permutation(num_segments)


def steps_per_epoch(split: SplitData, global_batch: int) -> int:
    """Training batches of one epoch (a `stream.RecordSplit`: its own count)."""
    if not isinstance(split, SplitData):
        return split.steps_per_epoch(global_batch)
    return split.num_segments // global_batch


def train_batches(
    split: SplitData,
    norm: stats.NormStats | None,
    *,
    global_batch: int,
    seed: int,
    epoch: int,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    random_crop: int = 0,
):
    """One epoch of training batches (remainder dropped), as NumPy dicts.

    The order depends only on (seed, epoch), so a resumed run sees exactly the
    batches an uninterrupted run would (`start_step` skips the first ones).
    Each process yields its `global_batch // process_count` slice of every
    global batch.

    A split streamed from records (`stream.RecordSplit`) streams its own
    batches (`stream.train_batches`, the same dicts).

    Args:
      random_crop: if > 0, each example is a window of this many frames cut at a
        random start (card C2 training crop); segments must be at least as long.
    """
    if not isinstance(split, SplitData):
        return split.train_batches(
            norm,
            global_batch=global_batch,
            seed=seed,
            epoch=epoch,
            start_step=start_step,
            process_index=process_index,
            process_count=process_count,
            random_crop=random_crop,
        )
    if global_batch % process_count:
        raise ValueError(
            f"train.batch_size={global_batch} is not divisible by the "
            f"{process_count} processes"
        )
    steps = steps_per_epoch(split, global_batch)
    if steps == 0:
        raise ValueError(
            f"{split.name} split has {split.num_segments} segments, fewer than "
            f"train.batch_size={global_batch}: lower the batch size"
        )
    perm = epoch_permutation(split.num_segments, seed, epoch)[: steps * global_batch]
    batches = perm.reshape(steps, process_count, -1)[start_step:, process_index]

    def fn(i, idx):
        if not random_crop:
            return _gather(split, norm, idx)
        rng = np.random.default_rng([seed, epoch, start_step + i, process_index])
        return _crop_batch(_gather(split, norm, idx), random_crop, rng)

    return _to_tf_dataset(batches, fn).as_numpy_iterator()


def _crop_batch(batch, length: int, rng: np.random.Generator):
    """Cuts a `length`-frame window at a random start from each example."""
    frames = batch["frames"]
    max_start = np.maximum(frames - length, 0)
    starts = (rng.random(len(frames)) * (max_start + 1)).astype(np.int64)
    t = starts[:, None] + np.arange(length)[None, :]
    t = np.minimum(t, batch["inputs"].shape[1] - 1)
    inputs = np.take_along_axis(batch["inputs"], t[:, :, None, None], axis=1)
    new_frames = np.minimum(frames - starts, length).astype(np.int32)
    keep = np.arange(length)[None, :] < new_frames[:, None]
    batch = dict(batch)
    batch["inputs"] = np.where(keep[..., None, None], inputs, 0.0).astype(np.float32)
    batch["frames"] = new_frames
    return batch


def eval_batches(
    split: SplitData,
    norm: stats.NormStats | None,
    *,
    global_batch: int,
    process_index: int = 0,
    process_count: int = 1,
):
    """Every segment exactly once, in order, the last batch padded and masked
    (a `stream.RecordSplit` streams them from its records)."""
    if not isinstance(split, SplitData):
        return split.eval_batches(
            norm,
            global_batch=global_batch,
            process_index=process_index,
            process_count=process_count,
        )
    n = split.num_segments
    steps = -(-n // global_batch)
    idx = np.full(steps * global_batch, -1, np.int64)
    idx[:n] = np.arange(n)
    batches = idx.reshape(steps, process_count, -1)[:, process_index]
    return _to_tf_dataset(
        batches, lambda i, b: _gather(split, norm, b)
    ).as_numpy_iterator()
