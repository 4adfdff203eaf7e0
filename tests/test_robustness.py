"""Robustness: the audio front-end under hostile input, and a damaged corpus.

1. Property tests (hypothesis, bounded and derandomised so CI is
   reproducible): any file the front-end is given -- 0 to 60 s, 4-48 kHz,
   1-9 channels, silence, denormals, clipping, absurd float amplitudes,
   NaN / inf samples, with or without VAD and band-pass -- yields finite
   features of the documented shape or raises `AudioError` naming the file;
   segmentation of any feature array is well formed.
2. The shared demo corpus (tests/demo_run.py) with 2 corrupt training files
   and one unreadable dialogue folder: with data.on_error='skip' training
   completes and results.json counts and lists every skip; with 'raise' the
   run stops at once with one error naming the first bad file; an evaluation
   split is never shrunk.
"""

import dataclasses
import json
import os
import re
import tempfile

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from configs import default
from jaxpara.audio import features, io, segment
from jaxpara.data import pipeline
from jaxpara.data.types import Example
from tests import demo_run

_DATA = default.get_config().data
_SPEC = features.FeatureSpec.from_config(_DATA.features, _DATA.sample_rate)
# 30 s buckets: at most two compiled feature shapes for 0-60 s inputs. Padding
# never changes the features of real frames (tests/audio), so this only
# bounds compilation time.
_EXTRACTOR = features.FeatureExtractor(_SPEC, bucket_seconds=30.0, batch_size=1)


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    rate=st.integers(4000, 48000),
    seconds=st.one_of(st.sampled_from([0.0, 1e-4, 60.0]), st.floats(0.0, 60.0)),
    channels=st.sampled_from([1, 1, 2, 9]),
    amplitude=st.sampled_from([0.0, 1e-40, 1e-4, 1.0, 8.0, 3e4, 1e20]),
    subtype=st.sampled_from(["FLOAT", "PCM_16"]),
    inject=st.sampled_from(["none", "none", "none", "nan", "inf"]),
    vad=st.booleans(),
    bandpass=st.booleans(),
    seed=st.integers(0, 2**16),
)
# The extremes, always tried: 60 s at 48 kHz clipped 16-bit stereo through VAD
# and band-pass; one sample at 4 kHz; float denormals at 44.1 kHz.
@example(48000, 60.0, 2, 8.0, "PCM_16", "none", True, True, 1)
@example(4000, 2.5e-4, 1, 1.0, "FLOAT", "none", True, True, 2)
@example(44100, 3.0, 1, 1e-40, "FLOAT", "none", False, True, 3)
def test_front_end_gives_finite_features_or_the_documented_error(
    rate, seconds, channels, amplitude, subtype, inject, vad, bandpass, seed
):
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    x = (amplitude * rng.standard_normal((n, channels))).astype(np.float32)
    x[: n // 3] = 0.0  # A stretch of digital silence.
    if inject != "none" and n:
        x[rng.integers(n), rng.integers(channels)] = (
            np.nan if inject == "nan" else np.inf
        )
    cfg = default.get_config().data
    cfg.vad.enabled, cfg.bandpass.enabled = vad, bandpass
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "input.wav")
        sf.write(path, x, rate, subtype=subtype)
        example = Example("u", path, "neutral")
        expected = None
        if channels > 8:
            expected = "9 channels"
        elif n == 0:
            expected = "no samples"
        elif subtype == "FLOAT" and inject != "none":
            expected = "non-finite samples"
        elif subtype == "FLOAT" and amplitude > io.MAX_AMPLITUDE:
            expected = "peak"
        if expected:
            with pytest.raises(io.AudioError, match=re.escape(path)) as err:
                pipeline.decode_example(example, cfg)
            assert expected in str(err.value)
            return
        signal, _ = pipeline.decode_example(example, cfg)
    assert signal.dtype == np.float32 and signal.ndim == 1 and signal.size >= 1
    assert np.isfinite(signal).all()
    (feats,) = _EXTRACTOR([signal])
    assert feats.shape == (_SPEC.num_frames(signal.size), 40, 3)
    assert np.isfinite(feats).all()
    segs, valid = segment.segment(feats, 200, 100, 50)
    assert segs.shape[1:] == (200, 40, 3) and np.isfinite(segs).all()
    assert 1 <= valid.min() and valid.max() <= 200


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    frames=st.integers(0, 3000),
    length=st.integers(1, 400),
    hop_fraction=st.floats(0.05, 1.0),
    min_fraction=st.floats(0.0, 1.0),
    mode=st.sampled_from(segment.MODES),
)
def test_segmentation_is_well_formed_for_any_length(
    frames, length, hop_fraction, min_fraction, mode
):
    hop = max(1, int(length * hop_fraction))
    min_frames = int(length * min_fraction)
    feats = np.arange(frames * 2, dtype=np.float32).reshape(frames, 2) + 1.0
    if frames == 0:
        with pytest.raises(ValueError, match="0 frames"):
            segment.segment(feats, length, hop, min_frames, mode=mode)
        return
    segs, valid = segment.segment(feats, length, hop, min_frames, mode=mode)
    starts = (
        [0]
        if mode == "first"
        else segment.segment_starts(frames, length, hop, min_frames)
    )
    assert segs.shape == (len(starts), length, 2) and valid.shape == (len(starts),)
    assert len(starts) >= 1 and (mode == "all" or len(starts) == 1)
    for s, start in enumerate(starts):
        # Each segment is the utterance's frames from `start`, zero-padded.
        assert valid[s] == min(length, frames - start) >= 1
        np.testing.assert_array_equal(
            segs[s, : valid[s]], feats[start : start + valid[s]]
        )
        assert not segs[s, valid[s] :].any()
    if mode == "all":  # Every frame is covered, up to a dropped short tail.
        covered = starts[-1] + valid[-1]
        assert covered == frames or 0 < frames - covered < min_frames


