"""Tests of the FAU Aibo reader on a synthetic corpus and hand-made layouts."""

import collections
import os

import numpy as np
import pytest
import soundfile as sf

from jaxpara.data import splits
from jaxpara.data.corpora import fau_aibo
from jaxpara.data.corpora.synthetic import emotion
from jaxpara.data.types import CorpusError


@pytest.fixture(scope="module")
def root(write_synthetic):
    return write_synthetic(
        emotion.write_fau_aibo, seed=1, num_speakers=4, utterances_per_speaker=10
    )


def _parse(root):
    """Independent parse of the label file: [(chunk, label)]."""
    with open(os.path.join(root, "labels", "chunk_labels_5cl_corpus.txt")) as f:
        return [tuple(line.split()[:2]) for line in f if line.strip()]


def test_counts_match_the_label_file(root):
    rows = _parse(root)
    corpus = fau_aibo.read(root)
    assert corpus.labels == ("A", "E", "N", "P", "R")
    assert corpus.counts() == dict(collections.Counter(label for _, label in rows))
    splits = {"Ohm": "train", "Mont": "test"}
    assert corpus.counts("split") == dict(
        collections.Counter(splits[c.split("_")[0]] for c, _ in rows)
    )
    # fau_codes(10) = A 2, E 2, N 3, P 1, R 2 per speaker, 4 speakers.
    assert corpus.counts() == {"A": 8, "E": 8, "N": 12, "P": 4, "R": 8}
    assert corpus.counts("split") == {"train": 20, "test": 20}
    assert corpus.counts("speaker") == {
        "Ohm_01": 10,
        "Ohm_02": 10,
        "Mont_01": 10,
        "Mont_02": 10,
    }
    assert corpus.excluded == []
    assert corpus.warnings == []


def test_example_fields(root):
    corpus = fau_aibo.read(root)
    first = corpus.examples[0]
    assert first.utterance_id == _parse(root)[0][0]
    assert first.path == os.path.join(root, "wav", first.utterance_id + ".wav")
    for e in corpus.examples:
        school = e.utterance_id.split("_")[0]
        assert e.attrs["school"] == school
        assert e.split == ("train" if school == "Ohm" else "test")
        assert e.speaker == "_".join(e.utterance_id.split("_")[:2])
        assert float(e.attrs["confidence"]) <= 1.0
        assert e.gender == "" and e.session == ""


def _write_layout(tmp_path, lines, wavs):
    (tmp_path / "labels").mkdir(parents=True)
    (tmp_path / "wav").mkdir()
    (tmp_path / "labels" / "chunk_labels_5cl_corpus.txt").write_text("\n".join(lines))
    for chunk in wavs:
        sf.write(str(tmp_path / "wav" / f"{chunk}.wav"), np.zeros(160, np.int16), 16000)
    return str(tmp_path)


def test_unknown_label_names_file_and_line(tmp_path):
    root = _write_layout(
        tmp_path,
        ["Ohm_01_001_00 N 1.000", "Ohm_01_001_01 X 0.800"],
        ["Ohm_01_001_00", "Ohm_01_001_01"],
    )
    with pytest.raises(CorpusError) as err:
        fau_aibo.read(root)
    assert "chunk_labels_5cl_corpus.txt:2" in str(err.value)
    assert "'X'" in str(err.value)


def test_missing_wav_is_named(tmp_path):
    root = _write_layout(
        tmp_path, ["Ohm_01_001_00 N 1.000", "Mont_02_004_00 A 1.000"], ["Ohm_01_001_00"]
    )
    with pytest.raises(CorpusError, match=r"Mont_02_004_00\.wav.*:2"):
        fau_aibo.read(root)


def test_unlabelled_wav_is_a_warning_and_blank_lines_are_skipped(tmp_path):
    root = _write_layout(
        tmp_path,
        ["# header", "", "Mont_01_001_00 P", "Ohm_01_001_00 R 0.600"],
        ["Mont_01_001_00", "Ohm_01_001_00", "Ohm_09_001_00"],
    )
    corpus = fau_aibo.read(root)
    assert [(e.utterance_id, e.split, e.label) for e in corpus.examples] == [
        ("Mont_01_001_00", "test", "P"),
        ("Ohm_01_001_00", "train", "R"),
    ]
    assert corpus.examples[0].attrs["confidence"] == ""
    assert len(corpus.warnings) == 1 and "1 wav file(s)" in corpus.warnings[0]


def test_unknown_school_and_layout(tmp_path):
    root = _write_layout(tmp_path / "a", ["Bad_01_001_00 N 1.0"], ["Bad_01_001_00"])
    with pytest.raises(CorpusError, match=r":1: chunk id 'Bad_01_001_00'"):
        fau_aibo.read(root)
    with pytest.raises(CorpusError, match="chunk_labels_5cl_corpus.txt"):
        fau_aibo.read(str(tmp_path))


def test_predefined_without_validation_trains_on_all_of_ohm(root):
    """Card C3: train = ALL of Ohm, test = Mont, no validation split."""
    corpus = fau_aibo.read(root)
    fold = splits.predefined(corpus, validation=splits.Validation("none"))
    assert fold.validation == []
    assert sorted(e.utterance_id for e in fold.train) == sorted(
        e.utterance_id for e in corpus.examples if e.split == "train"
    )
    assert {e.attrs["school"] for e in fold.train} == {"Ohm"}
    assert len(fold.train) == 20 and len(fold.test) == 20
    # The default still carves 30% of the Ohm speakers (round(0.6) = 1 of 2).
    default = splits.predefined(corpus)
    assert len({e.speaker for e in default.validation}) == 1
