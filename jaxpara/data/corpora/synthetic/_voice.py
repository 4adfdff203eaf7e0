"""A small source-filter voice model for the synthetic emotion corpora.

One utterance is a chain of syllables (optional consonant onset + vowel
nucleus) and short pauses. The voiced source is a train of Rosenberg glottal
pulses at a time-varying f0 (lip radiation = first difference), with pulse-
synchronous aspiration noise; it goes through a cascade of four 2nd-order
formant resonators whose frequencies glide from vowel to vowel. The
time-varying filter is applied frame by frame in the frequency domain (32 ms
Hann frames at 50% overlap, zero-padded so a filtered frame does not wrap,
overlap-added), which keeps the whole synthesis vectorised.
Fricative / stop-burst noise, breath noise in pauses, a per-speaker recording
channel (gain, spectral tilt, a smooth random EQ) and background noise at a
given SNR complete the signal; leading and trailing silence hold only noise.

Emotion is a set of SPEAKER-RELATIVE prosodic offsets (`STYLES`): pitch level,
pitch range, within-syllable pitch slope, utterance pitch trend, speaking
rate and rhythm, syllable stress dynamics, attack sharpness, legato (joined
syllables), pause rate, level, voice quality (spectral tilt, tied to stress)
and breathiness. The strongest cues are temporal
(range, contour shape, rate, energy dynamics, attacks); the static ones (level,
tilt, mean pitch) are small next to the between-speaker spread of f0, formant
scale, channel gain and channel tilt, so an utterance-mean spectrum carries
little of the emotion while a sequence model sees it.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage, signal

SAMPLE_RATE = 16000
_CTRL_RATE = 200  # Control tracks (f0) in frames per second.
_WIN = 512  # Analysis frame of the formant filter (32 ms at 16 kHz, Hann).
_HOP = _WIN // 2  # Frame hop; periodic Hann at 50% overlap sums to 1.
_NFFT = 2 * _WIN  # Zero-padded FFT: the filtered frame does not wrap around.
_REF_DB = -26.0  # Active speech level (dBFS) of a neutral utterance at 0 dB gain.

# Peterson & Barney-like male formant targets F1..F4 in Hz.
_VOWELS = np.array(
    [
        [730, 1090, 2440, 3400],  # a
        [530, 1840, 2480, 3500],  # e
        [270, 2290, 3010, 3600],  # i
        [570, 840, 2410, 3300],  # o
        [300, 870, 2240, 3300],  # u
        [660, 1720, 2410, 3400],  # ae
        [490, 1350, 1690, 3300],  # er
    ],
    dtype=np.float64,
)
_BANDWIDTHS = np.array([70.0, 100.0, 140.0, 200.0])


@dataclasses.dataclass(frozen=True)
class Speaker:
    """Fixed traits of one synthetic speaker (all drawn once per speaker).

    Attributes:
      gender: 'm' or 'f'.
      f0_hz: median f0 of neutral speech.
      formant_scale: vocal-tract scaling of all formants.
      rate_sps: neutral speaking rate, syllables per second.
      range_st: neutral pitch-accent size in semitones.
      gain_db: recording-channel gain.
      tilt_db_oct: recording-channel spectral tilt, dB per octave re 1 kHz.
      eq_db: smooth random channel EQ, dB on `_eq_grid()` (log-frequency).
      closing: glottal closing-phase fraction of the period (voice quality).
      breathiness: aspiration noise relative to the voiced source.
    """

    gender: str
    f0_hz: float
    formant_scale: float
    rate_sps: float
    range_st: float
    gain_db: float
    tilt_db_oct: float
    eq_db: tuple[float, ...]
    closing: float
    breathiness: float


def random_speaker(rng: np.random.Generator, gender: str) -> Speaker:
    """Draws a speaker of `gender` ('m' / 'f')."""
    if gender not in ("m", "f"):
        raise ValueError(f"gender must be 'm' or 'f', got {gender!r}")
    male = gender == "m"
    grid = _eq_grid()
    eq = np.zeros_like(grid)
    for _ in range(3):  # Three broad random bumps / dips on a log axis.
        centre = rng.uniform(np.log2(200.0), np.log2(6000.0))
        width = rng.uniform(0.5, 1.5)
        eq += rng.uniform(-4.0, 4.0) * np.exp(-0.5 * ((grid - centre) / width) ** 2)
    return Speaker(
        gender=gender,
        f0_hz=float(rng.uniform(100.0, 135.0) if male else rng.uniform(180.0, 235.0)),
        formant_scale=float(
            rng.uniform(0.92, 1.04) if male else rng.uniform(1.08, 1.22)
        ),
        rate_sps=float(rng.uniform(4.1, 4.7)),
        range_st=float(rng.uniform(1.5, 1.9)),
        gain_db=float(rng.uniform(-7.0, 7.0)),
        tilt_db_oct=float(rng.uniform(-3.0, 3.0)),
        eq_db=tuple(float(v) for v in eq),
        closing=float(rng.uniform(0.10, 0.18)),
        breathiness=float(rng.uniform(0.03, 0.10)),
    )


def _eq_grid() -> np.ndarray:
    return np.linspace(np.log2(50.0), np.log2(8000.0), 24)


# Prosodic style parameters (speaker-relative), one row per style:
#   pitch_st   mean pitch shift, semitones
#   range      log2 factor on the speaker's pitch-accent size
#   slope_st   pitch movement within a syllable (+ rising, - falling), semitones
#   trend_st   pitch change over the utterance, semitones
#   rate       log2 factor on the speaker's syllable rate
#   rhythm     std of log syllable duration (small = regular, bouncy)
#   dyn_db     std of syllable stress, dB (energy dynamics)
#   attack     rise time of a vowel as a fraction of its length (small = sharp)
#   legato     probability that a syllable has no consonant onset (joined)
#   pause      probability of a pause after a syllable
#   level_db   speech level, dB
#   tilt       voice quality: + tense / bright, - lax / dark
#   breath     extra aspiration (log2 factor)
#   smooth_ms  smoothing of the pitch contour (small = jerky accents)
PARAMS = (
    "pitch_st",
    "range",
    "slope_st",
    "trend_st",
    "rate",
    "rhythm",
    "dyn_db",
    "attack",
    "legato",
    "pause",
    "level_db",
    "tilt",
    "breath",
    "smooth_ms",
)
# fmt: off
STYLES: dict[str, tuple[float, ...]] = {
    #           pitch range slope trend  rate rhythm dyn attack legato pause level tilt breath smooth
    "neutral":  (0.0,  0.0, -0.5, -2.0,  0.00, 0.25, 3.0, 0.30, 0.30, 0.15,  0.0,  0.0,  0.0, 30.0),
    "happy":    (3.0,  1.5,  5.0,  2.0,  0.30, 0.10, 5.5, 0.25, 0.35, 0.08,  2.0,  0.4,  0.0, 45.0),
    "angry":    (2.0,  0.5, -5.0, -3.0,  0.40, 0.30, 9.0, 0.06, 0.10, 0.08,  3.5,  1.0, -0.5, 10.0),
    "sad":      (-2.0, -1.5, -0.3, -1.0, -0.70, 0.30, 1.0, 0.65, 0.75, 0.45, -3.0, -0.8,  1.0, 50.0),
    # FAU Aibo styles.
    "emphatic": (0.5,  0.3, -3.0, -1.0, -0.40, 0.15, 7.0, 0.12, 0.15, 0.45,  1.5,  0.5, -0.3, 15.0),
    "positive": (3.0,  1.4,  4.5,  2.5, -0.15, 0.20, 3.0, 0.45, 0.50, 0.12,  0.0, -0.2,  0.5, 55.0),
}
# Per-utterance spread of each parameter (times `_noise_scale(difficulty)`),
# and the physical limits.
_SIGMA = np.array([1.0, 0.3, 1.2, 1.2, 0.10, 0.05, 1.2, 0.06, 0.10, 0.06, 1.5, 0.3, 0.4, 8.0])
_LOW = np.array([-6.0, -2.5, -8.0, -6.0, -1.0, 0.05, 0.5, 0.04, 0.0, 0.0, -9.0, -2.0, -2.0, 8.0])
_HIGH = np.array([6.0, 2.0, 8.0, 6.0, 0.8, 0.45, 12.0, 0.8, 0.9, 0.6, 9.0, 2.0, 2.5, 80.0])
# fmt: on


def _separation(difficulty: float) -> float:
    """Fraction of a style's offset from neutral that is kept: 1 - d^2."""
    return 1.0 - difficulty**2


