"""ICBHI 2017 reader on hand-written fixtures (card C2)."""

import logging
import os
import re

import numpy as np
import pytest
import soundfile as sf

from jaxpara.data import splits
from jaxpara.data.corpora import icbhi
from jaxpara.data.types import CorpusError

REC_A = "101_1b1_Al_sc_Meditron"
REC_B = "101_2b1_Ar_sc_Meditron"
REC_C = "102_1b1_Al_mc_AKGC417L"


def _write(root, recordings, split_lines, *, split_in_database=False):
    """recordings: name -> (seconds, annotation lines); split_lines: raw lines."""
    database = root / icbhi.DATABASE_DIR
    database.mkdir(parents=True, exist_ok=True)
    for name, (seconds, lines) in recordings.items():
        sf.write(
            database / f"{name}.wav", np.zeros(int(seconds * 4000), np.int16), 4000
        )
        (database / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
    split_dir = database if split_in_database else root
    (split_dir / icbhi.SPLIT_FILE).write_text(
        "".join(line + "\n" for line in split_lines)
    )
    return str(root)


def _basic(tmp_path, **kwargs):
    return _write(
        tmp_path,
        {
            REC_A: (
                5.0,
                [
                    "0.036\t0.579\t0\t0",
                    "0.579\t2.45\t1\t0",
                    "2.45\t3.1\t0\t1",
                    "3.1\t4.2\t1\t1",
                ],
            ),
            REC_C: (3.0, ["0.2\t2.5\t0\t0"]),
        },
        [f"{REC_A}\ttrain", f"{REC_C}\ttest"],
        **kwargs,
    )


def test_cycles_labels_and_metadata(tmp_path):
    corpus = icbhi.read(_basic(tmp_path))
    assert corpus.name == "icbhi"
    assert corpus.labels == ("normal", "crackle", "wheeze", "both")
    assert [e.utterance_id for e in corpus.examples] == [
        f"{REC_A}_000",
        f"{REC_A}_001",
        f"{REC_A}_002",
        f"{REC_A}_003",
        f"{REC_C}_000",
    ]
    assert [e.label for e in corpus.examples] == [
        "normal",
        "crackle",
        "wheeze",
        "both",
        "normal",
    ]
    assert [e.speaker for e in corpus.examples] == ["101"] * 4 + ["102"]
    assert [e.split for e in corpus.examples] == ["train"] * 4 + ["test"]
    assert [(e.start, e.end) for e in corpus.examples] == [
        (0.036, 0.579),
        (0.579, 2.45),
        (2.45, 3.1),
        (3.1, 4.2),
        (0.2, 2.5),
    ]
    first = corpus.examples[0]
    assert first.path == os.path.join(str(tmp_path), icbhi.DATABASE_DIR, f"{REC_A}.wav")
    assert dict(first.attrs) == {"recording": REC_A, "device": "Meditron"}
    assert dict(corpus.examples[-1].attrs)["device"] == "AKGC417L"
    assert corpus.counts() == {"normal": 2, "crackle": 1, "wheeze": 1, "both": 1}
    assert corpus.warnings == []
    assert corpus.excluded == []


def test_split_file_inside_database_folder(tmp_path):
    corpus = icbhi.read(_basic(tmp_path, split_in_database=True))
    assert corpus.counts("split") == {"train": 4, "test": 1}
    assert corpus.warnings == []


def test_patient_in_both_halves_is_recorded_not_fixed(tmp_path, caplog):
    root = _write(
        tmp_path,
        {
            REC_A: (2.0, ["0\t1\t0\t0"]),
            REC_B: (2.0, ["0\t1\t1\t0"]),
            REC_C: (2.0, ["0\t1\t0\t1"]),
        },
        [f"{REC_A}\ttrain", f"{REC_B}\ttest", f"{REC_C}\ttest"],
    )
    with caplog.at_level(logging.WARNING):
        corpus = icbhi.read(root)
    assert [(e.utterance_id, e.split) for e in corpus.examples] == [
        (f"{REC_A}_000", "train"),
        (f"{REC_B}_000", "test"),
        (f"{REC_C}_000", "test"),
    ]
    assert len(corpus.warnings) == 1
    assert "both the train and test" in corpus.warnings[0]
    assert corpus.warnings[0].endswith(": 101")
    assert "1 patient(s)" in corpus.warnings[0]
    assert any(
        "101" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    )


def test_split_name_with_other_device_suffix_is_matched_and_recorded(tmp_path):
    split_name = "102_1b1_Al_mc_LittC2SE"
    root = _write(
        tmp_path,
        {REC_A: (2.0, ["0\t1\t0\t0"]), REC_C: (2.0, ["0\t1\t0\t0", "1\t1.5\t0\t0"])},
        [f"{REC_A}\ttrain", f"{split_name}\ttest"],
    )
    corpus = icbhi.read(root)
    assert corpus.counts("split") == {"train": 1, "test": 2}
    assert len(corpus.warnings) == 1
    assert split_name in corpus.warnings[0] and REC_C in corpus.warnings[0]
    assert "(line 2)" in corpus.warnings[0]


def test_split_name_matching_nothing_is_recorded(tmp_path):
    root = _write(
        tmp_path,
        {REC_A: (2.0, ["0\t1\t0\t0"])},
        [f"{REC_A}\ttrain", "999_1b1_Tc_sc_Litt3200\ttest"],
    )
    corpus = icbhi.read(root)
    assert len(corpus.examples) == 1
    assert len(corpus.warnings) == 1
    assert "match no recording" in corpus.warnings[0]
    assert "'999_1b1_Tc_sc_Litt3200' (line 2)" in corpus.warnings[0]


def test_recording_absent_from_split_file_is_left_out_and_counted(tmp_path):
    """Card C2: in neither half, counted in `excluded`, warned; no crash."""
    root = _write(
        tmp_path,
        {
            REC_A: (2.0, ["0\t1\t0\t0"]),
            REC_B: (2.0, ["0\t0.5\t0\t1", "0.5\t1\t0\t0"]),
            REC_C: (2.0, ["0\t1\t1\t0"]),
        },
        [f"{REC_A}\ttrain", f"{REC_C}\ttest"],
    )
    corpus = icbhi.read(root)
    assert corpus.counts("split") == {"train": 1, "test": 1}
    assert corpus.excluded == [
        (f"{REC_B}_000", icbhi.NOT_IN_SPLIT),
        (f"{REC_B}_001", icbhi.NOT_IN_SPLIT),
    ]
    assert len(corpus.warnings) == 1
    assert "absent from the split file" in corpus.warnings[0]
    assert corpus.warnings[0].endswith(REC_B)
    fold = splits.predefined(corpus, validation=splits.Validation("none"))
    assert [e.utterance_id for e in fold.train] == [f"{REC_A}_000"]
    assert [e.utterance_id for e in fold.test] == [f"{REC_C}_000"]


@pytest.mark.parametrize(
    "line, message",
    [
        ("0.5\t1.0\t0", "expected 4 fields"),
        ("0.5\t1.0\t0\t0\t1", "expected 4 fields"),
        ("0.5\t1.0\t2\t0", "crackle flag '2'"),
        ("0.5\t1.0\t0\tx", "wheeze flag 'x'"),
        ("1.0\t1.0\t0\t0", "end 1.0 <= start 1.0"),
        ("1.2\t1.0\t0\t0", "end 1.0 <= start 1.2"),
        ("abc\t1.0\t0\t0", "start 'abc' is not a number"),
    ],
)
def test_malformed_annotation_line_names_file_and_line(tmp_path, line, message):
    root = _write(
        tmp_path, {REC_A: (2.0, ["0\t0.5\t0\t0", "", line])}, [f"{REC_A}\ttrain"]
    )
    txt = os.path.join(root, icbhi.DATABASE_DIR, f"{REC_A}.txt")
    with pytest.raises(
        CorpusError, match=re.escape(f"{txt}:3: ") + ".*" + re.escape(message)
    ):
        icbhi.read(root)


def test_cycles_past_the_end_are_clipped_or_excluded(tmp_path):
    root = _write(
        tmp_path,
        {REC_A: (2.0, ["0.1\t1.0\t0\t0", "1.5\t2.5\t1\t0", "2.2\t2.8\t0\t1"])},
        [f"{REC_A}\ttrain"],
    )
    corpus = icbhi.read(root)
    assert [(e.utterance_id, e.start, e.end) for e in corpus.examples] == [
        (f"{REC_A}_000", 0.1, 1.0),
        (f"{REC_A}_001", 1.5, 2.0),
    ]
    assert len(corpus.excluded) == 1
    assert corpus.excluded[0][0] == f"{REC_A}_002"
    assert "2.200 s" in corpus.excluded[0][1]
    assert len(corpus.warnings) == 2
    assert f"{REC_A}_001 (2.500 s > 2.000 s)" in corpus.warnings[0]
    assert corpus.warnings[1].endswith(f"{REC_A}_002")


def test_layout_errors(tmp_path):
    with pytest.raises(CorpusError, match="database folder not found"):
        icbhi.read(str(tmp_path))
    root = _basic(tmp_path)
    os.remove(os.path.join(root, icbhi.SPLIT_FILE))
    with pytest.raises(CorpusError, match="split file .* not found"):
        icbhi.read(root)


def test_annotation_without_audio_raises_and_audio_without_annotation_is_excluded(
    tmp_path,
):
    root = _basic(tmp_path)
    database = os.path.join(root, icbhi.DATABASE_DIR)
    os.remove(os.path.join(database, f"{REC_C}.txt"))
    corpus = icbhi.read(root)
    assert len(corpus.examples) == 4
    assert corpus.excluded == [
        (
            os.path.join(database, f"{REC_C}.wav"),
            "recording has no annotation (.txt) file",
        )
    ]
    # The split name REC_C now matches no annotated recording.
    assert len(corpus.warnings) == 1 and REC_C in corpus.warnings[0]
    os.remove(os.path.join(database, f"{REC_A}.wav"))
    with pytest.raises(
        CorpusError, match=re.escape(f"{REC_A}.txt: annotation file has no audio")
    ):
        icbhi.read(root)


def test_split_file_conflicts_and_bad_lines(tmp_path):
    root = _write(
        tmp_path,
        {REC_A: (2.0, ["0\t1\t0\t0"])},
        [f"{REC_A}\ttrain", f"{REC_A}.wav\ttest"],
    )
    split = os.path.join(root, icbhi.SPLIT_FILE)
    with pytest.raises(CorpusError, match=re.escape(f"{split}:2:") + ".*line 1"):
        icbhi.read(root)
    with open(split, "w") as f:
        f.write(f"{REC_A}\tvalidation\n")
    with pytest.raises(CorpusError, match=re.escape(f"{split}:1: expected")):
        icbhi.read(root)
