"""JAX features vs librosa (card C0 acceptance: max relative error <= 1e-4).

Relative error, everywhere in this file: `max_relative_error(a, b)` =
max over elements of |a - b| / max(|b|, 1), with `a` the float32 JAX result and
`b` librosa run on the float64 signal (float64 STFT; its Mel bank is float32
weights as librosa builds it). Values of magnitude < 1 (e.g. deltas near 0) are
thus held to an absolute error of 1e-4, larger values to a relative one.
"""

import librosa
import numpy as np
import pytest

from configs import default as default_config
from jaxpara.audio import features

TOLERANCE = 1e-4


def voiced(num_samples, sample_rate, seed, snr_db=25.0):
    """A harmonic, vibrato-modulated 'vowel' with amplitude envelope plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / sample_rate
    f0 = 110.0 + 40.0 * rng.random() + 15.0 * np.sin(2 * np.pi * 4.0 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    harmonics = range(1, int(sample_rate / 2 / 200))
    y = sum(
        np.sin(h * phase) * np.exp(-((((h * 150.0) - 700.0) / 900.0) ** 2))
        for h in harmonics
    )
    y *= 0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t + rng.random()) ** 2
    y = 0.4 * y / np.max(np.abs(y))
    noise = rng.standard_normal(num_samples) * np.std(y) * 10 ** (-snr_db / 20)
    return (y + noise).astype(np.float32)


def librosa_stack(signal, spec):
    """[T, F, 3] reference: librosa static feature, delta, delta of delta."""
    y = signal.astype(np.float64)
    common = dict(
        n_fft=spec.n_fft,
        hop_length=spec.hop_length,
        win_length=spec.win_length,
        window="hamming",
        center=True,
        pad_mode="constant",
    )
    if spec.kind == "log_mel":
        power = librosa.feature.melspectrogram(
            y=y,
            sr=spec.sample_rate,
            power=2.0,
            n_mels=spec.n_mels,
            fmin=spec.fmin,
            fmax=spec.fmax,
            htk=spec.mel_scale == "htk",
            norm="slaney",
            **common,
        )
        static = np.log(power + spec.log_floor)
    else:
        static = np.log(np.abs(librosa.stft(y, **common)) + spec.log_floor)
    delta = librosa.feature.delta(static, width=spec.delta_width)
    delta2 = librosa.feature.delta(delta, width=spec.delta_width)
    return np.stack([static, delta, delta2], axis=-1).transpose(1, 0, 2)


def batch(signals):
    lengths = np.array([s.size for s in signals], np.int32)
    out = np.zeros((len(signals), lengths.max()), np.float32)
    for i, s in enumerate(signals):
        out[i, : s.size] = s
    return out, lengths


def test_spec_from_default_config():
    cfg = default_config.get_config().data.features
    spec = features.FeatureSpec.from_config(cfg, 16000)
    assert (spec.win_length, spec.hop_length, spec.n_fft) == (400, 160, 400)
    assert (spec.fmax, spec.n_mels, spec.kind) == (8000.0, 40, "log_mel")
    assert (spec.num_bins, spec.num_channels) == (40, 3)
    cfg.kind, cfg.win_ms, cfg.hop_ms, cfg.deltas = "stft", 100.0, 40.0, False
    icbhi = features.FeatureSpec.from_config(cfg, 4000)
    assert (icbhi.win_length, icbhi.hop_length, icbhi.n_fft) == (400, 160, 400)
    assert (icbhi.num_bins, icbhi.num_channels, icbhi.fmax) == (201, 1, 2000.0)


@pytest.mark.filterwarnings("ignore:n_fft=")
@pytest.mark.parametrize("n_fft", [400, 401])
def test_num_frames_matches_librosa(n_fft):
    spec = features.FeatureSpec(win_length=n_fft, n_fft=n_fft)
    for n in [n_fft // 2 + 1, 401, 1600, 1759, 16000]:
        frames = librosa.stft(np.zeros(n), n_fft=n_fft, hop_length=160).shape[1]
        assert spec.num_frames(n) == frames


def test_spec_validation_and_fingerprint():
    with pytest.raises(ValueError, match="kind"):
        features.FeatureSpec(kind="mfcc")
    with pytest.raises(ValueError, match="fmax"):
        features.FeatureSpec(fmax=9000.0)
    with pytest.raises(ValueError, match="delta_width"):
        features.FeatureSpec(delta_width=4)
    cfg = default_config.get_config().data.features
    cfg.fmax = 9000.0
    with pytest.raises(ValueError, match="config.data.features"):
        features.FeatureSpec.from_config(cfg, 16000)
    spec = features.FeatureSpec()
    assert spec.fingerprint() == features.FeatureSpec().fingerprint()
    assert len(spec.fingerprint()) == 16
    assert spec.fingerprint() != features.FeatureSpec(n_mels=23).fingerprint()
    assert spec.fingerprint() != features.FeatureSpec(mel_scale="htk").fingerprint()
    with pytest.raises(ValueError, match="mel_scale"):
        features.FeatureSpec(mel_scale="Slaney")
    # The two scales are different filter banks (HTK's is not linear < 1 kHz).
    slaney, htk = (
        features.log_mel(
            np.ones((1, 4000), np.float32), features.FeatureSpec(mel_scale=m)
        )
        for m in ("slaney", "htk")
    )
    assert not np.allclose(np.asarray(slaney), np.asarray(htk))


@pytest.mark.parametrize("mel_scale", ["slaney", "htk"])
def test_log_mel_stack_matches_librosa_16k(mel_scale):
    """Both mel scales (`htk`: seed 002 eq. 2) against librosa (htk=True/False)."""
    spec = features.FeatureSpec(mel_scale=mel_scale)
    signals = [
        voiced(16000, 16000, 0),
        voiced(40123, 16000, 1),
        voiced(64000, 16000, 2),
    ]
    padded, lengths = batch(signals)
    out = np.asarray(features.compute(padded, lengths, spec))
    assert out.shape == (3, spec.num_frames(64000), 40, 3)
    assert out.dtype == np.float32
    for i, signal in enumerate(signals):
        ref = librosa_stack(signal, spec)
        num_frames = spec.num_frames(signal.size)
        assert ref.shape[0] == num_frames
        for channel in range(3):
            err = features.max_relative_error(
                out[i, :num_frames, :, channel], ref[..., channel]
            )
            assert err <= TOLERANCE, (i, channel, err)
        assert np.all(out[i, num_frames:] == 0.0)


def test_stft_stack_matches_librosa_4k():
    cfg = default_config.get_config().data.features
    cfg.kind, cfg.win_ms, cfg.hop_ms = "stft", 100.0, 40.0
    spec = features.FeatureSpec.from_config(cfg, 4000)
    signals = [voiced(10000, 4000, 3), voiced(6001, 4000, 4)]
    padded, lengths = batch(signals)
    out = np.asarray(features.compute(padded, lengths, spec))
    for i, signal in enumerate(signals):
        ref = librosa_stack(signal, spec)
        num_frames = spec.num_frames(signal.size)
        err = features.max_relative_error(out[i, :num_frames], ref)
        assert err <= TOLERANCE, (i, err)
        assert np.all(out[i, num_frames:] == 0.0)


def test_padding_garbage_and_blocking_do_not_change_frames():
    """A signal alone (one vectorised step) == the same signal in a batch with
    random samples after its length, computed in time blocks of <= 40 frames
    under lax.map (the CPU layout)."""
    spec = features.FeatureSpec()
    signal = voiced(12345, 16000, 5)
    alone = features.compute(
        signal[None], np.array([signal.size]), spec, frames_per_step=0
    )
    padded = np.random.default_rng(0).standard_normal((2, 20000)).astype(np.float32)
    padded[1, : signal.size] = signal
    lengths = np.array([20000, signal.size])
    out = np.asarray(features.compute(padded, lengths, spec, frames_per_step=40))[1]
    num_frames = spec.num_frames(signal.size)
    np.testing.assert_allclose(
        out[:num_frames], np.asarray(alone)[0], rtol=1e-6, atol=1e-6
    )
    assert np.all(out[num_frames:] == 0.0)


def test_power_mel_and_stft_magnitude_match_librosa():
    spec = features.FeatureSpec()
    signal = voiced(8000, 16000, 6)
    ref_power = librosa.feature.melspectrogram(
        y=signal.astype(np.float64),
        sr=16000,
        n_fft=400,
        hop_length=160,
        window="hamming",
        pad_mode="constant",
        n_mels=40,
    ).T
    power = np.asarray(features.power_mel(signal[None], spec))[0]
    np.testing.assert_allclose(power, ref_power, rtol=1e-4, atol=1e-5 * ref_power.max())
    log_mel = np.asarray(features.log_mel(signal[None], spec))[0]
    assert features.max_relative_error(log_mel, np.log(ref_power + 1e-6)) <= TOLERANCE
    ref_mag = np.abs(
        librosa.stft(
            signal.astype(np.float64),
            n_fft=400,
            hop_length=160,
            window="hamming",
            pad_mode="constant",
        )
    ).T
    magnitude = np.asarray(features.stft_magnitude(signal[None], spec))[0]
    np.testing.assert_allclose(magnitude, ref_mag, rtol=1e-4, atol=1e-5 * ref_mag.max())


@pytest.mark.parametrize("width", [3, 5, 7])
def test_deltas_match_librosa_interp(width):
    rng = np.random.default_rng(width)
    x = rng.standard_normal((2, 50, 6)).astype(np.float32)
    lengths = np.array([50, 37])
    delta = np.asarray(features.deltas(x, lengths, width))
    delta2 = np.asarray(features.deltas(delta, lengths, width))
    for b, length in enumerate(lengths):
        ref = librosa.feature.delta(
            x[b, :length].astype(np.float64), width=width, axis=0
        )
        ref2 = librosa.feature.delta(ref, width=width, axis=0)
        np.testing.assert_allclose(delta[b, :length], ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(delta2[b, :length], ref2, rtol=1e-5, atol=1e-6)
        assert np.all(delta[b, length:] == 0.0)


def test_deltas_short_utterances_use_least_squares_slope():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 8, 3)).astype(np.float32)
    lengths = np.array([1, 2, 3, 4, 0])
    delta = np.asarray(features.deltas(x, lengths, 5))
    assert np.all(np.isfinite(delta))
    assert np.all(delta[0] == 0.0)  # One frame: slope 0.
    assert np.all(delta[4] == 0.0)  # No frame at all.
    for b in (1, 2, 3):
        t = np.arange(lengths[b])
        slope = np.polyfit(t, x[b, : lengths[b]].astype(np.float64), 1)[0]  # [F]
        np.testing.assert_allclose(
            delta[b, : lengths[b]], np.broadcast_to(slope, (lengths[b], 3)), atol=1e-6
        )
        assert np.all(delta[b, lengths[b] :] == 0.0)


def test_extractor_returns_per_signal_features_equal_to_compute():
    spec = features.FeatureSpec(n_mels=23)
    signals = [
        voiced(n, 16000, 10 + i) for i, n in enumerate([4000, 5000, 19000, 30000])
    ]
    extractor = features.FeatureExtractor(spec, bucket_seconds=1.0, batch_size=2)
    outputs = extractor(signals)
    assert len(outputs) == 4
    for signal, out in zip(signals, outputs):
        assert out.shape == (spec.num_frames(signal.size), 23, 3)
        assert out.dtype == np.float32
        ref = librosa_stack(signal, spec)
        assert features.max_relative_error(out, ref) <= TOLERANCE
    with pytest.raises(ValueError, match="signal 1"):
        extractor([signals[0], np.zeros(0, np.float32)])
