"""ComParE 2021 CCS reader on hand-written fixtures (card C1)."""

import os
import re

import numpy as np
import pytest
import soundfile as sf

from jaxpara.data.corpora import ccs
from jaxpara.data.types import CorpusError

PARTITIONS = {
    "train": [
        ("train_001.wav", "positive"),
        ("train_002.wav", "negative"),
        ("train_003.wav", "negative"),
    ],
    "devel": [("devel_001.wav", "negative"), ("devel_002.wav", "positive")],
    "test": [("test_001.wav", "negative")],
}


def _write(root, partitions=PARTITIONS, extra_wavs=()):
    (root / "wav").mkdir()
    (root / "lab").mkdir()
    names = [f for rows in partitions.values() for f, _ in rows] + list(extra_wavs)
    for name in names:
        sf.write(root / "wav" / name, np.zeros(1600, np.int16), 16000)
    for partition, rows in partitions.items():
        text = "filename,label\n" + "".join(f"{f},{label}\n" for f, label in rows)
        (root / "lab" / f"{partition}.csv").write_text(text)
    return str(root)


def test_partitions_labels_and_ids(tmp_path):
    root = _write(tmp_path, extra_wavs=["stray.wav"])
    corpus = ccs.read(root)
    assert corpus.name == "ccs"
    assert corpus.labels == ("negative", "positive")
    assert [(e.utterance_id, e.label, e.split) for e in corpus.examples] == [
        ("train_001", "positive", "train"),
        ("train_002", "negative", "train"),
        ("train_003", "negative", "train"),
        ("devel_001", "negative", "validation"),
        ("devel_002", "positive", "validation"),
        ("test_001", "negative", "test"),
    ]
    assert corpus.counts("split") == {"train": 3, "validation": 2, "test": 1}
    assert corpus.counts() == {"positive": 2, "negative": 4}
    assert {e.speaker for e in corpus.examples} == {""}
    assert corpus.examples[3].path == os.path.join(root, "wav", "devel_001.wav")
    assert dict(corpus.examples[3].attrs) == {"partition": "devel"}
    assert corpus.warnings[0] == ccs.NO_SPEAKER_NOTE
    assert len(corpus.warnings) == 2
    assert "1 wav file(s)" in corpus.warnings[1] and corpus.warnings[1].endswith(
        "stray.wav"
    )
    assert corpus.excluded == []


def test_label_case_and_missing_extension_are_accepted(tmp_path):
    parts = {
        "train": [("train_001", " Positive ")],
        "devel": [("devel_001.wav", "NEGATIVE")],
        "test": [],
    }
    (tmp_path / "wav").mkdir()
    (tmp_path / "lab").mkdir()
    for name in ("train_001.wav", "devel_001.wav"):
        sf.write(tmp_path / "wav" / name, np.zeros(160, np.int16), 16000)
    for partition, rows in parts.items():
        text = "filename,label\n" + "".join(f"{f},{label}\n" for f, label in rows)
        (tmp_path / "lab" / f"{partition}.csv").write_text(text)
    corpus = ccs.read(str(tmp_path))
    assert [(e.utterance_id, e.label) for e in corpus.examples] == [
        ("train_001", "positive"),
        ("devel_001", "negative"),
    ]


def test_unknown_label_names_csv_and_line(tmp_path):
    parts = dict(
        PARTITIONS, devel=[("devel_001.wav", "negative"), ("devel_002.wav", "maybe")]
    )
    root = _write(tmp_path, parts)
    csv_path = os.path.join(root, "lab", "devel.csv")
    with pytest.raises(
        CorpusError, match=re.escape(f"{csv_path}:3: unknown label 'maybe'")
    ):
        ccs.read(root)


def test_missing_wav_names_csv_line_and_wav(tmp_path):
    root = _write(tmp_path)
    os.remove(os.path.join(root, "wav", "train_003.wav"))
    csv_path = os.path.join(root, "lab", "train.csv")
    wav = os.path.join(root, "wav", "train_003.wav")
    with pytest.raises(
        CorpusError, match=re.escape(f"{csv_path}:4: audio file not found: {wav}")
    ):
        ccs.read(root)


def test_file_in_two_partitions_is_an_error(tmp_path):
    parts = dict(
        PARTITIONS, test=[("test_001.wav", "negative"), ("train_002.wav", "negative")]
    )
    root = _write(tmp_path, parts)
    test_csv = os.path.join(root, "lab", "test.csv")
    train_csv = os.path.join(root, "lab", "train.csv")
    with pytest.raises(
        CorpusError,
        match=re.escape(
            f"{test_csv}:3: 'train_002.wav' is already listed at {train_csv}:3"
        ),
    ):
        ccs.read(root)


def test_layout_errors(tmp_path):
    with pytest.raises(CorpusError, match="label folder not found"):
        ccs.read(str(tmp_path))
    root = _write(tmp_path)
    os.remove(os.path.join(root, "lab", "test.csv"))
    with pytest.raises(
        CorpusError, match=r"partition file\(s\) not found: .*test\.csv"
    ):
        ccs.read(root)
    with open(os.path.join(root, "lab", "test.csv"), "w") as f:
        f.write("file,class\ntest_001.wav,negative\n")
    with pytest.raises(CorpusError, match=re.escape("test.csv:1: header must name")):
        ccs.read(root)
