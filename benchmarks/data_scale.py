"""Data at scale (issue 17): peak memory and input throughput at 1x and 10x.

    python benchmarks/data_scale.py [--sizes 2000,20000] [--cache DIR] \
        [--steps 30] [--sources records,memory] \
        [--out benchmarks/results/data_scale_cpu.json]

For each corpus size N (utterances), once into `--cache` (reused by later
runs): a synthetic 4-emotion corpus in the manifest layout (10 speakers,
N / 10 utterances each, ~2.7 s, 16 kHz; `corpora.synthetic.emotion.
write_manifest`, its speaker-independent train / validation / test split) and
its TFDS records (`jaxpara.data.records.prepare`, timed). Then, per data
source (`data.source`: 'records' streams the records, 'memory' is the feature
cache in host memory):

* peak RSS of a short training run, `python -m jaxpara.main` on
  `configs/demo.py`'s ACRNN with the corpus swapped in, `train.max_steps =
  --steps`, evaluation of every split included, measured as the child's
  `ru_maxrss` by a fresh wrapper process per run (so each figure is one run's);
* input throughput: examples/s of `pipeline.train_batches` alone (the first
  fold's training split, one epoch's first `--input-batches` batches after
  one warm-up batch), against the examples/s the same model's jitted train
  step consumes (`_common.measure_train_step`, same batch and shape).

JSON: per size and source {peak_rss_mb, train_wall_s, input_examples_per_s,
step_examples_per_s, input_over_step}, the records' preparation time and
size, and the ratios the issue asks for: peak RSS at 10x over 1x (target <=
1.3 with records) and input over step (target >= 3).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import machine_info, utc_now, write_result  # noqa: E402

SPEAKERS = 10
_RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(rc)\n"
)


def corpus(cache: Path, size: int) -> Path:
    """The manifest CSV of the synthetic corpus of `size` utterances (written once)."""
    from jaxpara.data.corpora.synthetic import emotion

    root = cache / f"corpus_{size}"
    done = root / "DONE"
    if not done.exists():
        if root.exists():
            shutil.rmtree(root)
        start = time.perf_counter()
        emotion.write_manifest(
            str(root), num_speakers=SPEAKERS, utterances_per_speaker=size // SPEAKERS
        )
        done.write_text(f"{time.perf_counter() - start:.1f}\n")
    return root / "manifest.csv"


def overrides(csv: Path, cache: Path, source: str, steps: int) -> dict:
    """`--config.*` of the runs: the demo's front-end and model on the corpus."""
    return {
        "data.corpus": "manifest",
        "data.root": str(csv),
        "data.source": source,
        # One records dir per corpus: records are keyed by the front-end only.
        "data.records_dir": str(cache / f"tfds_{csv.parent.name}"),
        "protocol.name": "predefined",
        "protocol.folds": "",
        "train.max_steps": steps,
        "train.num_epochs": 1,
        "train.log_every_steps": max(1, steps // 3),
        "eval.baseline": False,
    }


def config(csv: Path, cache: Path, source: str, steps: int):
    from ml_collections.config_flags import config_path

    from configs import demo

    c = demo.get_config()
    for key, value in overrides(csv, cache, source, steps).items():
        config_path.set_value(key, c, value)
    return c


def prepare(csv: Path, cache: Path) -> dict:
    """Prepares (once) the records; time and size on disk."""
    from jaxpara.data import records

    cfg = config(csv, cache, "records", 1)
    start = time.perf_counter()
    builder = records.prepare(cfg.data, cfg.data.records_dir)
    seconds = time.perf_counter() - start
    index = records.read_index(builder)
    size = sum(
        f.stat().st_size for f in Path(builder.data_dir).iterdir() if f.is_file()
    )
    return {
        "prepare_s_this_run": round(seconds, 2),
        "records_dir": str(builder.data_dir),
        "records_mb": round(size / 2**20, 1),
        "num_examples": index["num_examples"],
        "num_files": len(index["shards"]),
    }


def train_run(csv: Path, cache: Path, source: str, steps: int, workdir: Path) -> dict:
    """Peak RSS and wall time of one short `jaxpara.main` run."""
    if workdir.exists():
        shutil.rmtree(workdir)
    flags = [
        f"--config.{k}={v}" for k, v in overrides(csv, cache, source, steps).items()
    ]
    cmd = [
        sys.executable,
        "-c",
        _RSS_WRAPPER,
        sys.executable,
        "-m",
        "jaxpara.main",
        "--config=configs/demo.py",
        f"--workdir={workdir}",
        *flags,
    ]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[4:])} failed:\n{out.stderr[-3000:]}")
    rss_kb = int(out.stdout.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    results = json.loads((workdir / "results.json").read_text())
    return {
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "train_wall_s": round(wall, 1),
        "test_utterances": results["splits"]["test"]["n_utterances"],
    }


def input_throughput(
    csv: Path, cache: Path, source: str, batches: int, workdir: Path
) -> dict:
    """examples/s of the training input alone, and of the train step
    (`workdir`: the training run's, whose feature cache 'memory' reuses)."""
    from _common import measure_train_step

    from jaxpara import models, protocol
    from jaxpara import state as state_lib
    from jaxpara.data import pipeline

    cfg = config(csv, cache, source, 1)
    proto = protocol.Protocol.from_config(cfg, str(workdir))
    _, train, crop = proto.fold_data(proto.folds[0])
    norm = pipeline.training_stats(train, proto.store)
    batch_size = cfg.train.batch_size
    it = pipeline.train_batches(
        train, norm, global_batch=batch_size, seed=0, epoch=0, random_crop=crop
    )
    first = next(it)  # Warm-up: pipeline start.
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            next(it)
        except StopIteration:
            break
        n += 1
    seconds = time.perf_counter() - start
    input_eps = n * batch_size / seconds
    model = models.create_model(cfg.model, len(proto.corpus.labels))
    tx = state_lib.make_optimizer(cfg.train)
    step = measure_train_step(
        model,
        tx,
        first["inputs"].shape[1:],
        len(proto.corpus.labels),
        batch_size=batch_size,
        steps=5,
    )
    return {
        "input_batches": n,
        "input_examples_per_s": round(input_eps, 1),
        "step_examples_per_s": step["examples_per_s"],
        "input_over_step": round(input_eps / step["examples_per_s"], 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--cache", default="/tmp/jaxpara_data_scale")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--input-batches", type=int, default=40)
    parser.add_argument("--sources", default="records,memory")
    parser.add_argument("--out", default="benchmarks/results/data_scale_cpu.json")
    args = parser.parse_args()
    load = os.getloadavg()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    sources = args.sources.split(",")
    runs = {}
    for size in sizes:
        csv = corpus(cache, size)
        entry = {"corpus_written_s": float((csv.parent / "DONE").read_text())}
        entry["prepared"] = prepare(csv, cache)
        for source in sources:
            print(f"size {size}, source {source}", flush=True)
            workdir = cache / f"run_{size}_{source}"
            run = train_run(csv, cache, source, args.steps, workdir)
            run.update(
                input_throughput(csv, cache, source, args.input_batches, workdir)
            )
            entry[source] = run
            print(json.dumps(run), flush=True)
        runs[str(size)] = entry
    summary = {}
    if len(sizes) >= 2:
        small, large = str(sizes[0]), str(sizes[-1])
        for source in sources:
            summary[f"peak_rss_ratio_{source}"] = round(
                runs[large][source]["peak_rss_mb"] / runs[small][source]["peak_rss_mb"],
                3,
            )
    summary["min_input_over_step"] = min(
        runs[str(s)][src]["input_over_step"] for s in sizes for src in sources
    )
    write_result(
        {
            "runs": runs,
            "summary": summary,
            "targets": {"peak_rss_ratio_records": "<= 1.3", "input_over_step": ">= 3"},
            "args": vars(args),
            "machine": machine_info(load),
            "command": "python " + " ".join(sys.argv),
            "date": utc_now(),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
