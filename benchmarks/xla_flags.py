"""XLA:CPU flag settings against each other on the engine's train step (issue 15).

    python benchmarks/xla_flags.py --models acrnn,resnet18_none --rounds 3 \
        --settings 'base=' 'onednn=--xla_cpu_use_onednn=true' \
        [--steps 2] [--batch 0] [--out benchmarks/results/xla_flags_cpu.json]

XLA_FLAGS are read once per process, so every setting runs in its own worker
process (this file with `--worker`), which builds the train step of each model
as `vs_pytorch.py` does (`_common.build_train_step`: the engine's
`jaxpara.train.train_step`, jitted, state donated), records the compile time,
runs one warm-up step and then, per round, `--steps` steps and prints their
mean. The parent keeps all workers alive and asks them for a round in turn
(order reversed every round), so the settings share the machine's load. The
result per model and setting: median step time over rounds, examples/s, the
ratio to the first setting, the compile time, and the max |difference| of the
loss after the warm-up step against the first setting (flags that change the
maths show up there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def worker(models: list[str], batch: int, steps: int) -> None:
    """Reads 'round' lines on stdin, answers one JSON line per round."""
    import jax
    import numpy as np
    from _common import build_train_step
    from vs_pytorch import MODELS, input_shape, load_config

    from jaxpara import models as models_lib
    from jaxpara import state as state_lib

    built = {}
    info = {}
    for key in models:
        spec = MODELS[key]
        config = load_config(spec, "float32")
        model = models_lib.create_model(config.model, spec.num_classes)
        tx = state_lib.make_optimizer(config.train)
        b = batch or spec.batch
        step = build_train_step(
            model, tx, input_shape(config), spec.num_classes, batch_size=b
        )
        state, metrics = step["compiled"](step["state"], step["batch"], step["rng"])
        jax.block_until_ready(state)
        built[key] = [step, state]
        info[key] = {
            "batch": b,
            "compile_s": round(step["compile_s"], 3),
            "first_loss": float(np.asarray(metrics["loss"])),
        }
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        if line.strip() != "round":
            break
        times = {}
        for key, (step, state) in built.items():
            start = time.perf_counter()
            for _ in range(steps):
                state, _ = step["compiled"](state, step["batch"], step["rng"])
            jax.block_until_ready(state)
            times[key] = (time.perf_counter() - start) / steps
            built[key][1] = state
        print(json.dumps(times), flush=True)


def main(argv=None) -> dict:
    from _common import machine_info, utc_now, write_result

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="acrnn,resnet18_none")
    parser.add_argument("--settings", nargs="+", default=["base="])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=0, help="0: the issue's batch.")
    parser.add_argument("--out", default="benchmarks/results/xla_flags_cpu.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    models = args.models.split(",")
    if args.worker:
        worker(models, args.batch, args.steps)
        return {}
    settings = dict(s.split("=", 1) for s in args.settings)
    load = os.getloadavg()
    procs, info = {}, {}
    for name, flags in settings.items():
        env = dict(os.environ, XLA_FLAGS=flags)
        cmd = [sys.executable, __file__, "--worker", "--models", args.models]
        cmd += ["--batch", str(args.batch), "--steps", str(args.steps)]
        procs[name] = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        info[name] = json.loads(procs[name].stdout.readline())
        print(f"{name}: built {info[name]}", flush=True)
    times = {n: {m: [] for m in models} for n in settings}
    names = list(settings)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            procs[name].stdin.write("round\n")
            procs[name].stdin.flush()
            for m, t in json.loads(procs[name].stdout.readline()).items():
                times[name][m].append(t)
        print(f"round {r + 1}/{args.rounds}: {times}", flush=True)
    for p in procs.values():
        p.stdin.close()
        p.wait()

    import numpy as np

    base = names[0]
    result = {"models": {}}
    for m in models:
        rows = {}
        b0 = float(np.median(times[base][m]))
        for name in names:
            med = float(np.median(times[name][m]))
            rows[name] = {
                "xla_flags": settings[name],
                "step_s_median": round(med, 5),
                "step_s_rounds": [round(t, 5) for t in times[name][m]],
                "examples_per_s": round(info[name][m]["batch"] / med, 3),
                "speedup_vs_" + base: round(b0 / med, 4),
                "compile_s": info[name][m]["compile_s"],
                "first_loss_abs_diff_vs_" + base: abs(
                    info[name][m]["first_loss"] - info[base][m]["first_loss"]
                ),
            }
        result["models"][m] = rows
        print(m, {n: rows[n]["speedup_vs_" + base] for n in names})
    result["protocol"] = {
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "one_process_per_setting": True,
    }
    result["machine"] = machine_info(load)
    result["command"] = "python benchmarks/xla_flags.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    result["date"] = utc_now()
    return write_result(result, args.out)


if __name__ == "__main__":
    main()
