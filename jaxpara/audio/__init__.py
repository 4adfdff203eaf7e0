"""Audio front-end shared by every system (card C0).

Modules (import them directly, e.g. `from jaxpara.audio import features`):
  io        `load_audio`, `audio_info`, `AudioError`: WAV/FLAC -> mono float32.
  vad       `vad_trim`: webrtcvad trimming of leading/trailing non-speech.
  filters   `bandpass`, `bandpass_sos`: zero-phase Butterworth (card C2).
  features  `FeatureSpec`, `compute`, `FeatureExtractor`: JAX log-Mel / STFT with
            deltas, [time, freq, channels], matching librosa.
  segment   `segment`, `crop`: fixed-length zero-padded windows.
  stats     `RunningStats`, `NormStats`: per (bin, channel) training-split z-norm.
"""
