"""tf.data pipeline: feature store, segmentation bookkeeping, batches, skips."""

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from configs import default
from jaxpara.audio import features as features_lib
from jaxpara.audio import io, segment
from jaxpara.data import pipeline
from jaxpara.data.types import Corpus, Example

RATE = 16000


def _data_cfg():
    c = default.get_config().data
    c.segment.length = 50
    c.segment.hop = 50
    c.segment.min_frames = 20
    return c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """12 wav files of 0.3-1.4 s, two labels, three speakers."""
    root = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    examples = []
    for i in range(12):
        n = int(RATE * (0.3 + 0.1 * i))
        t = np.arange(n) / RATE
        y = 0.3 * np.sin(2 * np.pi * (200 + 50 * (i % 2)) * t)
        y += 0.01 * rng.standard_normal(n)
        path = root / f"u{i:02d}.wav"
        sf.write(path, y.astype(np.float32), RATE)
        examples.append(
            Example(
                utterance_id=f"u{i:02d}",
                path=str(path),
                label=("a", "b")[i % 2],
                speaker=f"s{i % 3}",
                gender="mf"[i % 2],
            )
        )
    return Corpus("toy", ("a", "b"), examples)


@pytest.fixture(scope="module")
def store(corpus, tmp_path_factory):
    return pipeline.FeatureStore.build(
        corpus.examples, _data_cfg(), cache_dir=str(tmp_path_factory.mktemp("cache"))
    )


def test_feature_store_matches_direct_extraction(corpus, store):
    cfg = _data_cfg()
    spec = features_lib.FeatureSpec.from_config(cfg.features, RATE)
    e = corpus.examples[5]
    signal = io.load_audio(e.path, RATE)
    (direct,) = features_lib.FeatureExtractor(spec)([signal])
    np.testing.assert_allclose(store.get(e.utterance_id), direct, rtol=1e-5, atol=1e-5)
    assert store.get(e.utterance_id).shape == (spec.num_frames(len(signal)), 40, 3)
    assert not store.failed and not store.no_speech


def test_feature_cache_round_trip(corpus, store, tmp_path):
    path = str(tmp_path / "f.npz")
    store.save(path)
    loaded = pipeline.FeatureStore.load(path)
    assert loaded.ids == store.ids
    np.testing.assert_array_equal(loaded.frames, store.frames)
    np.testing.assert_array_equal(loaded.offsets, store.offsets)


def test_build_split_keeps_every_utterance(corpus, store):
    cfg = _data_cfg()
    split = pipeline.build_split(
        "test", corpus.examples, corpus, store, cfg, allow_skips=False
    )
    assert split.utterance_ids == [e.utterance_id for e in corpus.examples]
    expected_segments = sum(
        len(segment.segment(store.get(u), 50, 50, 20)[0]) for u in split.utterance_ids
    )
    assert split.num_segments == expected_segments
    assert set(split.utterance_index.tolist()) == set(range(12))
    np.testing.assert_array_equal(split.utterance_labels, [i % 2 for i in range(12)])
    # "m" (even i) -> 1, "f" -> 0.
    np.testing.assert_array_equal(
        split.utterance_gender, [1 - i % 2 for i in range(12)]
    )


def test_eval_batches_cover_each_segment_once(corpus, store):
    split = pipeline.build_split(
        "test", corpus.examples, corpus, store, _data_cfg(), allow_skips=False
    )
    norm = pipeline.training_stats(split, store)
    batches = list(pipeline.eval_batches(split, norm, global_batch=8))
    mask = np.concatenate([b["mask"] for b in batches]) > 0
    uid = np.concatenate([b["utterance_id"] for b in batches])
    assert mask.sum() == split.num_segments
    assert (uid[~mask] == -1).all()
    np.testing.assert_array_equal(uid[mask], split.utterance_index)
    inputs = np.concatenate([b["inputs"] for b in batches])[mask]
    frames = np.concatenate([b["frames"] for b in batches])[mask]
    np.testing.assert_allclose(
        inputs[0, : frames[0]], norm.apply(split.segments[0, : frames[0]]), atol=1e-6
    )
    for x, f in zip(inputs, frames):
        assert np.all(x[f:] == 0.0), "padding must stay zero after normalisation"


