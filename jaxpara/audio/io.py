"""Audio decoding: WAV/FLAC -> mono float32 at the working rate (card C0).

Every failure raises `AudioError`, whose message names the file, so a corpus
loader can report (or, with `config.data.on_error = 'skip'`, count) the exact
recording that is broken.
"""

from __future__ import annotations

import os

import librosa
import numpy as np
import soundfile as sf

# soundfile raises these for unreadable, truncated or unsupported files.
_READ_ERRORS = (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError)


class AudioError(ValueError):
    """An audio file cannot be used; the message always contains its path."""


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """Header of an audio file.

    Args:
      path: WAV/FLAC (anything libsndfile reads).

    Returns:
      (sample_rate in Hz, channels, frames per channel).

    Raises:
      AudioError: the file is missing or its header cannot be read.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(f"audio file not found: {path}")
    try:
        info = sf.info(path)
    except _READ_ERRORS as e:
        raise AudioError(f"cannot read audio file {path}: {e}") from e
    return int(info.samplerate), int(info.channels), int(info.frames)


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    *,
    start: float = 0.0,
    end: float | None = None,
    max_channels: int = 8,
) -> np.ndarray:
    """Reads a file (or the excerpt [start, end) seconds of it) as mono float32.

    Channels are averaged. When `sample_rate` differs from the file's rate the
    signal is resampled with soxr ('soxr_hq' via librosa). An `end` beyond the
    file is clipped to the file's end (ICBHI annotations sometimes overshoot by
    a few milliseconds); an excerpt that contains no sample is an error.

    Args:
      path: WAV/FLAC file.
      sample_rate: output rate in Hz; None keeps the file's rate.
      start: excerpt start in seconds (>= 0).
      end: excerpt end in seconds; None = end of file.
      max_channels: files with more channels are rejected.

    Returns:
      [num_samples] float32, num_samples >= 1, all finite.

    Raises:
      AudioError: missing, unreadable or corrupt file, too many channels, empty
        file or excerpt, or non-finite samples.
    """
    path = os.fspath(path)
    file_rate, channels, frames = audio_info(path)
    if channels > max_channels:
        raise AudioError(
            f"{path}: {channels} channels, more than max_channels={max_channels}"
        )
    if start < 0 or (end is not None and end < start):
        raise AudioError(f"{path}: invalid excerpt [{start}, {end}) seconds")
    first = int(round(start * file_rate))
    last = frames if end is None else min(frames, int(round(end * file_rate)))
    if frames <= 0 or last <= first:
        raise AudioError(
            f"{path}: no samples in excerpt [{start}, {end}) s "
            f"(file has {frames} frames at {file_rate} Hz)"
        )
    try:
        data, _ = sf.read(path, start=first, stop=last, dtype="float32", always_2d=True)
    except _READ_ERRORS as e:
        raise AudioError(f"cannot decode audio file {path}: {e}") from e
    if data.shape[0] == 0:
        raise AudioError(f"{path}: decoded 0 samples from [{start}, {end}) s")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: contains non-finite samples (NaN or inf)")
    signal = data.mean(axis=1, dtype=np.float64).astype(np.float32)
    if sample_rate is not None and int(sample_rate) != file_rate:
        signal = librosa.resample(
            signal, orig_sr=file_rate, target_sr=int(sample_rate), res_type="soxr_hq"
        ).astype(np.float32)
        if signal.size == 0:
            raise AudioError(
                f"{path}: excerpt too short to resample to {sample_rate} Hz"
            )
    return signal
