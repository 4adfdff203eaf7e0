"""Scale-out benchmarks (issue 7): devices, vectorised seeds, input pipeline.

    python benchmarks/scale_out.py devices --out results/scale_devices_cpu.json
    python benchmarks/scale_out.py seeds --out results/vmap_seeds_cpu.json
    python benchmarks/scale_out.py pipeline --out results/input_pipeline_cpu.json

All three use the demo system (configs/demo.py: ACRNN on the synthetic
IEMOCAP-layout corpus) and the engine's own code paths:

* devices: train-step throughput (examples/s, global batch `--batch`) of the
  jitted, data-parallel `train_step` on a mesh of 1, 2, 4, 8 devices; on a CPU
  these are forced host devices (`--xla_force_host_platform_device_count`), one
  fresh process per count, so they share the same cores.
* seeds: wall time of `train.train_fold` with S seeds as one vmapped program
  versus S single-seed `train_fold` calls (features computed once, outside
  both timings; each includes its own compilation, as a user's run does).
* pipeline: examples/s of the training input pipeline alone
  (`pipeline.train_batches`: gather, normalise, tf.data, NumPy batches) versus
  the examples/s the train step consumes at the same batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _demo(workdir: str, epochs: int):
    """Demo config, corpus, first fold and its feature store."""
    from configs import demo
    from jaxpara.data import corpora, pipeline, splits

    cfg = demo.get_config()
    cfg.train.num_epochs = epochs
    cfg.train.log_every_steps = 1000
    cfg.eval.baseline = False
    corpus, _ = corpora.load_corpus(cfg.data, workdir, seed=cfg.seed)
    (fold,) = splits.build_folds(corpus, cfg.protocol, seed=cfg.seed)
    examples = [e for _, ex in fold.items() for e in ex]
    store = pipeline.FeatureStore.build(examples, cfg.data, cache_dir=None)
    return cfg, corpus, fold, store


def _demo_step(cfg, num_classes: int, shape, batch: int, steps: int, mesh) -> dict:
    """`measure_train_step` for the demo model (configs/demo.py widths)."""
    from _common import measure_train_step

    from jaxpara import models
    from jaxpara import state as state_lib

    model = models.create_model(cfg.model, num_classes)
    tx = state_lib.make_optimizer(cfg.train)
    return measure_train_step(
        model, tx, shape, num_classes, batch_size=batch, steps=steps, mesh=mesh
    )


# ------------------------------------------------------------------ devices
def devices_worker(args) -> dict:
    """One device count, in a process whose XLA_FLAGS set that count."""
    from configs import demo
    from jaxpara import sharding

    cfg = demo.get_config()
    shape = (cfg.data.segment.length, cfg.data.features.n_mels, 3)
    mesh = sharding.make_mesh(args.devices)
    m = _demo_step(cfg, 4, shape, args.batch, args.steps, mesh)
    return {
        "devices": args.devices,
        "compile_s": m["compile_s"],
        "step_s": m["step_s"],
        "examples_per_s": m["examples_per_s"],
    }


def bench_devices(args) -> dict:
    rows = []
    for n in args.device_counts:
        env = dict(os.environ)
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
        env.setdefault("JAX_PLATFORMS", "cpu")
        cmd = [sys.executable, __file__, "devices-worker", "--devices", str(n)]
        cmd += ["--batch", str(args.batch), "--steps", str(args.steps), "--out", "-"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"{n} devices failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr, flush=True)
    base = rows[0]["examples_per_s"]
    for r in rows:
        r["speedup_vs_1"] = round(r["examples_per_s"] / base, 3)
    return {"model": "demo ACRNN", "global_batch": args.batch, "rows": rows}


# -------------------------------------------------------------------- seeds
def bench_seeds(args) -> dict:
    import tempfile

    from jaxpara import train

    with tempfile.TemporaryDirectory() as tmp:
        cfg, corpus, fold, store = _demo(tmp, args.epochs)
        seeds = list(range(args.seeds))
        start = time.perf_counter()
        vmapped = train.train_fold(
            cfg, corpus, fold, store, os.path.join(tmp, "vmap"), seeds=seeds
        )
        vmapped_s = time.perf_counter() - start
        start = time.perf_counter()
        sequential = [
            train.train_fold(
                cfg, corpus, fold, store, os.path.join(tmp, f"seq{s}"), seeds=[s]
            )[0]
            for s in seeds
        ]
        sequential_s = time.perf_counter() - start
    uar = [r["splits"]["test"]["uar"] for r in vmapped]
    return {
        "model": "demo ACRNN",
        "seeds": args.seeds,
        "epochs": args.epochs,
        "vmapped_s": round(vmapped_s, 2),
        "sequential_s": round(sequential_s, 2),
        "speedup": round(sequential_s / vmapped_s, 3),
        "test_uar_vmapped": [round(u, 4) for u in uar],
        "test_uar_sequential": [
            round(r["splits"]["test"]["uar"], 4) for r in sequential
        ],
    }


# ----------------------------------------------------------------- pipeline
def bench_pipeline(args) -> dict:
    import tempfile

    from jaxpara import sharding
    from jaxpara.data import pipeline

    with tempfile.TemporaryDirectory() as tmp:
        cfg, corpus, fold, store = _demo(tmp, 1)
    train_split = pipeline.build_split(
        "train", fold.train, corpus, store, cfg.data, allow_skips=False
    )
    norm = pipeline.training_stats(train_split, store)
    batch_size = args.batch

    def epoch(e: int) -> int:
        return sum(
            b["inputs"].shape[0]
            for b in pipeline.train_batches(
                train_split, norm, global_batch=batch_size, seed=0, epoch=e
            )
        )

    epoch(0)  # Warm-up: TF start-up, first tf.data graph.
    examples, epochs, start = 0, 1, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        examples += epoch(epochs)
        epochs += 1
    pipeline_rate = examples / (time.perf_counter() - start)

    shape = train_split.segments.shape[1:]
    m = _demo_step(
        cfg, len(corpus.labels), shape, batch_size, args.steps, sharding.make_mesh(-1)
    )
    step_rate = m["examples_per_s"]
    return {
        "model": "demo ACRNN",
        "batch": batch_size,
        "segment_shape": list(shape),
        "train_segments": train_split.num_segments,
        "pipeline_epochs_timed": epochs - 1,
        "pipeline_examples_per_s": round(pipeline_rate, 1),
        "train_step_examples_per_s": round(step_rate, 1),
        "pipeline_over_step": round(pipeline_rate / step_rate, 2),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", choices=["devices", "devices-worker", "seeds", "pipeline"]
    )
    parser.add_argument("--out", required=True, help="JSON file ('-': stdout only).")
    parser.add_argument("--device-counts", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--devices", type=int, default=1, help="(devices-worker)")
    parser.add_argument("--batch", type=int, default=32, help="Global batch.")
    parser.add_argument("--steps", type=int, default=10, help="Timed train steps.")
    parser.add_argument("--seeds", type=int, default=5, help="(seeds) S.")
    parser.add_argument("--epochs", type=int, default=3, help="(seeds) epochs.")
    parser.add_argument("--seconds", type=float, default=5.0, help="(pipeline)")
    args = parser.parse_args(argv)
    if args.what == "devices-worker":
        result = devices_worker(args)
        print(json.dumps(result))
        return result

    from _common import machine_info, utc_now, write_result

    load_before = os.getloadavg()
    bench = {"devices": bench_devices, "seeds": bench_seeds, "pipeline": bench_pipeline}
    result = bench[args.what](args)
    result["benchmark"] = args.what
    result["machine"] = machine_info(load_before)
    result["date"] = utc_now()
    return write_result(result, args.out)


if __name__ == "__main__":
    main()