def test_train_batches_deterministic_resumable_and_sharded(corpus, store):
    split = pipeline.build_split(
        "train", corpus.examples, corpus, store, _data_cfg(), allow_skips=False
    )
    kw = dict(global_batch=4, seed=3, epoch=1)
    full = list(pipeline.train_batches(split, None, **kw))
    assert len(full) == split.num_segments // 4
    again = list(pipeline.train_batches(split, None, **kw))
    resumed = list(pipeline.train_batches(split, None, start_step=2, **kw))
    for a, b in zip(full, again):
        np.testing.assert_array_equal(a["inputs"], b["inputs"])
    for a, b in zip(full[2:], resumed):
        np.testing.assert_array_equal(a["utterance_id"], b["utterance_id"])
    other_epoch = list(
        pipeline.train_batches(split, None, global_batch=4, seed=3, epoch=2)
    )
    assert any(
        not np.array_equal(a["utterance_id"], b["utterance_id"])
        for a, b in zip(full, other_epoch)
    )
    halves = [
        list(
            pipeline.train_batches(split, None, process_index=p, process_count=2, **kw)
        )
        for p in (0, 1)
    ]
    for g, h0, h1 in zip(full, *halves):
        np.testing.assert_array_equal(
            g["inputs"], np.concatenate([h0["inputs"], h1["inputs"]])
        )
    used = np.concatenate([b["mask"] for b in full])
    assert used.sum() == len(full) * 4


def test_random_crop_windows_come_from_the_segment():
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((3, 20, 2, 1)).astype(np.float32)
    frames = np.array([20, 8, 3], np.int32)
    inputs[1, 8:] = 0
    inputs[2, 3:] = 0
    batch = {"inputs": inputs, "frames": frames}
    out = pipeline._crop_batch(batch, 5, np.random.default_rng(1))
    assert out["inputs"].shape == (3, 5, 2, 1)
    np.testing.assert_array_equal(out["frames"], [5, 5, 3])
    for b in range(2):
        window = out["inputs"][b]
        starts = [
            s
            for s in range(frames[b] - 4)
            if np.array_equal(inputs[b, s : s + 5], window)
        ]
        assert starts, "crop is a contiguous window of real frames"
    np.testing.assert_array_equal(out["inputs"][2, :3], inputs[2, :3])
    assert np.all(out["inputs"][2, 3:] == 0)


