"""End-to-end engine tests on a tiny synthetic corpus and the tiny ACRNN."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from configs import demo
from jaxpara.data import corpora
from tests.subproc import REPO, subprocess_env


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory):
    """A tiny synthetic IEMOCAP-layout corpus shared by the tests here."""
    cfg = tiny_config("")
    return corpora.generate_synthetic(
        "iemocap", str(tmp_path_factory.mktemp("corpus")), cfg.data.synthetic, seed=0
    )


def tiny_config(root: str):
    c = demo.get_config()
    c.data.root = root
    c.data.synthetic.num_speakers = 4
    c.data.synthetic.utterances_per_speaker = 12
    c.data.segment.length = 60
    c.data.segment.hop = 60
    c.data.segment.min_frames = 30
    c.protocol.folds = "Session2"
    c.model.name = "_acrnn_tiny"
    c.train.batch_size = 8
    c.train.eval_batch_size = 16
    c.train.num_epochs = 2
    c.train.log_every_steps = 1
    c.eval.bootstrap = 50
    # 2 of the 8 fake test devices: still data-parallel, without the
    # per-step overhead of 8 device programs on a 2-core CI machine.
    c.mesh.data = 2
    return c


def _overrides(root: str, **extra) -> list[str]:
    """Command-line flags that turn configs/demo.py into `tiny_config`."""
    flags = {
        "data.root": root,
        "data.synthetic.num_speakers": 4,
        "data.synthetic.utterances_per_speaker": 12,
        "data.segment.length": 60,
        "data.segment.hop": 60,
        "data.segment.min_frames": 30,
        "protocol.folds": "Session2",
        "model.name": "_acrnn_tiny",
        "train.batch_size": 8,
        "train.eval_batch_size": 16,
        "train.num_epochs": 2,
        "train.log_every_steps": 1,
        "eval.bootstrap": 50,
        **extra,
    }
    return [f"--config.{k}={v}" for k, v in flags.items()]


def _main_cmd(workdir, root, **extra):
    return [
        sys.executable,
        "-m",
        "jaxpara.main",
        "--config=configs/demo.py",
        f"--workdir={workdir}",
        *_overrides(root, **extra),
    ]


def _main(start, workdir, root, extra, **kwargs):
    """`python -m jaxpara.main` on `tiny_config` flags in a subprocess:
    `start` is subprocess.run or subprocess.Popen."""
    cmd = _main_cmd(workdir, root, **extra)
    return start(cmd, cwd=REPO, env=subprocess_env(), **kwargs)


def test_end_to_end_results_schema(corpus_root, tmp_path):
    from jaxpara import train
    from jaxpara.data import splits

    cfg = tiny_config(corpus_root)
    cfg.train.num_epochs = 5
    cfg.train.plateau_patience = 1
    cfg.train.plateau_factor = 0.5
    cfg.train.early_stopping = 2
    results = train.train_and_evaluate(cfg, str(tmp_path))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["splits"].keys() == results["splits"].keys()
    assert on_disk["model"]["name"] == "_acrnn_tiny"
    assert on_disk["model"]["num_params"] > 0
    # Every utterance of every split gets exactly one prediction.
    corpus = corpora.read_corpus("iemocap", corpus_root)
    (fold,) = splits.build_folds(corpus, cfg.protocol)
    rows = list(csv.DictReader(open(tmp_path / "predictions.csv")))
    for name, examples in fold.items():
        rep = on_disk["splits"][name]
        assert rep["n_utterances"] == len(examples)
        assert np.asarray(rep["confusion_matrix"]).sum() == len(examples)
        ids = [r["utterance_id"] for r in rows if r["split"] == name]
        assert sorted(ids) == sorted(e.utterance_id for e in examples)
        assert 0.0 <= rep["uar"] <= 1.0 and 0.0 <= rep["wa"] <= 1.0
        assert rep["labels"] == list(corpus.labels)
    assert 0.0 <= on_disk["splits"]["test"]["baseline_uar"] <= 1.0
    posteriors = np.array(
        [[float(r[f"p_{k}"]) for k in corpus.labels] for r in rows], np.float64
    )
    np.testing.assert_allclose(posteriors.sum(1), 1.0, atol=1e-4)
    # Reduce-on-plateau and early stopping follow the validation history.
    fold_result = json.loads((tmp_path / "fold_result.json").read_text())
    history = [h["validation_uar"] for h in fold_result["history"]]
    best, wait, scale, stopped_after = -1.0, 0, 1.0, len(history)
    plateau_best, bad = None, 0  # PyTorch ReduceLROnPlateau(mode='max', rel).
    for i, uar in enumerate(history):
        if uar > best:
            best, wait = uar, 0
        else:
            wait += 1
        if plateau_best is None or uar > plateau_best * (1 + 1e-4):
            plateau_best, bad = uar, 0
        else:
            bad += 1
            if bad > 1:  # patience 1: the 2nd bad eval in a row halves the lr.
                scale, bad = scale * 0.5, 0
        if wait >= 2:
            stopped_after = i + 1
            break
    assert len(history) == stopped_after
    assert fold_result["best_validation_uar"] == max(history)
    from jaxpara import checkpointing

    state, meta = checkpointing.Checkpointer(
        str(tmp_path / "checkpoints" / "latest")
    ).restore_arrays()
    assert float(state["lr_scale"][0]) == pytest.approx(scale)
    assert meta["finished"] is True
    # TensorBoard event files were written.
    assert any(f.startswith("events.out") for f in os.listdir(tmp_path / "logs"))


def test_one_device_equals_eight(corpus_root, tmp_path):
    from jaxpara import train

    logs = {}
    for n in (1, 8):
        cfg = tiny_config(corpus_root)
        cfg.mesh.data = n
        cfg.eval.baseline = False
        train.train_and_evaluate(cfg, str(tmp_path / f"d{n}"))
        fold = json.loads((tmp_path / f"d{n}" / "fold_result.json").read_text())
        logs[n] = np.array([x["loss"] for x in fold["train_log"]])
    assert len(logs[1]) == len(logs[8]) > 3
    np.testing.assert_allclose(logs[1], logs[8], rtol=1e-4, atol=1e-4)


def test_config_typo_fails_before_compiling(tmp_path):
    cmd = _main_cmd(tmp_path / "w", "", **{"train.num_epoch": 3})
    out = subprocess.run(
        cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "num_epoch" in out.stderr
    assert not (tmp_path / "w").exists()


def test_unknown_model_name_is_named(corpus_root, tmp_path):
    from jaxpara import train

    cfg = tiny_config(corpus_root)
    cfg.model.name = "acrn"
    with pytest.raises(ValueError, match="model.name"):
        train.train_and_evaluate(cfg, str(tmp_path))


def test_sigkill_and_resume_gives_identical_results(corpus_root, tmp_path):
    extra = {"train.checkpoint_every_steps": 1}  # 2 epochs of 12 steps.
    ref = tmp_path / "ref"
    _main(subprocess.run, ref, corpus_root, extra, check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = _main(
        subprocess.Popen,
        killed,
        corpus_root,
        extra,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = killed / "checkpoints" / "latest"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        steps = (
            [int(d) for d in os.listdir(ckpt) if d.isdigit()] if ckpt.exists() else []
        )
        if steps and max(steps) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "run finished before it could be killed"
    assert not (killed / "results.json").exists()
    _main(subprocess.run, killed, corpus_root, extra, check=True, capture_output=True)
    a = json.loads((ref / "results.json").read_text())
    b = json.loads((killed / "results.json").read_text())
    assert a["splits"] == b["splits"]
    fa = json.loads((ref / "fold_result.json").read_text())
    fb = json.loads((killed / "fold_result.json").read_text())
    assert fa["history"] == fb["history"]


def test_sigterm_checkpoints_and_the_restart_continues(corpus_root, tmp_path):
    """Preemption: SIGTERM mid-epoch writes a checkpoint of the current step and
    exits 143; the same command resumes from exactly that step."""
    import re

    from jaxpara import checkpointing

    extra = {"train.checkpoint_every_steps": 1000}  # 2 epochs of 12 steps.
    workdir = tmp_path / "run"
    proc = _main(
        subprocess.Popen,
        workdir,
        corpus_root,
        extra,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stderr:
        if re.search(r"step [3-9]/", line):  # Mid-epoch: 12 steps per epoch.
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stderr.read()
    assert proc.wait() == 143, rest[-3000:]
    assert "SIGTERM: stopped at step" in rest
    stopped = int(re.search(r"SIGTERM: stopped at step (\d+)", rest).group(1))
    assert stopped % 12  # Not an epoch boundary: the preemption checkpoint.
    latest = checkpointing.Checkpointer(str(workdir / "checkpoints" / "latest"))
    assert latest.latest_step() == stopped
    latest.close()
    assert not (workdir / "results.json").exists()
    out = _main(
        subprocess.run, workdir, corpus_root, extra, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"from step {stopped} " in out.stderr
    assert json.loads((workdir / "results.json").read_text())["splits"]["test"]


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(corpus_root, tmp_path):
    import jax

    from jaxpara import checkpointing, train

    cfg = tiny_config(corpus_root)
    cfg.train.learning_rate = 1e38  # Parameters overflow after the first update.
    cfg.train.checkpoint_every_steps = 1
    cfg.eval.baseline = False
    with pytest.raises(train.NonFiniteLossError, match=r"step \d+") as err:
        train.train_and_evaluate(cfg, str(tmp_path))
    assert "last good checkpoint" in str(err.value)
    ckpt = checkpointing.Checkpointer(str(tmp_path / "checkpoints" / "latest"))
    assert ckpt.all_steps(), "the steps before the overflow were checkpointed"
    state, _ = ckpt.restore_arrays()
    leaves = jax.tree_util.tree_leaves(state["params"])
    assert all(np.isfinite(np.asarray(x)).all() for x in leaves)
    assert not (tmp_path / "results.json").exists()


def test_vmapped_seeds_equal_separate_runs(corpus_root, tmp_path):
    """S = 3 seeds as one vmapped program == 3 runs of one seed each (issue 7),
    including per-seed reduce-on-plateau and early stopping."""
    from jaxpara import train

    runs = {}
    for vmap in (True, False):
        cfg = tiny_config(corpus_root)
        cfg.num_seeds = 3
        cfg.train.vmap_seeds = vmap
        cfg.train.num_epochs = 4
        cfg.train.plateau_patience = 1
        cfg.train.early_stopping = 2
        cfg.eval.baseline = False
        workdir = tmp_path / ("vmap" if vmap else "seq")
        results = train.train_and_evaluate(cfg, str(workdir))
        fold_dir = workdir / results["folds"][0]["fold"]
        logs = [
            json.loads((fold_dir / f"seed{k}" / "fold_result.json").read_text())
            for k in range(3)
        ]
        rows = list(csv.DictReader(open(workdir / "predictions.csv")))
        runs[vmap] = results, logs, rows
    (res_v, logs_v, rows_v), (res_s, logs_s, rows_s) = runs[True], runs[False]
    # Only the vmapped run shares one checkpoint directory between its seeds.
    fold = res_v["folds"][0]["fold"]
    assert (tmp_path / "vmap" / fold / "checkpoints").is_dir()
    assert (tmp_path / "seq" / fold / "seed1" / "checkpoints").is_dir()
    reduced = 0
    for lv, ls in zip(logs_v, logs_s):
        assert [x["step"] for x in lv["train_log"]] == [
            x["step"] for x in ls["train_log"]
        ]
        # A vmapped program rounds differently (batched matmuls): the losses
        # agree to ~1e-7 at first and drift apart to a few 1e-5 over 36
        # steps (posteriors too); a wrong per-seed learning rate or freeze is
        # far larger, and the selection decisions below must match exactly.
        np.testing.assert_allclose(
            [x["loss"] for x in lv["train_log"]],
            [x["loss"] for x in ls["train_log"]],
            rtol=1e-4,
            atol=1e-4,
        )
        # The same selection decisions, evaluation by evaluation.
        for key in ("step", "lr_scale"):
            assert [h[key] for h in lv["history"]] == [h[key] for h in ls["history"]]
        np.testing.assert_allclose(
            [h["validation_uar"] for h in lv["history"]],
            [h["validation_uar"] for h in ls["history"]],
        )
        reduced += lv["history"][-1]["lr_scale"] < 1
        assert lv["checkpoint_step"] == ls["checkpoint_step"]
    # Patience 1 and 4 epochs: at least one seed's learning rate was reduced.
    assert reduced >= 1
    # Seeds really differ from each other.
    assert logs_v[0]["train_log"][0]["loss"] != logs_v[1]["train_log"][0]["loss"]
    assert [(r["fold"], r["seed"], r["utterance_id"]) for r in rows_v] == [
        (r["fold"], r["seed"], r["utterance_id"]) for r in rows_s
    ]
    labels = res_v["corpus"]["labels"]
    post_v = np.array([[float(r[f"p_{k}"]) for k in labels] for r in rows_v])
    post_s = np.array([[float(r[f"p_{k}"]) for k in labels] for r in rows_s])
    np.testing.assert_allclose(post_v, post_s, atol=1e-4)  # The same drift.
    assert [f["seed"] for f in res_v["folds"]] == [0, 1, 2]
    for name in ("summary", "summary_pooled"):
        for split, summary in res_v[name].items():
            other = res_s[name][split]
            assert set(summary) == set(other)
            for key, value in summary.items():
                if key != "per_fold":
                    assert value == pytest.approx(other[key], abs=1e-6), (name, key)
                    continue
                assert [r["fold"] for r in value] == [r["fold"] for r in other[key]]
                for a, b in zip(value, other[key]):
                    for k in ("uar_mean", "uar_std", "wa_mean", "wa_std"):
                        assert a[k] == pytest.approx(b[k], abs=1e-6), (name, k)


def test_no_validation_trains_fixed_epochs_and_reports_the_final_checkpoint(
    corpus_root, tmp_path
):
    """protocol.validation=none (cards C3 all-Ohm, C4 IEM4): the whole held-out
    session tests, training runs every epoch (early stopping has nothing to
    watch) and the final checkpoint is the one evaluated and restored."""
    from jaxpara import checkpointing, predict, train
    from jaxpara.data import splits

    cfg = tiny_config(corpus_root)
    cfg.protocol.validation = "none"
    cfg.train.num_epochs = 3
    cfg.train.early_stopping = 1
    cfg.train.plateau_patience = 1
    cfg.eval.baseline = False
    results = train.train_and_evaluate(cfg, str(tmp_path))
    assert results["selection"] == {
        "metric": "uar",
        "validation": False,
        "checkpoint": "final",
    }
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["selection"] == results["selection"]
    corpus = corpora.read_corpus("iemocap", corpus_root)
    session2 = [e for e in corpus.examples if e.session == "Session2"]
    (fold,) = splits.build_folds(corpus, cfg.protocol)
    assert fold.validation == [] and len({e.speaker for e in session2}) == 2
    assert on_disk["splits"]["test"]["n_utterances"] == len(session2)
    assert "validation" not in on_disk["splits"]
    fold_result = json.loads((tmp_path / "fold_result.json").read_text())
    assert fold_result["has_validation"] is False
    assert fold_result["checkpoint"] == "final"
    assert fold_result["history"] == []
    assert fold_result["best_validation_uar"] is None
    # Every epoch ran, and the evaluated step is the final (latest)
    # checkpoint's; no best checkpoint exists.
    from jaxpara import protocol
    from jaxpara.data import pipeline

    setup = protocol.Protocol.from_config(cfg, str(tmp_path))  # Cached features.
    _, train_split, _ = setup.fold_data(setup.folds[0])
    steps = pipeline.steps_per_epoch(train_split, cfg.train.batch_size)
    assert fold_result["checkpoint_step"] == cfg.train.num_epochs * steps
    latest = checkpointing.Checkpointer(str(tmp_path / "checkpoints" / "latest"))
    assert fold_result["checkpoint_step"] == latest.latest_step()
    assert not (tmp_path / "checkpoints" / "best").exists() or not os.listdir(
        tmp_path / "checkpoints" / "best"
    )
    _, meta = latest.restore_arrays()
    assert meta["finished"] is True
    model = predict.load_model(str(tmp_path))
    assert model.checkpoint == {"kind": "latest", "step": latest.latest_step()}


def test_remaining_estimate_is_the_mean_program_time_times_what_is_left():
    from jaxpara import train

    assert train.remaining_estimate([], 10) == ""
    # Two programs done in 10 and 14 min: 12 min each, 8 left -> 96 min.
    line = train.remaining_estimate([600.0, 840.0], 8)
    assert line == "; ~96 min left (8 programs at 12.0 min, the mean of the 2 done)"
