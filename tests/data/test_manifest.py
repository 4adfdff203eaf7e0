"""Tests of the generic CSV manifest reader."""

import collections
import csv
import os

import numpy as np
import pytest
import soundfile as sf

from jaxpara.data.corpora import manifest
from jaxpara.data.corpora.synthetic import emotion
from jaxpara.data.types import CorpusError


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("manifest"))
    return emotion.write_manifest(
        root, seed=2, num_speakers=6, utterances_per_speaker=4
    )


def test_synthetic_counts_match_the_csv(synthetic_csv):
    with open(synthetic_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    corpus = manifest.read(synthetic_csv)
    for field in ("label", "speaker", "session", "gender", "split"):
        assert corpus.counts(field) == dict(collections.Counter(r[field] for r in rows))
    assert corpus.labels == ("angry", "happy", "neutral", "sad")
    assert corpus.counts() == {"angry": 6, "happy": 6, "neutral": 6, "sad": 6}
    assert corpus.counts("split") == {"train": 16, "validation": 4, "test": 4}
    assert corpus.counts("gender") == {"f": 12, "m": 12}
    assert corpus.counts("session") == {"session1": 8, "session2": 8, "session3": 8}
    first = corpus.examples[0]
    assert first.utterance_id == "audio/spk01/spk01_000"
    assert first.path == os.path.join(
        os.path.dirname(synthetic_csv), "audio", "spk01", "spk01_000.wav"
    )


@pytest.fixture
def audio_dir(tmp_path):
    for name in ("a.wav", "b.wav", "sub/c.flac"):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        sf.write(str(path), np.zeros(160, np.float32), 16000)
    return tmp_path


def _csv(folder, text, name="m.csv"):
    path = folder / name
    path.write_text(text)
    return str(path)


def test_normalised_values_ids_and_attrs(audio_dir):
    path = _csv(
        audio_dir,
        "Path,Label,Gender,Split,Speaker,note\n"
        f"a.wav,pos,M,dev,s1,x\n"
        f"{audio_dir / 'b.wav'},neg,female,devel,s2,y\n"
        "\n"
        "sub/c.flac,neg,,TEST,,\n",
    )
    corpus = manifest.read(path)
    assert corpus.labels == ("neg", "pos")
    got = [
        (e.utterance_id, e.label, e.gender, e.split, e.speaker, dict(e.attrs))
        for e in corpus.examples
    ]
    assert got == [
        ("a", "pos", "m", "validation", "s1", {"note": "x"}),
        ("b", "neg", "f", "validation", "s2", {"note": "y"}),
        ("sub/c", "neg", "", "test", "", {"note": ""}),
    ]
    assert corpus.examples[2].path == str(audio_dir / "sub" / "c.flac")


def test_id_column(audio_dir):
    corpus = manifest.read(_csv(audio_dir, "id,path,label\nu1,a.wav,x\nu2,b.wav,y\n"))
    assert [e.utterance_id for e in corpus.examples] == ["u1", "u2"]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("path,speaker\na.wav,s1\n", r"m\.csv:1: missing required column 'label'"),
        ("label,speaker\nx,s1\n", r"m\.csv:1: missing required column 'path'"),
        (
            "path,label\na.wav,x\nmissing.wav,y\n",
            r"m\.csv:3: missing audio file .*missing\.wav",
        ),
        (
            "path,label,gender\na.wav,x,m\nb.wav,y,robot\n",
            r"m\.csv:3: bad gender 'robot'",
        ),
        ("path,label,split\na.wav,x,training\n", r"m\.csv:2: bad split 'training'"),
        (
            "path,label\na.wav,x\n./a.wav,y\n",
            r"m\.csv:3: duplicate path './a.wav'.*line 2",
        ),
        ("path,label\na.wav,\n", r"m\.csv:2: empty label"),
        ("", r"m\.csv: empty manifest"),
        ("path,label\n", r"m\.csv: empty manifest"),
    ],
)
def test_errors_name_file_line_and_value(audio_dir, text, pattern):
    with pytest.raises(CorpusError, match=pattern):
        manifest.read(_csv(audio_dir, text))


def test_folder_root_and_missing_csv(audio_dir, tmp_path):
    _csv(audio_dir, "path,label\na.wav,x\n", name="manifest.csv")
    assert len(manifest.read(str(audio_dir)).examples) == 1
    with pytest.raises(CorpusError, match="not a CSV file"):
        manifest.read(str(tmp_path / "nope.csv"))
