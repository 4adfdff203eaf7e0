"""Multi-process training (launch/local.sh), launchers and distributed init."""

import json
import os
import shlex
import shutil
import socket
import subprocess

import numpy as np
import pytest

from tests.subproc import REPO, subprocess_env
from tests.test_train import _main_cmd, tiny_config

LAUNCHERS = ["launch/local.sh", "launch/slurm.sbatch", "launch/tpu_vm.sh"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory):
    from jaxpara.data import corpora

    return corpora.generate_synthetic(
        "iemocap",
        str(tmp_path_factory.mktemp("corpus")),
        tiny_config("").data.synthetic,
        seed=0,
    )


def test_two_processes_equal_one_process_with_two_devices(corpus_root, tmp_path):
    """The same global batches on 2 processes x 1 CPU device (gloo) and on one
    process with 2 devices give the same training curve and results."""
    extra = {"train.num_epochs": 1, "train.max_steps": 6, "mesh.data": 2}
    two = tmp_path / "two"
    env = subprocess_env(devices=1)
    env["JAXPARA_PORT"] = str(_free_port())
    cmd = ["bash", "launch/local.sh", "2", *_main_cmd(two, corpus_root, **extra)[3:]]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    log1 = (
        (two / "process_1.log").read_text() if (two / "process_1.log").exists() else ""
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:] + log1[-3000:]
    assert "step 6/6" in log1  # Process 1 trained too (its own log).

    one = tmp_path / "one"
    out = subprocess.run(
        _main_cmd(one, corpus_root, **extra),
        cwd=REPO,
        env=subprocess_env(devices=2),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    f1 = json.loads((one / "fold_result.json").read_text())
    f2 = json.loads((two / "fold_result.json").read_text())
    losses1 = [x["loss"] for x in f1["train_log"]]
    losses2 = [x["loss"] for x in f2["train_log"]]
    assert len(losses1) == len(losses2) == 6
    np.testing.assert_allclose(losses2, losses1, rtol=1e-5, atol=1e-5)
    r1 = json.loads((one / "results.json").read_text())
    r2 = json.loads((two / "results.json").read_text())
    for split, rep in r1["splits"].items():
        assert r2["splits"][split]["confusion_matrix"] == rep["confusion_matrix"]
        assert r2["splits"][split]["uar"] == pytest.approx(rep["uar"], abs=1e-9)
    # Only process 0 writes the run's files.
    assert not (two / "process_1").exists()


def test_two_processes_from_records_equal_one_process_with_two_pipelines(
    corpus_root, tmp_path
):
    """data.source='records': 2 processes (one reading pipeline each, disjoint
    shard files) and 1 process with data.read_shards=2 see the same global
    batches: the same training curve and results."""
    import re

    from tests.data.test_stream import prepare_sharded

    records_dir = tmp_path / "records"
    prepare_sharded(tiny_config(corpus_root).data, str(records_dir), num_shards=4)
    extra = {
        "train.num_epochs": 1,
        "train.max_steps": 4,
        "mesh.data": 2,
        "eval.baseline": False,
        "data.source": "records",
        "data.records_dir": records_dir,
    }
    two = tmp_path / "two"
    env = subprocess_env(devices=1)
    env["JAXPARA_PORT"] = str(_free_port())
    cmd = ["bash", "launch/local.sh", "2", *_main_cmd(two, corpus_root, **extra)[3:]]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    log1 = (
        (two / "process_1.log").read_text() if (two / "process_1.log").exists() else ""
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:] + log1[-3000:]
    read = r"train split, pipeline (\d) of 2 reads (.*)"
    ((p0, files0),) = re.findall(read, out.stdout + out.stderr)
    ((p1, files1),) = re.findall(read, log1)
    assert (p0, p1) == ("0", "1")
    assert files0.split() and files1.split()
    assert not set(files0.split()) & set(files1.split())

    one = tmp_path / "one"
    out = subprocess.run(
        _main_cmd(one, corpus_root, **extra, **{"data.read_shards": 2}),
        cwd=REPO,
        env=subprocess_env(devices=2),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    f1 = json.loads((one / "fold_result.json").read_text())
    f2 = json.loads((two / "fold_result.json").read_text())
    losses1 = [x["loss"] for x in f1["train_log"]]
    losses2 = [x["loss"] for x in f2["train_log"]]
    assert len(losses1) == len(losses2) == 4
    np.testing.assert_allclose(losses2, losses1, rtol=1e-5, atol=1e-5)
    r1 = json.loads((one / "results.json").read_text())
    r2 = json.loads((two / "results.json").read_text())
    for split, rep in r1["splits"].items():
        assert r2["splits"][split]["confusion_matrix"] == rep["confusion_matrix"]


@pytest.mark.parametrize("script", LAUNCHERS)
def test_launchers_are_shellcheck_clean(script):
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: pip install -e '.[dev]' provides it"
    out = subprocess.run([shellcheck, script], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_cluster_launchers_build_their_command_lines():
    env = dict(os.environ, DRY_RUN="1")
    flags = ["--config=configs/demo.py", "--workdir=/runs/a b"]

    def dry_run(*args):
        """The command line a launcher prints under DRY_RUN=1, split."""
        out = subprocess.run(
            ["bash", *args, *flags],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return shlex.split(out.stdout)

    slurm = dry_run("launch/slurm.sbatch")
    assert slurm[:2] == ["srun", "--kill-on-bad-exit=1"]
    assert slurm[3:] == ["-m", "jaxpara.main", *flags]
    tpu = dry_run("launch/tpu_vm.sh", "my-tpu", "us-central2-b")
    assert tpu[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-tpu"]
    assert tpu[6:8] == ["--zone=us-central2-b", "--worker=all"]
    remote = shlex.split(tpu[8].removeprefix("--command="))
    assert remote[:3] == ["cd", "~/jaxpara", "&&"]
    assert remote[3:] == ["python3", "-m", "jaxpara.main", *flags]
    usage = subprocess.run(
        ["bash", "launch/local.sh", "x"], cwd=REPO, capture_output=True, text=True
    )
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_initialize_distributed_sources(monkeypatch):
    import jax

    from jaxpara import sharding

    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    assert not sharding.initialize_distributed(environ={})
    assert not sharding.initialize_distributed(
        environ={"SLURM_JOB_ID": "1", "SLURM_NTASKS": "1"}
    )
    env = {
        "JAX_COORDINATOR_ADDRESS": "h:1",
        "JAX_NUM_PROCESSES": "4",
        "JAX_PROCESS_ID": "3",
    }
    assert sharding.initialize_distributed(environ=env)
    assert calls[-1] == dict(coordinator_address="h:1", num_processes=4, process_id=3)
    # Flags win over the environment.
    assert sharding.initialize_distributed("f:2", 2, 0, environ=env)
    assert calls[-1] == dict(coordinator_address="f:2", num_processes=2, process_id=0)
    with pytest.raises(ValueError, match="process_id"):
        sharding.initialize_distributed("h:1", 2, 5, environ={})
    assert sharding.initialize_distributed(
        environ={"SLURM_JOB_ID": "1", "SLURM_NTASKS": "8"}
    )
    assert calls[-1] == {}  # SLURM: JAX's own cluster detection.
