"""Streaming from TFDS records (jaxpara.data.stream, data.source='records') against
the in-memory path, on the tiny synthetic IEMOCAP of tests/test_train.py (44
utterances) prepared once in 5 shard files (module fixtures)."""

import csv
import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxpara import protocol, rundir
from jaxpara.audio import segment
from jaxpara.data import corpora, pipeline, records, stream
from jaxpara.data.types import CorpusError
from jaxpara.errors import ConfigError
from tests.test_train import tiny_config

NUM_SHARDS = 5  # TFDS writes tiny data in one file unless told otherwise.
BATCH = 8


def prepare_sharded(data_cfg, data_dir: str, num_shards: int = NUM_SHARDS):
    """`records.prepare` with the records written in `num_shards` files."""
    b = records.builder(data_cfg, data_dir, chunk_size=16)
    b.download_and_prepare(
        download_dir=os.path.join(data_dir, "downloads"),
        download_config=tfds.download.DownloadConfig(
            manual_dir=data_cfg.root, num_shards=num_shards
        ),
    )
    return records.prepare(data_cfg, data_dir)  # Idempotent: the index.


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory):
    return corpora.generate_synthetic(
        "iemocap",
        str(tmp_path_factory.mktemp("corpus")),
        tiny_config("").data.synthetic,
        seed=0,
    )


@pytest.fixture(scope="module")
def records_dir(corpus_root, tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("records"))
    prepare_sharded(tiny_config(corpus_root).data, data_dir)
    return data_dir


def records_config(corpus_root, records_dir):
    cfg = tiny_config(corpus_root)
    cfg.data.source = "records"
    cfg.data.records_dir = records_dir
    return cfg


@pytest.fixture(scope="module")
def both(corpus_root, records_dir, tmp_path_factory):
    """{"memory" | "records": (data, train split, norm, store)} of the fold."""
    workdir = str(tmp_path_factory.mktemp("run"))
    out = {}
    for source, cfg in (
        ("memory", tiny_config(corpus_root)),
        ("records", records_config(corpus_root, records_dir)),
    ):
        setup = protocol.Protocol.from_config(cfg, workdir)
        data, train, _ = setup.fold_data(setup.folds[0])
        norm = pipeline.training_stats(train, setup.store)
        out[source] = (data, train, norm, setup.store)
    return out


def _with_shards(split, shards: int):
    return dataclasses.replace(
        split, store=dataclasses.replace(split.store, read_shards=shards)
    )


def _segment_keys(split) -> list[tuple[str, int]]:
    """(utterance id, k-th segment of it) of every segment of a split."""
    keys, seen = [], {}
    for u in split.utterance_index:
        uid = split.utterance_ids[u]
        keys.append((uid, seen.get(uid, 0)))
        seen[uid] = seen.get(uid, 0) + 1
    return keys


def _memory_segments(split, norm) -> dict[tuple[str, int], dict]:
    """Every segment of an in-memory split, normalised, by `_segment_keys`."""
    (batch,) = pipeline.eval_batches(split, norm, global_batch=split.num_segments)
    return {
        key: {k: v[i] for k, v in batch.items()}
        for i, key in enumerate(_segment_keys(split))
    }


def test_window_starts_follow_segment_rules():
    for mode in segment.MODES:
        seg = dataclasses.make_dataclass("S", ["length", "hop", "min_frames", "mode"])(
            7, 3, 2, mode
        )
        for t in range(1, 30):
            x = np.arange(t, dtype=np.float32)[:, None] + 1
            windows, valid = segment.segment(x, 7, 3, 2, mode=mode)
            starts = stream.window_starts(t, seg)
            assert [int(w[0, 0]) - 1 for w in windows] == starts
            assert valid.tolist() == [min(t - s, 7) for s in starts]


def test_store_and_splits_come_from_the_index(both):
    store = both["records"][3]
    assert isinstance(store, stream.RecordStore)
    assert len(store.files) == NUM_SHARDS and len(store.ids) == 44
    mem, rec = both["memory"][0], both["records"][0]
    assert mem.keys() == rec.keys() == {"train", "validation", "test"}
    for name, split in rec.items():
        assert not hasattr(split, "segments")  # No features in memory.
        assert sorted(split.utterance_ids) == sorted(mem[name].utterance_ids)
        assert split.num_segments == mem[name].num_segments
        assert split.segment_shape == mem[name].segment_shape
        assert set(split.files) <= set(store.files)
    # A shard file holding none of a split's utterances is not one of its files.
    held = {
        store.files[store.file_index[store.position(u)]]
        for u in rec["test"].utterance_ids
    }
    assert set(rec["test"].files) == held