def _noise_scale(difficulty: float) -> float:
    """Per-utterance parameter noise in units of `_SIGMA`: 0.2 + 0.6 d."""
    return 0.2 + 0.6 * difficulty


def sample_style(
    rng: np.random.Generator, style: str | dict[str, float], difficulty: float
) -> dict[str, float]:
    """Per-utterance prosody of a style, blurred towards neutral by difficulty.

    value = neutral + (1 - d^2) * (style - neutral) + noise, with noise std
    `_SIGMA * (0.2 + 0.6 d)` (d = difficulty); at d = 1 every style has the
    distribution of neutral speech, and the default d = 0.5 keeps 75% of the
    offsets.

    Args:
      rng: random generator.
      style: a `STYLES` key or {style: weight} for a mixture (weights sum to 1).
      difficulty: 0 (well separated) .. 1 (indistinguishable).

    Returns:
      {parameter name: value} for `PARAMS`.
    """
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    weights = {style: 1.0} if isinstance(style, str) else style
    target = sum(w * np.asarray(STYLES[s]) for s, w in weights.items())
    neutral = np.asarray(STYLES["neutral"])
    value = neutral + _separation(difficulty) * (target - neutral)
    value = value + _SIGMA * _noise_scale(difficulty) * rng.standard_normal(len(PARAMS))
    value = np.clip(value, _LOW, _HIGH)
    return dict(zip(PARAMS, (float(v) for v in value), strict=True))


