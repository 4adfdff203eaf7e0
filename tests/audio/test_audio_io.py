import re

import librosa
import numpy as np
import pytest
import soundfile as sf

from jaxpara.audio.io import AudioError, audio_info, load_audio


def tone(num_samples, sample_rate, freq=440.0, channels=1):
    t = np.arange(num_samples) / sample_rate
    return np.stack(
        [0.5 * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)], axis=1
    ).astype(np.float32)


def test_stereo_wav_is_mixed_to_mono(tmp_path):
    path = str(tmp_path / "stereo.wav")
    sf.write(path, tone(8000, 16000, channels=2), 16000, subtype="FLOAT")
    data, _ = sf.read(path, dtype="float32")
    signal = load_audio(path, 16000)
    assert signal.dtype == np.float32
    np.testing.assert_array_equal(
        signal, data.mean(axis=1, dtype=np.float64).astype(np.float32)
    )
    assert audio_info(path) == (16000, 2, 8000)


def test_flac_is_resampled_with_soxr(tmp_path):
    path = str(tmp_path / "x.flac")
    sf.write(path, tone(44100, 44100), 44100, subtype="PCM_24")
    data, _ = sf.read(path, dtype="float32")
    signal = load_audio(path, 16000)
    expected = librosa.resample(
        data[:, 0] if data.ndim == 2 else data,
        orig_sr=44100,
        target_sr=16000,
        res_type="soxr_hq",
    )
    assert signal.shape == (16000,)
    np.testing.assert_allclose(signal, expected, atol=1e-6)
    np.testing.assert_array_equal(load_audio(path), data)  # None keeps 44.1 kHz.


def test_excerpt_and_end_clipping(tmp_path):
    path = str(tmp_path / "cycle.wav")
    data = tone(4000, 4000, freq=100.0)[:, 0]
    sf.write(path, data, 4000, subtype="FLOAT")
    np.testing.assert_array_equal(
        load_audio(path, start=0.25, end=0.5), data[1000:2000]
    )
    np.testing.assert_array_equal(load_audio(path, start=0.75, end=9.0), data[3000:])


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing", "not found"),
        ("corrupt", "cannot read"),
        ("empty", "no samples"),
        ("nan", "non-finite"),
        ("channels", "max_channels"),
        ("excerpt", "no samples"),
    ],
)
def test_errors_name_the_file(tmp_path, case, match):
    path = str(tmp_path / f"{case}.wav")
    kwargs = {}
    if case == "corrupt":
        with open(path, "wb") as f:
            f.write(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4)
    elif case == "empty":
        sf.write(path, np.zeros((0,), np.float32), 16000)
    elif case == "nan":
        data = tone(1000, 16000)[:, 0]
        data[500] = np.nan
        sf.write(path, data, 16000, subtype="FLOAT")
    elif case == "channels":
        sf.write(path, tone(100, 16000, channels=9), 16000, subtype="FLOAT")
    elif case == "excerpt":
        sf.write(path, tone(1600, 16000), 16000)
        kwargs = dict(start=0.2, end=0.3)
    with pytest.raises(AudioError, match=match) as info:
        load_audio(path, 16000, **kwargs)
    assert re.search(re.escape(path), str(info.value))
    assert isinstance(info.value, ValueError)


def test_audio_info_errors_name_the_file(tmp_path):
    path = str(tmp_path / "absent.flac")
    with pytest.raises(AudioError, match=re.escape(path)):
        audio_info(path)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_scales_duration_and_frequency(factor):
    from jaxpara.audio.io import speed_perturb

    rate, n = 16000, 16000
    x = tone(n, rate, freq=440.0)[:, 0]
    y = speed_perturb(x, rate, factor)
    assert y.dtype == np.float32
    assert abs(y.size - n / factor) <= 1
    # y(n / rate) = x(factor n / rate): the same tone at 440 * factor Hz,
    # to the resampler's accuracy away from the edges (filter ramp-up).
    t = np.arange(y.size) / rate
    expected = 0.5 * np.sin(2 * np.pi * 440.0 * factor * t)
    np.testing.assert_allclose(y[200:-200], expected[200:-200], atol=2e-3)
    assert speed_perturb(x, rate, 1.0) is x
    with pytest.raises(ValueError, match="factor must be > 0"):
        speed_perturb(x, rate, 0.0)
