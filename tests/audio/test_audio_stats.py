import numpy as np
import pytest

from jaxpara.audio.stats import STD_FLOOR, NormStats, RunningStats


def utterances(seed):
    rng = np.random.default_rng(seed)
    # Large offset, small spread: where a naive sum-of-squares loses digits.
    return [
        (
            1e4 + rng.standard_normal((int(rng.integers(1, 60)), 5, 3)) * rng.random()
        ).astype(np.float32)
        for _ in range(40)
    ]


def test_matches_numpy_over_concatenation():
    batches = utterances(0)
    stats = RunningStats((5, 3))
    for x in batches:
        stats.update(x)
    result = stats.result()
    everything = np.concatenate(batches).astype(np.float64)
    assert result.count == everything.shape[0]
    assert result.mean.dtype == np.float32 and result.mean.shape == (5, 3)
    np.testing.assert_allclose(result.mean, everything.mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(result.std, everything.std(axis=0), rtol=1e-6)


def test_merge_equals_single_stream():
    batches = utterances(1)
    whole, first, second = (
        RunningStats((5, 3)),
        RunningStats((5, 3)),
        RunningStats((5, 3)),
    )
    for i, x in enumerate(batches):
        whole.update(x)
        (first if i % 2 else second).update(x)
    first.merge(second)
    np.testing.assert_allclose(first.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(first.m2, whole.m2, rtol=1e-9)


def test_constant_channel_std_is_floored_and_apply():
    x = np.ones((10, 2, 1), np.float32)
    x[:, 1, 0] = np.arange(10)
    stats = RunningStats((2, 1))
    stats.update(x)
    stats.update(np.zeros((0, 2, 1)))  # Empty update is a no-op.
    result = stats.result()
    assert result.std[0, 0] == np.float32(STD_FLOOR)
    normalised = result.apply(x[None])
    assert normalised.shape == (1, 10, 2, 1)
    np.testing.assert_allclose(normalised[0, :, 0, 0], 0.0)
    np.testing.assert_allclose(
        normalised[0, :, 1, 0], (np.arange(10) - 4.5) / np.std(np.arange(10)), rtol=1e-6
    )


def test_save_load_round_trip_exact(tmp_path):
    stats = RunningStats((5, 3))
    for x in utterances(2):
        stats.update(x)
    result = stats.result()
    path = tmp_path / "norm_stats.npz"
    result.save(path)
    loaded = NormStats.load(path)
    np.testing.assert_array_equal(loaded.mean, result.mean)
    np.testing.assert_array_equal(loaded.std, result.std)
    assert loaded.count == result.count and loaded.mean.dtype == np.float32


def test_errors():
    with pytest.raises(ValueError, match="no frames"):
        RunningStats((2, 3)).result()
    with pytest.raises(ValueError, match="frame shape"):
        RunningStats((2, 3)).update(np.zeros((4, 3, 2)))
