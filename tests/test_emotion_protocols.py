"""Configs C4 (MOMA) and C5 (CNN-BiLSTM) end to end on one tiny synthetic IEMOCAP:
a test-sized MOMA run with its attention files, and a leave-one-speaker-out
protocol run (2 folds x 2 seeds) with its results.json summary.

The runs go through the launch line (`python -m jaxpara.main --config=...`) in
a subprocess on one CPU device with XLA's backend optimisation off and a
persistent compilation cache, so the second fold reuses the first fold's
compiled programs: compilation, not training, is what these tests pay for.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from configs import default, iemocap_cnn_bilstm, iemocap_moma
from jaxpara import models
from jaxpara.data import corpora
from tests.subproc import REPO, subprocess_env


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory):
    """4 speakers (sessions 1-2) x 12 utterances (some scripted), IEMOCAP layout."""
    cfg = default.get_config()
    cfg.data.synthetic.num_speakers = 4
    cfg.data.synthetic.utterances_per_speaker = 12
    return corpora.generate_synthetic(
        "iemocap", str(tmp_path_factory.mktemp("corpus")), cfg.data.synthetic, seed=0
    )


def _run(config: str, workdir, root: str, model_name: str, **extra) -> dict:
    """Runs `config` at test size through jaxpara.main; returns results.json."""
    flags = {
        "data.root": root,
        "model.name": model_name,
        "data.segment.length": 100,
        "data.segment.hop": 100,
        "data.segment.min_frames": 50,
        "train.batch_size": 8,
        "train.eval_batch_size": 16,
        "train.num_epochs": 1,
        "train.max_steps": 2,
        "eval.bootstrap": 50,
        **extra,
    }
    env = subprocess_env(devices=1)
    cmd = [
        sys.executable,
        "-m",
        "jaxpara.main",
        f"--config={config}",
        f"--workdir={workdir}",
        *(f"--config.{k}={v}" for k, v in flags.items()),
    ]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(os.path.join(str(workdir), "results.json")) as f:
        return json.load(f)


def test_configs_only_override_default_keys_and_build_their_models():
    keys = set(default.get_config().to_dict())
    moma_cfg = iemocap_moma.get_config()
    assert set(moma_cfg.to_dict()) == keys
    assert type(models.create_model(moma_cfg.model, 4)).__name__ == "MOMA"
    assert moma_cfg.data.features.n_mels == 23 and not moma_cfg.data.features.deltas
    assert (moma_cfg.protocol.name, moma_cfg.protocol.folds) == (
        "loso_session",
        "Session5",
    )
    assert moma_cfg.train.optimizer == "adam" and moma_cfg.train.learning_rate == 1e-4
    assert (moma_cfg.train.plateau_patience, moma_cfg.train.plateau_factor) == (4, 0.1)
    for variant, attention in (("model1", "temporal"), ("model2", "local_self")):
        cfg = iemocap_cnn_bilstm.get_config(variant)
        assert set(cfg.to_dict()) == keys
        model = models.create_model(cfg.model, 4)
        assert type(model).__name__ == "CNNBiLSTM"
        assert (model.attention, model.use_gender) == (attention, True)
        assert model.conv_kernel == (5, 3) and model.local_attention_width == 15
        assert (cfg.protocol.name, cfg.num_seeds, cfg.eval.aggregation) == (
            "loso_speaker",
            5,
            "max",
        )
        assert (cfg.train.optimizer, cfg.train.batch_size) == ("nadam_keras", 40)
        assert cfg.train.nadam_schedule_decay == 0.004  # Keras 2 (TF <= 2.10).
        assert cfg.data.improvised_only and cfg.data.segment.length == 300
    with pytest.raises(ValueError, match="model3"):
        iemocap_cnn_bilstm.get_config("model3")


def test_moma_iem4_tests_the_whole_held_out_session(corpus_root):
    """Card C4 IEM4: the default trains on the other sessions and tests on the
    WHOLE held-out session (no validation); `:iem4_holdout` validates on 30%
    of the training speakers and still tests the whole session."""
    from jaxpara.data import splits

    corpus = corpora.read_corpus("iemocap", corpus_root)
    session2 = {e.utterance_id for e in corpus.examples if e.session == "Session2"}
    for variant, validates in (("iem4", False), ("iem4_holdout", True)):
        cfg = iemocap_moma.get_config(variant)
        cfg.protocol.folds = "Session2"  # The test corpus has sessions 1-2.
        (fold,) = splits.build_folds(corpus, cfg.protocol, seed=0)
        assert {e.utterance_id for e in fold.test} == session2
        assert bool(fold.validation) == validates
        train_speakers = {e.speaker for e in fold.train}
        assert train_speakers | {e.speaker for e in fold.validation} == {
            "Ses01F",
            "Ses01M",
        }
        assert not train_speakers & {e.speaker for e in fold.validation}
    with pytest.raises(ValueError, match="unknown variant 'iem5'"):
        iemocap_moma.get_config("iem5")


def test_moma_config_trains_and_saves_attention(corpus_root, tmp_path):
    results = _run(
        "configs/iemocap_moma.py",
        tmp_path,
        corpus_root,
        "_moma_tiny",
        **{"protocol.folds": "Session2"},
    )
    assert results["model"]["name"] == "_moma_tiny"
    # Scripted + improvised: every utterance of the corpus is in a split.
    counts = results["corpus"]["counts"]
    splits = results["splits"]
    assert sum(r["n_utterances"] for r in splits.values()) == sum(counts.values())
    # IEM4: no validation split; the whole held-out session tests.
    assert set(splits) == {"train", "test"}
    assert results["selection"]["checkpoint"] == "final"
    assert not (tmp_path / "attention_validation.npz").exists()
    for split in ("test",):
        with np.load(tmp_path / f"attention_{split}.npz") as z:
            ids = list(z["utterance_ids"])
            assert len(ids) == splits[split]["n_utterances"]
            for name in ("attention_layer1", "attention_mixture"):
                offsets = z[f"{name}_offsets"]
                assert offsets.shape == (len(ids) + 1,) and offsets[-1] == len(z[name])
                assert int(z[f"{name}_stride"]) == 1
            # Layer-1 weights sum to 1 over each segment's real frames, so an
            # utterance sums to its number of segments: all but the last are
            # full 100-frame segments.
            a1, off = z["attention_layer1"], z["attention_layer1_offsets"]
            np.testing.assert_allclose(
                np.add.reduceat(a1, off[:-1]), np.ceil(np.diff(off) / 100), rtol=1e-5
            )
            np.testing.assert_array_equal(
                np.diff(off), np.diff(z["attention_mixture_offsets"])
            )


def test_cnn_bilstm_loso_speaker_2_folds_2_seeds(corpus_root, tmp_path):
    results = _run(
        "configs/iemocap_cnn_bilstm.py:model2",
        tmp_path,
        corpus_root,
        "_cnn_bilstm_tiny",
        **{"num_seeds": 2, "protocol.folds": "speaker_Ses01F,speaker_Ses02M"},
    )
    corpus = corpora.read_corpus("iemocap", corpus_root, improvised_only=True)
    by_speaker = {}
    for e in corpus.examples:
        by_speaker.setdefault(e.speaker, set()).add(e.utterance_id)
    assert results["corpus"]["n_excluded"] == len(corpus.excluded) > 0  # Scripted.

    folds = results["folds"]
    assert [(f["fold"], f["seed"]) for f in folds] == [
        ("speaker_Ses01F", 0),
        ("speaker_Ses01F", 1),
        ("speaker_Ses02M", 0),
        ("speaker_Ses02M", 1),
    ]
    for split in ("validation", "test"):
        for key in ("uar", "wa"):
            values = np.array([f["splits"][split][key] for f in folds])
            pooled = results["summary_pooled"][split]
            assert pooled["n"] == 4
            assert pooled[f"{key}_mean"] == pytest.approx(values.mean(), abs=1e-12)
            assert pooled[f"{key}_std"] == pytest.approx(values.std(ddof=1), abs=1e-12)
            # Card C5: seeds averaged per fold, then ddof-0 std over folds.
            per_fold = values.reshape(2, 2).mean(axis=1)
            summary = results["summary"][split]
            assert summary["n_folds"] == 2 and summary["n_seeds"] == 2
            assert summary[f"{key}_mean"] == pytest.approx(per_fold.mean(), abs=1e-12)
            assert summary[f"{key}_std"] == pytest.approx(per_fold.std(), abs=1e-12)

    # Every utterance: exactly one prediction per fold x seed; test and
    # validation are the held-out speaker and its session partner.
    rows = list(csv.DictReader(open(tmp_path / "predictions.csv")))
    held_out = {
        "speaker_Ses01F": ("Ses01F", "Ses01M"),
        "speaker_Ses02M": ("Ses02M", "Ses02F"),
    }
    all_ids = sorted(e.utterance_id for e in corpus.examples)
    for f in folds:
        mine = [
            r for r in rows if (r["fold"], int(r["seed"])) == (f["fold"], f["seed"])
        ]
        assert sorted(r["utterance_id"] for r in mine) == all_ids
        test_speaker, val_speaker = held_out[f["fold"]]
        for split, speaker in (("test", test_speaker), ("validation", val_speaker)):
            ids = {r["utterance_id"] for r in mine if r["split"] == split}
            assert ids == by_speaker[speaker]
            assert f["splits"][split]["n_utterances"] == len(ids)
        for r in mine:  # 'max' aggregation: prediction = argmax posterior.
            post = [float(r[f"p_{k}"]) for k in corpus.labels]
            assert r["prediction"] == corpus.labels[int(np.argmax(post))]
    # Top level: the first seed's test predictions pooled over the folds.
    pooled = results["splits"]["test"]
    assert pooled["n_utterances"] == len(by_speaker["Ses01F"] | by_speaker["Ses02M"])
