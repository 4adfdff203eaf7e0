"""TFDS records (jaxpara.data.records, jaxpara.prepare) of a tiny synthetic EmoDB:
6 utterances of 2 speakers, prepared once in 3 chunks of 2 (module fixture)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import default
from jaxpara import errors
from jaxpara.data import corpora, pipeline, records
from jaxpara.data.types import CorpusError
from tests.subproc import REPO, subprocess_env

CHUNK = 2
CORRUPT = "08a01Wa"  # An utterance of the synthetic corpus (seed 0).


def _data_cfg(root=""):
    c = default.get_config().data
    c.corpus = "emodb"
    c.root = root
    c.synthetic.num_speakers = 2
    c.synthetic.utterances_per_speaker = 3
    return c


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("corpus"))
    return corpora.generate_synthetic("emodb", base, _data_cfg().synthetic, seed=0)


@pytest.fixture(scope="module")
def corpus(corpus_root):
    return corpora.read_corpus("emodb", corpus_root)


@pytest.fixture
def count_builds(monkeypatch):
    """The example ids of every `FeatureStore.build` call, one list per call."""
    calls = []
    build = pipeline.FeatureStore.build

    def counted(examples, data_cfg, **kwargs):
        calls.append([e.utterance_id for e in examples])
        return build(examples, data_cfg, **kwargs)

    monkeypatch.setattr(pipeline.FeatureStore, "build", counted)
    return calls


@pytest.fixture(scope="module")
def prepared(corpus_root, tmp_path_factory):
    """(builder, data_dir) of records kept with their chunk cache."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    b = records.prepare(
        _data_cfg(corpus_root), data_dir, chunk_size=CHUNK, keep_chunks=True
    )
    return b, data_dir


def _read(b) -> dict[str, dict]:
    ds = b.as_dataset(split=records.SPLIT)
    return {ex["utterance_id"].decode(): ex for ex in tfds.as_numpy(ds)}


def test_records_hold_the_feature_store(prepared, corpus, corpus_root):
    b, _ = prepared
    got = _read(b)
    store = pipeline.FeatureStore.build(corpus.examples, _data_cfg(corpus_root))
    assert sorted(got) == sorted(store.ids) and len(got) == 6
    names = b.info.features["label"].names
    assert names == list(corpus.labels)
    for e in corpus.examples:
        ex = got[e.utterance_id]
        np.testing.assert_allclose(
            ex["features"], store.get(e.utterance_id), rtol=1e-6, atol=1e-6
        )
        assert ex["num_frames"] == store.get(e.utterance_id).shape[0]
        assert names[ex["label"]] == e.label
        meta = [ex[k].decode() for k in ("speaker", "session", "gender", "split")]
        assert meta == [e.speaker, e.session, e.gender, e.split]
        assert ex["speech_found"] == (e.utterance_id not in store.no_speech)


def test_tfds_builder_and_load_from_outside(prepared, corpus_root):
    b, data_dir = prepared
    cfg = _data_cfg(corpus_root)
    config = records.frontend_config(cfg)
    assert config.name == pipeline.frontend_fingerprint(cfg)
    cfg.features.n_mels = 20
    assert records.frontend_config(cfg).name != config.name
    outside = tfds.builder("jaxpara_emodb", data_dir=data_dir, config=config)
    assert outside.data_dir == b.data_dir
    assert outside.info.splits[records.SPLIT].num_examples == 6
    assert outside.info.metadata["fingerprint"] == config.name
    for split in (records.SPLIT, "all"):
        ds = tfds.load(
            "jaxpara_emodb",
            data_dir=data_dir,
            split=split,
            builder_kwargs={"config": config},
            download=False,
        )
        assert len(list(ds)) == 6
    # Read-only, without the builder code: the records describe themselves.
    (ex,) = (
        tfds.builder_from_directory(b.data_dir).as_dataset(split=records.SPLIT).take(1)
    )
    assert ex["features"].shape[1:] == (40, 3)
    assert set(records.BUILDERS) == set(corpora.CORPORA)
    for name in corpora.CORPORA:
        cls = tfds.builder_cls(f"jaxpara_{name}")
        assert "Nothing is downloaded" in cls.MANUAL_DOWNLOAD_INSTRUCTIONS
        assert str(cls.VERSION) == "1.0.0"


def test_second_prepare_does_not_recompute(prepared, corpus_root, count_builds):
    b, data_dir = prepared
    index = os.path.join(b.data_dir, records.INDEX_FILE)
    mtime = os.stat(index).st_mtime_ns
    again = records.prepare(_data_cfg(corpus_root), data_dir, chunk_size=CHUNK)
    assert again.data_dir == b.data_dir and count_builds == []
    assert os.stat(index).st_mtime_ns == mtime


