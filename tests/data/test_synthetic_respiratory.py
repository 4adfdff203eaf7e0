"""Synthetic ICBHI-layout corpus: layout, counts, signal properties, determinism."""

import collections
import os

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from jaxpara.data.corpora import icbhi
from jaxpara.data.corpora.synthetic import _noise, respiratory

NUM_RECORDINGS = 12
FLAGS_TO_LABEL = {
    ("0", "0"): "normal",
    ("1", "0"): "crackle",
    ("0", "1"): "wheeze",
    ("1", "1"): "both",
}


@pytest.fixture(scope="module")
def root(write_synthetic):
    return write_synthetic(
        respiratory.write_icbhi, seed=0, num_recordings=NUM_RECORDINGS
    )


def _parse(root):
    """Independent parse of the written files: per-cycle (recording, label), splits."""
    database = os.path.join(root, icbhi.DATABASE_DIR)
    cycles = []
    for name in sorted(os.listdir(database)):
        if name.endswith(".txt"):
            for line in open(os.path.join(database, name)):
                start, end, crackle, wheeze = line.rstrip("\n").split("\t")
                cycles.append(
                    (
                        name[:-4],
                        float(start),
                        float(end),
                        FLAGS_TO_LABEL[crackle, wheeze],
                    )
                )
    with open(os.path.join(root, icbhi.SPLIT_FILE)) as f:
        split_of = dict(line.split() for line in f)
    return cycles, split_of


def test_layout_and_counts_match_the_files(root):
    database = os.path.join(root, icbhi.DATABASE_DIR)
    wavs = sorted(f[:-4] for f in os.listdir(database) if f.endswith(".wav"))
    txts = sorted(f[:-4] for f in os.listdir(database) if f.endswith(".txt"))
    assert len(wavs) == NUM_RECORDINGS and wavs == txts
    cycles, split_of = _parse(root)
    assert sorted(split_of) == wavs
    patients = collections.Counter(rec[:3] for rec in wavs)
    assert sorted(patients) == ["101", "102", "103", "104"]  # round(12 / 3).
    assert all(1 <= k <= 4 for k in patients.values())

    corpus = icbhi.read(root)
    assert corpus.warnings == [] and corpus.excluded == []
    assert len(corpus.examples) == len(cycles)
    assert corpus.counts() == dict(collections.Counter(c[3] for c in cycles))
    assert corpus.counts("split") == dict(
        collections.Counter(split_of[c[0]] for c in cycles)
    )
    assert corpus.counts("speaker") == dict(
        collections.Counter(c[0][:3] for c in cycles)
    )
    assert [
        (e.attrs["recording"], e.start, e.end, e.label) for e in corpus.examples
    ] == cycles
    # Every class occurs (seed 0), normal is the majority.
    counts = corpus.counts()
    assert set(counts) == set(icbhi.LABELS)
    assert counts["normal"] == max(counts.values())


def test_split_is_patient_disjoint_about_60_40(root):
    _, split_of = _parse(root)
    halves = collections.defaultdict(set)
    for rec, split in split_of.items():
        halves[split].add(rec[:3])
    assert set(halves) == {"train", "test"}
    assert not halves["train"] & halves["test"]
    assert (len(halves["train"]), len(halves["test"])) == (2, 2)  # round(0.6 * 4).


def test_names_rates_and_durations(root):
    database = os.path.join(root, icbhi.DATABASE_DIR)
    cycles, _ = _parse(root)
    rates = collections.Counter()
    for name in sorted(os.listdir(database)):
        if not name.endswith(".wav"):
            continue
        pid, rec, loc, mode, device = name[:-4].split("_")
        assert pid.isdigit() and rec.endswith("b1") and loc in respiratory.LOCATIONS
        assert mode in ("sc", "mc") and device in respiratory.DEVICES
        info = sf.info(os.path.join(database, name))
        assert info.samplerate in respiratory.DEVICE_RATES[device]
        assert info.subtype == "PCM_16" and info.channels == 1
        assert 10.0 <= info.duration <= 20.0
        rates[info.samplerate] += 1
        own = [c for c in cycles if c[0] == name[:-4]]
        assert own and own[-1][2] <= info.duration
        assert all(1.0 <= end - start <= 6.0 for _, start, end, _ in own)
        assert all(a[2] == b[1] for a, b in zip(own, own[1:]))  # Consecutive.
    assert rates[4000] > 0 and rates[44100] > 0


def test_both_4k_and_44k_files_always_occur():
    for num_recordings in (2, 3, 5):
        for seed in range(40):
            patients = respiratory._plan_patients(
                _noise.rng_for(seed, 0), num_recordings
            )
            rates = {rate for p in patients for _, rate in p.recordings}
            assert {4000, 44100} <= rates, (num_recordings, seed)
            assert sum(len(p.recordings) for p in patients) == num_recordings


