"""Prints examples/s and MFU tables from benchmark JSON files (benchmarks/gpu.sh).

    python benchmarks/summarise.py benchmarks/results/gpu/*.json

Understands vs_pytorch.py, resnet_step.py and convlstm_scan.py results. MFU is
the model's FLOPs per step (dots and convolutions of the jaxpr, scans times
their length: `_common.jaxpr_flops`) / step time / the device's peak for the
run's dtype (`vs_pytorch.device_peak`; CPU peaks are an estimate).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _peak(machine: dict, dtype: str):
    from vs_pytorch import device_peak

    peak = device_peak(machine.get("jax_device", ""), machine.get("jax_backend", "cpu"))
    return peak.get(dtype)


def _mfu(flops, step_s, peak) -> str:
    if not (flops and step_s and peak):
        return "-"
    return f"{100 * flops / step_s / peak:.2f}%"


def rows_vs_pytorch(name: str, data: dict):
    for key, r in data["models"].items():
        ratio = r["ratio_jax_over_torch_examples_per_s"]
        yield (
            f"{name}: {key}",
            r["dtype"],
            f"{r['jax']['train']['examples_per_s']:.2f}",
            f"{r['torch']['train']['examples_per_s']:.2f}",
            f"{ratio['train']:.2f}",
            f"{r['jax']['eval']['examples_per_s']:.2f}",
            f"{r['torch']['eval']['examples_per_s']:.2f}",
            f"{ratio['eval']:.2f}",
            _pct(r["jax"]["train"].get("mfu")),
            _pct(r["torch"]["train"].get("mfu")),
        )


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def rows_training(name: str, data: dict):
    dtype = data["model"].get("dtype", "float32")
    peak = _peak(data["machine"], dtype)
    batch = data["model"]["input_shape"][0]
    if "variants" in data:  # resnet_step.py
        for variant, r in data["variants"].items():
            flops = (r.get("flops_per_example") or 0) * batch
            yield (
                f"{name}: resnet18 {variant}",
                dtype,
                f"{r['examples_per_s']:.2f}",
                _mfu(flops, r["step_s"], peak),
            )
    else:  # convlstm_scan.py
        for i, t in enumerate(data["iterations"]):
            flops = ((data.get("flops_per_example") or [0] * 99)[i] or 0) * batch
            step = data["step_s"][i]
            yield (
                f"{name}: sacrnn T_s={t}",
                dtype,
                f"{batch / step:.2f}",
                _mfu(flops, step, peak),
            )


def table(header, rows) -> str:
    rows = [header, *rows]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(paths) -> None:
    vs, tr = [], []
    for path in paths:
        data = json.loads(Path(path).read_text())
        name = Path(path).stem
        if "models" in data and "summary" in data:
            vs.extend(rows_vs_pytorch(name, data))
            s = data["summary"]
            vs.append(
                (
                    f"{name}: geomean",
                    "",
                    "",
                    "",
                    f"{s.get('geomean_ratio_train')}",
                    "",
                    "",
                    f"{s.get('geomean_ratio_eval')}",
                    "",
                    "",
                )
            )
        elif "model" in data:
            tr.extend(rows_training(name, data))
    if vs:
        print(
            table(
                (
                    "run: model",
                    "dtype",
                    "jax train ex/s",
                    "torch train ex/s",
                    "ratio",
                    "jax eval ex/s",
                    "torch eval ex/s",
                    "ratio",
                    "jax MFU",
                    "torch MFU",
                ),
                vs,
            )
        )
        print()
    if tr:
        print(table(("run: model", "dtype", "train ex/s", "MFU"), tr))


if __name__ == "__main__":
    main(sys.argv[1:])
