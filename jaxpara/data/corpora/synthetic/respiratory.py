"""Synthetic respiratory-sound corpus written in the ICBHI 2017 layout (card C2).

`write_icbhi` writes `ICBHI_final_database/<recording>.wav/.txt` and
`ICBHI_challenge_train_test.txt`, so `jaxpara.data.corpora.icbhi.read` parses it
like the real database. Everything is a deterministic function of the seed.

The sound model, per recording:
  * breathing: consecutive cycles of 1-6 s, each an inhalation (louder) and an
    exhalation envelope over band-limited noise (about 100-1000 Hz);
  * crackles (crackle / both cycles): several short explosive transients,
    damped sinusoids of 3-15 ms (fine crackles short and high, coarse long and
    low), mostly inspiratory;
  * wheezes (wheeze / both cycles): tonal components of 150-800 Hz with a
    slight glide (and a 2nd harmonic when it stays below 1 kHz), 120-600 ms,
    mostly expiratory;
  * heart sounds (S1/S2 thumps below 100 Hz), device noise (hum, pink, brown or
    white) at `snr_db` below the breath sound, and a per-patient gain.

`difficulty` in [0, 1] sets `strength = 1 - difficulty`: adventitious sounds
get weaker (amplitude proportional to strength), crackles rarer and wheezes
shorter; at 1 they are silent and the labels cannot be learnt.

Cycle labels follow ICBHI's imbalance (3642 / 1864 / 886 / 506 cycles), with a
per-patient variation; sample rates follow the device (4 kHz Litt3200, 44.1 kHz
Meditron and AKGC417L, 4 or 10 kHz LittC2SE), and both 4 kHz and 44.1 kHz files
always occur. About 60% of the patients are 'train' in the split file, the rest
'test', patient-disjoint.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from scipy.signal import windows

from jaxpara.data.corpora.icbhi import DATABASE_DIR, LABELS, SPLIT_FILE
from jaxpara.data.corpora.synthetic import _noise

# ICBHI 2017 cycle counts 3642 / 1864 / 886 / 506 of 6898, in LABELS order.
CLASS_PROBS = (0.528, 0.270, 0.128, 0.074)
DEVICES = ("Meditron", "LittC2SE", "Litt3200", "AKGC417L")
DEVICE_PROBS = (0.35, 0.15, 0.15, 0.35)
DEVICE_RATES = {
    "Meditron": (44100,),
    "LittC2SE": (4000, 10000),
    "Litt3200": (4000,),
    "AKGC417L": (44100,),
}
DEVICE_NOISE = {
    "Meditron": "hum",
    "LittC2SE": "white",
    "Litt3200": "brown",
    "AKGC417L": "pink",
}
LOCATIONS = ("Al", "Ar", "Pl", "Pr", "Ll", "Lr", "Tc")
TRAIN_FRACTION = 0.6
FIRST_PATIENT = 101
MAX_RECORDINGS_PER_PATIENT = 4
BREATH_RMS = 0.05  # Breath-noise RMS at the peak of an inhalation (before gain).
CRACKLE_MAX_S = 0.015  # Crackles last 3-15 ms (< 20 ms by construction).
MAX_CRACKLES = 10  # Per cycle (at difficulty 0; fewer as it grows).
WHEEZE_MIN_S = 0.12  # Wheezes last at least 120 ms (> 100 ms).


@dataclasses.dataclass(frozen=True)
class Cycle:
    """One annotated respiratory cycle, times in seconds."""

    start: float
    end: float
    crackle: bool
    wheeze: bool

    @property
    def label(self) -> str:
        return LABELS[int(self.crackle) + 2 * int(self.wheeze)]


@dataclasses.dataclass(frozen=True)
class Event:
    """One adventitious sound: kind 'crackle' | 'wheeze', seconds, cycle index."""

    kind: str
    start: float
    end: float
    freq_hz: float
    cycle: int


@dataclasses.dataclass(frozen=True)
class Recording:
    """A synthesized recording: `audio` is `[num_samples]` float32 in [-1, 1]."""

    audio: np.ndarray
    sample_rate: int
    cycles: tuple[Cycle, ...]
    events: tuple[Event, ...]


@dataclasses.dataclass(frozen=True)
class _Patient:
    pid: str
    device: str
    gain: float
    heart_rate: float
    mean_cycle_s: float
    class_probs: tuple[float, ...]
    recordings: tuple[tuple[str, int], ...]  # (name, sample rate)


def _plan_cycles(rng, duration_s, mean_cycle_s, class_probs) -> list[Cycle]:
    cycles = []
    t = round(rng.uniform(0.05, 0.5), 3)
    while True:
        length = round(
            float(np.clip(rng.normal(mean_cycle_s, 0.25 * mean_cycle_s), 1.0, 6.0)), 3
        )
        if t + length > duration_s - 0.02:
            return cycles
        k = int(rng.choice(len(LABELS), p=class_probs))
        cycles.append(Cycle(t, round(t + length, 3), bool(k & 1), bool(k & 2)))
        t = round(t + length, 3)


def _background(rng, kind: str, n: int, sr: int) -> np.ndarray:
    """Unit-RMS device noise of the given kind."""
    if kind == "pink":
        return _noise.pink_noise(rng, n)
    if kind == "brown":
        return _noise.filtered_noise(rng, n, sr, high_hz=300.0, order=2)
    x = _noise.filtered_noise(rng, n, sr, low_hz=20.0)
    if kind == "hum":
        # Mains hum and 2 harmonics; 1 s holds whole periods, so tile it.
        t = np.arange(sr) / sr
        mains = rng.choice([50.0, 60.0])
        hum = sum(
            np.sin(2 * np.pi * h * mains * t + rng.uniform(0, 2 * np.pi)) / h
            for h in (1, 2, 3)
        )
        x = x + 2.0 * np.resize(hum, n)
        x /= _noise.rms(x)
    return x


def _add_crackles(rng, out, sr, cycle, inhale, exhale, strength) -> list[Event]:
    """Adds a crackle cycle's transients to `out`; returns their events."""
    count = max(1, int(round(rng.uniform(3, 10) * (0.3 + 0.7 * strength))))
    events = []
    # Always draw MAX_CRACKLES candidates, so that the random stream (and the
    # rest of the recording) does not depend on difficulty.
    for i in range(MAX_CRACKLES):
        dur = rng.uniform(0.003, CRACKLE_MAX_S)
        # 1.5-3 periods per crackle: fine crackles short and high, coarse low.
        freq = min(rng.uniform(1.5, 3.0) / dur, 0.35 * sr)
        lo, hi = inhale if rng.random() < 0.7 else exhale
        t0 = rng.uniform(lo, max(lo, hi - dur))
        amp = BREATH_RMS * rng.uniform(3.0, 6.0) * strength * rng.choice([-1, 1])
        if i >= count:
            continue
        wave = _noise.damped_sine(sr, freq, dur, dur / 4)
        k0 = int(round(t0 * sr))
        _noise.add_at(out, k0, amp * wave)
        events.append(Event("crackle", k0 / sr, (k0 + wave.size) / sr, freq, cycle))
    return events


