"""EmoDB reader: the real 22.05 kHz development copy, bad names, the synthetic
stand-in. Reading the real folder touches file names only; a few files are
decoded."""

import collections
import os
from pathlib import Path

import pytest
import soundfile as sf

from configs import default
from jaxpara.audio import io
from jaxpara.data import corpora, splits
from jaxpara.data.corpora import emodb
from jaxpara.data.corpora.synthetic import emotion
from jaxpara.data.types import CorpusError

REAL = Path(__file__).parents[2].parent / "shared/corpora/emodb_22k"
# The corpus README's counts (emotion letters, speakers) and gender table.
LETTERS = {"W": 127, "L": 81, "N": 79, "F": 71, "A": 69, "T": 62, "E": 46}
SPEAKERS = {
    "03": 49,
    "08": 58,
    "09": 43,
    "10": 38,
    "11": 55,
    "12": 35,
    "13": 61,
    "14": 69,
    "15": 56,
    "16": 71,
}
MALE = {"03", "10", "11", "12", "15"}


@pytest.fixture(scope="module")
def real():
    if not (REAL / "wav").is_dir():
        pytest.skip(f"the EmoDB development copy is not at {REAL}")
    return emodb.read(str(REAL))


def test_real_folder_counts(real):
    assert len(real.examples) == 535 and not real.excluded and not real.warnings
    assert real.labels == (
        "anger",
        "boredom",
        "disgust",
        "fear",
        "happiness",
        "sadness",
        "neutral",
    )
    letters = collections.Counter(e.attrs["emotion"] for e in real.examples)
    assert letters == LETTERS
    assert real.counts() == {emodb.EMOTIONS[k]: n for k, n in LETTERS.items()}
    assert real.counts("speaker") == SPEAKERS
    for e in real.examples:
        assert e.gender == ("m" if e.speaker in MALE else "f")
        assert e.label == emodb.EMOTIONS[e.utterance_id[5]]
        assert (e.session, e.split) == ("", "")
    assert real.counts("gender") == {"m": 233, "f": 302}
    first = real.by_id()["03a01Wa"]
    assert first.path == str(REAL / "wav" / "03a01Wa.wav")
    assert (first.speaker, first.gender, first.label) == ("03", "m", "anger")
    assert dict(first.attrs) == {"sentence": "a01", "emotion": "W", "version": "a"}


@pytest.mark.parametrize("validation", ["default", "none"])
def test_loso_speaker_over_the_real_folder(real, validation):
    cfg = default.get_config().protocol
    cfg.name, cfg.validation = "loso_speaker", validation
    folds = splits.build_folds(real, cfg)
    assert [f.name for f in folds] == [f"speaker_{s}" for s in SPEAKERS]
    tested = collections.Counter()
    for fold in folds:
        splits.check_disjoint(fold)  # No speaker in two splits.
        test_speaker = fold.name.removeprefix("speaker_")
        assert {e.speaker for e in fold.test} == {test_speaker}
        assert len({e.speaker for e in fold.validation}) == (
            1 if validation == "default" else 0
        )
        assert len({e.speaker for e in fold.train}) == (
            8 if validation == "default" else 9
        )
        assert len(fold.test) == SPEAKERS[test_speaker]
        tested.update(e.utterance_id for e in fold.test)
    # Every utterance is tested exactly once over the folds.
    assert tested == {e.utterance_id: 1 for e in real.examples}


def test_a_few_real_files_decode_at_16k(real):
    for uid in ("03a01Wa", "08a01Na", "16b10Tb"):
        path = real.by_id()[uid].path
        assert sf.info(path).samplerate == 22050
        audio = io.load_audio(path, 16000)
        assert audio.shape == (32000,) and abs(audio).max() > 0.01


def _touch(root, names):
    wav = root / "wav"
    wav.mkdir(exist_ok=True)
    for name in names:
        (wav / name).write_bytes(b"")  # Only names are read.
    return str(root)


@pytest.mark.parametrize(
    "name, message",
    [
        ("3a01Wa.wav", "not an EmoDB file name"),
        ("03c01Wa.wav", "not an EmoDB file name"),
        ("03a01wa.wav", "not an EmoDB file name"),
        ("03a01Wa_copy.wav", "not an EmoDB file name"),
        ("03a01Xa.wav", "unknown EmoDB emotion letter 'X'"),
        ("07a01Wa.wav", "unknown EmoDB speaker '07'"),
    ],
)
def test_bad_names_are_rejected_naming_the_file(tmp_path, name, message):
    root = _touch(tmp_path, ["03a01Wa.wav", name])
    with pytest.raises(CorpusError, match=message) as info:
        emodb.read(root)
    assert os.path.join(root, "wav", name) in str(info.value)


def test_other_files_are_skipped_or_counted(tmp_path):
    root = _touch(tmp_path, ["03a01Wa.wav", "._03a01Wa.wav", "labels.csv"])
    corpus = emodb.read(root)
    assert [e.utterance_id for e in corpus.examples] == ["03a01Wa"]
    assert corpus.warnings == [
        f"1 file(s) in {os.path.join(root, 'wav')} are not .wav and are not used"
    ]
    with pytest.raises(CorpusError, match="does not look like EmoDB"):
        emodb.read(str(tmp_path / "nowhere"))
    (tmp_path / "empty" / "wav").mkdir(parents=True)
    with pytest.raises(CorpusError, match="no EmoDB wav files"):
        emodb.read(str(tmp_path / "empty"))


def test_synthetic_stand_in_through_the_registry(tmp_path):
    cfg = default.get_config()
    cfg.data.corpus, cfg.data.root = "emodb", ""
    cfg.data.synthetic.num_speakers = 3
    cfg.data.synthetic.utterances_per_speaker = 8
    corpus, root = corpora.load_corpus(cfg.data, str(tmp_path), seed=0)
    assert root.startswith(str(tmp_path / "data" / "synthetic_emodb_"))
    assert corpus.counts("speaker") == {"03": 8, "08": 8, "09": 8}
    assert corpus.counts("gender") == {"m": 8, "f": 16}
    per_letter = emotion.emodb_codes(8)
    assert per_letter == {"W": 2, "L": 1, "E": 1, "A": 1, "F": 1, "T": 1, "N": 1}
    assert corpus.counts() == {emodb.EMOTIONS[k]: 3 * n for k, n in per_letter.items()}
    info = sf.info(corpus.examples[0].path)
    assert (info.samplerate, info.frames) == (22050, 44100)
    with pytest.raises(ValueError, match="num_speakers must be in"):
        emotion.write_emodb(str(tmp_path / "x"), num_speakers=11)
