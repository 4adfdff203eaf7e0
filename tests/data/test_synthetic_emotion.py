"""Tests of the synthetic emotion corpora (jaxpara.data.corpora.synthetic.emotion)."""

import glob
import os

import numpy as np
import pytest
import soundfile as sf

from jaxpara.data.corpora.synthetic import _voice, emotion

WRITERS = {
    "iemocap": lambda root, seed: emotion.write_iemocap(
        root, seed=seed, num_speakers=2, utterances_per_speaker=2
    ),
    "fau_aibo": lambda root, seed: emotion.write_fau_aibo(
        root, seed=seed, num_speakers=2, utterances_per_speaker=2
    ),
    "manifest": lambda root, seed: emotion.write_manifest(
        root, seed=seed, num_speakers=1, utterances_per_speaker=2
    ),
    "emodb": lambda root, seed: emotion.write_emodb(
        root, seed=seed, num_speakers=2, utterances_per_speaker=2
    ),
}


def _wavs(root):
    return sorted(glob.glob(os.path.join(root, "**", "*.wav"), recursive=True))


def test_default_allocations():
    assert emotion.iemocap_codes(40) == {
        "neu": 9,
        "hap": 6,
        "exc": 3,
        "sad": 9,
        "ang": 9,
        "fru": 2,
        "xxx": 2,
    }
    assert [emotion.improvised_count(c) for c in (9, 6, 3, 2)] == [7, 5, 2, 2]
    assert emotion.fau_codes(30) == {"A": 5, "E": 6, "N": 10, "P": 4, "R": 5}
    assert emotion.manifest_labels(20) == {
        "neutral": 5,
        "happy": 5,
        "sad": 5,
        "angry": 5,
    }
    assert emotion.manifest_labels(6) == {
        "neutral": 2,
        "happy": 2,
        "sad": 1,
        "angry": 1,
    }
    assert emotion.emodb_codes(40) == {
        "W": 6,
        "L": 6,
        "E": 6,
        "A": 6,
        "F": 6,
        "T": 5,
        "N": 5,
    }
    splits = [emotion.manifest_split(i, 6) for i in range(6)]
    assert splits == ["train"] * 4 + ["validation", "test"]


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_deterministic_from_seed(tmp_path, name):
    for folder, seed in (("a", 0), ("b", 0), ("c", 1)):
        WRITERS[name](str(tmp_path / folder), seed)
    files = [_wavs(str(tmp_path / folder)) for folder in "abc"]
    rel = [
        [os.path.relpath(p, str(tmp_path / f)) for p in fs]
        for f, fs in zip("abc", files)
    ]
    assert rel[0] == rel[1] and len(rel[0]) == (2 if name == "manifest" else 4)
    with open(files[0][0], "rb") as a, open(files[1][0], "rb") as b:
        assert a.read() == b.read()
    index = rel[2].index(rel[0][0]) if rel[0][0] in rel[2] else 0
    with open(files[0][0], "rb") as a, open(files[2][index], "rb") as c:
        assert a.read() != c.read()


def test_audio_sanity(tmp_path):
    emotion.write_manifest(
        str(tmp_path), seed=5, num_speakers=2, utterances_per_speaker=4
    )
    wavs = _wavs(str(tmp_path))
    assert len(wavs) == 8
    for path in wavs:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        x, _ = sf.read(path)
        assert x.ndim == 1 and np.all(np.isfinite(x))
        assert 1.5 <= x.size / 16000 <= 4.0
        assert np.max(np.abs(x)) <= 1.0
        # 100 ms windows: the leading and trailing ones hold only background
        # noise (snr_db = 20 below the active speech level).
        windows = x[: x.size // 1600 * 1600].reshape(-1, 1600)
        window_rms = np.sqrt(np.mean(windows**2, axis=1))
        assert window_rms[0] < 0.2 * window_rms.max(), path
        assert window_rms[-1] < 0.2 * window_rms.max(), path


def test_difficulty_one_erases_the_style():
    a = _voice.sample_style(np.random.default_rng(0), "angry", 1.0)
    b = _voice.sample_style(np.random.default_rng(0), "sad", 1.0)
    assert a == b
    c = _voice.sample_style(np.random.default_rng(0), "angry", 0.0)
    d = _voice.sample_style(np.random.default_rng(0), "sad", 0.0)
    assert c["rate"] > d["rate"] + 0.5 and c["dyn_db"] > d["dyn_db"] + 5


def test_emotion_changes_energy_dynamics():
    """At difficulty 0, angry speech changes level faster than sad speech."""
    speaker = _voice.random_speaker(np.random.default_rng(0), "m")

    def frame_to_frame_db(style):
        out = []
        for i in range(3):
            rng = np.random.default_rng(i)
            x = _voice.synthesize(rng, speaker, _voice.sample_style(rng, style, 0.0))
            frames = x[: x.size // 160 * 160].reshape(-1, 160)
            db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
            active = db[db > np.percentile(db, 95) - 20]
            out.append(np.mean(np.abs(np.diff(active))))
        return np.mean(out)

    assert frame_to_frame_db("angry") > frame_to_frame_db("sad") + 0.8


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="even"):
        emotion.write_iemocap(str(tmp_path / "a"), num_speakers=3)
    with pytest.raises(ValueError, match="difficulty"):
        emotion.write_fau_aibo(str(tmp_path / "b"), difficulty=1.5)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        emotion.write_manifest(str(tmp_path / "c"))
