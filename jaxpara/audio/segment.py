"""Fixed-length segmentation of a [time, ...] feature array (card C0, C3)."""

from __future__ import annotations

import numpy as np

MODES = ("all", "first")


def crop(features: np.ndarray, length: int, start: int) -> tuple[np.ndarray, int]:
    """One window of `length` frames from `start`, zero-padded past the end.

    Args:
      features: [T, ...] array, T >= 1.
      length: window length in frames.
      start: first frame, 0 <= start < T.

    Returns:
      (window [length, ...] with the dtype of `features`, valid frame count).
    """
    features = np.asarray(features)
    num_frames = features.shape[0]
    if num_frames == 0:
        raise ValueError("crop: features have 0 frames")
    if length < 1:
        raise ValueError(f"crop: length must be >= 1, got {length}")
    if not 0 <= start < num_frames:
        raise ValueError(f"crop: start {start} outside [0, {num_frames})")
    piece = features[start : start + length]
    valid = piece.shape[0]
    if valid == length:
        return piece.copy(), valid
    window = np.zeros((length, *features.shape[1:]), features.dtype)
    window[:valid] = piece
    return window, valid


def segment_starts(
    num_frames: int, length: int, hop: int, min_frames: int
) -> list[int]:
    """Start frames of the windows `segment` returns.

    Windows start at 0, hop, 2 * hop, ... until one reaches the end
    (start + length >= num_frames). That last window is a tail when it runs past
    the end; a tail with fewer than `min_frames` real frames is dropped unless it
    is the only window. With hop == length this is the plain rule of card C0;
    with overlap (hop < length) it avoids windows whose frames the previous
    window already covers entirely.
    """
    if num_frames < 1:
        raise ValueError("segment: features have 0 frames")
    if length < 1 or hop < 1:
        raise ValueError(f"segment: length ({length}) and hop ({hop}) must be >= 1")
    if not 0 <= min_frames <= length:
        raise ValueError(f"segment: need 0 <= min_frames <= length, got {min_frames}")
    starts = []
    start = 0
    while start < num_frames:
        if start + length <= num_frames or num_frames - start >= min_frames:
            starts.append(start)
        if start + length >= num_frames:
            break
        start += hop
    return starts or [0]


def segment(
    features: np.ndarray,
    length: int,
    hop: int,
    min_frames: int,
    mode: str = "all",
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts an utterance into fixed-length, zero-padded segments.

    Args:
      features: [T, ...] array (e.g. [T, F, C]), T >= 1.
      length: segment length L in frames.
      hop: frames between segment starts (hop < L overlaps).
      min_frames: shortest tail kept (see `segment_starts`).
      mode: 'all' (every segment) or 'first' (only the first window: the
        utterance cropped / zero-padded to L; card C3).

    Returns:
      (segments [S, L, ...] with the dtype of `features`, valid_frames [S]
      int32); S >= 1 always, so no utterance is lost.
    """
    features = np.asarray(features)
    if mode not in MODES:
        raise ValueError(f"segment: mode must be one of {MODES}, got {mode!r}")
    if mode == "first":
        starts = segment_starts(features.shape[0], length, length, 0)[:1]
    else:
        starts = segment_starts(features.shape[0], length, hop, min_frames)
    windows = [crop(features, length, start) for start in starts]
    segments = np.stack([window for window, _ in windows])
    valid = np.array([count for _, count in windows], np.int32)
    return segments, valid
