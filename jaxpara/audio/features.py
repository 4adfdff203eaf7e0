"""Log-Mel / STFT features with deltas, in JAX (card C0).

Everything here is jit-compiled, batched and runs on whatever backend JAX uses.
The numbers agree with librosa on each signal alone (tests/audio/test_features.py):

* STFT: `librosa.stft(center=True, pad_mode='constant', window='hamming')`, i.e.
  `n_fft // 2` zeros on both sides, frame `t` starting at sample `t * hop - n_fft // 2`,
  a periodic Hamming window of `win_length` samples centred in `n_fft`.
* Mel: `librosa.feature.melspectrogram(power=2.0, htk=..., norm='slaney')`; the
  filter bank is built with `librosa.filters.mel` in NumPy at trace time.
  `mel_scale` picks the Hz -> mel formula: 'slaney' (librosa's default,
  linear below 1 kHz) or 'htk' (m = 2595 log10(1 + f / 700), seed 002 eq. 2);
  either way the triangles keep the Slaney area normalisation.
* Log: natural log with an additive floor, `log(x + log_floor)` (floor 1e-6 by
  default), chosen over `10 * log10` because it needs no reference level and is
  exactly reproducible; kind 'stft' uses `log(|STFT| + log_floor)`.
* Deltas: `librosa.feature.delta(width, mode='interp')`, applied twice for the
  delta-delta (seed 000 eq. 2-3).

Speed (benchmarks/features.py): framing, `rfft`, power, mel, log and both deltas run
in one XLA program. On CPU the spectral part is computed a few hundred frames at a
time under `lax.map` only when `frames_per_step` asks for it (to bound memory on
very long inputs); by default the whole batch is one vectorised step.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import librosa
import numpy as np

KINDS = ("log_mel", "stft")
MEL_SCALES = ("slaney", "htk")
# Bump when the numerics change so feature caches keyed by `fingerprint` refresh.
_FEATURE_VERSION = 1
# Frames per `lax.map` step by default; 0 = the whole batch in one vectorised
# step, which measured fastest on CPU as well once framing became one gather
# (benchmarks/features.py, 2-core CPU: ~79 ms vs ~89 ms for 512-frame blocks).
_CPU_FRAMES_PER_STEP = 0


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """What features to compute; hashable, so it is a static jit argument.

    Attributes:
      kind: 'log_mel' (log Mel power) or 'stft' (log STFT magnitude, card C2).
      sample_rate: sample rate of the signals in Hz.
      n_mels: Mel bands (kind 'log_mel').
      win_length: Hamming window length in samples.
      hop_length: frame shift in samples.
      n_fft: FFT size in samples (>= win_length).
      fmin: lowest Mel frequency in Hz.
      fmax: highest Mel frequency in Hz (<= sample_rate / 2).
      log_floor: additive floor inside the natural log.
      deltas: stack [static, delta, delta-delta] as 3 channels, else 1 channel.
      delta_width: regression window in frames (odd, >= 3; 5 means N = 2).
      mel_scale: 'slaney' or 'htk' (the Hz -> mel formula; module docstring).
    """

    kind: str = "log_mel"
    sample_rate: int = 16000
    n_mels: int = 40
    win_length: int = 400
    hop_length: int = 160
    n_fft: int = 400
    fmin: float = 0.0
    fmax: float = 8000.0
    log_floor: float = 1e-6
    deltas: bool = True
    delta_width: int = 5
    mel_scale: str = "slaney"

    def __post_init__(self):
        def fail(message: str):
            raise ValueError(f"FeatureSpec: {message}")

        if self.kind not in KINDS:
            fail(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.sample_rate <= 0:
            fail(f"sample_rate must be positive, got {self.sample_rate}")
        if self.win_length < 1 or self.hop_length < 1:
            fail(
                f"win_length ({self.win_length}) and hop_length ({self.hop_length}) "
                "must be >= 1 sample"
            )
        if self.n_fft < self.win_length:
            fail(f"n_fft ({self.n_fft}) must be >= win_length ({self.win_length})")
        if self.kind == "log_mel":
            if self.n_mels < 1:
                fail(f"n_mels must be >= 1, got {self.n_mels}")
            if not 0.0 <= self.fmin < self.fmax <= self.sample_rate / 2:
                fail(
                    f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin={self.fmin}, "
                    f"fmax={self.fmax}, sample_rate={self.sample_rate}"
                )
        if self.mel_scale not in MEL_SCALES:
            fail(f"mel_scale must be one of {MEL_SCALES}, got {self.mel_scale!r}")
        if not self.log_floor > 0.0:
            fail(f"log_floor must be > 0, got {self.log_floor}")
        if self.delta_width < 3 or self.delta_width % 2 != 1:
            fail(f"delta_width must be an odd integer >= 3, got {self.delta_width}")

    @classmethod
    def from_config(cls, features_cfg: Any, sample_rate: int) -> FeatureSpec:
        """Builds the spec from `config.data.features` at `sample_rate` Hz.

        `win_ms` / `hop_ms` are rounded to whole samples; `n_fft = 0` means the
        window length, `fmax = 0` means Nyquist.
        """
        win_length = int(round(features_cfg.win_ms * sample_rate / 1000.0))
        hop_length = int(round(features_cfg.hop_ms * sample_rate / 1000.0))
        try:
            return cls(
                kind=str(features_cfg.kind),
                sample_rate=int(sample_rate),
                n_mels=int(features_cfg.n_mels),
                win_length=win_length,
                hop_length=hop_length,
                n_fft=int(features_cfg.n_fft) or win_length,
                fmin=float(features_cfg.fmin),
                fmax=float(features_cfg.fmax) or sample_rate / 2.0,
                log_floor=float(features_cfg.log_floor),
                deltas=bool(features_cfg.deltas),
                delta_width=int(features_cfg.delta_width),
                mel_scale=str(features_cfg.mel_scale),
            )
        except ValueError as e:
            raise ValueError(
                f"config.data.features (sample_rate={sample_rate}): {e}"
            ) from None

    @property
    def num_bins(self) -> int:
        """Frequency bins F: n_mels for 'log_mel', n_fft // 2 + 1 for 'stft'."""
        return self.n_mels if self.kind == "log_mel" else self.n_fft // 2 + 1

    @property
    def num_channels(self) -> int:
        """Channels C: 3 with deltas, else 1."""
        return 3 if self.deltas else 1

    def num_frames(self, num_samples: int) -> int:
        """Frames of a signal of `num_samples` samples (librosa, center=True).

        `1 + (n + 2 * (n_fft // 2) - n_fft) // hop`, which is `1 + n // hop` for an
        even n_fft.
        """
        pad = self.n_fft // 2
        return 1 + (int(num_samples) + 2 * pad - self.n_fft) // self.hop_length

    def fingerprint(self) -> str:
        """Stable 16-hex-digit hash of all fields (and the numerics version)."""
        fields = dataclasses.asdict(self)
        if fields["mel_scale"] == "slaney":  # The one scale before the field.
            del fields["mel_scale"]
        fields["_version"] = _FEATURE_VERSION
        blob = json.dumps(fields, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# ----------------------------------------------------------- trace-time constants


@functools.lru_cache(maxsize=32)
def _window(spec: FeatureSpec) -> np.ndarray:
    """Periodic Hamming window centred in n_fft, float32 [n_fft]."""
    window = librosa.filters.get_window("hamming", spec.win_length, fftbins=True)
    return librosa.util.pad_center(window, size=spec.n_fft).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _mel_matrix(spec: FeatureSpec) -> np.ndarray:
    """Mel filter bank (`spec.mel_scale`), float32 [n_fft // 2 + 1, n_mels]."""
    mel = librosa.filters.mel(
        sr=spec.sample_rate,
        n_fft=spec.n_fft,
        n_mels=spec.n_mels,
        fmin=spec.fmin,
        fmax=spec.fmax,
        htk=spec.mel_scale == "htk",
        norm="slaney",
        dtype=np.float64,
    )
    return np.ascontiguousarray(mel.T).astype(np.float32)


# ------------------------------------------------------------------ spectra


def _frame(pieces: jax.Array, spec: FeatureSpec, num_frames: int) -> jax.Array:
    """Cuts overlapping frames with one gather (measured fastest on XLA CPU).

    Args:
      pieces: [G, (num_frames + r - 1) * hop] signal pieces, r = ceil(n_fft / hop).
      spec: feature spec.
      num_frames: frames per piece.

    Returns:
      [G, num_frames, n_fft]; frame t is `pieces[:, t * hop : t * hop + n_fft]`.
    """
    index = (
        np.arange(num_frames)[:, None] * spec.hop_length
        + np.arange(spec.n_fft)[None, :]
    )
    return pieces[:, index]


def _centred_frames(signals: jax.Array, spec: FeatureSpec, num_frames: int):
    """Frames of the centre-padded signals without materialising the padding.

    One gather with clamped indices and a select for the `n_fft // 2` zeros on
    each side: XLA fuses it with the masking of `signals` into a single pass
    (~10% faster end to end on the 2-core CPU than pad + gather).

    Args:
      signals: [B, N] float32.
      spec: feature spec.
      num_frames: frames per signal.

    Returns:
      [B, num_frames, n_fft]; frame t covers samples t * hop - n_fft // 2 ...
    """
    num_samples = signals.shape[1]
    index = (
        np.arange(num_frames)[:, None] * spec.hop_length
        + np.arange(spec.n_fft)[None, :]
        - spec.n_fft // 2
    )
    inside = (index >= 0) & (index < num_samples)
    return jnp.where(inside, signals[:, np.clip(index, 0, num_samples - 1)], 0.0)


def _power_spectrum(frames: jax.Array, spec: FeatureSpec) -> jax.Array:
    """[..., n_fft] frames -> [..., n_fft // 2 + 1] |STFT|^2 (Hamming window)."""
    shape = frames.shape
    # A 2-D rfft is a few percent faster than the 3-D one on XLA CPU.
    spectrum = jnp.fft.rfft((frames * _window(spec)).reshape(-1, shape[-1]), axis=-1)
    power = jnp.square(spectrum.real) + jnp.square(spectrum.imag)
    return power.reshape(*shape[:-1], power.shape[-1])


def _static_features(frames: jax.Array, spec: FeatureSpec) -> jax.Array:
    """[..., n_fft] frames -> [..., F] static features."""
    power = _power_spectrum(frames, spec)
    if spec.kind == "stft":
        return jnp.log(jnp.sqrt(power) + spec.log_floor)
    mel = jnp.matmul(power, _mel_matrix(spec), precision=jax.lax.Precision.HIGHEST)
    return jnp.log(mel + spec.log_floor)


def _spectral_map(
    signals: jax.Array,
    spec: FeatureSpec,
    fn,
    out_bins: int,
    frames_per_step: int | None,
) -> jax.Array:
    """Applies `fn(frames, spec) -> [..., out_bins]` to the frames, in blocks.

    The centre-padded signals are cut into pieces of `block` frames (plus the
    overlap a frame needs), which are processed `frames_per_step` frames per
    `lax.map` step (all at once when `frames_per_step` is 0).

    Args:
      signals: [B, N] float32, zeros after each signal's end.
      spec: feature spec (static).
      fn: per-frame spectral function, see `_static_features`.
      out_bins: last dimension of `fn`'s output.
      frames_per_step: frames per `lax.map` step; 0 = one vectorised step.

    Returns:
      [B, T, out_bins] with T = spec.num_frames(N).
    """
    batch, num_samples = signals.shape
    hop, n_fft = spec.hop_length, spec.n_fft
    total_frames = spec.num_frames(num_samples)
    if total_frames < 1:
        raise ValueError(
            f"signals of {num_samples} samples give no frame with n_fft={n_fft}"
        )
    r = -(-n_fft // hop)
    if not frames_per_step:
        frames_per_step = batch * total_frames
    num_blocks = max(1, -(-total_frames // frames_per_step))
    block = max(-(-total_frames // num_blocks), r)
    # Pieces overlap by (r - 1) hops: pad/trim the centre-padded signal to
    # (num_blocks + 1) blocks, then pair each block with the head of the next.
    total = (num_blocks + 1) * block * hop
    left = n_fft // 2
    if num_blocks == 1:  # One vectorised step: frame the signal directly.
        return fn(_centred_frames(signals, spec, total_frames), spec)
    padded = jnp.pad(signals, ((0, 0), (left, max(0, total - num_samples - left))))
    rows = padded[:, :total].reshape(batch, num_blocks + 1, block * hop)
    pieces = jnp.concatenate(
        [rows[:, :num_blocks], rows[:, 1:, : (r - 1) * hop]], axis=-1
    ).reshape(batch * num_blocks, (block + r - 1) * hop)
    group = max(1, frames_per_step // block)
    if group >= pieces.shape[0]:
        out = fn(_frame(pieces, spec, block), spec)
    else:
        out = jax.lax.map(
            lambda piece: fn(_frame(piece[None], spec, block)[0], spec),
            pieces,
            batch_size=group,
        )
    out = out.reshape(batch, num_blocks * block, out_bins)
    return out[:, :total_frames]


def _default_frames_per_step() -> int:
    return _CPU_FRAMES_PER_STEP


def _mask_signals(signals: jax.Array, lengths: jax.Array | None) -> jax.Array:
    signals = jnp.asarray(signals, jnp.float32)
    if lengths is None:
        return signals
    sample = jnp.arange(signals.shape[1])
    return jnp.where(sample[None] < lengths[:, None], signals, 0.0)


@functools.partial(jax.jit, static_argnames=("spec", "frames_per_step"))
def stft_magnitude(
    signals: jax.Array, spec: FeatureSpec, *, frames_per_step: int | None = None
) -> jax.Array:
    """|STFT| like `np.abs(librosa.stft(...))`, time-major.

    Args:
      signals: [B, N] float32.
      spec: feature spec (window, hop, n_fft).
      frames_per_step: frames per `lax.map` step; None = backend default.

    Returns:
      [B, T, n_fft // 2 + 1] float32, T = spec.num_frames(N).
    """
    if frames_per_step is None:
        frames_per_step = _default_frames_per_step()
    power = _spectral_map(
        _mask_signals(signals, None),
        spec,
        _power_spectrum,
        spec.n_fft // 2 + 1,
        frames_per_step,
    )
    return jnp.sqrt(power)


@functools.partial(jax.jit, static_argnames=("spec", "frames_per_step"))
def power_mel(
    signals: jax.Array, spec: FeatureSpec, *, frames_per_step: int | None = None
) -> jax.Array:
    """Mel power spectrogram like `librosa.feature.melspectrogram(power=2)`.

    Args:
      signals: [B, N] float32.
      spec: feature spec.
      frames_per_step: frames per `lax.map` step; None = backend default.

    Returns:
      [B, T, n_mels] float32.
    """
    if frames_per_step is None:
        frames_per_step = _default_frames_per_step()
    mel = _mel_matrix(spec)

    def fn(frames, spec):
        return jnp.matmul(
            _power_spectrum(frames, spec), mel, precision=jax.lax.Precision.HIGHEST
        )

    return _spectral_map(
        _mask_signals(signals, None), spec, fn, spec.n_mels, frames_per_step
    )


@functools.partial(jax.jit, static_argnames=("spec", "frames_per_step"))
def log_mel(
    signals: jax.Array, spec: FeatureSpec, *, frames_per_step: int | None = None
) -> jax.Array:
    """Natural-log Mel power, `log(power_mel + log_floor)`: [B, N] -> [B, T, n_mels]."""
    return jnp.log(
        power_mel(signals, spec, frames_per_step=frames_per_step) + spec.log_floor
    )


# ------------------------------------------------------------------- deltas


@functools.partial(jax.jit, static_argnames=("width",))
def deltas(x: jax.Array, lengths: jax.Array | None = None, width: int = 5) -> jax.Array:
    """Regression deltas along time, `librosa.feature.delta(mode='interp')`.

    Interior frames get `sum_n n (x[t+n] - x[t-n]) / (2 sum_n n^2)`, n = 1..width//2
    (seed 000 eq. 2); the first and last `width // 2` frames take the value at the
    nearest interior frame, which is what savgol's 'interp' mode gives for a
    straight-line fit. Each example uses only its first `lengths[b]` frames.

    Fallback (librosa raises instead): an example with fewer than `width` frames
    gets, at every frame, the least-squares slope over all its frames (0 for a
    single frame), i.e. the same edge rule with the window shrunk to the
    utterance. Never NaN.

    Args:
      x: [B, T, F] features.
      lengths: [B] int valid frames per example; None = all T.
      width: odd regression window >= 3.

    Returns:
      [B, T, F] deltas, exactly 0 at frames >= lengths[b].
    """
    if width < 3 or width % 2 != 1:
        raise ValueError(f"deltas: width must be an odd integer >= 3, got {width}")
    batch, num_frames, _ = x.shape
    half = width // 2
    if lengths is None:
        lengths = jnp.full((batch,), num_frames, jnp.int32)
    lengths = jnp.asarray(lengths, jnp.int32)
    frame = jnp.arange(num_frames)
    valid = (frame[None] < lengths[:, None])[..., None]  # [B, T, 1]
    x = jnp.where(valid, x, 0.0)

    padded = jnp.pad(x, ((0, 0), (half, half), (0, 0)))
    denominator = 2.0 * sum(n * n for n in range(1, half + 1))
    slope = (
        sum(
            n
            * (
                padded[:, half + n : half + n + num_frames]
                - padded[:, half - n : half - n + num_frames]
            )
            for n in range(1, half + 1)
        )
        / denominator
    )
    # Edges: the value at frame `half` (head) / `length - 1 - half` (tail).
    head = slope[:, half : half + 1] if num_frames > half else slope[:, :1]
    last = jnp.clip(lengths - 1 - half, 0, num_frames - 1)
    tail = jnp.take_along_axis(slope, last[:, None, None], axis=1)
    t = frame[None, :, None]
    out = jnp.where(t < half, head, slope)
    out = jnp.where(t > (lengths - 1 - half)[:, None, None], tail, out)

    # Short utterances: least-squares slope over all their frames.
    centre = (lengths.astype(x.dtype) - 1.0) / 2.0
    offset = jnp.where(valid[..., 0], frame[None] - centre[:, None], 0.0)  # [B, T]
    norm = jnp.maximum(jnp.sum(offset * offset, axis=1), 1e-12)  # [B]
    short_slope = jnp.einsum(
        "bt,btf->bf", offset, x, precision=jax.lax.Precision.HIGHEST
    )
    short_slope = short_slope / norm[:, None]
    out = jnp.where((lengths < width)[:, None, None], short_slope[:, None], out)
    return jnp.where(valid, out, 0.0)


# ------------------------------------------------------------------ compute


@functools.partial(jax.jit, static_argnames=("spec", "frames_per_step"))
def compute(
    signals: jax.Array,
    lengths: jax.Array,
    spec: FeatureSpec,
    *,
    frames_per_step: int | None = None,
) -> jax.Array:
    """The full feature stack for a zero-padded batch.

    Args:
      signals: [B, N] float32; samples at/after lengths[b] are ignored (zeroed).
      lengths: [B] int, samples per signal (<= N).
      spec: feature spec (static).
      frames_per_step: frames per `lax.map` step of the spectral part; None =
        backend default (blocked on CPU, one step elsewhere), 0 = one step.

    Returns:
      [B, T, F, C] float32, T = spec.num_frames(N), F = spec.num_bins,
      C = spec.num_channels ([static, delta, delta-delta]); frames at/after
      spec.num_frames(lengths[b]) are exactly 0.
    """
    if frames_per_step is None:
        frames_per_step = _default_frames_per_step()
    lengths = jnp.asarray(lengths, jnp.int32)
    signals = _mask_signals(signals, lengths)
    static = _spectral_map(
        signals, spec, _static_features, spec.num_bins, frames_per_step
    )
    pad = spec.n_fft // 2
    num_frames = 1 + (lengths + 2 * pad - spec.n_fft) // spec.hop_length
    valid = (jnp.arange(static.shape[1])[None] < num_frames[:, None])[..., None]
    static = jnp.where(valid, static, 0.0)
    if not spec.deltas:
        return static[..., None]
    delta = deltas(static, num_frames, spec.delta_width)
    delta2 = deltas(delta, num_frames, spec.delta_width)
    return jnp.stack([static, delta, delta2], axis=-1)


class FeatureExtractor:
    """Features for a list of variable-length signals, with few compiled shapes.

    Signals are zero-padded up to a multiple of `bucket_seconds` and grouped by
    that padded length; each group is computed in batches of at most
    `batch_size` (a smaller last batch is padded to the next power of two), so
    the number of compiled shapes is about (#buckets x log2(batch_size)).

    Args:
      spec: feature spec.
      bucket_seconds: bucket width in seconds.
      batch_size: most signals per compiled call.
    """

    def __init__(
        self, spec: FeatureSpec, *, bucket_seconds: float = 1.0, batch_size: int = 32
    ):
        if bucket_seconds <= 0 or batch_size < 1:
            raise ValueError(
                f"FeatureExtractor: bucket_seconds ({bucket_seconds}) must be > 0 "
                f"and batch_size ({batch_size}) >= 1"
            )
        self.spec = spec
        self.bucket_samples = max(1, int(round(bucket_seconds * spec.sample_rate)))
        self.batch_size = batch_size

    def _padded_length(self, num_samples: int) -> int:
        return max(1, -(-num_samples // self.bucket_samples)) * self.bucket_samples

    def __call__(self, signals: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Computes features of each signal.

        Args:
          signals: 1-D float arrays [N_i] at spec.sample_rate.

        Returns:
          One float32 [T_i, F, C] array per signal, T_i = spec.num_frames(N_i).
        """
        arrays = []
        for i, signal in enumerate(signals):
            signal = np.asarray(signal, np.float32)
            if signal.ndim != 1 or signal.size == 0:
                raise ValueError(
                    f"FeatureExtractor: signal {i} must be a non-empty 1-D array, "
                    f"got shape {signal.shape}"
                )
            arrays.append(signal)
        buckets: dict[int, list[int]] = {}
        for i, signal in enumerate(arrays):
            buckets.setdefault(self._padded_length(signal.size), []).append(i)
        results: list[np.ndarray | None] = [None] * len(arrays)
        for padded_length, indices in sorted(buckets.items()):
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                rows = min(self.batch_size, 1 << (len(chunk) - 1).bit_length())
                batch = np.zeros((rows, padded_length), np.float32)
                lengths = np.zeros((rows,), np.int32)
                for row, i in enumerate(chunk):
                    batch[row, : arrays[i].size] = arrays[i]
                    lengths[row] = arrays[i].size
                features = np.asarray(compute(batch, lengths, self.spec))
                for row, i in enumerate(chunk):
                    num_frames = self.spec.num_frames(arrays[i].size)
                    results[i] = features[row, :num_frames]
        return results  # type: ignore[return-value]


def max_relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """max |a - b| / max(|b|, 1) elementwise (the accuracy measure of card C0)."""
    actual = np.asarray(actual, np.float64)
    reference = np.asarray(reference, np.float64)
    return float(
        np.max(np.abs(actual - reference) / np.maximum(np.abs(reference), 1.0))
    )


__all__ = [
    "KINDS",
    "FeatureExtractor",
    "FeatureSpec",
    "compute",
    "deltas",
    "log_mel",
    "max_relative_error",
    "power_mel",
    "stft_magnitude",
]
