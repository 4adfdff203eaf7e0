"""JAX log-Mel + deltas vs librosa, side by side on the same clips.

    python benchmarks/features.py --out results/features.json [--clips 64] [--seconds 4]

Both sides compute the card C0 stack (40 Mel bands, 25 ms Hamming window, 10 ms
hop, log(x + 1e-6), delta and delta-delta with width 5) for the same batch of
deterministic voice-like 16 kHz clips:

* JAX: `jaxpara.audio.features.compute` on the whole batch, compiled and warmed
  up, `block_until_ready` after each run.
* librosa: `melspectrogram` + log + `delta` twice, one clip at a time, on the
  float32 clips (its fastest ordinary use).

Runs of the two alternate, so both see the same machine load; throughput is
clips / median run time (best runs are recorded too). Accuracy is measured
against librosa on the float64 clips: max over elements of
|jax - librosa| / max(|librosa|, 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import librosa  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine_info, utc_now, write_result  # noqa: E402

from jaxpara.audio import features  # noqa: E402

SAMPLE_RATE = 16000


def make_clips(num_clips: int, seconds: float, seed: int = 0) -> np.ndarray:
    """[num_clips, samples] float32 voice-like clips: vibrato harmonics with a
    formant-shaped envelope, syllable-rate amplitude modulation and noise."""
    rng = np.random.default_rng(seed)
    num_samples = int(seconds * SAMPLE_RATE)
    t = np.arange(num_samples) / SAMPLE_RATE
    clips = np.empty((num_clips, num_samples), np.float32)
    for i in range(num_clips):
        f0 = rng.uniform(90, 250) * (
            1 + 0.05 * np.sin(2 * np.pi * rng.uniform(3, 6) * t)
        )
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        formant = rng.uniform(400, 900)
        voice = sum(
            np.sin(h * phase) * np.exp(-((((h * 150) - formant) / 1000) ** 2))
            for h in range(1, 40)
        )
        envelope = np.sin(2 * np.pi * rng.uniform(1, 3) * t + rng.uniform(0, 6)) ** 2
        voice = 0.4 * voice * envelope / np.max(np.abs(voice))
        noise = rng.standard_normal(num_samples) * 10 ** (-rng.uniform(15, 35) / 20)
        clips[i] = voice + 0.1 * noise * np.std(voice)
    return clips


def librosa_stack(clip: np.ndarray, spec: features.FeatureSpec) -> np.ndarray:
    """[T, n_mels, 3] log-Mel, delta, delta-delta with librosa."""
    power = librosa.feature.melspectrogram(
        y=clip,
        sr=spec.sample_rate,
        n_fft=spec.n_fft,
        hop_length=spec.hop_length,
        win_length=spec.win_length,
        window="hamming",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=spec.n_mels,
        fmin=spec.fmin,
        fmax=spec.fmax,
        htk=False,
        norm="slaney",
    )
    static = np.log(power + spec.log_floor)
    delta = librosa.feature.delta(static, width=spec.delta_width)
    delta2 = librosa.feature.delta(delta, width=spec.delta_width)
    return np.stack([static, delta, delta2], axis=-1).transpose(1, 0, 2)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write.")
    parser.add_argument("--clips", type=int, default=64, help="Clips in the batch.")
    parser.add_argument("--seconds", type=float, default=4.0, help="Clip length.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed runs per side.")
    args = parser.parse_args(argv)

    spec = features.FeatureSpec()  # Card C0 defaults at 16 kHz.
    clips = make_clips(args.clips, args.seconds)
    lengths = np.full((args.clips,), clips.shape[1], np.int32)
    load_before = os.getloadavg()

    def run_jax():
        return features.compute(clips, lengths, spec).block_until_ready()

    start = time.perf_counter()
    jax_out = np.asarray(run_jax())
    compile_s = time.perf_counter() - start
    run_jax()  # Warm-up.
    librosa_stack(clips[0], spec)  # Warm-up (lazy imports, caches).

    jax_s, librosa_s = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for clip in clips:
            librosa_stack(clip, spec)
        librosa_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        run_jax()
        jax_s.append(time.perf_counter() - start)

    errors = {"log_mel": 0.0, "delta": 0.0, "delta2": 0.0}
    for i, clip in enumerate(clips):
        ref = librosa_stack(clip.astype(np.float64), spec)
        for channel, name in enumerate(errors):
            err = features.max_relative_error(
                jax_out[i, ..., channel], ref[..., channel]
            )
            errors[name] = max(errors[name], err)

    jax_rate = args.clips / float(np.median(jax_s))
    librosa_rate = args.clips / float(np.median(librosa_s))
    result = {
        "clips": args.clips,
        "seconds_per_clip": args.seconds,
        "sample_rate": SAMPLE_RATE,
        "feature_shape": list(jax_out.shape[1:]),
        "repeats": args.repeats,
        "jax_clips_per_s": round(jax_rate, 1),
        "librosa_clips_per_s": round(librosa_rate, 1),
        "speedup_vs_librosa": round(jax_rate / librosa_rate, 2),
        "jax_best_clips_per_s": round(args.clips / min(jax_s), 1),
        "librosa_best_clips_per_s": round(args.clips / min(librosa_s), 1),
        "jax_run_s": [round(s, 4) for s in jax_s],
        "librosa_run_s": [round(s, 4) for s in librosa_s],
        "jax_compile_s": round(compile_s, 2),
        "max_rel_err_log_mel": errors["log_mel"],
        "max_rel_err_delta": errors["delta"],
        "max_rel_err_delta_delta": errors["delta2"],
        "rel_err_definition": "max |jax - librosa_f64| / max(|librosa_f64|, 1)",
        "machine": machine_info(load_before, librosa=librosa.__version__),
        "date": utc_now(),
    }
    return write_result(result, args.out)


if __name__ == "__main__":
    main()
