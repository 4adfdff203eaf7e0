import numpy as np
import pytest
import scipy.signal

from jaxpara.audio.filters import bandpass, bandpass_sos


def prewarped(freq_hz, sample_rate):
    """Analog frequency the bilinear transform maps `freq_hz` to."""
    return 2 * sample_rate * np.tan(np.pi * freq_hz / sample_rate)


def butterworth_gain(freqs, sample_rate, low, high, order):
    """|H| of the digital Butterworth (bilinear transform), closed form."""
    w = prewarped(np.asarray(freqs, np.float64), sample_rate)
    w_low = prewarped(low, sample_rate)
    if high is None:  # High-pass.
        ratio = w_low / w
    else:
        w_high = prewarped(high, sample_rate)
        ratio = (w**2 - w_low * w_high) / (w * (w_high - w_low))
    return 1.0 / np.sqrt(1.0 + ratio ** (2 * order))


@pytest.mark.parametrize(
    "sample_rate, expected_high",
    [(4000, None), (16000, 2000.0)],  # 2000 Hz >= Nyquist at 4 kHz: high-pass.
)
def test_frequency_response(sample_rate, expected_high):
    sos = bandpass_sos(sample_rate, 100.0, 2000.0, 5)
    assert sos.shape == ((5, 6) if expected_high else (3, 6))
    freqs = np.array([50.0, 500.0, 1500.0])
    _, h = scipy.signal.sosfreqz(sos, worN=freqs, fs=sample_rate)
    expected = butterworth_gain(freqs, sample_rate, 100.0, expected_high, 5)
    np.testing.assert_allclose(np.abs(h), expected, rtol=1e-6)
    assert np.abs(h[0]) < 0.04  # 50 Hz is stopped.
    assert np.abs(h[1]) > 0.999  # 500 Hz passes.
    if expected_high:
        _, h_stop = scipy.signal.sosfreqz(sos, worN=[4000.0], fs=sample_rate)
        np.testing.assert_allclose(
            np.abs(h_stop),
            butterworth_gain([4000.0], 16000, 100.0, 2000.0, 5),
            rtol=1e-6,
        )
        assert np.abs(h_stop[0]) < 0.01


@pytest.mark.parametrize("sample_rate", [4000, 16000])
def test_zero_phase_and_squared_gain(sample_rate):
    t = np.arange(2 * sample_rate) / sample_rate
    sine = np.sin(2 * np.pi * 500.0 * t + 0.3)
    out = bandpass(sine.astype(np.float32), sample_rate)
    assert out.dtype == np.float32 and out.shape == sine.shape
    high = None if sample_rate == 4000 else 2000.0
    gain = butterworth_gain([500.0], sample_rate, 100.0, high, 5)[0] ** 2
    middle = slice(sample_rate // 2, 3 * sample_rate // 2)
    # Same phase: the output is the input scaled by |H|^2, no delay.
    np.testing.assert_allclose(out[middle], gain * sine[middle], atol=1e-4)


def test_short_signal_and_validation():
    out = bandpass(np.ones(10, np.float32), 16000)
    assert out.shape == (10,) and np.all(np.isfinite(out))
    with pytest.raises(ValueError, match="low_hz"):
        bandpass_sos(16000, 9000.0, 10000.0)
    with pytest.raises(ValueError, match="high_hz"):
        bandpass_sos(16000, 2000.0, 1000.0)