def _add_wheezes(rng, out, sr, cycle, bounds, exhale, strength) -> list[Event]:
    """Adds a wheeze cycle's tonal components to `out`; returns their events."""
    count = 1 if rng.random() < 0.7 else 2
    events = []
    for i in range(2):  # Both candidates drawn whatever the count (see above).
        dur = max(WHEEZE_MIN_S, rng.uniform(0.2, 0.6) * (0.4 + 0.6 * strength))
        lo, hi = exhale if exhale[1] - exhale[0] >= dur + 0.02 else bounds
        t0 = rng.uniform(lo, max(lo, hi - dur))
        f0 = float(np.exp(rng.uniform(np.log(150.0), np.log(800.0))))
        f1 = float(np.clip(f0 * rng.uniform(0.88, 1.12), 110.0, 950.0))  # Glide.
        amp = BREATH_RMS * rng.uniform(2.0, 4.0) * strength
        if i >= count:
            continue
        m = int(round(dur * sr))
        phase = 2 * np.pi * np.cumsum(np.linspace(f0, f1, m)) / sr
        wave = np.sin(phase)
        if 2 * max(f0, f1) < 1000.0:
            wave += 0.3 * np.sin(2 * phase)
        wave *= windows.tukey(m, alpha=min(1.0, 0.04 / dur))
        k0 = int(round(t0 * sr))
        _noise.add_at(out, k0, amp * wave)
        events.append(Event("wheeze", k0 / sr, (k0 + m) / sr, f0, cycle))
    return events