def test_unreadable_file_is_counted_skip_in_train_error_in_test(corpus, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00not really a wav file")
    examples = list(corpus.examples[:4]) + [
        Example("broken", str(bad), "a", speaker="s9")
    ]
    toy = dataclasses.replace(corpus, examples=examples)
    store = pipeline.FeatureStore.build(examples, _data_cfg())
    assert list(store.failed) == ["broken"]
    assert str(bad) in store.failed["broken"]
    train = pipeline.build_split(
        "train", examples, toy, store, _data_cfg(), allow_skips=True
    )
    assert train.num_utterances == 4
    assert [u for u, _ in train.skipped] == ["broken"]
    with pytest.raises(ValueError, match="broken.wav"):
        pipeline.build_split(
            "test", examples, toy, store, _data_cfg(), allow_skips=False
        )


def test_vad_and_bandpass_stages(tmp_path):
    n = RATE * 2
    y = np.zeros(n, np.float32)
    t = np.arange(RATE // 2) / RATE
    burst = 0.5 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    y[RATE // 2 : RATE] = burst + 0.05 * np.random.default_rng(0).standard_normal(
        len(t)
    )
    path = tmp_path / "burst.wav"
    sf.write(path, y, RATE)
    cfg = _data_cfg()
    cfg.vad.enabled = True
    signal, speech = pipeline.decode_example(Example("x", str(path), "a"), cfg)
    assert speech
    assert 0.4 * RATE <= len(signal) <= 0.8 * RATE
    cfg.vad.enabled = False
    cfg.bandpass.enabled = True
    filtered, _ = pipeline.decode_example(Example("x", str(path), "a"), cfg)
    assert len(filtered) == n
    assert np.abs(filtered[: RATE // 4]).max() < 1e-3


def test_waveform_normalisation_is_the_last_signal_stage(tmp_path):
    """Card C5: zero mean, unit variance per utterance, after VAD trimming
    (float64 NumPy reference); 'peak': zero mean, unit peak; the setting is in
    the feature-cache fingerprint ('none' keeps the earlier fingerprint)."""
    rng = np.random.default_rng(3)
    y = (0.3 + 0.1 * rng.standard_normal(RATE)).astype(np.float32)  # DC offset.
    path = tmp_path / "dc.wav"
    sf.write(path, y, RATE, subtype="FLOAT")
    cfg = _data_cfg()
    example = Example("x", str(path), "a")
    raw, _ = pipeline.decode_example(example, cfg)
    fingerprints = {pipeline.frontend_fingerprint(cfg)}
    for mode in ("zscore", "peak"):
        cfg.waveform_norm = mode
        got, _ = pipeline.decode_example(example, cfg)
        x = raw.astype(np.float64) - raw.astype(np.float64).mean()
        want = x / (x.std() if mode == "zscore" else np.abs(x).max())
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        assert abs(float(got.mean())) < 1e-6
        if mode == "zscore":
            assert float(got.std()) == pytest.approx(1.0, rel=1e-5)
        else:
            assert float(np.abs(got).max()) == pytest.approx(1.0, rel=1e-6)
        fingerprints.add(pipeline.frontend_fingerprint(cfg))
    assert len(fingerprints) == 3
    # Silence stays finite (nothing to scale), and a typo names the key.
    assert np.array_equal(
        io.normalise_waveform(np.zeros(8, np.float32), "zscore"), np.zeros(8)
    )
    with pytest.raises(ValueError, match="data.waveform_norm='unit'"):
        io.normalise_waveform(raw, "unit")


def test_speed_copies_reach_the_training_steps_only(corpus, tmp_path):
    """`augment.speed_factors`: `fold_data`'s training split gains one copy of
    each training utterance per factor, decoded through `io.speed_perturb`
    (duration / factor); the reported splits are the originals'."""
    from jaxpara import protocol
    from jaxpara.data.types import Fold

    cfg = default.get_config()
    cfg.data = _data_cfg()
    cfg.augment.speed_factors = (0.9, 1.1)
    fold = Fold("f", train=corpus.examples[:8], validation=[], test=corpus.examples[8:])
    copies = pipeline.speed_copies(fold.train, cfg.augment.speed_factors)
    assert [c.utterance_id for c in copies] == [
        f"u{i:02d}@speed{f}" for f in ("0.9", "1.1") for i in range(8)
    ]
    store = pipeline.FeatureStore.build(corpus.examples + copies, cfg.data)
    data, train, crop = protocol.fold_data(cfg, corpus, fold, store)
    originals = [e.utterance_id for e in fold.train]
    assert crop == 0
    assert data["train"].utterance_ids == originals
    assert data["test"].utterance_ids == [e.utterance_id for e in fold.test]
    assert train.utterance_ids == originals + [c.utterance_id for c in copies]
    np.testing.assert_array_equal(
        train.utterance_labels, np.tile(data["train"].utterance_labels, 3)
    )
    for copy in copies:
        original = copy.utterance_id.split("@")[0]
        signal = io.load_audio(copy.path, RATE)
        expected, _ = pipeline.decode_example(
            dataclasses.replace(copy, speed=1.0), cfg.data
        )
        np.testing.assert_array_equal(expected, signal)  # No other stage here.
        decoded, _ = pipeline.decode_example(copy, cfg.data)
        np.testing.assert_array_equal(
            decoded, io.speed_perturb(signal, RATE, copy.speed)
        )
        frames = store.get(copy.utterance_id).shape[0]
        assert abs(frames - store.get(original).shape[0] / copy.speed) <= 2


def test_speaker_normalisation_uses_each_speakers_own_statistics(corpus, store):
    """`speaker_normalise` against a float64 NumPy z-score per speaker; speed
    copies take their speaker's (originals') statistics."""
    from jaxpara.audio.stats import STD_FLOOR
    from jaxpara.data.types import CorpusError

    copies = pipeline.speed_copies(corpus.examples[:2], (1.1,))
    both = pipeline.FeatureStore.build(corpus.examples + copies, _data_cfg())
    normed = pipeline.speaker_normalise(both, corpus.examples + copies)
    assert normed.ids == both.ids
    np.testing.assert_array_equal(normed.offsets, both.offsets)
    for speaker in ("s0", "s1", "s2"):
        own = [e.utterance_id for e in corpus.examples if e.speaker == speaker]
        x = np.concatenate([both.get(u) for u in own]).astype(np.float64)
        mean, std = x.mean(axis=0), np.maximum(x.std(axis=0), STD_FLOOR)
        for u in own + [c.utterance_id for c in copies if c.speaker == speaker]:
            np.testing.assert_allclose(
                normed.get(u), (both.get(u) - mean) / std, rtol=1e-4, atol=1e-4
            )
    z = np.concatenate([normed.get(e.utterance_id) for e in corpus.examples[::3]])
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)  # Speaker s0.
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-3)
    # One speaker for the whole call (prediction).
    one = pipeline.speaker_normalise(store, corpus.examples, one_speaker=True)
    np.testing.assert_allclose(one.frames.mean(axis=(0,)), 0.0, atol=1e-4)
    anonymous = dataclasses.replace(corpus.examples[0], speaker="")
    with pytest.raises(CorpusError, match="u00.wav .u00. has no speaker"):
        pipeline.speaker_normalise(store, [anonymous])