# ------------------------------------------------------------ damaged corpus
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_run.trained_demo(tmp_path_factory)


def test_skipped_files_are_counted_and_listed(demo):
    with open(os.path.join(demo["workdir"], "results.json")) as f:
        results = json.load(f)
    bad = {**demo["corrupt"], **demo["unreadable"]}
    assert len(demo["corrupt"]) == 2 and len(demo["unreadable"]) == 4
    train = results["splits"]["train"]
    assert train["n_skipped"] == len(bad)
    assert {s["utterance_id"] for s in train["skipped"]} == set(bad)
    for s in train["skipped"]:
        assert bad[s["utterance_id"]] in s["reason"]  # Names the file ...
        if s["utterance_id"] in demo["unreadable"]:  # ... and the OS error.
            assert "Too many levels of symbolic links" in s["reason"]
    assert set(results["corpus"]["unreadable"]) == set(bad)
    # 22 labelled training utterances in Session1; evaluation splits intact.
    assert train["n_utterances"] == 22 - len(bad)
    for name in ("validation", "test"):
        assert results["splits"][name]["n_skipped"] == 0
        assert results["splits"][name]["n_utterances"] == 11
    with open(os.path.join(demo["workdir"], "predictions.csv")) as f:
        text = f.read()
    assert not any(u in text for u in bad)


def test_on_error_raise_refuses_with_one_error_naming_the_file(demo, tmp_path):
    from jaxpara import train

    cfg = demo_run.demo_config(demo["root"])
    cfg.data.on_error = "raise"
    # The run's feature cache (same files): no feature extraction needed.
    os.symlink(os.path.join(demo["workdir"], "cache"), tmp_path / "cache")
    first_bad = demo["corrupt"]["Ses01F_impro01_F001"]  # First in train order.
    with pytest.raises(ValueError, match=re.escape(first_bad)) as err:
        train.train_and_evaluate(cfg, str(tmp_path))
    assert "data.on_error='skip'" in str(err.value)
    assert not (tmp_path / "checkpoints").exists()  # Nothing was trained.


def test_evaluation_splits_are_never_shrunk(demo):
    """Even with on_error='skip', an unreadable test file is an error."""
    from jaxpara import protocol
    from jaxpara.data import corpora, splits

    cfg = demo_run.demo_config(demo["root"])
    corpus = corpora.read_corpus("iemocap", demo["root"])
    (fold,) = splits.build_folds(corpus, cfg.protocol)
    (cache,) = os.listdir(os.path.join(demo["workdir"], "cache"))
    store = pipeline.FeatureStore.load(os.path.join(demo["workdir"], "cache", cache))
    unreadable = [e for e in fold.train if e.utterance_id in demo["unreadable"]]
    moved = dataclasses.replace(fold, test=fold.test + unreadable)
    with pytest.raises(ValueError, match=re.escape(unreadable[0].path)) as err:
        protocol.fold_data(cfg, corpus, moved, store)
    assert err.value.args[0].startswith("test split")