@dataclasses.dataclass
class _Syllables:
    start: np.ndarray  # [n] syllable onsets, seconds (relative to speech start)
    vowel: np.ndarray  # [n] vowel-nucleus onsets
    end: np.ndarray  # [n] syllable ends
    kind: np.ndarray  # [n] 0 = no consonant, 1 = fricative, 2 = stop
    stress_db: np.ndarray  # [n]
    accent_st: np.ndarray  # [n]
    formants: np.ndarray  # [n, 4] Hz


def _syllables(
    rng: np.random.Generator, speaker: Speaker, p: dict[str, float], duration: float
) -> _Syllables:
    """Lays out syllables and pauses over `duration` seconds of speech."""
    rate = speaker.rate_sps * 2.0 ** p["rate"]
    n_max = int(duration * rate * 2) + 4
    dur = (1.0 / rate) * np.exp(p["rhythm"] * rng.standard_normal(n_max))
    pause = np.where(
        rng.random(n_max) < p["pause"], rng.uniform(0.08, 0.30, n_max), 0.0
    )
    pause[-1] = 0.0
    start = np.concatenate([[0.0], np.cumsum(dur + pause)[:-1]])
    n = max(int(np.searchsorted(start, duration - 0.6 / rate)), 2)
    start, dur = start[:n], dur[:n]
    end = start + dur
    kind = np.where(rng.random(n) < p["legato"], 0, rng.integers(1, 3, n))
    cons = np.where(kind > 0, np.minimum(0.25 * dur, 0.08), 0.0)
    stress_z = np.clip(rng.standard_normal(n), -2.5, 2.5)
    stress_z[::2] += 0.6  # Weak alternation of strong and weak syllables.
    stress_db = p["dyn_db"] * stress_z
    range_st = speaker.range_st * 2.0 ** p["range"]
    accent = range_st * (0.8 * stress_z + 0.6 * rng.standard_normal(n))
    vowel_ids = rng.integers(0, len(_VOWELS), n)
    formants = (
        _VOWELS[vowel_ids]
        * speaker.formant_scale
        * np.exp(0.05 * rng.standard_normal((n, 4)))
    )
    return _Syllables(start, start + cons, end, kind, stress_db, accent, formants)


def _smooth_bump(
    rel: np.ndarray,
    attack: float,
    release: float,
    rise_floor: np.ndarray,
    fall_floor: np.ndarray,
) -> np.ndarray:
    """sin^2 rise over `attack` and fall over `release` (fractions of [0, 1]).

    The rise starts at `rise_floor` and the fall ends at `fall_floor` instead
    of 0 where a syllable is joined to its neighbour.
    """
    rise = np.sin(0.5 * np.pi * np.clip(rel / attack, 0.0, 1.0)) ** 2
    fall = np.sin(0.5 * np.pi * np.clip((1.0 - rel) / release, 0.0, 1.0)) ** 2
    return (rise_floor + (1 - rise_floor) * rise) * (
        fall_floor + (1 - fall_floor) * fall
    )


