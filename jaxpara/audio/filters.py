"""Zero-phase Butterworth band-pass (card C2 preprocessing, card C0 rule)."""

from __future__ import annotations

import numpy as np
import scipy.signal


def bandpass_sos(
    sample_rate: int,
    low_hz: float = 100.0,
    high_hz: float = 2000.0,
    order: int = 5,
) -> np.ndarray:
    """Butterworth design in second-order sections at `sample_rate`.

    Card C0: when `high_hz >= sample_rate / 2` the band-pass would be undefined;
    it becomes a `low_hz` high-pass (the resampler already band-limits). At
    4 kHz the default 100-2000 Hz band is therefore a 100 Hz high-pass.

    Args:
      sample_rate: working rate in Hz.
      low_hz: lower edge (-3 dB) in Hz, 0 < low_hz < sample_rate / 2.
      high_hz: upper edge in Hz.
      order: Butterworth order (a band-pass has 2 * order poles).

    Returns:
      [num_sections, 6] float64 `sos` for scipy.signal.sosfilt(filt).
    """
    nyquist = sample_rate / 2.0
    if not 0.0 < low_hz < nyquist:
        raise ValueError(
            f"bandpass: need 0 < low_hz < Nyquist ({nyquist} Hz), got {low_hz}"
        )
    if order < 1:
        raise ValueError(f"bandpass: order must be >= 1, got {order}")
    if high_hz >= nyquist:
        return scipy.signal.butter(
            order, low_hz, btype="highpass", fs=sample_rate, output="sos"
        )
    if high_hz <= low_hz:
        raise ValueError(
            f"bandpass: high_hz ({high_hz}) must be above low_hz ({low_hz})"
        )
    return scipy.signal.butter(
        order, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos"
    )


def bandpass(
    signal: np.ndarray,
    sample_rate: int,
    low_hz: float = 100.0,
    high_hz: float = 2000.0,
    order: int = 5,
) -> np.ndarray:
    """Zero-phase (forward-backward, `sosfiltfilt`) Butterworth filtering.

    The magnitude response is that of `bandpass_sos` squared; the phase is 0.
    Signals shorter than scipy's default edge padding are padded by
    `len(signal) - 1` instead.

    Args:
      signal: [N] float waveform.
      sample_rate: its rate in Hz.
      low_hz, high_hz, order: see `bandpass_sos`.

    Returns:
      [N] float32 filtered signal (computed in float64).
    """
    signal = np.asarray(signal, np.float64)
    if signal.ndim != 1:
        raise ValueError(f"bandpass: signal must be 1-D, got shape {signal.shape}")
    if signal.size < 2:
        return signal.astype(np.float32)
    sos = bandpass_sos(sample_rate, low_hz, high_hz, order)
    zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    default_padlen = 3 * (2 * len(sos) + 1 - zeros)
    padlen = min(default_padlen, signal.size - 1)
    return scipy.signal.sosfiltfilt(sos, signal, padlen=padlen).astype(np.float32)
