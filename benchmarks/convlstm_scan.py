"""Train-step compile and run time of SACRNN versus the ConvLSTM iterations T_s.

    python benchmarks/convlstm_scan.py --out results/convlstm_scan.json \
        [--iterations 2 4 8 16] [--batch 8] [--convlstm-features 128] [--steps 3] [--dtype float32]

The attentive ConvLSTM (card C1) runs its T_s iterations in one
`jax.lax.scan`, so the traced program, and with it the XLA compile time, must
not grow with T_s; the step time grows about linearly (T_s ConvLSTM steps).
For each T_s this builds the engine's own train step (`jaxpara.train`:
`make_optimizer` with the default config's nadam, `create_state`,
`train_step` jitted as `train_fold` does, with shardings and a donated state)
for the SACRNN on a [batch, 300, 40, 3] batch, and records

* compile_s: wall time of `jax.jit(...).lower(...).compile()`;
* step_s: mean wall time of `--steps` steps after one warm-up step
  (`block_until_ready` on the new state), plus every timed step in
  step_runs_s.

`--convlstm-features` below 128 is a reduced width for slow machines; the JSON
records the width used and says whether it is the default model.
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

from configs import default  # noqa: E402
from jaxpara import state as state_lib  # noqa: E402
from jaxpara.models.sacrnn import SACRNN  # noqa: E402

TIME, FREQ, CHANNELS, NUM_CLASSES = 300, 40, 3, 2


def measure(iterations: int, args) -> dict:
    """Compile time and mean step time of one SACRNN train step."""
    model = SACRNN(
        NUM_CLASSES,
        convlstm_iterations=iterations,
        convlstm_features=args.convlstm_features,
        dtype=jnp.dtype(args.dtype),
    )
    tx = state_lib.make_optimizer(default.get_config().train)
    m = measure_train_step(
        model,
        tx,
        (TIME, FREQ, CHANNELS),
        NUM_CLASSES,
        batch_size=args.batch,
        steps=args.steps,
    )
    return {
        "compile_s": m["compile_s"],
        "step_s": m["step_s"],
        "runs": m["step_runs_s"],
        "num_params": m["num_params"],
        "flops_per_example": m["flops_per_example"],
        "xla_flops_per_example": m["xla_flops_per_example"],
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write.")
    parser.add_argument("--iterations", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--convlstm-features",
        type=int,
        default=128,
        help="ConvLSTM width; 128 = the default SACRNN, less = reduced width.",
    )
    parser.add_argument("--steps", type=int, default=3, help="Timed steps per T_s.")
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="model.dtype",
    )
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    results = {}
    for iterations in args.iterations:
        results[iterations] = measure(iterations, args)
        print(
            f"T_s={iterations}: compile {results[iterations]['compile_s']:.2f} s, "
            f"step {results[iterations]['step_s']:.3f} s",
            file=sys.stderr,
            flush=True,
        )
    result = {
        "iterations": list(args.iterations),
        "compile_s": [round(results[t]["compile_s"], 3) for t in args.iterations],
        "step_s": [round(results[t]["step_s"], 4) for t in args.iterations],
        "step_runs_s": [
            [round(s, 4) for s in results[t]["runs"]] for t in args.iterations
        ],
        "num_params": [results[t]["num_params"] for t in args.iterations],
        "flops_per_example": [results[t]["flops_per_example"] for t in args.iterations],
        "xla_flops_per_example": [
            results[t]["xla_flops_per_example"] for t in args.iterations
        ],
        "model": {
            "name": "sacrnn",
            "input_shape": [args.batch, TIME, FREQ, CHANNELS],
            "num_classes": NUM_CLASSES,
            "convlstm_features": args.convlstm_features,
            "default_width": args.convlstm_features == 128,
            "dtype": args.dtype,
            "optimizer": "nadam (configs/default.py train)",
            "timed_steps": args.steps,
            "warmup_steps": 1,
        },
        "machine": machine_info(load_before),
        "date": utc_now(),
    }
    return write_result(result, args.out)


if __name__ == "__main__":
    main()