def _heart_sounds(rng, n: int, sr: int, heart_rate: float) -> np.ndarray:
    """S1/S2 thumps (damped 30-80 Hz sinusoids) at a slightly jittered rate."""
    heart = np.zeros(n)
    amp = BREATH_RMS * rng.uniform(0.3, 1.0)
    period = 60.0 / heart_rate
    t = rng.uniform(0, period)
    while t < n / sr:
        for offset, freq in (
            (0.0, rng.uniform(30.0, 60.0)),
            (0.3, rng.uniform(50.0, 80.0)),
        ):
            wave = _noise.damped_sine(sr, freq, 0.06, 0.015)
            _noise.add_at(heart, int(round((t + offset) * sr)), amp * wave)
        t += period * rng.uniform(0.95, 1.05)
    return heart


def synthesize_recording(
    rng: np.random.Generator,
    *,
    sample_rate: int,
    difficulty: float = 0.5,
    snr_db: float = 20.0,
    device: str = "Meditron",
    class_probs: tuple[float, ...] = CLASS_PROBS,
    mean_cycle_s: float = 3.0,
    heart_rate: float = 75.0,
    gain: float = 1.0,
) -> Recording:
    """Synthesizes one auscultation recording of 10-20 s.

    The random draws do not depend on `difficulty`: the same generator state
    at two difficulties gives recordings that differ only in the amplitude,
    number and length of the adventitious sounds.

    Args:
      rng: random generator (the recording is a function of its state).
      sample_rate: output rate in Hz (>= 4000).
      difficulty: 0 = loud, frequent adventitious sounds .. 1 = none audible.
      snr_db: breath-sound RMS over device-noise RMS, in dB.
      device: one of `DEVICES`; picks the device-noise colour.
      class_probs: probabilities of LABELS per cycle.
      mean_cycle_s: mean cycle length (clipped to 1-6 s per cycle).
      heart_rate: beats per minute of the heart-sound nuisance.
      gain: linear output gain.

    Returns:
      The audio with its cycles (labels) and adventitious-sound events.
    """
    sr = sample_rate
    strength = 1.0 - difficulty
    duration = round(rng.uniform(10.0, 20.0), 2)
    n = int(round(duration * sr))
    cycles = _plan_cycles(rng, duration, mean_cycle_s, class_probs)

    envelope = np.zeros(n)  # Breath loudness, 1 = peak of an average inhalation.
    adventitious = np.zeros(n)
    events: list[Event] = []
    for c, cyc in enumerate(cycles):
        i0, i1 = int(round(cyc.start * sr)), int(round(cyc.end * sr))
        n_in = int((i1 - i0) * rng.uniform(0.35, 0.45))
        n_ex = i1 - i0 - n_in - int((i1 - i0) * rng.uniform(0.05, 0.15))  # Pause.
        rise = np.sin(np.linspace(0, np.pi, n_in)) ** 1.5
        envelope[i0 : i0 + n_in] = rng.uniform(0.8, 1.2) * rise
        fall = np.sin(np.linspace(0, np.pi, n_ex))
        envelope[i0 + n_in : i0 + n_in + n_ex] = rng.uniform(0.5, 0.8) * fall
        inhale = (cyc.start, cyc.start + n_in / sr)
        exhale = (inhale[1], inhale[1] + n_ex / sr)
        if cyc.crackle:
            events += _add_crackles(rng, adventitious, sr, c, inhale, exhale, strength)
        if cyc.wheeze:
            bounds = (cyc.start, cyc.end)
            events += _add_wheezes(rng, adventitious, sr, c, bounds, exhale, strength)

    band_high = rng.uniform(800.0, 1000.0)
    band_noise = _noise.filtered_noise(rng, n, sr, rng.uniform(90.0, 120.0), band_high)
    breath = BREATH_RMS * envelope * band_noise
    heart = _heart_sounds(rng, n, sr, heart_rate)
    noise = _background(rng, DEVICE_NOISE[device], n, sr)
    noise *= _noise.rms(breath) / 10 ** (snr_db / 20)
    audio = gain * (breath + adventitious + heart + noise)
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:
        audio *= 0.99 / peak
    return Recording(audio.astype(np.float32), sr, tuple(cycles), tuple(events))


