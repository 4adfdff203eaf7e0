import numpy as np
import pytest

from jaxpara.audio import vad

# webrtcvad's hang-over marks ~4 frames after speech as speech at mode 2.
HANGOVER_FRAMES = 5


def voiced_burst(sample_rate, begin_s=1.0, end_s=2.0, total_s=3.0):
    """A harmonic 130 Hz voice-like burst in digital silence."""
    signal = np.zeros(int(total_s * sample_rate), np.float32)
    begin, end = int(begin_s * sample_rate), int(end_s * sample_rate)
    t = np.arange(end - begin) / sample_rate
    phase = 2 * np.pi * np.cumsum(130 + 10 * np.sin(2 * np.pi * 3 * t)) / sample_rate
    y = sum(
        np.sin(h * phase) * np.exp(-((((h * 130) - 500) / 800) ** 2))
        for h in range(1, 30)
    )
    signal[begin:end] = 0.3 * y / np.abs(y).max()
    return signal, begin, end


@pytest.mark.parametrize("sample_rate", [16000, 22050])
def test_burst_is_trimmed_to_about_the_burst(sample_rate):
    signal, begin, end = voiced_burst(sample_rate)
    frame = sample_rate * 30 // 1000  # 30 ms in output samples (approx. at 22.05k).
    trimmed, found = vad.vad_trim(signal, sample_rate)
    assert found
    # The trimmed array is one contiguous slice of the input.
    offset = int(np.flatnonzero(signal)[0]) - int(np.flatnonzero(trimmed)[0])
    np.testing.assert_array_equal(trimmed, signal[offset : offset + trimmed.size])
    assert begin - frame <= offset <= begin
    trimmed_end = offset + trimmed.size
    assert end - frame <= trimmed_end <= end + HANGOVER_FRAMES * frame


def test_boundaries_are_vad_frame_boundaries_at_16k():
    signal, _, _ = voiced_burst(16000)
    is_speech = vad.speech_frames(signal, 16000)
    speech = np.flatnonzero(is_speech)
    trimmed, found = vad.vad_trim(signal, 16000)
    assert found
    np.testing.assert_array_equal(
        trimmed, signal[speech[0] * 480 : (speech[-1] + 1) * 480]
    )


@pytest.mark.parametrize("sample_rate", [16000, 44100])
def test_silence_returns_untouched_signal(sample_rate):
    signal = np.zeros(sample_rate, np.float32)
    out, found = vad.vad_trim(signal, sample_rate)
    assert not found
    assert out is signal
    short = np.ones(100, np.float32) * 0.1  # Shorter than one frame.
    out, found = vad.vad_trim(short, sample_rate)
    assert not found and out is short


def test_invalid_settings():
    with pytest.raises(ValueError, match="frame_ms"):
        vad.vad_trim(np.zeros(16000), 16000, frame_ms=25)
    with pytest.raises(ValueError, match="aggressiveness"):
        vad.vad_trim(np.zeros(16000), 16000, aggressiveness=4)