def test_same_seed_same_bytes_other_seed_other_audio(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        respiratory.write_icbhi(str(tmp_path / name), seed=seed, num_recordings=2)
    for sub in (
        icbhi.SPLIT_FILE,
        *(
            os.path.join(icbhi.DATABASE_DIR, f)
            for f in os.listdir(tmp_path / "a" / icbhi.DATABASE_DIR)
        ),
    ):
        assert (tmp_path / "a" / sub).read_bytes() == (
            tmp_path / "b" / sub
        ).read_bytes(), sub
    wav_a = sorted((tmp_path / "a" / icbhi.DATABASE_DIR).glob("*.wav"))[0]
    wav_c = sorted((tmp_path / "c" / icbhi.DATABASE_DIR).glob("*.wav"))[0]
    assert wav_a.read_bytes() != wav_c.read_bytes()
    # A repeat into the same folder is idempotent; a different corpus is refused.
    respiratory.write_icbhi(str(tmp_path / "a"), seed=3, num_recordings=2)
    with pytest.raises(FileExistsError, match="would not write"):
        respiratory.write_icbhi(str(tmp_path / "a"), seed=4, num_recordings=2)


def _easy_and_silent(class_probs, sample_rate=4000, seed=0):
    """The same recording at difficulty 0 and 1: they differ by the adventitious sounds."""
    kwargs = dict(sample_rate=sample_rate, class_probs=class_probs)
    easy = respiratory.synthesize_recording(
        np.random.default_rng(seed), difficulty=0.0, **kwargs
    )
    silent = respiratory.synthesize_recording(
        np.random.default_rng(seed), difficulty=1.0, **kwargs
    )
    assert easy.cycles == silent.cycles
    return easy, silent, easy.audio.astype(np.float64) - silent.audio


@pytest.mark.parametrize("sample_rate", [4000, 44100])
def test_crackles_are_short_transients(sample_rate):
    easy, _, crackles_only = _easy_and_silent((0.0, 1.0, 0.0, 0.0), sample_rate)
    crackles = [e for e in easy.events if e.kind == "crackle"]
    assert {e.kind for e in easy.events} == {"crackle"}
    assert len(crackles) >= 3 * len(easy.cycles)  # Several per cycle at difficulty 0.
    assert all(0.0025 < e.end - e.start < 0.020 for e in crackles)
    assert all(
        easy.cycles[e.cycle].start <= e.start < e.end <= easy.cycles[e.cycle].end
        for e in crackles
    )
    # Measured on the audio: every sample the crackles change lies within a
    # listed event, and each burst that comes from one crackle lasts < 20 ms.
    active = np.abs(crackles_only) > 1e-4 * np.abs(crackles_only).max()
    windows = [
        (round(e.start * sample_rate), round(e.end * sample_rate)) for e in crackles
    ]
    inside = np.zeros_like(active)
    for a, b in windows:
        inside[a:b] = True
    assert active.any() and not (active & ~inside).any()
    edges = np.diff(np.concatenate([[0], active.astype(int), [0]]))
    runs = list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))
    single = [
        b - a for a, b in runs if sum(1 for s, e in windows if s < b and a < e) == 1
    ]
    assert len(single) >= 0.8 * len(runs)
    assert max(single) / sample_rate < 0.020


def test_difficulty_one_silences_adventitious_sounds():
    easy, silent, adventitious = _easy_and_silent((0.0, 0.0, 0.0, 1.0))
    assert {e.kind for e in easy.events} == {"crackle", "wheeze"}
    assert np.sqrt(np.mean(adventitious**2)) > 0.1 * np.sqrt(
        np.mean(silent.audio.astype(np.float64) ** 2)
    )
    # At difficulty 1 the same events are drawn but rendered with zero
    # amplitude: the two recordings differ by exactly the adventitious sounds.
    assert len(silent.events) > 0 and np.abs(adventitious).max() > 0.1


def _band_psd(x, sr):
    freqs, psd = signal.welch(x, fs=sr, nperseg=int(0.1 * sr))
    return psd[(freqs >= 100.0) & (freqs <= 1000.0)]


@pytest.mark.parametrize("sample_rate, seeds", [(4000, 6), (44100, 3)])
def test_wheeze_cycles_carry_more_100_1000_hz_energy(sample_rate, seeds):
    ratios = []
    for seed in range(seeds):
        rec = respiratory.synthesize_recording(
            np.random.default_rng(seed),
            sample_rate=sample_rate,
            class_probs=(0.5, 0.0, 0.5, 0.0),
        )
        peak = collections.defaultdict(list)
        energy = collections.defaultdict(list)
        for c in rec.cycles:
            band = _band_psd(
                rec.audio[int(c.start * sample_rate) : int(c.end * sample_rate)],
                sample_rate,
            )
            peak[c.label].append(band.max() / np.median(band))
            energy[c.label].append(band.sum())
        assert set(peak) == {"normal", "wheeze"}, seed
        # Within each recording: every wheeze cycle shows a spectral line that
        # stands out more than anything in a normal cycle, and carries more
        # 100-1000 Hz energy on average.
        assert min(peak["wheeze"]) > 2.0 * max(peak["normal"]), seed
        ratios.append(np.mean(energy["wheeze"]) / np.mean(energy["normal"]))
        assert ratios[-1] > 1.15, seed
        wheezes = [e for e in rec.events if e.kind == "wheeze"]
        assert all(
            e.end - e.start > 0.1 and 100.0 <= e.freq_hz <= 1000.0 for e in wheezes
        )
    assert np.mean(ratios) > 1.5


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_recordings"):
        respiratory.write_icbhi(str(tmp_path), num_recordings=1)
    with pytest.raises(ValueError, match="difficulty"):
        respiratory.write_icbhi(str(tmp_path), difficulty=1.5)
