"""jaxpara vs a PyTorch reference: train and eval examples/s, same maths, one run.

    python benchmarks/vs_pytorch.py --out benchmarks/results/vs_pytorch_cpu.json \
        [--models acrnn,fusion,...] [--rounds 5] [--steps 1] [--dtype float32] \
        [--device auto|cpu|gpu] [--batch 0] [--torch-compile]

For each model (issue 15: the paper configs' widths and input shapes, the
issue's batch sizes) this builds

* the JAX side as the engine runs it: `jaxpara.models.create_model(config.model,
  K)`, `jaxpara.state.make_optimizer(config.train)`, the engine's
  `train_step` jitted with replicated state and a donated state
  (`_common.build_train_step`), and its `eval_step` (inference forward and
  softmax) jitted;
* the torch side: `pytorch_reference.build` of the same config, the same
  initial weights copied over from the JAX state (`load_flax_variables`),
  `torch.optim` Adam / NAdam as the config says, eager mode with
  `torch.set_num_threads(<cores>)` on CPU (`--torch-compile` adds a
  `torch.compile`d side, recorded separately);

both on the same random batch [B, T, F, C] (torch gets it as [B, C, T, F],
permuted once, outside the timing). Then, after compiling (timed separately:
`jax.compile_*_s`) and one warm-up step of each (torch's first steps recorded
as `first_*_s`), `--rounds` rounds alternate the sides (A B in even rounds, B A
in odd ones; each side runs `--steps` steps per round and mode, the mean is the
round's figure). Reported per model and mode: the median step time over
rounds, examples/s = batch / median, ratio = JAX examples/s / torch
examples/s (> 1: JAX faster) and the median of the per-round ratios, FLOPs
per example (`_common.jaxpr_flops`: dots and convolutions of the step's
jaxpr, scan bodies times their length; XLA's cost_analysis figure, which
counts a scan body once, next to it) and model FLOP utilisation
MFU = FLOPs / step time / peak (`PEAK_FLOPS` below; CPU peaks are an estimate
from cores x clock x vector width). Geometric means of the ratios over the
models close the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@dataclasses.dataclass(frozen=True)
class Spec:
    config: str  # configs/<config>.py
    variant: str | None  # get_config(variant)
    num_classes: int
    batch: int  # Issue 15's batch.


MODELS = {
    "acrnn": Spec("covid_cough_sacrnn", "acrnn", 2, 32),
    "fusion": Spec("covid_cough_sacrnn", "fusion", 2, 8),
    "resnet18_none": Spec("icbhi_resnet18", "none", 4, 32),
    "resnet18_se_spatial": Spec("icbhi_resnet18", "se_spatial", 4, 32),
    "blstm_fcn": Spec("iemocap_blstm_fcn", "blstm_fcn_2", 4, 32),
    "moma": Spec("iemocap_moma", None, 4, 32),
    "cnn_bilstm": Spec("iemocap_cnn_bilstm", "model2", 4, 8),
}

# Dense peak FLOP/s per device kind and dtype (no 2:4 sparsity). NVIDIA
# datasheets: H100 SXM5 / H200 SXM (same GH100 compute): FP32 67 TFLOP/s,
# TF32 tensor 494.7, BF16 tensor 989.4; H100 PCIe: 51.2 / 378 / 756; A100 SXM:
# FP32 19.5, TF32 156, BF16 312; L4: FP32 30.3, TF32 60, BF16 121; V100: FP32
# 15.7. "float32" is the non-tensor FP32 peak; XLA on GPU runs float32 dots
# and convolutions in TF32 by default (jax_default_matmul_precision), so the
# JSON also gives MFU against "tf32".
PEAK_FLOPS = {
    "H200": {"float32": 67e12, "tf32": 494.7e12, "bfloat16": 989.4e12},
    "H100 80GB HBM3": {"float32": 67e12, "tf32": 494.7e12, "bfloat16": 989.4e12},
    "H100 SXM": {"float32": 67e12, "tf32": 494.7e12, "bfloat16": 989.4e12},
    "H100 PCIe": {"float32": 51.2e12, "tf32": 378e12, "bfloat16": 756e12},
    "A100": {"float32": 19.5e12, "tf32": 156e12, "bfloat16": 312e12},
    "L4": {"float32": 30.3e12, "tf32": 60e12, "bfloat16": 121e12},
    "V100": {"float32": 15.7e12},
}


def device_peak(device_kind: str, backend: str) -> dict:
    """{"float32", ...: FLOP/s, "source": ...} for this device (None if unknown)."""
    if backend != "cpu":
        for key in sorted(PEAK_FLOPS, key=len, reverse=True):
            if key.lower() in device_kind.lower():
                return {**PEAK_FLOPS[key], "source": f"datasheet ({key})"}
        return {"source": f"unknown device {device_kind!r}"}
    return cpu_peak()


def cpu_peak() -> dict:
    """Estimated fp32 FLOP/s of the usable cores: cores x clock x FLOP/cycle
    (AVX-512 with 2 FMA units: 64; AVX2 + FMA: 32; else 8)."""
    cores = len(os.sched_getaffinity(0))
    mhz, flags = 0.0, ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz") and not mhz:
                mhz = float(line.split(":")[1])
            elif line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    per_cycle = 64 if "avx512f" in flags else 32 if "fma" in flags else 8
    peak = cores * mhz * 1e6 * per_cycle
    return {
        "float32": peak or None,
        "bfloat16": peak or None,  # Vector peak; AMX tiles would be higher.
        "source": f"estimate: {cores} cores x {mhz:.0f} MHz x {per_cycle} FLOP/cycle",
    }


def input_shape(config) -> tuple[int, int, int]:
    """(time, freq, channels) of one segment, as jaxpara.predict derives it."""
    from jaxpara.audio.features import FeatureSpec

    spec = FeatureSpec.from_config(config.data.features, config.data.sample_rate)
    return (config.data.segment.length, spec.num_bins, spec.num_channels)


def load_config(spec: Spec, dtype: str):
    module = importlib.import_module(f"configs.{spec.config}")
    config = module.get_config(spec.variant) if spec.variant else module.get_config()
    config.model.dtype = dtype
    return config


def jax_model_choices(config) -> dict:
    """ACRNN implementation choices the torch side mirrors, from the config
    the JAX model was built from (`model.attention_bias`,
    `model.frame_activation`)."""
    return {
        "attention_bias": bool(config.model.attention_bias),
        "frame_activation": str(config.model.frame_activation),
    }


class Pair:
    """Both sides of one model on one batch, ready to step."""

    def __init__(
        self,
        key: str,
        batch_size: int,
        dtype: str,
        device: str = "cpu",
        torch_compile: bool = False,
    ):
        import jax
        import numpy as np
        import pytorch_reference as ref
        import torch
        from _common import build_train_step, engine_steps, jaxpr_flops, xla_flops

        from jaxpara import models
        from jaxpara import state as state_lib

        spec = MODELS[key]
        self.key, self.spec, self.batch_size, self.dtype = key, spec, batch_size, dtype
        self.config = load_config(spec, dtype)
        self.shape = input_shape(self.config)
        self.jax_model = models.create_model(self.config.model, spec.num_classes)
        tx = state_lib.make_optimizer(self.config.train)
        built = build_train_step(
            self.jax_model, tx, self.shape, spec.num_classes, batch_size=batch_size
        )
        self.source = built["source"]
        self.jax_train = built["compiled"]
        self.state, self.batch, self.rng = built["state"], built["batch"], built["rng"]
        self.compile_train_s = built["compile_s"]
        variables = {"params": self.state.params, "batch_stats": self.state.batch_stats}
        self.jax_params = models.count_params(self.state.params)
        self.train_flops = jaxpr_flops(built["step"], self.state, self.batch, self.rng)
        self.train_xla_flops = xla_flops(self.jax_train)

        _, eval_step, _ = engine_steps()
        import functools

        eval_fn = jax.jit(functools.partial(eval_step, model=self.jax_model))
        start = time.perf_counter()
        self.jax_eval = eval_fn.lower(self.state, self.batch).compile()
        self.compile_eval_s = time.perf_counter() - start
        self.eval_flops = jaxpr_flops(eval_fn, self.state, self.batch)
        self.eval_xla_flops = xla_flops(self.jax_eval)

        # Torch: same config, same initial weights, same batch.
        self.choices = jax_model_choices(self.config)
        self.device = torch.device("cuda" if device == "gpu" else "cpu")
        host_vars = jax.tree_util.tree_map(np.asarray, variables)
        model = ref.build(self.config, spec.num_classes, self.shape, **self.choices)
        ref.load_flax_variables(model, host_vars)
        self.torch_model = model.to(self.device)
        self.torch_params = ref.count_params(model)
        self.opt, self.sched, self.opt_desc = ref.make_optimizer(
            model, self.config.train
        )
        x = np.array(self.batch["inputs"])  # Writable copy for torch.
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(self.device)
        self.torch_inputs = (xt,)
        if spec.config == "iemocap_cnn_bilstm" and self.config.model.use_gender:
            g = torch.from_numpy(np.asarray(self.batch["gender"]).astype(np.int64))
            self.torch_inputs = (xt, g.to(self.device))
        self.labels = torch.from_numpy(
            np.asarray(self.batch["label"]).astype(np.int64)
        ).to(self.device)
        self.autocast = dtype == "bfloat16"
        self.torch_forward = self.torch_model
        self.torch_compiled = None
        if torch_compile:
            self.torch_compiled = torch.compile(self.torch_model)

    # -- one step each; every call returns only when the device is done.
    def jax_train_step(self):
        import jax

        self.state, metrics = self.jax_train(self.state, self.batch, self.rng)
        jax.block_until_ready(self.state)
        return metrics

    def jax_eval_step(self):
        import jax

        return jax.block_until_ready(self.jax_eval(self.state, self.batch))

    def jax_eval_logits(self):
        """Eval-mode logits of the current JAX weights (for the maths check)."""
        from jaxpara import models

        variables = {"params": self.state.params, "batch_stats": self.state.batch_stats}
        out = self.jax_model.apply(
            variables,
            self.batch["inputs"],
            frames=self.batch["frames"],
            gender=self.batch["gender"],
            train=False,
        )
        return models.split_outputs(out)[0] if isinstance(out, dict) else out

    def _sync(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def _ctx(self):
        import contextlib

        import torch

        if self.autocast:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def torch_train_step(self, compiled: bool = False):
        import torch.nn.functional as F

        fwd = self.torch_compiled if compiled else self.torch_model
        self.torch_model.train()
        self.opt.zero_grad(set_to_none=True)
        with self._ctx():
            out = fwd(*self.torch_inputs)
        outs = out if isinstance(out, tuple) else (out,)
        loss = sum(F.cross_entropy(o.float(), self.labels) for o in outs)
        loss.backward()
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        self._sync()
        return loss

    def torch_eval_step(self, compiled: bool = False):
        import torch

        fwd = self.torch_compiled if compiled else self.torch_model
        self.torch_model.eval()
        with torch.inference_mode(), self._ctx():
            out = fwd(*self.torch_inputs)
            out = out[0] if isinstance(out, tuple) else out
            post = torch.softmax(out.float(), dim=-1)
        self._sync()
        return post


def build_pair(
    key: str, batch_size: int, dtype: str, device: str = "cpu", **kw
) -> Pair:
    return Pair(key, batch_size, dtype, device, **kw)


def _timed(fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def _median(xs):
    import numpy as np

    return float(np.median(xs))


def measure(pair: Pair, rounds: int, steps: int, peak: dict) -> dict:
    """Warm-up, then `rounds` alternating A/B rounds of train and eval steps."""
    import numpy as np

    sides = {"jax": (pair.jax_train_step, pair.jax_eval_step)}
    sides["torch"] = (pair.torch_train_step, pair.torch_eval_step)
    if pair.torch_compiled is not None:
        sides["torch_compile"] = (
            lambda: pair.torch_train_step(compiled=True),
            lambda: pair.torch_eval_step(compiled=True),
        )

    # Same weights on both sides before any update: the posteriors must agree.
    jax_post = np.asarray(pair.jax_eval_step())
    first = {}
    start = time.perf_counter()
    torch_post = pair.torch_eval_step().float().cpu().numpy()
    first["torch_eval"] = time.perf_counter() - start
    post_diff = float(np.max(np.abs(jax_post - torch_post)))

    # Warm-up (excluded): one train step each (torch: first-call costs).
    for name, (train, evaluate) in sides.items():
        start = time.perf_counter()
        out = train()
        first[f"{name}_train"] = time.perf_counter() - start
        if name == "torch_compile":
            start = time.perf_counter()
            evaluate()
            first[f"{name}_eval"] = time.perf_counter() - start
        if name == "jax" and not np.isfinite(float(out["loss"])):
            raise FloatingPointError(f"{pair.key}: non-finite JAX loss")
    times = {name: {"train": [], "eval": []} for name in sides}
    names = list(sides)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for mode, index in (("train", 0), ("eval", 1)):
            for name in order:
                time.sleep(0.05)  # Let the other side's idle threads park.
                times[name][mode].append(_timed(sides[name][index], steps))
        print(
            f"  {pair.key} round {r + 1}/{rounds}: "
            + ", ".join(
                f"{n} train {times[n]['train'][-1]:.3f}s eval {times[n]['eval'][-1]:.3f}s"
                for n in names
            ),
            file=sys.stderr,
            flush=True,
        )

    b = pair.batch_size
    flops = {"train": pair.train_flops, "eval": pair.eval_flops}
    peak_dtype = peak.get(pair.dtype)

    def side_summary(name):
        out = {}
        for mode in ("train", "eval"):
            med = _median(times[name][mode])
            entry = {
                "step_s_median": round(med, 5),
                "step_s_rounds": [round(t, 5) for t in times[name][mode]],
                "examples_per_s": round(b / med, 3),
                "achieved_flop_per_s": flops[mode] / med,
            }
            if peak_dtype:
                entry["mfu"] = flops[mode] / med / peak_dtype
            if pair.dtype == "float32" and peak.get("tf32"):
                entry["mfu_vs_tf32_peak"] = flops[mode] / med / peak["tf32"]
            out[mode] = entry
        return out

    result = {
        "config": f"configs/{pair.spec.config}.py"
        + (f":{pair.spec.variant}" if pair.spec.variant else ""),
        "model": pair.config.model.name,
        "input_shape": [b, *pair.shape],
        "num_classes": pair.spec.num_classes,
        "dtype": pair.dtype,
        "params": {
            "jax": pair.jax_params,
            "torch": pair.torch_params,
            "rel_diff": (pair.torch_params - pair.jax_params) / pair.jax_params,
        },
        "torch_choices": pair.choices,
        "optimizer": {
            "jax": f"jaxpara.state.make_optimizer ({pair.config.train.optimizer}, "
            f"lr {pair.config.train.learning_rate})",
            "torch": pair.opt_desc,
        },
        "jax_train_step": pair.source,
        "posterior_max_abs_diff_same_weights": post_diff,
        "flops_per_example": {
            "train": pair.train_flops / b,
            "eval": pair.eval_flops / b,
            "xla_cost_analysis_train": None
            if pair.train_xla_flops is None
            else pair.train_xla_flops / b,
            "xla_cost_analysis_eval": None
            if pair.eval_xla_flops is None
            else pair.eval_xla_flops / b,
        },
        "jax": {
            "compile_train_s": round(pair.compile_train_s, 3),
            "compile_eval_s": round(pair.compile_eval_s, 3),
            "first_train_step_s": round(first["jax_train"], 4),
            **side_summary("jax"),
        },
        "torch": {
            "first_train_step_s": round(first["torch_train"], 4),
            "first_eval_step_s": round(first["torch_eval"], 4),
            **side_summary("torch"),
        },
    }
    if "torch_compile" in sides:
        result["torch_compile"] = {
            "compile_and_first_train_step_s": round(first["torch_compile_train"], 3),
            "compile_and_first_eval_step_s": round(first["torch_compile_eval"], 3),
            **side_summary("torch_compile"),
        }
    ratios = {}
    for other in [n for n in names if n != "jax"]:
        suffix = "" if other == "torch" else f"_vs_{other}"
        for mode in ("train", "eval"):
            per_round = [
                t / j
                for j, t in zip(times["jax"][mode], times[other][mode], strict=True)
            ]
            ratios[f"{mode}{suffix}"] = round(
                result[other][mode]["step_s_median"]
                / result["jax"][mode]["step_s_median"],
                4,
            )
            ratios[f"{mode}{suffix}_median_of_rounds"] = round(_median(per_round), 4)
    result["ratio_jax_over_torch_examples_per_s"] = ratios
    return result


def geomean(xs) -> float | None:
    xs = [x for x in xs if x and x > 0]
    return round(math.exp(sum(math.log(x) for x in xs) / len(xs)), 4) if xs else None


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/vs_pytorch_cpu.json")
    parser.add_argument("--models", default=",".join(MODELS), help="Comma-separated.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--steps", type=int, default=1, help="Steps per side per round."
    )
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--batch", type=int, default=0, help="0 = issue 15's batches.")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads; 0 = cores."
    )
    parser.add_argument("--torch-compile", action="store_true")
    args = parser.parse_args(argv)
    keys = [k for k in args.models.split(",") if k]
    unknown = sorted(set(keys) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {list(MODELS)}")
    if args.device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
    load_before = os.getloadavg()

    import jax
    import torch
    from _common import machine_info, utc_now, write_result

    backend = jax.default_backend()
    device = "gpu" if backend == "gpu" else "cpu"
    if args.device == "gpu" and (backend != "gpu" or not torch.cuda.is_available()):
        parser.error(
            f"--device=gpu: JAX backend {backend}, torch cuda "
            f"{torch.cuda.is_available()}"
        )
    if device == "gpu" and not torch.cuda.is_available():
        print("JAX on GPU but torch has no CUDA: torch side on CPU", file=sys.stderr)
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    peak = device_peak(jax.devices()[0].device_kind, backend)
    torch_device = "gpu" if device == "gpu" and torch.cuda.is_available() else "cpu"

    results = {}
    for key in keys:
        batch = args.batch or MODELS[key].batch
        print(
            f"{key}: building (batch {batch}, {args.dtype})",
            file=sys.stderr,
            flush=True,
        )
        pair = build_pair(
            key, batch, args.dtype, torch_device, torch_compile=args.torch_compile
        )
        results[key] = measure(pair, args.rounds, args.steps, peak)
        r = results[key]
        ratio = r["ratio_jax_over_torch_examples_per_s"]
        print(
            f"{key}: params jax {r['params']['jax']:,} torch {r['params']['torch']:,}; "
            f"train jax {r['jax']['train']['examples_per_s']:.2f} / torch "
            f"{r['torch']['train']['examples_per_s']:.2f} ex/s (x{ratio['train']:.2f}); "
            f"eval jax {r['jax']['eval']['examples_per_s']:.2f} / torch "
            f"{r['torch']['eval']['examples_per_s']:.2f} ex/s (x{ratio['eval']:.2f})",
            file=sys.stderr,
            flush=True,
        )
        if abs(r["params"]["rel_diff"]) > 0.02:
            raise AssertionError(f"{key}: parameter counts differ by more than 2%")
        del pair
        jax.clear_caches()

    summary = {}
    for name in ("train", "eval", "train_vs_torch_compile", "eval_vs_torch_compile"):
        vals = [
            r["ratio_jax_over_torch_examples_per_s"].get(name) for r in results.values()
        ]
        if any(vals):
            summary[f"geomean_ratio_{name}"] = geomean(vals)
    result = {
        "models": results,
        "summary": summary,
        "protocol": {
            "rounds": args.rounds,
            "steps_per_round": args.steps,
            "warmup_steps": 1,
            "alternation": "A B in even rounds, B A in odd rounds, per mode",
            "statistic": "median over rounds of the mean step time in a round",
            "ratio": "JAX examples/s / torch examples/s (> 1: JAX faster)",
            "torch_threads": threads,
            "torch_device": torch_device,
            "torch_mode": "eager" + (" + torch.compile" if args.torch_compile else ""),
            "dtype": args.dtype,
            "batch_override": args.batch or None,
        },
        "peak_flop_per_s": peak,
        "machine": machine_info(
            load_before,
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
            xla_flags=os.environ.get("XLA_FLAGS", ""),
        ),
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "date": utc_now(),
    }
    return write_result(result, args.out)


if __name__ == "__main__":
    main()
