"""configs/icbhi_resnet18.py (card C2): variants, front-end, crop rules, end to end."""

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from configs import default, icbhi_resnet18
from jaxpara.audio import features, filters
from jaxpara.data import pipeline
from jaxpara.data.corpora.icbhi import LABELS
from jaxpara.data.types import Corpus, Example
from jaxpara.models import create_model
from jaxpara.models.resnet import ResNet


def test_variants_set_attention_and_only_override_default_keys():
    keys = set(default.get_config().to_dict())
    for variant in icbhi_resnet18.VARIANTS:
        cfg = icbhi_resnet18.get_config(variant)
        assert set(cfg.to_dict()) == keys
        model = create_model(cfg.model, 4)
        assert isinstance(model, ResNet) and model.attention == variant
        assert model.resnet_stage_features == (64, 128, 256, 512)
        assert model.resnet_blocks_per_stage == (2, 2, 2, 2)
        assert model.resnet_se_reduction == 16
        assert cfg.eval.icbhi_normal_label == "normal"
        assert (cfg.protocol.name, cfg.protocol.validation_fraction) == (
            "predefined",
            0.3,
        )
    with pytest.raises(ValueError, match="cbam"):
        icbhi_resnet18.get_config("cbam")


def test_stft_front_end_and_crop_length():
    cfg = icbhi_resnet18.get_config()
    spec = features.FeatureSpec.from_config(cfg.data.features, cfg.data.sample_rate)
    assert (spec.kind, spec.sample_rate) == ("stft", 4000)
    assert (spec.win_length, spec.hop_length, spec.n_fft) == (400, 160, 400)
    assert (spec.num_bins, spec.num_channels) == (201, 1)
    # 2.5 s at 4 kHz = 10,000 samples -> 63 centred 40 ms frames.
    assert spec.num_frames(10_000) == cfg.data.segment.length == 63


def _tone_amplitudes(signal, rate, freqs):
    """Least-squares amplitude of each sinusoid in `signal`."""
    t = np.arange(signal.size) / rate
    basis = np.concatenate(
        [
            np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], 1)
            for f in freqs
        ],
        axis=1,
    )
    coef, *_ = np.linalg.lstsq(basis, signal.astype(np.float64), rcond=None)
    return np.hypot(coef[0::2], coef[1::2])


def test_bandpass_response_at_50_500_1500_hz(tmp_path):
    """Card C2 band-pass at 4 kHz: 2000 Hz = Nyquist, so a 100 Hz high-pass."""
    cfg = icbhi_resnet18.get_config()
    bp, rate = cfg.data.bandpass, cfg.data.sample_rate
    freqs = np.array([50.0, 500.0, 1500.0])
    sos = filters.bandpass_sos(rate, bp.low_hz, bp.high_hz, bp.order)
    assert sos.shape == (3, 6)  # 5th-order high-pass: 3 sections.
    # Closed form of the bilinear-transformed Butterworth high-pass.
    warp = 2 * rate * np.tan(np.pi * np.append(freqs, bp.low_hz) / rate)
    gain = 1 / np.sqrt(1 + (warp[-1] / warp[:-1]) ** (2 * bp.order))
    _, h = scipy.signal.sosfreqz(sos, worN=freqs, fs=rate)
    np.testing.assert_allclose(np.abs(h), gain, rtol=1e-6)
    assert gain[0] < 0.04 and gain[1] > 0.999 and gain[2] > 0.9999

    # Through the pipeline: a 44.1 kHz file of three tones, resampled to 4 kHz
    # and filtered forward-backward, keeps each tone times |H|^2.
    t = np.arange(3 * 44100) / 44100
    tones = sum(0.3 * np.sin(2 * np.pi * f * t + k) for k, f in enumerate(freqs))
    sf.write(tmp_path / "tones.wav", tones.astype(np.float32), 44100, subtype="FLOAT")
    example = Example("tones", str(tmp_path / "tones.wav"), "normal")
    signal, _ = pipeline.decode_example(example, cfg.data)
    assert signal.shape == (3 * rate,)
    measured = _tone_amplitudes(signal[rate : 2 * rate], rate, freqs) / 0.3
    np.testing.assert_allclose(measured, gain**2, rtol=0.02)


def _ramp_store(lengths):
    """Features whose value is frame index + 1 (0 only in padding)."""
    feats = [
        np.broadcast_to(np.arange(1, n + 1, dtype=np.float32)[:, None, None], (n, 2, 1))
        for n in lengths.values()
    ]
    offsets = np.concatenate([[0], np.cumsum(list(lengths.values()))])
    return pipeline.FeatureStore(
        list(lengths), offsets, np.concatenate(feats), failed={}, no_speech=[]
    )


def test_crop_positions_train_random_eval_from_zero():
    cfg = icbhi_resnet18.get_config()
    crop = cfg.data.segment.length
    lengths = {"long": 100, "exact": crop, "short": 20}
    store = _ramp_store(lengths)
    examples = [Example(u, f"/x/{u}.wav", "normal", speaker="101") for u in lengths]
    corpus = Corpus("icbhi", LABELS, examples)

    # Evaluation: one crop per cycle from frame 0, zero-padded.
    ev = pipeline.build_split(
        "test", examples, corpus, store, cfg.data, allow_skips=False
    )
    assert ev.segments.shape == (3, crop, 2, 1)
    np.testing.assert_array_equal(ev.frames, [crop, crop, 20])
    for i, n in enumerate(lengths.values()):
        expected = np.where(np.arange(crop) < n, np.arange(1, crop + 1), 0)
        np.testing.assert_array_equal(ev.segments[i, :, 0, 0], expected)

    # Training: whole cycles, cut at a random start each epoch.
    tr = pipeline.build_split(
        "train",
        examples,
        corpus,
        store,
        cfg.data,
        allow_skips=False,
        whole_utterances=True,
    )
    assert tr.segments.shape == (3, 100, 2, 1)
    starts = {u: set() for u in lengths}
    for epoch in range(8):
        for batch in pipeline.train_batches(
            tr, None, global_batch=3, seed=0, epoch=epoch, random_crop=crop
        ):
            assert batch["inputs"].shape == (3, crop, 2, 1)
            for x, frames, u in zip(
                batch["inputs"], batch["frames"], batch["utterance_id"]
            ):
                name = tr.utterance_ids[u]
                start = int(x[0, 0, 0]) - 1
                valid = min(crop, lengths[name] - start)
                expected = np.where(
                    np.arange(crop) < valid, np.arange(start + 1, start + crop + 1), 0
                )
                np.testing.assert_array_equal(x[:, 0, 0], expected)
                assert frames == valid
                starts[name].add(start)
    assert starts["exact"] == starts["short"] == {0}
    assert len(starts["long"]) > 1 and starts["long"] <= set(range(100 - crop + 1))


# The five variants end to end, with the card C2 checks (crops, SE / SP,
# patients, selection on the ICBHI score): tests/test_sweep.py.
