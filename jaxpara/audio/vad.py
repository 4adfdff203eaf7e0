"""Does a signal hold speech: webrtcvad trimming (card C0, seed 000), and the
energy floor of front-ends without VAD."""

from __future__ import annotations

import librosa
import numpy as np
import webrtcvad

# Rates webrtcvad accepts; other rates are resampled to 16 kHz for the decision.
VAD_RATES = (8000, 16000, 32000, 48000)
_DECISION_RATE = 16000

# The no-speech check of a front-end without VAD (`above_energy_floor`): a
# signal holds something to classify when one frame of `ENERGY_FRAME_MS`
# reaches `ENERGY_FLOOR_DBFS`, its RMS relative to full scale 1.0 (a
# full-scale sine is -3 dBFS). Speech peaks at -40 .. -5 dBFS in any usable
# recording (EmoDB: -23 .. -4 dBFS, its room noise about -50 dBFS); digital
# silence, a muted input or hiss under -60 dBFS stays below. Louder noise
# passes: this is a level check, not a speech detector.
ENERGY_FLOOR_DBFS = -60.0
ENERGY_FRAME_MS = 30


def speech_frames(
    signal: np.ndarray, sample_rate: int, *, aggressiveness: int = 2, frame_ms: int = 30
) -> np.ndarray:
    """webrtcvad's per-frame decision.

    Args:
      signal: [N] float waveform in [-1, 1] (clipped to it for 16-bit PCM).
      sample_rate: one of VAD_RATES.
      aggressiveness: webrtcvad mode 0 (least) .. 3 (most aggressive).
      frame_ms: 10, 20 or 30.

    Returns:
      [N // frame] bool, frame = sample_rate * frame_ms // 1000 samples; a final
      partial frame is not classified.
    """
    if sample_rate not in VAD_RATES:
        raise ValueError(f"webrtcvad needs a rate in {VAD_RATES}, got {sample_rate}")
    if frame_ms not in (10, 20, 30):
        raise ValueError(f"frame_ms must be 10, 20 or 30, got {frame_ms}")
    if aggressiveness not in (0, 1, 2, 3):
        raise ValueError(f"aggressiveness must be 0..3, got {aggressiveness}")
    frame = sample_rate * frame_ms // 1000
    pcm = (np.clip(np.asarray(signal, np.float64), -1.0, 1.0) * 32767.0).astype("<i2")
    vad = webrtcvad.Vad(aggressiveness)
    num_frames = pcm.size // frame
    return np.array(
        [
            vad.is_speech(pcm[i * frame : (i + 1) * frame].tobytes(), sample_rate)
            for i in range(num_frames)
        ],
        dtype=bool,
    )


def vad_trim(
    signal: np.ndarray,
    sample_rate: int,
    *,
    aggressiveness: int = 2,
    frame_ms: int = 30,
) -> tuple[np.ndarray, bool]:
    """Cuts leading and trailing non-speech; inner pauses are kept.

    The decision runs on 16-bit PCM at `sample_rate` when webrtcvad supports it,
    else on a copy resampled to 16 kHz; the boundaries are mapped back to
    `sample_rate`. The kept span runs from the first speech frame's start to the
    last speech frame's end (to the signal end when that frame is the last full
    one). webrtcvad's own hang-over marks a few frames after speech as speech
    (about 4 x 30 ms at mode 2), so the end is not tighter than that.

    Args:
      signal: [N] float waveform.
      sample_rate: its rate in Hz.
      aggressiveness: webrtcvad mode 0..3.
      frame_ms: VAD frame length, 10, 20 or 30 ms.

    Returns:
      (trimmed [M] signal, found_speech). When no frame is speech (or the signal
      is shorter than one frame) the input is returned unchanged with False,
      so the caller keeps the whole utterance and counts it.
    """
    signal = np.asarray(signal)
    if signal.ndim != 1:
        raise ValueError(f"vad_trim: signal must be 1-D, got shape {signal.shape}")
    if sample_rate in VAD_RATES:
        decision_signal, decision_rate = signal, sample_rate
    else:
        decision_signal = librosa.resample(
            np.asarray(signal, np.float32),
            orig_sr=sample_rate,
            target_sr=_DECISION_RATE,
            res_type="soxr_hq",
        )
        decision_rate = _DECISION_RATE
    is_speech = speech_frames(
        decision_signal,
        decision_rate,
        aggressiveness=aggressiveness,
        frame_ms=frame_ms,
    )
    speech = np.flatnonzero(is_speech)
    if speech.size == 0:
        return signal, False
    frame = decision_rate * frame_ms // 1000
    begin_s = speech[0] * frame / decision_rate
    if speech[-1] == is_speech.size - 1:
        end_sample = signal.size
    else:
        end_s = (speech[-1] + 1) * frame / decision_rate
        end_sample = min(signal.size, int(np.ceil(end_s * sample_rate)))
    begin_sample = min(int(np.floor(begin_s * sample_rate)), end_sample - 1)
    return signal[begin_sample:end_sample], True


def above_energy_floor(
    signal: np.ndarray,
    sample_rate: int,
    *,
    floor_dbfs: float = ENERGY_FLOOR_DBFS,
    frame_ms: int = ENERGY_FRAME_MS,
) -> bool:
    """Whether any frame of a signal reaches the energy floor.

    Args:
      signal: [N] float waveform, full scale 1.0.
      sample_rate: its rate in Hz.
      floor_dbfs: frame RMS floor in dB relative to full scale.
      frame_ms: non-overlapping frame length; a signal shorter than one frame
        is one frame, a trailing partial frame is its own frame.

    Returns:
      False for an empty signal or one whose every frame has RMS below
      `floor_dbfs` (digital silence: RMS 0, -inf dBFS).
    """
    x = np.asarray(signal, np.float64)
    if x.size == 0:
        return False
    frame = max(1, sample_rate * frame_ms // 1000)
    starts = np.arange(0, x.size, frame)
    power = np.add.reduceat(x * x, starts) / np.diff(np.append(starts, x.size))
    return bool(power.max() >= 10.0 ** (floor_dbfs / 10.0))