def test_eval_stream_equals_memory_path(both):
    (mem, _, norm, _), (rec, _, rnorm, _) = both["memory"], both["records"]
    for name, split in rec.items():
        want = _memory_segments(mem[name], norm)
        got = list(pipeline.eval_batches(split, rnorm, global_batch=16))
        assert all(b["inputs"].shape[0] == 16 for b in got)
        batch = {k: np.concatenate([b[k] for b in got]) for k in got[0]}
        n = split.num_segments
        assert batch["mask"][:n].all() and not batch["mask"][n:].any()
        assert (batch["inputs"][n:] == 0).all()
        keys = _segment_keys(split)
        assert sorted(keys) == sorted(want)
        for i, key in enumerate(keys):
            w = want[key]
            u = batch["utterance_id"][i]
            assert split.utterance_ids[u] == key[0]
            assert batch["frames"][i] == w["frames"] == split.frames[i]
            assert batch["label"][i] == w["label"]
            assert batch["gender"][i] == w["gender"]
            np.testing.assert_allclose(batch["inputs"][i], w["inputs"], atol=1e-6)
            assert (batch["inputs"][i, w["frames"] :] == 0).all()
        # Two processes: each its half of every global batch.
        halves = [
            list(
                pipeline.eval_batches(
                    split, rnorm, global_batch=16, process_index=p, process_count=2
                )
            )
            for p in range(2)
        ]
        for b, h0, h1 in zip(got, *halves, strict=True):
            for k in b:
                np.testing.assert_array_equal(b[k], np.concatenate([h0[k], h1[k]]))


def test_training_stats_equal_memory(both):
    norm, rnorm = both["memory"][2], both["records"][2]
    assert norm.count == rnorm.count
    np.testing.assert_allclose(rnorm.mean, norm.mean, atol=1e-6)
    np.testing.assert_allclose(rnorm.std, norm.std, atol=1e-6)


