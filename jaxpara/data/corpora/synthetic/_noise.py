"""Signal blocks and file helpers shared by the synthetic corpora."""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import soundfile as sf
from scipy import signal


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for (seed, *keys): one per file, order-free."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def filtered_noise(
    rng: np.random.Generator,
    num_samples: int,
    sample_rate: int,
    low_hz: float = 0.0,
    high_hz: float = 0.0,
    order: int = 4,
) -> np.ndarray:
    """White noise through a Butterworth filter, scaled to unit RMS.

    Args:
      rng: random generator.
      num_samples: output length.
      sample_rate: in Hz.
      low_hz: high-pass edge; 0 = none.
      high_hz: low-pass edge; 0 or >= 0.45 * sample_rate = none.

    Returns:
      `[num_samples]` float64 noise with RMS 1.
    """
    x = rng.standard_normal(num_samples)
    nyquist = sample_rate / 2
    has_high = 0 < high_hz < 0.9 * nyquist
    if low_hz > 0 and has_high:
        sos = signal.butter(
            order, [low_hz, high_hz], "bandpass", fs=sample_rate, output="sos"
        )
    elif low_hz > 0:
        sos = signal.butter(order, low_hz, "highpass", fs=sample_rate, output="sos")
    elif has_high:
        sos = signal.butter(order, high_hz, "lowpass", fs=sample_rate, output="sos")
    else:
        sos = None
    if sos is not None:
        x = signal.sosfilt(sos, x)
    return x / max(rms(x), 1e-12)


# Paul Kellet's "economy" pinking filter: 1/f power within +-0.5 dB over 9
# octaves (relative to the sample rate).
_PINK_B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)
_PINK_A = (1.0, -2.494956002, 2.017265875, -0.522189400)


def pink_noise(rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """1/f-power noise, unit RMS (IIR-shaped: far cheaper than an FFT)."""
    x = signal.lfilter(_PINK_B, _PINK_A, rng.standard_normal(num_samples))
    x -= x.mean()
    return x / max(rms(x), 1e-12)


def damped_sine(
    sample_rate: int, freq_hz: float, length_s: float, tau_s: float, phase: float = 0.0
) -> np.ndarray:
    """`sin(2 pi f t + phase) * exp(-t / tau)` for `length_s`, last 20% tapered to 0."""
    n = max(int(round(length_s * sample_rate)), 2)
    t = np.arange(n) / sample_rate
    x = np.sin(2 * np.pi * freq_hz * t + phase) * np.exp(-t / tau_s)
    taper = max(n // 5, 1)
    x[-taper:] *= np.cos(np.linspace(0, np.pi / 2, taper)) ** 2
    return x


def add_at(buffer: np.ndarray, start: int, x: np.ndarray) -> None:
    """`buffer[start:start + len(x)] += x`, clipped to the buffer."""
    start = max(start, 0)
    stop = min(start + x.size, buffer.size)
    if stop > start:
        buffer[start:stop] += x[: stop - start]


def check_size(name: str, value: int, minimum: int, *, difficulty: float) -> None:
    """A synthetic writer's size argument and difficulty, checked.

    Raises:
      ValueError: `value` < `minimum` or `difficulty` outside [0, 1].
    """
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")


def write_pcm16(path: str, audio: np.ndarray, sample_rate: int) -> None:
    """Writes mono 16-bit PCM WAV; audio is clipped to [-1, 1)."""
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    sf.write(path, pcm, sample_rate, subtype="PCM_16", format="WAV")


def check_target(
    folder: str, planned: Iterable[str], suffixes: tuple[str, ...]
) -> None:
    """Refuses to mix a new synthetic corpus with files of another one.

    Files this call will (re)write are fine (writing is deterministic, so a
    repeat call is idempotent); any other file with one of `suffixes` would be
    read as part of the corpus.

    Raises:
      FileExistsError: `folder` holds such foreign files.
    """
    if not os.path.isdir(folder):
        return
    planned = set(planned)
    foreign = sorted(
        f for f in os.listdir(folder) if f.endswith(suffixes) and f not in planned
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise FileExistsError(
            f"{folder} already holds {len(foreign)} file(s) this synthetic corpus "
            f"would not write ({shown}); write into an empty folder"
        )