def _plan_patients(rng: np.random.Generator, num_recordings: int) -> list[_Patient]:
    num_patients = min(num_recordings, max(2, int(round(num_recordings / 3))))
    per_patient = np.ones(num_patients, dtype=int)
    for _ in range(num_recordings - num_patients):
        open_ = np.flatnonzero(per_patient < MAX_RECORDINGS_PER_PATIENT)
        per_patient[rng.choice(open_)] += 1
    devices = [str(rng.choice(DEVICES, p=DEVICE_PROBS)) for _ in range(num_patients)]
    rates = [
        [int(rng.choice(DEVICE_RATES[d])) for _ in range(k)]
        for d, k in zip(devices, per_patient)
    ]
    # Both 4 kHz and 44.1 kHz files must occur: convert a patient whose change
    # cannot remove the other rate's last file.
    for device, rate, other in (("Litt3200", 4000, 44100), ("Meditron", 44100, 4000)):
        if any(rate in r for r in rates):
            continue
        holders = [i for i, r in enumerate(rates) if other in r]
        candidates = [i for i in range(num_patients) if holders != [i]]
        i = int(rng.choice(candidates))
        devices[i] = device
        rates[i] = [rate] * int(per_patient[i])

    patients = []
    for i in range(num_patients):
        pid = f"{FIRST_PATIENT + i:03d}"
        mode = "mc" if devices[i] == "AKGC417L" and rng.random() < 0.8 else "sc"
        locations = rng.permutation(LOCATIONS)
        names = tuple(
            (f"{pid}_{j + 1}b1_{locations[j]}_{mode}_{devices[i]}", rates[i][j])
            for j in range(per_patient[i])
        )
        patients.append(
            _Patient(
                pid=pid,
                device=devices[i],
                gain=float(10 ** (rng.uniform(-12.0, 0.0) / 20)),
                heart_rate=float(rng.uniform(60.0, 100.0)),
                mean_cycle_s=float(rng.uniform(2.0, 4.0)),
                class_probs=tuple(
                    float(p) for p in rng.dirichlet(40.0 * np.asarray(CLASS_PROBS))
                ),
                recordings=names,
            )
        )
    return patients


def write_icbhi(
    root: str,
    *,
    seed: int = 0,
    num_recordings: int = 60,
    difficulty: float = 0.5,
    snr_db: float = 20.0,
) -> None:
    """Writes a synthetic corpus in the ICBHI 2017 layout under `root`.

    About `num_recordings / 3` patients (ids 101, 102, ...) with 1-4 recordings
    each; see the module docstring for the sound model. Repeating a call with
    the same arguments rewrites identical bytes.

    Args:
      root: output folder; `ICBHI_final_database/` is created inside it.
      seed: everything is a deterministic function of it.
      num_recordings: number of wav files (>= 2).
      difficulty: 0 = trivially separable .. 1 = chance.
      snr_db: breath sound over background noise, dB.

    Raises:
      ValueError: num_recordings < 2 or difficulty outside [0, 1].
      FileExistsError: the database folder holds wav/txt files this call would
        not write (a different corpus).
    """
    _noise.check_size("num_recordings", num_recordings, 2, difficulty=difficulty)
    patients = _plan_patients(_noise.rng_for(seed, 0), num_recordings)
    database = os.path.join(root, DATABASE_DIR)
    names = [name for p in patients for name, _ in p.recordings]
    _noise.check_target(
        database, [n + ext for n in names for ext in (".wav", ".txt")], (".wav", ".txt")
    )
    os.makedirs(database, exist_ok=True)

    index = 0
    for patient in patients:
        for name, sample_rate in patient.recordings:
            rec = synthesize_recording(
                _noise.rng_for(seed, 1, index),
                sample_rate=sample_rate,
                difficulty=difficulty,
                snr_db=snr_db,
                device=patient.device,
                class_probs=patient.class_probs,
                mean_cycle_s=patient.mean_cycle_s,
                heart_rate=patient.heart_rate,
                gain=patient.gain,
            )
            index += 1
            _noise.write_pcm16(
                os.path.join(database, name + ".wav"), rec.audio, sample_rate
            )
            with open(
                os.path.join(database, name + ".txt"), "w", encoding="utf-8"
            ) as f:
                for c in rec.cycles:
                    f.write(
                        f"{c.start:.3f}\t{c.end:.3f}\t{int(c.crackle)}\t{int(c.wheeze)}\n"
                    )

    order = _noise.rng_for(seed, 2).permutation(len(patients))
    num_train = int(
        np.clip(round(TRAIN_FRACTION * len(patients)), 1, len(patients) - 1)
    )
    train = {patients[i].pid for i in order[:num_train]}
    with open(os.path.join(root, SPLIT_FILE), "w", encoding="utf-8") as f:
        for name in sorted(names):
            f.write(f"{name}\t{'train' if name[:3] in train else 'test'}\n")
