"""Training-step augmentation of feature batches and the training targets.

Pure JAX functions, applied inside the jitted `jaxpara.train.train_step` only
(evaluation and prediction never augment). Keys come from
`step_rng(rng, step)`, i.e. from `fold_in(rng, step)` of the replica's key:
the same (seed, step) gives the same augmented batch, so a resumed run
reproduces an uninterrupted one, and vmapping the step over seeds gives each
seed its own draws. Each operation has its own key (`fold_in` of a fixed
operation index), so turning one on or off leaves the others' draws alone.
`Augment.from_config` reads `config.augment.*` and `train.label_smoothing`;
with everything off the train step traces exactly the un-augmented program
(the gates are Python `if`s at trace time, not `jnp.where`).

What the step sees, and so what the operations act on: segments
`inputs [B, T, F, C]` of the front-end's features (`jaxpara.audio.features`:
natural-log Mel POWER `log(P + floor)` for 'log_mel', natural-log STFT
MAGNITUDE `log(|X| + floor)` for 'stft'; channel 0 static, channels 1-2 its
deltas when `data.features.deltas`), z-normalised per (bin, channel) with
training statistics when `data.normalise`, zero beyond the valid length
`frames [B]`. Order: gain -> noise -> mixup -> time masks -> frequency masks.

* Gain (`augment.gain_db = g`): a level change of G ~ U[-g, g] dB per
  segment, defined on the argument of the front-end's log: (P + floor) x
  10^(G/10) (power) or (|X| + floor) x 10^(G/20) (magnitude). Its exact
  effect is `log(.) + G ln(10) / 10` (or `/ 20`) on the static channel;
  deltas of a constant offset are exactly 0 (`features.deltas` is a linear
  regression), so delta channels are unchanged; normalisation divides the
  offset by the static channel's std per bin. Only the valid frames move.
  (A gain on the waveform scales P, not P + floor: the two agree wherever
  P >> floor = 1e-6, i.e. everywhere but digital silence.)
* Noise (`augment.noise`, SNR ~ U[noise_snr_min, noise_snr_max] dB per
  segment): Gaussian noise ADDED TO THE FEATURES THE STEP SEES (normalised
  when `data.normalise`; it is not acoustic noise, which cannot be added
  after the log). Segment power P_s = mean of inputs^2 over its valid frames
  and all bins and channels; the drawn noise is rescaled so that its own mean
  square over the same elements is exactly P_s / 10^(SNR/10): the realised
  SNR 10 log10(P_s / P_n) equals the request up to float rounding. Padding
  frames stay zero.
* Mixup (`augment.mixup_alpha = a`, Zhang et al. 2018): lambda ~ Beta(a, a)
  per example, partner j = a random permutation of the batch; inputs
  lambda x_i + (1 - lambda) x_j, frames max(frames_i, frames_j), gender of
  the dominant example (lambda >= 0.5: i). A padded partner (mask 0) is not
  mixed (lambda = 1). The batch gains "label_b" (partner's label) and "mix"
  (lambda); `targets` then gives soft labels lambda onehot(y_i) +
  (1 - lambda) onehot(y_j), class weights lambda w[y_i] + (1 - lambda)
  w[y_j], and `dominant_label` the label accuracy is scored against.
* Time / frequency masks (SpecAugment, Park et al. 2019): `time_masks` spans
  of width ~ U{0..min(time_mask_frames, frames)} starting ~ U{0..frames -
  width}, so inside the valid frames; `freq_masks` spans of width ~
  U{0..freq_mask_bins} inside [0, F), over all channels and valid frames.
  Masked values are set to 0 (the training mean when `data.normalise`).
* Label smoothing (`train.label_smoothing = e`): targets (1 - e) y + e / K
  (`optax.smooth_labels`) of the one-hot or mixed labels.

Speed perturbation is not here: features are extracted once and cached
(`pipeline.FeatureStore`), so it runs in the input pipeline instead
(`augment.speed_factors`: fixed perturbed copies of the training utterances,
`pipeline.speed_copies` and `io.speed_perturb`). Pitch perturbation alone
(pitch without tempo) is not offered.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "Augment",
    "add_noise",
    "apply",
    "apply_gain",
    "cross_entropy",
    "dominant_label",
    "mask_spans",
    "mixup",
    "span_mask",
    "step_rng",
    "targets",
]

_STREAM = 0x617567  # "aug": the augmentation keys' branch of fold_in(rng, step).
_GAIN, _NOISE, _MIXUP, _TIME, _FREQ = range(5)  # One key per operation.
_LOG_PER_DB = {"log_mel": math.log(10.0) / 10.0, "stft": math.log(10.0) / 20.0}


@dataclasses.dataclass(frozen=True, eq=False)
class Augment:
    """The training-only transforms of a batch and its targets (module doc).

    Attributes:
      time_masks, time_mask_frames, freq_masks, freq_mask_bins, mixup_alpha,
      noise, noise_snr_min, noise_snr_max, gain_db: `config.augment.*`.
      gain_per_db: [F, C] offset of the step's features per dB of gain (static
        channel ln(10) / 10 or / 20 over the normalisation std, 0 for deltas);
        None without gain.
      label_smoothing: `train.label_smoothing`.
      num_bins: F of the features (bounds `freq_mask_bins`); 0 = unchecked.
    """

    time_masks: int = 0
    time_mask_frames: int = 0
    freq_masks: int = 0
    freq_mask_bins: int = 0
    mixup_alpha: float = 0.0
    noise: bool = False
    noise_snr_min: float = 10.0
    noise_snr_max: float = 30.0
    gain_db: float = 0.0
    gain_per_db: np.ndarray | None = None
    label_smoothing: float = 0.0
    num_bins: int = 0

    def __post_init__(self):
        def fail(key, message):
            raise ValueError(f"{key}={getattr(self, key.split('.')[-1])!r}: {message}")

        for key in ("time_masks", "freq_masks", "time_mask_frames", "freq_mask_bins"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                fail(f"augment.{key}", "expected an integer")
            if value < 0:
                fail(f"augment.{key}", "must be >= 0")
        if self.time_masks and self.time_mask_frames < 1:
            fail("augment.time_mask_frames", "must be >= 1 with augment.time_masks")
        if self.freq_masks and self.freq_mask_bins < 1:
            fail("augment.freq_mask_bins", "must be >= 1 with augment.freq_masks")
        if self.freq_masks and self.num_bins and self.freq_mask_bins > self.num_bins:
            fail(
                "augment.freq_mask_bins",
                f"more than the features' {self.num_bins} frequency bins",
            )
        if not (math.isfinite(self.mixup_alpha) and self.mixup_alpha >= 0.0):
            fail("augment.mixup_alpha", "must be finite and >= 0 (0 = off)")
        if not (math.isfinite(self.gain_db) and self.gain_db >= 0.0):
            fail("augment.gain_db", "must be finite and >= 0 (0 = off)")
        if self.noise and not (
            math.isfinite(self.noise_snr_min)
            and math.isfinite(self.noise_snr_max)
            and self.noise_snr_min <= self.noise_snr_max
        ):
            fail(
                "augment.noise_snr_min",
                f"need finite noise_snr_min <= noise_snr_max={self.noise_snr_max!r}",
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            fail("train.label_smoothing", "must be in [0, 1) (0 = off)")

    @classmethod
    def from_config(cls, config, norm=None) -> Augment:
        """From `config.augment`, `config.train.label_smoothing` and the
        front-end; `norm` (`audio.stats.NormStats` or None) scales the gain.

        Raises:
          ValueError: a bad value, naming its key.
        """
        from jaxpara.audio import features as features_lib

        a = config.augment
        spec = features_lib.FeatureSpec.from_config(
            config.data.features, config.data.sample_rate
        )
        gain_per_db = None
        if a.gain_db:
            shape = (spec.num_bins, spec.num_channels)
            gain_per_db = np.zeros(shape, np.float32)
            std = np.ones(shape, np.float32) if norm is None else norm.std
            gain_per_db[:, 0] = _LOG_PER_DB[spec.kind] / std[:, 0]
        return cls(
            time_masks=a.time_masks,
            time_mask_frames=a.time_mask_frames,
            freq_masks=a.freq_masks,
            freq_mask_bins=a.freq_mask_bins,
            mixup_alpha=float(a.mixup_alpha),
            noise=bool(a.noise),
            noise_snr_min=float(a.noise_snr_min),
            noise_snr_max=float(a.noise_snr_max),
            gain_db=float(a.gain_db),
            gain_per_db=gain_per_db,
            label_smoothing=float(config.train.label_smoothing),
            num_bins=spec.num_bins,
        )

    @property
    def batch_ops(self) -> bool:
        """Whether `apply` changes a batch at all."""
        return bool(
            self.time_masks
            or self.freq_masks
            or self.mixup_alpha
            or self.noise
            or self.gain_db
        )


def step_rng(rng: jax.Array, step) -> jax.Array:
    """The augmentation key of a step: a branch of `fold_in(rng, step)` (the
    dropout key) that leaves the dropout key itself unchanged."""
    return jax.random.fold_in(jax.random.fold_in(rng, step), _STREAM)


def _valid(frames: jax.Array, num_frames: int) -> jax.Array:
    """[B, T] bool: frame t < frames[b]."""
    return jnp.arange(num_frames)[None, :] < frames[:, None]


def apply(aug: Augment, batch: dict, rng: jax.Array) -> dict:
    """The augmented batch (module docstring; order gain, noise, mixup, masks).

    Args:
      aug: what to do.
      batch: {"inputs" [B, T, F, C], "frames" [B] int, "label" [B] int,
        "mask" [B], "gender" [B] int, ...}.
      rng: the step's key (`step_rng`).

    Returns:
      A new dict: "inputs" (and with mixup "frames", "gender") replaced; with
      mixup also "label_b" [B] int and "mix" [B] float32 lambda.

    Raises:
      ValueError: inputs not [B, T, F, C], or a gain table / mask width that
        does not fit their shape.
    """
    x = batch["inputs"]
    if x.ndim != 4:
        raise ValueError(f"augment: inputs must be [B, T, F, C], got {x.shape}")
    b, _, f, _ = x.shape
    if aug.freq_masks and aug.freq_mask_bins > f:
        raise ValueError(
            f"augment.freq_mask_bins={aug.freq_mask_bins} > the inputs' {f} bins"
        )

    def key(op):
        return jax.random.fold_in(rng, op)

    out = dict(batch)
    if aug.gain_db:
        if aug.gain_per_db is None or aug.gain_per_db.shape != x.shape[2:]:
            raise ValueError(
                f"augment: gain table shape "
                f"{None if aug.gain_per_db is None else aug.gain_per_db.shape} "
                f"!= inputs' [F, C] {x.shape[2:]}"
            )
        gains = jax.random.uniform(
            key(_GAIN), (b,), minval=-aug.gain_db, maxval=aug.gain_db
        )
        x = apply_gain(x, batch["frames"], gains, aug.gain_per_db)
    if aug.noise:
        k_snr, k_noise = jax.random.split(key(_NOISE))
        snr = jax.random.uniform(
            k_snr, (b,), minval=aug.noise_snr_min, maxval=aug.noise_snr_max
        )
        x = add_noise(x, batch["frames"], k_noise, snr)
    out["inputs"] = x
    if aug.mixup_alpha:
        out.update(mixup(out, key(_MIXUP), aug.mixup_alpha))
    x, frames = out["inputs"], out["frames"]
    if aug.time_masks:
        starts, widths = mask_spans(
            key(_TIME), frames, aug.time_masks, aug.time_mask_frames
        )
        masked = span_mask(starts, widths, x.shape[1])  # [B, T]
        x = jnp.where(masked[:, :, None, None], jnp.zeros((), x.dtype), x)
    if aug.freq_masks:
        starts, widths = mask_spans(
            key(_FREQ), jnp.full((b,), f, jnp.int32), aug.freq_masks, aug.freq_mask_bins
        )
        masked = span_mask(starts, widths, f)[:, None, :, None]  # [B, 1, F, 1]
        masked = masked & _valid(frames, x.shape[1])[:, :, None, None]
        x = jnp.where(masked, jnp.zeros((), x.dtype), x)
    out["inputs"] = x
    return out


def apply_gain(
    inputs: jax.Array, frames: jax.Array, gain_db: jax.Array, per_db
) -> jax.Array:
    """Inputs [B, T, F, C] + gain_db[b] * per_db [F, C] on the valid frames."""
    offset = gain_db.astype(inputs.dtype)[:, None, None, None] * jnp.asarray(
        per_db, inputs.dtype
    )
    valid = _valid(frames, inputs.shape[1])[:, :, None, None]
    return jnp.where(valid, inputs + offset, inputs)


def add_noise(
    inputs: jax.Array, frames: jax.Array, rng: jax.Array, snr_db: jax.Array
) -> jax.Array:
    """Inputs [B, T, F, C] plus Gaussian noise at exactly `snr_db` [B] dB.

    Power = mean square over the valid frames x all bins and channels, for the
    segment and for its noise (module docstring). A segment of zero power
    (padding) gets none.
    """
    _, t, f, c = inputs.shape
    valid = _valid(frames, t)[:, :, None, None]
    x = jnp.where(valid, inputs, 0.0).astype(jnp.float32)
    count = jnp.maximum(frames.astype(jnp.float32) * (f * c), 1.0)  # [B]
    power = jnp.sum(x * x, axis=(1, 2, 3)) / count
    z = jnp.where(valid, jax.random.normal(rng, inputs.shape, jnp.float32), 0.0)
    z_power = jnp.sum(z * z, axis=(1, 2, 3)) / count
    scale = jnp.sqrt(power * 10.0 ** (-snr_db / 10.0) / jnp.maximum(z_power, 1e-30))
    return (x + z * scale[:, None, None, None]).astype(inputs.dtype)


def mixup(batch: dict, rng: jax.Array, alpha: float) -> dict:
    """Mixup of a batch with a random permutation of itself (module doc).

    Args:
      batch: {"inputs" [B, T, F, C], "frames" [B], "label" [B], "mask" [B],
        "gender" [B]}.
      rng: key.
      alpha: Beta(alpha, alpha) parameter, > 0.

    Returns:
      {"inputs", "frames", "gender", "label_b" [B] int, "mix" [B] float32 in
      [0, 1]}.
    """
    k_perm, k_lam = jax.random.split(rng)
    x = batch["inputs"]
    partner = jax.random.permutation(k_perm, x.shape[0])
    lam = jnp.clip(jax.random.beta(k_lam, alpha, alpha, (x.shape[0],)), 0.0, 1.0)
    lam = jnp.where(batch["mask"][partner] > 0, lam, 1.0).astype(jnp.float32)
    lx = lam.astype(x.dtype)[:, None, None, None]
    frames = batch["frames"]
    return {
        "inputs": lx * x + (1 - lx) * x[partner],
        "frames": jnp.where(lam < 1.0, jnp.maximum(frames, frames[partner]), frames),
        "gender": jnp.where(lam >= 0.5, batch["gender"], batch["gender"][partner]),
        "label_b": batch["label"][partner],
        "mix": lam,
    }


def mask_spans(rng: jax.Array, lengths: jax.Array, num: int, max_width: int):
    """Random spans inside [0, lengths[b]): SpecAugment's mask positions.

    Args:
      lengths: [B] int, the room per example (valid frames, or F).
      num: spans per example.
      max_width: upper bound of each width.

    Returns:
      (starts [B, num], widths [B, num]) int32: width ~ U{0..min(max_width,
      length)}, start ~ U{0..length - width}.
    """
    k_width, k_start = jax.random.split(rng)
    lengths = jnp.asarray(lengths, jnp.int32)[:, None]  # [B, 1]
    cap = jnp.minimum(lengths, max_width)
    shape = (lengths.shape[0], num)
    widths = jax.random.randint(k_width, shape, 0, cap + 1)
    starts = jax.random.randint(k_start, shape, 0, lengths - widths + 1)
    return starts, widths


def span_mask(starts: jax.Array, widths: jax.Array, size: int) -> jax.Array:
    """[B, size] bool, True inside any span (starts, widths [B, num])."""
    idx = jnp.arange(size)[None, None, :]
    inside = (idx >= starts[..., None]) & (idx < (starts + widths)[..., None])
    return jnp.any(inside, axis=1)


# ------------------------------------------------------------------ targets
def targets(batch: dict, weights: jax.Array, label_smoothing: float = 0.0):
    """Per-example loss weights and soft targets of a (possibly mixed) batch.

    Args:
      batch: {"label" [B], "mask" [B]} and, after mixup, "label_b", "mix".
      weights: [K] class weights.
      label_smoothing: e in [0, 1).

    Returns:
      (w [B] = class weight x mask, soft [B, K] float32 or None). None (no
      mixup, no smoothing) means hard integer labels, computed exactly as the
      un-augmented step does.
    """
    if "mix" not in batch and not label_smoothing:
        return weights[batch["label"]] * batch["mask"], None
    k = weights.shape[0]
    soft = jax.nn.one_hot(batch["label"], k, dtype=jnp.float32)
    w = weights[batch["label"]]
    if "mix" in batch:
        lam = batch["mix"]
        soft = lam[:, None] * soft + (1.0 - lam[:, None]) * jax.nn.one_hot(
            batch["label_b"], k, dtype=jnp.float32
        )
        w = lam * w + (1.0 - lam) * weights[batch["label_b"]]
    if label_smoothing:
        soft = optax.smooth_labels(soft, label_smoothing)
    return w * batch["mask"], soft


def cross_entropy(logits: jax.Array, labels: jax.Array, soft=None) -> jax.Array:
    """[B] cross-entropy of logits [B, K]: integer labels [B], or soft [B, K]."""
    if soft is None:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return optax.softmax_cross_entropy(logits, soft)


def dominant_label(batch: dict) -> jax.Array:
    """[B] the label accuracy is scored against: the larger mixup share."""
    if "mix" not in batch:
        return batch["label"]
    return jnp.where(batch["mix"] >= 0.5, batch["label"], batch["label_b"])
