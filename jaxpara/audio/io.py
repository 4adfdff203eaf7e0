"""Audio decoding: WAV/FLAC -> mono float32 at the working rate (card C0).

Every failure raises `AudioError`, whose message names the file, so a corpus
loader can report (or, with `config.data.on_error = 'skip'`, count) the exact
recording that is broken.
"""

from __future__ import annotations

import os
import stat

import librosa
import numpy as np
import soundfile as sf

from jaxpara.errors import UserError

# soundfile raises these for unreadable, truncated or unsupported files.
_READ_ERRORS = (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError)


class AudioError(UserError, ValueError):
    """An audio file cannot be used; the message always contains its path."""


# Largest accepted |sample|. Full scale is 1.0; float files written on the
# int16 scale (+-32768) still pass. Beyond ~1e18 the float32 power spectrum
# overflows and the features would be NaN.
MAX_AMPLITUDE = 1e6


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
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise AudioError(f"audio file not found: {path}") from None
    except OSError as e:  # Unreadable folder: permission denied, symlink loop.
        raise AudioError(f"cannot access audio file {path}: {e.strerror}") from e
    if not stat.S_ISREG(mode):  # A folder, a FIFO (would block), a device.
        raise AudioError(f"audio file not found: {path} is not a regular file")
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
        file or excerpt, non-finite samples, or samples beyond MAX_AMPLITUDE.
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
    peak = float(np.max(np.abs(data)))
    if peak > MAX_AMPLITUDE:
        raise AudioError(
            f"{path}: peak |sample| {peak:.3g} > {MAX_AMPLITUDE:g} (full scale is "
            "1): not a scaled audio signal"
        )
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


def speed_perturb(signal: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """Speed perturbation (Ko et al. 2015, Kaldi's `sox speed`): the signal
    played `factor` times faster, so duration / factor and every frequency
    (pitch and formants) x factor: y(n / rate) = x(factor n / rate).

    Done as a resampling (soxr 'soxr_hq'): the samples are read as if taken
    at `rate * factor` Hz and resampled to `rate`.

    Args:
      signal: [num_samples] float32 at `rate` Hz.
      rate: its sample rate in Hz.
      factor: > 0; 1 returns the signal unchanged.

    Returns:
      [round(num_samples / factor)] float32 (at least 1 sample).
    """
    if not factor > 0:
        raise ValueError(f"speed_perturb: factor must be > 0, got {factor}")
    if factor == 1.0:
        return signal
    out = librosa.resample(
        np.asarray(signal, np.float32),
        orig_sr=rate * factor,
        target_sr=rate,
        res_type="soxr_hq",
    )
    return np.asarray(out if out.size else signal[:1], np.float32)


WAVEFORM_NORMS = ("none", "zscore", "peak")


def normalise_waveform(signal: np.ndarray, mode: str) -> np.ndarray:
    """Per-utterance waveform normalisation (`config.data.waveform_norm`).

    Card C5 (seed 004 sec. 2.2.1: "unit changes and zero-mean are applied to
    a speech signal") reads as `zscore`: subtract the mean, divide by the
    standard deviation (computed in float64). `peak` subtracts the mean and
    divides by the largest |sample|. A constant (e.g. all-zero) signal has
    nothing to scale: it comes back zero-mean, unscaled, never NaN.

    Args:
      signal: [num_samples] float signal.
      mode: one of `WAVEFORM_NORMS` ('none' returns the signal unchanged).

    Returns:
      [num_samples] float32.

    Raises:
      ValueError: an unknown mode, naming `data.waveform_norm`.
    """
    if mode not in WAVEFORM_NORMS:
        raise ValueError(
            f"data.waveform_norm={mode!r}; expected one of {list(WAVEFORM_NORMS)}"
        )
    if mode == "none":
        return signal
    x = np.asarray(signal, np.float64)
    x = x - x.mean() if x.size else x
    scale = (x.std() if mode == "zscore" else np.abs(x).max()) if x.size else 0.0
    if scale > 1e-12:
        x = x / scale
    return x.astype(np.float32)