def _resonator_response(
    formants: np.ndarray, bandwidths: np.ndarray, sr: int
) -> np.ndarray:
    """Response of cascaded unit-DC-gain 2-pole resonators on the rfft grid.

    The cascade's denominator polynomial (order 2k) is built per frame and
    evaluated with one batched FFT.

    Args:
      formants: [frames, k] centre frequencies, Hz.
      bandwidths: [frames, k] bandwidths, Hz.
      sr: sample rate.

    Returns:
      [frames, _NFFT // 2 + 1] complex.
    """
    r = np.exp(-np.pi * bandwidths / sr)
    a1 = -2.0 * r * np.cos(2 * np.pi * formants / sr)
    a2 = r * r
    n_frames, k = formants.shape
    poly = np.zeros((n_frames, 2 * k + 1))
    poly[:, 0] = 1.0
    for i in range(k):  # poly *= (1 + a1 z^-1 + a2 z^-2)
        prev = poly.copy()
        poly[:, 1:] += a1[:, i : i + 1] * prev[:, :-1]
        poly[:, 2:] += a2[:, i : i + 1] * prev[:, :-2]
    gain = np.prod(1.0 + a1 + a2, axis=1, keepdims=True)
    return gain / np.fft.rfft(poly, n=_NFFT, axis=1)


