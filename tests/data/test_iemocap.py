"""Tests of the IEMOCAP reader on a synthetic corpus and hand-made layouts."""

import collections
import os

import numpy as np
import pytest
import soundfile as sf

from jaxpara.data import splits
from jaxpara.data.corpora import iemocap
from jaxpara.data.corpora.synthetic import emotion
from jaxpara.data.types import CorpusError

MERGE = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}


@pytest.fixture(scope="module")
def root(write_synthetic):
    return write_synthetic(
        emotion.write_iemocap, seed=3, num_speakers=4, utterances_per_speaker=12
    )


def _parse(root):
    """Independent parse: (session, utterance, code, start, end) per labelled line."""
    rows = []
    for session in sorted(os.listdir(root)):
        folder = os.path.join(root, session, "dialog", "EmoEvaluation")
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name)) as f:
                for line in f:
                    if line.startswith("["):
                        times, utt, code, _ = line.rstrip("\n").split("\t")
                        start, end = times.strip("[]").split(" - ")
                        rows.append((session, utt, code, float(start), float(end)))
    return rows


def test_counts_match_the_evaluation_files(root):
    rows = _parse(root)
    corpus = iemocap.read(root)
    kept = [r for r in rows if r[2] in MERGE]
    assert corpus.labels == ("neutral", "happy", "sad", "angry")
    assert corpus.counts() == dict(collections.Counter(MERGE[r[2]] for r in kept))
    assert corpus.counts("speaker") == dict(
        collections.Counter(r[1][:5] + r[1].rsplit("_", 1)[1][0] for r in kept)
    )
    assert corpus.counts("session") == dict(collections.Counter(r[0] for r in kept))
    assert len(corpus.excluded) == len(rows) - len(kept)
    # The generator's fixed allocation (iemocap_codes(12)): per speaker neu 3,
    # hap 2, exc 1, sad 3, ang 2, fru 1 -> 4 speakers.
    assert corpus.counts() == {"neutral": 12, "happy": 12, "sad": 12, "angry": 8}
    assert corpus.counts("speaker") == {
        "Ses01F": 11,
        "Ses01M": 11,
        "Ses02F": 11,
        "Ses02M": 11,
    }
    assert corpus.counts("gender") == {"f": 22, "m": 22}
    assert corpus.counts("session") == {"Session1": 22, "Session2": 22}
    assert corpus.counts("split") == {"": 44}
    assert len(corpus.excluded) == 4
    assert {reason for _, reason in corpus.excluded} == {
        "emotion code 'fru' is not in the 4-class task"
    }
    assert sum(e.attrs["code"] == "exc" for e in corpus.examples) == 4


def test_example_fields(root):
    corpus = iemocap.read(root)
    for e in corpus.examples:
        dialog = e.utterance_id.rsplit("_", 1)[0]
        assert e.attrs["dialog"] == dialog
        assert e.attrs["improvised"] == ("1" if "_impro" in dialog else "0")
        assert e.speaker == e.utterance_id[:5] + e.utterance_id[-4]
        assert e.gender == e.utterance_id[-4].lower()
        assert e.path == os.path.join(
            root, e.session, "sentences", "wav", dialog, e.utterance_id + ".wav"
        )
        assert os.path.isabs(e.path)


def test_improvised_only(root):
    rows = _parse(root)
    corpus = iemocap.read(root, improvised_only=True)
    kept = [r for r in rows if r[2] in MERGE and "_impro" in r[1]]
    assert corpus.counts() == dict(collections.Counter(MERGE[r[2]] for r in kept))
    # improvised_count: neu 3 -> 2, hap 2 -> 2, exc 1 -> 1, sad 3 -> 2, ang 2 -> 2.
    assert corpus.counts() == {"neutral": 8, "happy": 12, "sad": 8, "angry": 8}
    assert all(e.attrs["improvised"] == "1" for e in corpus.examples)
    reasons = collections.Counter(reason for _, reason in corpus.excluded)
    assert reasons == {
        "emotion code 'fru' is not in the 4-class task": 4,
        "scripted dialogue (improvised_only=True)": 8,
    }


