"""Synthetic cough corpus written in the ComParE 2021 CCS layout (card C1).

`write_ccs` writes `wav/<partition>_<nnn>.wav` (16 kHz, 1-4 s) and
`lab/{train,devel,test}.csv` (`filename,label`), so
`jaxpara.data.corpora.ccs.read` parses it like the real corpus. Everything is a
deterministic function of the seed.

The sound model, per file: leading silence, background noise at `snr_db` below
the cough sound, and 1-3 cough bursts of 150-400 ms. A burst is an explosive
phase (low-passed noise, 2-6 ms linear attack, 15-40 ms exponential decay)
followed, in 70% of the bursts, by a voiced-ish tail (glottal pulse train at
120-350 Hz through two resonances, plus aspiration noise) that decays over the
rest of the burst.

The class lives in a latent `z ~ N(+-sep, 1)` per file (positive: +), with
`sep = 2.5 * (1 - difficulty)`: larger z gives a darker explosive phase (lower
low-pass edge), lower resonances (more low-frequency energy) and a wetter
tail (irregular 15-40 Hz amplitude modulation). At difficulty 0 the classes are
nearly separable, at 1 they are identical in distribution.

About 30% of the files are positive; partitions train / devel / test take about
40 / 32 / 28% of each class (CCS: 286 / 231 / 208 files).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from scipy import signal

from jaxpara.data.corpora.ccs import LABELS
from jaxpara.data.corpora.synthetic import _noise

SAMPLE_RATE = 16000
POSITIVE_FRACTION = 0.3
# Partition (csv / file-name prefix) and its share of each class.
PARTITION_FRACTIONS = (("train", 0.40), ("devel", 0.32), ("test", 0.28))
BURST_MIN_S, BURST_MAX_S = 0.15, 0.40
ATTACK_MIN_S, ATTACK_MAX_S = 0.002, 0.006


@dataclasses.dataclass(frozen=True)
class Burst:
    """One cough burst: onset and end in seconds, attack (rise) time."""

    onset: float
    end: float
    attack: float
    voiced_tail: bool


@dataclasses.dataclass(frozen=True)
class CoughFile:
    """A synthesized file: `audio` is `[num_samples]` float32 in [-1, 1]."""

    audio: np.ndarray
    sample_rate: int
    label: str
    latent: float
    bursts: tuple[Burst, ...]


def _resonator(
    freq_hz: float, bandwidth_hz: float, sr: int
) -> tuple[np.ndarray, np.ndarray]:
    """2-pole resonator (b, a) with unit gain at its centre frequency."""
    r = np.exp(-np.pi * bandwidth_hz / sr)
    theta = 2 * np.pi * freq_hz / sr
    a = np.array([1.0, -2 * r * np.cos(theta), r * r])
    b = np.array([abs(np.polyval(a[::-1], np.exp(1j * theta)))])  # |A(e^jw)|.
    return b, a


def _voiced_tail(rng, z: float, t: np.ndarray, sr: int, cutoff: float) -> np.ndarray:
    """The voiced-ish second phase of a burst: pulses through 2 resonances."""
    n = t.size
    period = sr / rng.uniform(120.0, 350.0)  # f0.
    pulses = np.zeros(n)
    k = rng.uniform(0, period)
    while k < n:
        pulses[int(k)] = 1.0
        k += period * rng.uniform(0.97, 1.03)  # Jitter.
    shift = -0.4 * z + rng.normal(0, 0.15)
    resonance = float(np.clip(550.0 * 2.0**shift, 200.0, 1500.0))
    voiced = np.zeros(n)
    for freq, bw, weight in ((resonance, 120.0, 1.0), (2.6 * resonance, 250.0, 0.5)):
        if freq < 0.45 * sr:
            voiced += weight * signal.lfilter(*_resonator(freq, bw, sr), pulses)
    voiced /= max(_noise.rms(voiced), 1e-12)
    voiced += 0.5 * _noise.filtered_noise(rng, n, sr, 80.0, cutoff, order=2)
    # Wet (positive-leaning) tails rattle: irregular 15-40 Hz modulation.
    wetness = 1.0 / (1.0 + np.exp(-z))
    rattle = _noise.filtered_noise(rng, n, sr, 15.0, 40.0, order=2)
    voiced *= 1.0 + 0.8 * wetness * np.clip(rattle, -1.25, 1.25)
    start = rng.uniform(0.03, 0.06)
    tau = (t[-1] + 1 / sr - start) / 3
    ts = np.clip(t - start, 0.0, None)
    envelope = np.where(t < start, 0.0, (1 - np.exp(-ts / 0.015)) * np.exp(-ts / tau))
    return rng.uniform(0.25, 0.5) * voiced * envelope


def _burst(rng: np.random.Generator, z: float, sr: int) -> tuple[np.ndarray, Burst]:
    """One cough burst starting at sample 0; `Burst` times relative to it."""
    n = int(round(rng.uniform(BURST_MIN_S, BURST_MAX_S) * sr))
    t = np.arange(n) / sr
    attack = rng.uniform(ATTACK_MIN_S, ATTACK_MAX_S)
    decay = rng.uniform(0.015, 0.040)
    envelope = np.where(t < attack, t / attack, np.exp(-(t - attack) / decay))
    # Explosive phase: low-passed noise, darker for larger z.
    shift = -0.5 * z + rng.normal(0, 0.2)
    cutoff = float(np.clip(2500.0 * 2.0**shift, 500.0, 7000.0))
    burst = _noise.filtered_noise(rng, n, sr, 80.0, cutoff, order=2) * envelope
    voiced_tail = bool(rng.random() < 0.7)
    if voiced_tail:
        burst += _voiced_tail(rng, z, t, sr, cutoff)
    burst[-int(0.01 * sr) :] *= np.linspace(1.0, 0.0, int(0.01 * sr))  # Fade out.
    return burst, Burst(0.0, n / sr, attack, voiced_tail)


def synthesize_cough(
    rng: np.random.Generator,
    *,
    positive: bool,
    difficulty: float = 0.5,
    snr_db: float = 20.0,
) -> CoughFile:
    """Synthesizes one 1-4 s cough recording at 16 kHz.

    Args:
      rng: random generator (the file is a function of its state).
      positive: class of the file.
      difficulty: 0 = nearly separable classes .. 1 = identical distributions.
      snr_db: RMS of the cough bursts over background-noise RMS, in dB.

    Returns:
      The audio, label, latent class variable and burst list.
    """
    sr = SAMPLE_RATE
    separation = 2.5 * (1.0 - difficulty)
    z = float(rng.normal(separation if positive else -separation, 1.0))
    duration = round(rng.uniform(1.0, 4.0), 2)
    n = int(round(duration * sr))
    cough = np.zeros(n)
    bursts: list[Burst] = []
    t = rng.uniform(0.1, 0.5)
    for _ in range(int(rng.integers(1, 4))):
        wave, burst = _burst(rng, z, sr)
        if t + burst.end > duration - 0.05:
            break
        i0 = int(round(t * sr))
        cough[i0 : i0 + wave.size] += wave * rng.uniform(0.6, 1.0)
        bursts.append(
            dataclasses.replace(burst, onset=i0 / sr, end=i0 / sr + burst.end)
        )
        t = bursts[-1].end + rng.uniform(0.1, 0.4)
    active = np.concatenate(
        [cough[int(b.onset * sr) : int(b.end * sr)] for b in bursts]
    )
    noise = _noise.pink_noise(rng, n) * _noise.rms(active) / 10 ** (snr_db / 20)
    audio = cough + noise
    audio *= rng.uniform(0.3, 0.9) / float(np.max(np.abs(audio)))
    label = LABELS[int(positive)]
    return CoughFile(audio.astype(np.float32), sr, label, z, tuple(bursts))


def _stratified_counts(n: int) -> list[tuple[str, int]]:
    """Files per (partition, label): largest-remainder split of each class."""
    num_positive = int(round(POSITIVE_FRACTION * n))
    counts = []
    for label, size in ((LABELS[0], n - num_positive), (LABELS[1], num_positive)):
        shares = [size * f for _, f in PARTITION_FRACTIONS]
        floors = [int(s) for s in shares]
        by_remainder = sorted(range(len(shares)), key=lambda i: floors[i] - shares[i])
        for i in by_remainder[: size - sum(floors)]:
            floors[i] += 1
        counts.extend(((p, label), k) for (p, _), k in zip(PARTITION_FRACTIONS, floors))
    return counts


def write_ccs(
    root: str,
    *,
    seed: int = 0,
    num_recordings: int = 60,
    difficulty: float = 0.5,
    snr_db: float = 20.0,
) -> None:
    """Writes a synthetic cough corpus in the CCS layout under `root`.

    Files are `wav/<partition>_<nnn>.wav` (numbered 001.. per partition, labels
    shuffled within it) with `lab/<partition>.csv`. Repeating a call with the
    same arguments rewrites identical bytes.

    Args:
      root: output folder; `wav/` and `lab/` are created inside it.
      seed: everything is a deterministic function of it.
      num_recordings: number of wav files (>= 3).
      difficulty: 0 = nearly separable .. 1 = chance.
      snr_db: cough bursts over background noise, dB.

    Raises:
      ValueError: num_recordings < 3 or difficulty outside [0, 1].
      FileExistsError: `wav/` holds wav files this call would not write.
    """
    _noise.check_size("num_recordings", num_recordings, 3, difficulty=difficulty)
    plan: dict[str, list[str]] = {p: [] for p, _ in PARTITION_FRACTIONS}
    for (partition, label), k in _stratified_counts(num_recordings):
        plan[partition].extend([label] * k)
    order_rng = _noise.rng_for(seed, 0)
    for partition in plan:
        plan[partition] = [
            plan[partition][i] for i in order_rng.permutation(len(plan[partition]))
        ]

    wav_dir = os.path.join(root, "wav")
    lab_dir = os.path.join(root, "lab")
    planned = [
        f"{p}_{i + 1:03d}.wav" for p, labels in plan.items() for i in range(len(labels))
    ]
    _noise.check_target(wav_dir, planned, (".wav",))
    os.makedirs(wav_dir, exist_ok=True)
    os.makedirs(lab_dir, exist_ok=True)

    index = 0
    for partition, labels in plan.items():
        rows = ["filename,label"]
        for i, label in enumerate(labels):
            filename = f"{partition}_{i + 1:03d}.wav"
            cough = synthesize_cough(
                _noise.rng_for(seed, 1, index),
                positive=label == LABELS[1],
                difficulty=difficulty,
                snr_db=snr_db,
            )
            index += 1
            _noise.write_pcm16(
                os.path.join(wav_dir, filename), cough.audio, cough.sample_rate
            )
            rows.append(f"{filename},{label}")
        with open(
            os.path.join(lab_dir, partition + ".csv"), "w", encoding="utf-8"
        ) as f:
            f.write("\n".join(rows) + "\n")
