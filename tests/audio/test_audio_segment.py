import numpy as np
import pytest

from jaxpara.audio.segment import crop, segment


def frames(num_frames, bins=2, channels=3):
    """[T, F, C] with frame t filled with t + 1 (so padding 0 is recognisable)."""
    values = np.arange(1, num_frames + 1, dtype=np.float32)
    return np.broadcast_to(values[:, None, None], (num_frames, bins, channels)).copy()


def starts_of(segments):
    return [int(s[0, 0, 0]) - 1 for s in segments]


def test_exact_multiple():
    segments, valid = segment(frames(600), 300, 300, 100)
    assert segments.shape == (2, 300, 2, 3) and segments.dtype == np.float32
    assert starts_of(segments) == [0, 300]
    np.testing.assert_array_equal(valid, [300, 300])
    assert valid.dtype == np.int32
    np.testing.assert_array_equal(segments.reshape(600, 2, 3), frames(600))


def test_tail_kept_zero_padded():
    segments, valid = segment(frames(450), 300, 300, 100)
    np.testing.assert_array_equal(valid, [300, 150])
    np.testing.assert_array_equal(segments[1, :150], frames(450)[300:])
    assert np.all(segments[1, 150:] == 0)


def test_tail_dropped():
    segments, valid = segment(frames(399), 300, 300, 100)
    np.testing.assert_array_equal(valid, [300])
    assert starts_of(segments) == [0]


def test_short_utterance_is_one_padded_segment():
    segments, valid = segment(frames(40), 300, 300, 100)
    assert segments.shape == (1, 300, 2, 3)
    np.testing.assert_array_equal(valid, [40])
    np.testing.assert_array_equal(segments[0, :40], frames(40))
    assert np.all(segments[0, 40:] == 0)


def test_overlap():
    segments, valid = segment(frames(11), 6, 2, 3)
    assert starts_of(segments) == [0, 2, 4, 6]
    np.testing.assert_array_equal(valid, [6, 6, 6, 5])
    segments, valid = segment(frames(10), 6, 2, 3)  # Window 4 reaches the end.
    assert starts_of(segments) == [0, 2, 4]


def test_first_mode_crops_or_pads():
    segments, valid = segment(frames(700), 500, 500, 100, mode="first")
    assert segments.shape == (1, 500, 2, 3)
    np.testing.assert_array_equal(segments[0], frames(700)[:500])
    segments, valid = segment(frames(20), 500, 500, 100, mode="first")
    np.testing.assert_array_equal(valid, [20])
    assert np.all(segments[0, 20:] == 0)


def test_no_utterance_lost_over_random_lengths():
    rng = np.random.default_rng(0)
    for _ in range(300):
        num_frames = int(rng.integers(1, 1500))
        length = int(rng.integers(1, 400))
        hop = int(rng.integers(1, length + 1))
        min_frames = int(rng.integers(0, length + 1))
        features = frames(num_frames, 1, 1)
        segments, valid = segment(features, length, hop, min_frames)
        assert segments.shape[0] >= 1 and segments.shape[1] == length
        assert np.all(valid >= 1) and np.all(valid <= length)
        covered = np.zeros(num_frames, bool)
        for seg, count in zip(segments, valid):
            start = int(seg[0, 0, 0]) - 1
            np.testing.assert_array_equal(seg[:count], features[start : start + count])
            assert np.all(seg[count:] == 0)
            covered[start : start + count] = True
        # Only a dropped tail (< min_frames frames) may stay uncovered.
        assert num_frames - np.flatnonzero(covered)[-1] - 1 < max(min_frames, 1)


def test_crop_and_errors():
    window, valid = crop(frames(10), 4, 8)
    assert valid == 2
    np.testing.assert_array_equal(window[:2], frames(10)[8:])
    assert np.all(window[2:] == 0)
    with pytest.raises(ValueError, match="0 frames"):
        segment(np.zeros((0, 2, 3)), 300, 300, 100)
    with pytest.raises(ValueError, match="mode"):
        segment(frames(10), 4, 4, 1, mode="random")
    with pytest.raises(ValueError, match="start"):
        crop(frames(10), 4, 10)