@pytest.mark.parametrize("shards", [1, 2])
def test_training_epoch_covers_segments_at_most_once(both, shards):
    (_, mtrain, norm, _), (_, train, rnorm, _) = both["memory"], both["records"]
    train = _with_shards(train, shards)
    want = _memory_segments(mtrain, norm)
    keys = _segment_keys(train)
    steps = pipeline.steps_per_epoch(train, BATCH)
    counts = stream.pipeline_segments(train)
    assert steps == min(c // (BATCH // shards) for c in counts) > 0
    batches = list(
        stream.train_batches(
            train, rnorm, global_batch=BATCH, seed=3, epoch=1, with_segment=True
        )
    )
    assert len(batches) == steps
    seen = np.concatenate([b["segment"] for b in batches])
    assert len(seen) == len(set(seen.tolist())) == steps * BATCH
    for b in batches:
        assert b["inputs"].shape == (BATCH, *train.segment_shape)
        assert b["mask"].all()
        for i, s in enumerate(b["segment"]):
            w = want[keys[s]]
            assert b["frames"][i] == w["frames"] and b["label"][i] == w["label"]
            np.testing.assert_allclose(b["inputs"][i], w["inputs"], atol=1e-6)


def _epoch(train, norm, **kwargs):
    kwargs = {"global_batch": BATCH, "seed": 0, "epoch": 0, **kwargs}
    return list(stream.train_batches(train, norm, with_segment=True, **kwargs))


def test_order_is_a_function_of_seed_and_epoch_and_resumes(both):
    _, train, norm, _ = both["records"]
    full = _epoch(train, norm)
    again = _epoch(train, norm)
    for a, b in zip(full, again, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    tail = _epoch(train, norm, start_step=5)
    assert len(tail) == len(full) - 5
    for a, b in zip(full[5:], tail, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    other = _epoch(train, norm, epoch=1)
    assert not all(
        np.array_equal(a["segment"], b["segment"]) for a, b in zip(full, other)
    )


def test_read_shards_split_files_and_processes_share_global_batches(both):
    _, train, norm, _ = both["records"]
    train = _with_shards(train, 2)
    files = stream.pipeline_files(train)
    assert not set(files[0]) & set(files[1])
    assert sorted(files[0] + files[1]) == sorted(train.files)
    one = _epoch(train, norm)  # One process running both pipelines.
    two = [_epoch(train, norm, process_index=p, process_count=2) for p in range(2)]
    for b, h0, h1 in zip(one, *two, strict=True):
        for k in b:
            np.testing.assert_array_equal(b[k], np.concatenate([h0[k], h1[k]]))
    # Pipeline p's segments come from its own files.
    file_of = train.utterance_file
    for h0, h1 in zip(*two):
        for p, h in enumerate((h0, h1)):
            utts = train.utterance_index[h["segment"]]
            assert {train.files[f] for f in file_of[utts]} <= set(files[p])


def test_random_crop_windows(both, corpus_root, records_dir):
    cfg = records_config(corpus_root, records_dir)
    cfg.data.segment.random_crop = True
    setup = protocol.Protocol.from_config(cfg, "")
    _, train, crop = setup.fold_data(setup.folds[0])
    assert crop == 60 and train.num_segments == train.num_utterances
    norm = both["records"][2]
    batches = _epoch(train, norm, random_crop=crop)
    again = _epoch(train, norm, random_crop=crop)
    for b, a in zip(batches, again, strict=True):
        np.testing.assert_array_equal(a["inputs"], b["inputs"])
        assert b["inputs"].shape == (BATCH, crop, *train.segment_shape[1:])
        whole = train.frames[b["segment"]]
        assert (b["frames"] == np.minimum(whole, crop)).all()
        for i, f in enumerate(b["frames"]):
            assert (b["inputs"][i, f:] == 0).all() and (b["inputs"][i, :f] != 0).any()


def test_utterance_missing_from_records_is_like_an_unreadable_file(both, corpus_root):
    data, train, _, store = both["records"]
    gone = {train.utterance_ids[0], data["test"].utterance_ids[0]}
    keep = [i for i, u in enumerate(store.ids) if u not in gone]
    fewer = dataclasses.replace(
        store,
        ids=[store.ids[i] for i in keep],
        num_frames=store.num_frames[keep],
        file_index=store.file_index[keep],
    )
    from jaxpara.data import splits

    cfg = tiny_config(corpus_root)
    corpus, _ = corpora.load_corpus(cfg.data, "")
    (fold,) = splits.build_folds(corpus, cfg.protocol, seed=cfg.seed)
    with pytest.raises(CorpusError, match="not in the records"):
        protocol.fold_data(cfg, corpus, fold, fewer)
    cfg.data.on_error = "skip"
    with pytest.raises(CorpusError, match="test split: cannot use"):
        protocol.fold_data(cfg, corpus, fold, fewer)
    fold = dataclasses.replace(
        fold, test=[e for e in fold.test if e.utterance_id not in gone]
    )
    data, _, _ = protocol.fold_data(cfg, corpus, fold, fewer)
    assert [u for u, _ in data["train"].skipped] == [train.utterance_ids[0]]
    assert data["train"].num_utterances == train.num_utterances - 1


def test_config_keys_are_checked():
    for key, value, match in (
        ("source", "disk", "data.source"),
        ("shuffle_buffer", 0, "data.shuffle_buffer"),
        ("read_shards", -1, "data.read_shards"),
    ):
        cfg = tiny_config("")
        setattr(cfg.data, key, value)
        with pytest.raises(ConfigError, match=match):
            protocol.check_config(cfg)
    cfg = tiny_config("")
    cfg.data.source, cfg.data.read_shards = "records", 3  # batch 8 % 3.
    with pytest.raises(ConfigError, match="data.read_shards=3"):
        protocol.check_config(cfg)


def test_train_and_evaluate_from_records(corpus_root, records_dir, tmp_path):
    from jaxpara import train
    from jaxpara.data import splits

    cfg = records_config(corpus_root, records_dir)
    cfg.data.read_shards = 2
    cfg.train.num_epochs = 1
    results = train.train_and_evaluate(cfg, str(tmp_path))
    corpus = corpora.read_corpus("iemocap", corpus_root)
    (fold,) = splits.build_folds(corpus, cfg.protocol)
    rows = list(csv.DictReader(open(tmp_path / "predictions.csv")))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    for name, examples in fold.items():
        rep = on_disk["splits"][name]
        assert rep["n_utterances"] == len(examples)
        assert np.asarray(rep["confusion_matrix"]).sum() == len(examples)
        ids = [r["utterance_id"] for r in rows if r["split"] == name]
        assert sorted(ids) == sorted(e.utterance_id for e in examples)
    assert 0.0 <= results["splits"]["test"]["baseline_uar"] <= 1.0
    fold_result = json.loads((tmp_path / "fold_result.json").read_text())
    assert len(fold_result["train_log"]) > 0
    assert not os.path.exists(tmp_path / rundir.RECORDS)  # records_dir used.


class _Crash(Exception):
    pass


def test_crash_and_resume_from_records_gives_identical_results(
    corpus_root, tmp_path, monkeypatch
):
    """data.records_dir='' prepares <workdir>/records on the first run; a run
    that dies right after its step-3 checkpoint resumes to the results of an
    uninterrupted one (the stream skips the steps done). In-process: a real
    SIGKILL of a run is tests/test_train.py's; what records add is the
    stream's resume."""
    from jaxpara import checkpointing, train

    cfg = records_config(corpus_root, "")
    cfg.train.checkpoint_every_steps = 1
    cfg.train.num_epochs = 1
    cfg.eval.baseline = False
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    train.train_and_evaluate(cfg, str(ref))
    assert os.path.exists(ref / rundir.RECORDS / "jaxpara_iemocap")

    save = checkpointing.Checkpointer.save

    def save_then_die(self, step, state, meta):
        written = save(self, step, state, meta)
        if step == 3:
            raise _Crash
        return written

    monkeypatch.setattr(checkpointing.Checkpointer, "save", save_then_die)
    with pytest.raises(_Crash):
        train.train_and_evaluate(cfg, str(killed))
    assert not (killed / "results.json").exists()
    monkeypatch.setattr(checkpointing.Checkpointer, "save", save)
    train.train_and_evaluate(cfg, str(killed))
    a = json.loads((ref / "results.json").read_text())
    b = json.loads((killed / "results.json").read_text())
    assert a["splits"] == b["splits"]
    fa = json.loads((ref / "fold_result.json").read_text())
    fb = json.loads((killed / "fold_result.json").read_text())
    assert fa["train_log"] == fb["train_log"]
    assert len(fa["train_log"]) > 3  # The crash was mid-run.