def test_timestamps_match_wav_durations(root):
    corpus = iemocap.read(root)
    spans = {r[1]: r[4] - r[3] for r in _parse(root)}
    for e in corpus.examples[:10]:
        info = sf.info(e.path)
        assert abs(info.frames / info.samplerate - spans[e.utterance_id]) < 1e-3


def _write_layout(tmp_path, lines, wavs=()):
    """Session1 with one EmoEvaluation file of `lines` and the given wavs."""
    session = tmp_path / "Session1"
    evaluation = session / "dialog" / "EmoEvaluation"
    evaluation.mkdir(parents=True)
    (evaluation / "Ses01F_impro01.txt").write_text(
        "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n" + "\n".join(lines)
    )
    for utt in wavs:
        folder = session / "sentences" / "wav" / utt.rsplit("_", 1)[0]
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(str(folder / f"{utt}.wav"), np.zeros(160, np.int16), 16000)
    return str(tmp_path)


def test_missing_wav_names_path_and_evaluation_file(tmp_path):
    root = _write_layout(
        tmp_path,
        [
            "[1.0000 - 2.0000]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]",
            "C-E1:\tNeutral;\t()",
            "",
            "[3.0000 - 4.0000]\tSes01F_impro01_M000\tang\t[2.0000, 4.0000, 4.0000]",
        ],
        wavs=["Ses01F_impro01_F000"],
    )
    with pytest.raises(CorpusError) as err:
        iemocap.read(root)
    message = str(err.value)
    assert "Ses01F_impro01_M000.wav" in message
    assert "Ses01F_impro01.txt:6" in message


def test_excluded_codes_need_no_wav(tmp_path):
    root = _write_layout(
        tmp_path,
        [
            "[1.0000 - 2.0000]\tSes01F_impro01_F000\tsad\t[2.0000, 2.0000, 2.0000]",
            "[3.0000 - 4.0000]\tSes01F_impro01_M000\tfru\t[2.0000, 3.5000, 3.5000]",
            "[5.0000 - 6.0000]\tSes01F_impro01_M001\txxx\t[2.5000, 3.0000, 3.0000]",
        ],
        wavs=["Ses01F_impro01_F000"],
    )
    corpus = iemocap.read(root)
    assert [e.utterance_id for e in corpus.examples] == ["Ses01F_impro01_F000"]
    assert [u for u, _ in corpus.excluded] == [
        "Ses01F_impro01_M000",
        "Ses01F_impro01_M001",
    ]


def test_unknown_code_and_malformed_line(tmp_path):
    line = "[1.0000 - 2.0000]\tSes01F_impro01_F000\tjoy\t[2.5000, 2.5000, 2.5000]"
    with pytest.raises(CorpusError, match=r"Ses01F_impro01\.txt:3.*'joy'"):
        iemocap.read(_write_layout(tmp_path / "a", [line]))
    with pytest.raises(CorpusError, match=r"Ses01F_impro01\.txt:3: malformed"):
        iemocap.read(_write_layout(tmp_path / "b", ["[1.0 - 2.0] Ses01F_impro01_F000"]))


def test_unknown_layout(tmp_path):
    (tmp_path / "wav").mkdir()
    with pytest.raises(CorpusError, match="Session1"):
        iemocap.read(str(tmp_path))


def test_loso_session_without_validation_tests_the_whole_session(root):
    """Card C4 IEM4: the held-out session tests whole (both speakers)."""
    corpus = iemocap.read(root)
    (fold,) = splits.leave_one_session_out(
        corpus, test_session="Session2", validation=splits.Validation("none")
    )
    assert {e.speaker for e in fold.test} == {"Ses02F", "Ses02M"}
    assert fold.validation == []
    assert len(fold.test) == corpus.counts("session")["Session2"]
    assert len(fold.train) + len(fold.test) == len(corpus.examples)
    splits.check_disjoint(fold)
