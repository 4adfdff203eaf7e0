"""Synthetic CCS-layout cough corpus: layout, counts, signal properties, determinism."""

import collections
import csv
import os

import numpy as np
import pytest
import soundfile as sf

from jaxpara.data.corpora import ccs
from jaxpara.data.corpora.synthetic import cough

NUM_RECORDINGS = 25


@pytest.fixture(scope="module")
def root(write_synthetic):
    return write_synthetic(cough.write_ccs, seed=0, num_recordings=NUM_RECORDINGS)


def _parse(root):
    """Independent parse of the csv files: partition -> [(filename, label)]."""
    out = {}
    for partition in ("train", "devel", "test"):
        with open(os.path.join(root, "lab", f"{partition}.csv")) as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["filename", "label"]
        out[partition] = [tuple(r) for r in rows[1:]]
    return out


def test_counts_are_stratified_30_percent_positive(root):
    parts = _parse(root)
    per_cell = collections.Counter(
        (p, label) for p, rows in parts.items() for _, label in rows
    )
    # 25 files: round(0.3 * 25) = 8 positive, 17 negative; each class split
    # 40/32/28 by largest remainder: negative 6.8/5.44/4.76 -> 7/5/5,
    # positive 3.2/2.56/2.24 -> 3/3/2.
    assert per_cell == {
        ("train", "negative"): 7,
        ("devel", "negative"): 5,
        ("test", "negative"): 5,
        ("train", "positive"): 3,
        ("devel", "positive"): 3,
        ("test", "positive"): 2,
    }
    assert sorted(os.listdir(os.path.join(root, "wav"))) == sorted(
        f for rows in parts.values() for f, _ in rows
    )
    assert [f for f, _ in parts["devel"]] == [f"devel_{i:03d}.wav" for i in range(1, 9)]

    corpus = ccs.read(root)
    assert corpus.counts() == {"negative": 17, "positive": 8}
    assert corpus.counts("split") == {"train": 10, "validation": 8, "test": 7}
    assert [(e.utterance_id + ".wav", e.label) for e in corpus.examples] == [
        row for p in ("train", "devel", "test") for row in parts[p]
    ]
    assert corpus.warnings == [ccs.NO_SPEAKER_NOTE]


def test_audio_format_and_bursts(root):
    for name in sorted(os.listdir(os.path.join(root, "wav"))):
        info = sf.info(os.path.join(root, "wav", name))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 1.0 <= info.duration <= 4.0
    for seed in range(20):
        c = cough.synthesize_cough(np.random.default_rng(seed), positive=bool(seed % 2))
        assert 1 <= len(c.bursts) <= 3
        assert all(0.15 <= b.end - b.onset <= 0.40 for b in c.bursts)
        assert all(b.end < a.onset for b, a in zip(c.bursts, c.bursts[1:]))
        assert (
            0.0 < c.bursts[0].onset and c.bursts[-1].end < c.audio.size / c.sample_rate
        )
        assert 0.3 <= np.abs(c.audio).max() <= 0.9


def _envelope(x, sr, window_s=0.003):
    w = int(window_s * sr)
    return np.sqrt(np.convolve(x.astype(np.float64) ** 2, np.ones(w) / w, mode="same"))


def test_burst_onsets_have_a_sharp_attack():
    rises = []
    for seed in range(30):
        c = cough.synthesize_cough(np.random.default_rng(seed), positive=bool(seed % 2))
        sr = c.sample_rate
        env = _envelope(c.audio, sr)
        for b in c.bursts:
            assert cough.ATTACK_MIN_S <= b.attack <= cough.ATTACK_MAX_S
            i0 = int(round(b.onset * sr))
            seg = env[i0 - int(0.01 * sr) : i0 + int(0.1 * sr)]
            peak = seg.max()
            # Before the onset only background noise: well below the burst.
            assert env[i0 - int(0.01 * sr) : i0 - int(0.003 * sr)].max() < 0.15 * peak
            # 10% -> 50% of the burst's peak envelope within 8 ms.
            rise = (np.argmax(seg >= 0.5 * peak) - np.argmax(seg >= 0.1 * peak)) / sr
            assert 0 < rise < 0.008, (seed, b)
            rises.append(
                (np.argmax(seg >= 0.9 * peak) - np.argmax(seg >= 0.1 * peak)) / sr
            )
    assert len(rises) >= 40
    assert np.median(rises) < 0.008  # 10% -> 90%, typically.


def test_positive_coughs_are_darker():
    centroids = collections.defaultdict(list)
    for difficulty in (0.0, 1.0):
        for seed in range(12):
            for positive in (False, True):
                c = cough.synthesize_cough(
                    np.random.default_rng(seed),
                    positive=positive,
                    difficulty=difficulty,
                )
                power = np.abs(np.fft.rfft(c.audio, n=2**16)) ** 2  # >= 4 s.
                freqs = np.fft.rfftfreq(2**16, 1 / c.sample_rate)
                centroids[difficulty, positive].append(
                    (power * freqs).sum() / power.sum()
                )
    easy_neg, easy_pos = np.mean(centroids[0.0, False]), np.mean(centroids[0.0, True])
    hard_neg, hard_pos = np.mean(centroids[1.0, False]), np.mean(centroids[1.0, True])
    assert easy_pos < 0.6 * easy_neg
    # At difficulty 1 the classes share one distribution (same seeds -> same files).
    assert hard_pos == pytest.approx(hard_neg)


def test_same_seed_same_bytes_other_seed_other_audio(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        cough.write_ccs(str(tmp_path / name), seed=seed, num_recordings=4)
    files = [os.path.join("lab", f) for f in os.listdir(tmp_path / "a" / "lab")]
    files += [os.path.join("wav", f) for f in os.listdir(tmp_path / "a" / "wav")]
    assert len(files) == 3 + 4
    for sub in files:
        assert (tmp_path / "a" / sub).read_bytes() == (
            tmp_path / "b" / sub
        ).read_bytes(), sub
    wav = os.path.join("wav", "train_001.wav")
    assert (tmp_path / "a" / wav).read_bytes() != (tmp_path / "c" / wav).read_bytes()
    cough.write_ccs(str(tmp_path / "a"), seed=5, num_recordings=4)  # Idempotent.
    with pytest.raises(FileExistsError, match="would not write"):
        cough.write_ccs(str(tmp_path / "a"), seed=5, num_recordings=3)


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_recordings"):
        cough.write_ccs(str(tmp_path), num_recordings=2)
    with pytest.raises(ValueError, match="difficulty"):
        cough.write_ccs(str(tmp_path), difficulty=-0.1)