def _frames(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed frames of x, hop `_HOP`, frame f centred on sample f * hop.

    Returns:
      ([frames, _WIN] windowed frames, [frames] centre times in seconds).
    """
    n_frames = x.size // _HOP + 2
    padded = np.zeros((n_frames + 1) * _HOP + _WIN)
    padded[_WIN // 2 : _WIN // 2 + x.size] = x
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_WIN) / _WIN)  # periodic
    starts = np.arange(n_frames) * _HOP
    frames = padded[starts[:, None] + np.arange(_WIN)[None, :]] * window
    return frames, starts / sr


def _overlap_add(spectra: np.ndarray, n: int) -> np.ndarray:
    """Inverse of `_frames` after filtering: [frames, _NFFT // 2 + 1] -> [n]."""
    blocks = np.fft.irfft(spectra, n=_NFFT, axis=1)
    n_frames = blocks.shape[0]
    per_frame = _NFFT // _HOP
    out = np.zeros((n_frames + per_frame, _HOP))
    for k in range(per_frame):  # Each frame spans per_frame hops.
        out[k : k + n_frames] += blocks[:, k * _HOP : (k + 1) * _HOP]
    return out.reshape(-1)[_WIN // 2 : _WIN // 2 + n]


def synthesize(
    rng: np.random.Generator,
    speaker: Speaker,
    prosody: dict[str, float],
    *,
    sample_rate: int = SAMPLE_RATE,
    snr_db: float = 20.0,
    speech_s: tuple[float, float] = (1.1, 2.8),
    silence_s: tuple[float, float] = (0.2, 0.6),
) -> np.ndarray:
    """Synthesises one utterance.

    Args:
      rng: random generator (all randomness of this utterance).
      speaker: the speaker's fixed traits.
      prosody: `sample_style` output.
      sample_rate: output rate in Hz.
      snr_db: active speech level over background noise level.
      speech_s: range of the speech part's duration (pauses included).
      silence_s: range of each of the leading and trailing silences.

    Returns:
      [samples] float64 waveform, peak < 1.
    """
    p = prosody
    sr = sample_rate
    speech_dur = rng.uniform(*speech_s)
    syl = _syllables(rng, speaker, p, speech_dur)
    n_speech = int(np.ceil((syl.end[-1] + 0.02) * sr))
    t = np.arange(n_speech) / sr

    # Which syllable each sample belongs to and where it is inside it.
    idx = np.clip(np.searchsorted(syl.start, t, side="right") - 1, 0, None)
    in_syl = t < syl.end[idx]
    in_vowel = in_syl & (t >= syl.vowel[idx])
    v_len = syl.end[idx] - syl.vowel[idx]
    rel = np.clip((t - syl.vowel[idx]) / v_len, 0.0, 1.0)
    stress = 10.0 ** (syl.stress_db[idx] / 20.0)
    # Vowel envelope. A syllable without a consonant onset that directly
    # follows another is joined to it (coarticulation): the voicing dips to
    # 30% at the boundary instead of stopping.
    joined = np.zeros(syl.start.size, bool)
    joined[1:] = (syl.kind[1:] == 0) & (syl.start[1:] - syl.end[:-1] < 1e-6)
    rise_floor = np.where(joined, 0.3, 0.0)
    fall_floor = np.where(np.append(joined[1:], False), 0.3, 0.0)
    bump = _smooth_bump(rel, p["attack"], 0.25, rise_floor[idx], fall_floor[idx])
    amp = np.where(in_vowel, bump, 0.0) * stress

    # f0 contour at the control rate, in semitones re the speaker's f0.
    tc = np.arange(int(np.ceil(n_speech / sr * _CTRL_RATE)) + 1) / _CTRL_RATE
    ic = np.clip(np.searchsorted(syl.start, tc, side="right") - 1, 0, None)
    s_len = syl.end[ic] - syl.start[ic]
    rel_c = np.clip((tc - syl.start[ic]) / s_len, 0.0, 1.0)
    semis = (
        p["pitch_st"]
        + p["trend_st"] * (tc / speech_dur - 0.5)
        + syl.accent_st[ic]
        + p["slope_st"] * (rel_c - 0.5)
    )
    semis = ndimage.gaussian_filter1d(semis, p["smooth_ms"] / 1000 * _CTRL_RATE)
    drift = np.cumsum(rng.standard_normal(tc.size)) * 0.04
    semis = semis + ndimage.gaussian_filter1d(drift - drift.mean(), 4.0)
    semis = semis + 0.07 * rng.standard_normal(tc.size)  # jitter, ~0.4% of f0
    f0 = speaker.f0_hz * 2.0 ** (np.interp(t, tc, semis) / 12.0)
    f0 = np.clip(f0, 60.0, 450.0)

    voiced = _glottal_source(rng, f0, speaker, p, in_vowel, sr) * amp

    # Time-varying formant filter + voice-quality tilt, frame by frame.
    frames, frame_t = _frames(voiced, sr)
    freqs = np.fft.rfftfreq(_NFFT, 1.0 / sr)
    mid = (syl.vowel + syl.end) / 2
    fmt = np.stack(
        [np.exp(np.interp(frame_t, mid, np.log(syl.formants[:, k]))) for k in range(4)],
        axis=1,
    )
    bw = _BANDWIDTHS * (1.0 + 0.1 * fmt / 1000.0)
    response = _resonator_response(fmt, bw, sr)
    frame_idx = np.clip(np.searchsorted(syl.start, frame_t, side="right") - 1, 0, None)
    tilt = 2.0 * p["tilt"] + 0.15 * syl.stress_db[frame_idx]  # dB / octave
    octaves = np.log2(np.maximum(freqs, 100.0) / 1000.0)
    response *= 10.0 ** (tilt[:, None] * octaves[None, :] / 20.0)
    speech = _overlap_add(np.fft.rfft(frames, n=_NFFT, axis=1) * response, n_speech)

    # Consonant noise (fricatives and stop bursts) and breath noise in pauses.
    cons_len = np.maximum(syl.vowel[idx] - syl.start[idx], 1e-3)
    c_rel = np.clip((t - syl.start[idx]) / cons_len, 0.0, 1.0)
    kind = syl.kind[idx]
    in_cons = in_syl & ~in_vowel
    fric = np.where(in_cons & (kind == 1), np.sin(np.pi * c_rel) ** 2, 0.0)
    burst_rel = np.clip((c_rel - 0.6) / 0.4, 0.0, 1.0)
    burst = np.where(in_cons & (kind == 2), np.sin(np.pi * burst_rel) ** 2, 0.0)
    hiss_sos, breath_sos = _noise_filters(sr)
    hiss = signal.sosfilt(hiss_sos, rng.standard_normal(n_speech))
    consonants = hiss * (0.25 * fric + 0.5 * burst) * stress
    gap_start = syl.end[:-1]
    gap_len = syl.start[1:] - gap_start
    inhale = np.zeros(n_speech)
    for g0, gl in zip(gap_start, gap_len, strict=True):
        if gl > 0.15 and rng.random() < 0.6:
            i0, i1 = int(g0 * sr), int((g0 + gl) * sr)
            inhale[i0:i1] = np.sin(np.linspace(0, np.pi, i1 - i0)) ** 2
    breath_noise = signal.sosfilt(breath_sos, rng.standard_normal(n_speech))
    speech_rms = np.sqrt(np.mean(speech[in_vowel] ** 2))
    speech = speech + speech_rms * (consonants + 0.08 * inhale * breath_noise)

    # Level, silences, background noise, recording channel.
    return _record(
        rng, speech, amp, p, speaker, sr=sr, snr_db=snr_db, silence_s=silence_s
    )


def _glottal_source(
    rng: np.random.Generator,
    f0: np.ndarray,
    speaker: Speaker,
    p: dict[str, float],
    in_vowel: np.ndarray,
    sr: int,
) -> np.ndarray:
    """[samples] excitation at f0: Rosenberg pulses (unit RMS in vowels) + aspiration."""
    n_speech = f0.size
    # Rosenberg glottal flow; the first difference models lip radiation.
    phase = np.cumsum(f0 / sr) % 1.0
    t_open = 0.42
    t_close = np.clip(speaker.closing * 2.0 ** (-0.6 * p["tilt"]), 0.04, 0.35)
    flow = np.where(
        phase < t_open,
        0.5 * (1 - np.cos(np.pi * phase / t_open)),
        np.where(
            phase < t_open + t_close,
            np.cos(0.5 * np.pi * (phase - t_open) / t_close),
            0.0,
        ),
    )
    pulse = np.diff(flow, prepend=0.0)
    pulse /= max(np.sqrt(np.mean(pulse[in_vowel] ** 2)), 1e-9)
    open_phase = phase < t_open + t_close
    breath = speaker.breathiness * 2.0 ** p["breath"]
    aspiration = breath * (0.3 + 0.7 * open_phase) * rng.standard_normal(n_speech)
    return pulse + aspiration


def _record(
    rng: np.random.Generator,
    speech: np.ndarray,
    amp: np.ndarray,
    p: dict[str, float],
    speaker: Speaker,
    *,
    sr: int,
    snr_db: float,
    silence_s: tuple[float, float],
) -> np.ndarray:
    """Level, leading / trailing silence, background noise, recording channel."""
    active = amp > 0.05 * amp.max()
    level = 10.0 ** ((_REF_DB + p["level_db"]) / 20.0)
    speech *= level / max(np.sqrt(np.mean(speech[active] ** 2)), 1e-12)
    lead = int(rng.uniform(*silence_s) * sr)
    trail = int(rng.uniform(*silence_s) * sr)
    x = np.concatenate([np.zeros(lead), speech, np.zeros(trail)])
    n_fft = sp_fft.next_fast_len(x.size, real=True)
    f = np.fft.rfftfreq(n_fft, 1.0 / sr)
    colour = (np.maximum(f, 50.0) / 1000.0) ** (-0.5 * rng.uniform(0.0, 1.0))
    noise_spec = colour * (
        rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)
    )
    noise = sp_fft.irfft(noise_spec, n=n_fft)[: x.size]
    noise *= level * 10.0 ** (-snr_db / 20.0) / max(np.sqrt(np.mean(noise**2)), 1e-12)
    log_f = np.log2(np.maximum(f, 50.0))
    channel_db = (
        speaker.gain_db
        + speaker.tilt_db_oct * (log_f - np.log2(1000.0))
        + np.interp(log_f, _eq_grid(), np.asarray(speaker.eq_db))
    )
    spec_x = sp_fft.rfft(x + noise, n=n_fft) * 10.0 ** (channel_db / 20.0)
    x = sp_fft.irfft(spec_x, n=n_fft)[: x.size]
    peak = np.max(np.abs(x))
    if peak > 0.95:
        x *= 0.95 / peak
    return x


@functools.lru_cache(maxsize=4)
def _noise_filters(sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Band-pass filters (SOS) for consonant hiss and breath noise at rate `sr`."""
    top = min(7000.0, 0.45 * sr)
    hiss = signal.butter(2, [2500.0, top], "bandpass", fs=sr, output="sos")
    breath = signal.butter(2, [400.0, 3000.0], "bandpass", fs=sr, output="sos")
    return hiss, breath
