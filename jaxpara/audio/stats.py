"""Per (bin, channel) normalisation statistics over the training split (card C0)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

# Smallest std used for dividing; a constant (bin, channel) is centred, not blown up.
STD_FLOOR = 1e-5


@dataclasses.dataclass
class NormStats:
    """Mean and std per (bin, channel).

    Attributes:
      mean: [F, C] float32.
      std: [F, C] float32 population std (ddof 0), floored at STD_FLOOR.
      count: frames the statistics were computed from.
    """

    mean: np.ndarray
    std: np.ndarray
    count: int

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(x - mean) / std for x [..., F, C]; float32."""
        x = np.asarray(x, np.float32)
        if x.shape[-self.mean.ndim :] != self.mean.shape:
            raise ValueError(
                f"NormStats.apply: trailing shape {x.shape[-self.mean.ndim :]} "
                f"!= stats shape {self.mean.shape}"
            )
        return (x - self.mean) / self.std

    def save(self, path: str | os.PathLike) -> None:
        """Writes an .npz with arrays mean, std, count (to exactly `path`)."""
        with open(path, "wb") as f:
            np.savez(f, mean=self.mean, std=self.std, count=np.int64(self.count))

    @classmethod
    def load(cls, path: str | os.PathLike) -> NormStats:
        """Reads what `save` wrote; round trip is exact."""
        try:
            with np.load(path) as data:
                return cls(mean=data["mean"], std=data["std"], count=int(data["count"]))
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"cannot load normalisation stats {path}: {e}") from e


class RunningStats:
    """Streaming float64 mean / variance per (bin, channel) over frames.

    Batches are merged with Chan et al.'s pairwise update, which stays accurate
    when the mean is large relative to the spread (log-Mel of quiet audio).

    Args:
      feature_shape: (F, C) shape of one frame.
    """

    def __init__(self, feature_shape: tuple[int, ...]):
        self.feature_shape = tuple(int(d) for d in feature_shape)
        self.count = 0
        self.mean = np.zeros(self.feature_shape, np.float64)
        self.m2 = np.zeros(self.feature_shape, np.float64)  # Sum of squared deviations.

    def _merge(self, count: int, mean: np.ndarray, m2: np.ndarray) -> None:
        if count == 0:
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.count * count / total)
        self.count = total

    def update(self, x: np.ndarray) -> None:
        """Adds the real (non-padding) frames x [T, F, C]."""
        x = np.asarray(x, np.float64)
        if x.shape[1:] != self.feature_shape:
            raise ValueError(
                f"RunningStats.update: frame shape {x.shape[1:]} != "
                f"{self.feature_shape}"
            )
        if x.shape[0] == 0:
            return
        mean = x.mean(axis=0)
        m2 = np.square(x - mean).sum(axis=0)
        self._merge(x.shape[0], mean, m2)

    def merge(self, other: RunningStats) -> None:
        """Adds another accumulator's frames (e.g. from another host)."""
        if other.feature_shape != self.feature_shape:
            raise ValueError(
                f"RunningStats.merge: shape {other.feature_shape} != "
                f"{self.feature_shape}"
            )
        self._merge(other.count, other.mean, other.m2)

    def result(self) -> NormStats:
        """Mean and floored population std of all frames seen."""
        if self.count == 0:
            raise ValueError("RunningStats.result: no frames were added")
        std = np.sqrt(self.m2 / self.count)
        return NormStats(
            mean=self.mean.astype(np.float32),
            std=np.maximum(std, STD_FLOOR).astype(np.float32),
            count=self.count,
        )