def test_resume_recomputes_only_missing_chunks(
    prepared, corpus, corpus_root, tmp_path, count_builds
):
    b, _ = prepared
    cfg = _data_cfg(corpus_root)
    data_dir = str(tmp_path / "tfds")
    # An interrupted run: chunks 0 and 2 cached, chunk 1 and the records missing.
    chunk_dir = records.builder(cfg, data_dir).chunk_dir
    shutil.copytree(b.chunk_dir, chunk_dir)
    (missing,) = [f for f in os.listdir(chunk_dir) if f.startswith("chunk_000001_")]
    os.remove(os.path.join(chunk_dir, missing))
    resumed = records.prepare(cfg, data_dir, chunk_size=CHUNK)
    ids = [e.utterance_id for e in corpus.examples]
    assert count_builds == [ids[CHUNK : 2 * CHUNK]]
    assert not os.path.exists(chunk_dir)  # Removed once the records are written.
    want, got = _read(b), _read(resumed)
    assert sorted(got) == sorted(want)
    for u in want:
        np.testing.assert_array_equal(got[u]["features"], want[u]["features"])
        assert got[u]["label"] == want[u]["label"]


def test_index_covers_every_utterance_once(prepared, corpus):
    b, _ = prepared
    index = records.read_index(b)
    got = _read(b)
    ids = [u for shard in index["shards"] for u in shard["utterance_ids"]]
    assert sorted(ids) == sorted(e.utterance_id for e in corpus.examples)
    assert len(ids) == len(set(ids)) == index["num_examples"] == 6
    files = [s["file"] for s in index["shards"]]
    assert files == [p.name for p in b.info.splits[records.SPLIT].filepaths]
    for shard in index["shards"]:
        assert os.path.exists(os.path.join(b.data_dir, shard["file"]))
        for u, n, label in zip(
            shard["utterance_ids"], shard["num_frames"], shard["labels"], strict=True
        ):
            assert (n, label) == (got[u]["num_frames"], got[u]["label"])
    assert index["fingerprint"] == b.builder_config.name
    assert index["failed"] == {} and index["labels"] == list(corpus.labels)


def test_corrupt_file_is_counted_or_raises(corpus_root, tmp_path):
    root = str(tmp_path / "emodb")
    shutil.copytree(corpus_root, root)
    bad = os.path.join(root, "wav", f"{CORRUPT}.wav")
    with open(bad, "wb") as f:
        f.write(b"this is not a wav file" * 10)
    cfg = _data_cfg(root)
    cfg.on_error = "skip"
    skipped = records.prepare(cfg, str(tmp_path / "skip"), chunk_size=CHUNK)
    with open(os.path.join(skipped.data_dir, records.FAILED_FILE)) as f:
        failed = json.load(f)
    assert list(failed) == [CORRUPT] and failed[CORRUPT]
    index = records.read_index(skipped)
    assert index["failed"] == failed and index["num_examples"] == 5
    assert CORRUPT not in _read(skipped)
    cfg.on_error = "raise"  # Fresh, and over records that list a skipped file.
    for data_dir in (str(tmp_path / "raise"), str(tmp_path / "skip")):
        with pytest.raises(CorpusError) as err:
            records.prepare(cfg, data_dir, chunk_size=CHUNK)
        message = str(err.value)
        assert "\n" not in message and bad in message and CORRUPT in message


def _prepare_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jaxpara.prepare", *map(str, args)],
        cwd=REPO,
        env=subprocess_env(1),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_prepares_and_refuses_an_empty_root(corpus_root, tmp_path):
    config = "--config=configs/emodb.py:blstm_fcn"
    proc = _prepare_cli(
        config,
        f"--config.data.root={corpus_root}",
        f"--data_dir={tmp_path}",
        "--num_workers=1",
        "--chunk_size=3",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "6 examples in 1 files" in proc.stdout
    assert "0 unreadable, 0 with no speech found" in proc.stdout
    (config_dir,) = os.listdir(tmp_path / "jaxpara_emodb")
    assert (
        tmp_path / "jaxpara_emodb" / config_dir / "1.0.0" / "jaxpara_index.json"
    ).exists()
    proc = _prepare_cli(config, f"--data_dir={tmp_path}")
    assert proc.returncode == errors.EXIT_USER_ERROR, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1 and "data.root is empty" in lines[0], proc.stderr
