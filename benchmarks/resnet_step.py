"""Train-step throughput (examples/s) of ResNet-18 per attention variant (card C2).

    python benchmarks/resnet_step.py --out benchmarks/results/resnet_step_cpu.json \
        [--variants none se spatial se_spatial component] [--batch 32] [--steps 3] \
        [--widths 64 128 256 512] [--dtype float32|bfloat16]

For each `model.attention` variant this builds the engine's own train step
(`jaxpara.state.make_optimizer` with configs/icbhi_resnet18.py's Adam,
`create_state`, `jaxpara.train.train_step` jitted as `train_fold` does, with
shardings and a donated state) for ResNet-18 on a [batch, 63, 201, 1] batch
(2.5 s of 4 kHz log-STFT, 100 ms window, 40 ms hop; 4 classes), and records

* compile_s: wall time of `jax.jit(...).lower(...).compile()`;
* step_s: mean wall time of `--steps` steps after one warm-up step
  (`block_until_ready` on the new state), every timed step in step_runs_s;
* examples_per_s: batch / step_s;
* flops_per_example (dots and convolutions of the step's jaxpr) and
  xla_flops_per_example (XLA cost_analysis), for MFU.

`--widths` below 64 128 256 512 is a reduced width for slow machines; the JSON
records the widths used and whether they are the default model's.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax.numpy as jnp  # noqa: E402
from _common import (  # noqa: E402
    machine_info,
    measure_train_step,
    utc_now,
    write_result,
)

from configs import icbhi_resnet18  # noqa: E402
from jaxpara import state as state_lib  # noqa: E402
from jaxpara.models.resnet import ATTENTION_VARIANTS, ResNet  # noqa: E402

TIME, FREQ, CHANNELS, NUM_CLASSES = 63, 201, 1, 4
DEFAULT_WIDTHS = (64, 128, 256, 512)


def measure(attention: str, args) -> dict:
    """Compile time, mean step time and examples/s of one ResNet train step."""
    model = ResNet(
        NUM_CLASSES,
        attention=attention,
        resnet_stage_features=tuple(args.widths),
        dtype=jnp.dtype(args.dtype),
    )
    tx = state_lib.make_optimizer(icbhi_resnet18.get_config(attention).train)
    return measure_train_step(
        model,
        tx,
        (TIME, FREQ, CHANNELS),
        NUM_CLASSES,
        batch_size=args.batch,
        steps=args.steps,
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write.")
    parser.add_argument(
        "--variants", nargs="+", default=list(ATTENTION_VARIANTS), help="attention"
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="Timed steps each.")
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="model.dtype",
    )
    parser.add_argument(
        "--widths",
        type=int,
        nargs=4,
        default=list(DEFAULT_WIDTHS),
        help="Stage widths; 64 128 256 512 = ResNet-18, less = reduced width.",
    )
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    results = {}
    for attention in args.variants:
        results[attention] = measure(attention, args)
        r = results[attention]
        print(
            f"{attention}: compile {r['compile_s']:.1f} s, step {r['step_s']:.3f} s, "
            f"{r['examples_per_s']:.1f} examples/s",
            file=sys.stderr,
            flush=True,
        )
    result = {
        "variants": results,
        "model": {
            "name": "resnet18",
            "input_shape": [args.batch, TIME, FREQ, CHANNELS],
            "num_classes": NUM_CLASSES,
            "stage_features": list(args.widths),
            "dtype": args.dtype,
            "default_width": tuple(args.widths) == DEFAULT_WIDTHS,
            "optimizer": "adam lr 1e-3 (configs/icbhi_resnet18.py train)",
            "timed_steps": args.steps,
            "warmup_steps": 1,
        },
        "machine": machine_info(load_before),
        "date": utc_now(),
    }
    return write_result(result, args.out)


if __name__ == "__main__":
    main()
