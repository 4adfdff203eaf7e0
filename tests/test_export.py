"""Card C3 end to end: train the IEMOCAP config at test size, then export its
deep-spectrum vectors through `python -m jaxpara.main --mode=export_features`
and score the linear SVM on them."""

import functools
import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import iemocap_blstm_fcn
from jaxpara import export, models
from jaxpara.data import corpora, pipeline, splits
from tests.subproc import REPO, subprocess_env

CONFIG = "configs/iemocap_blstm_fcn.py:blstm_fcn_2"
# The test-sized run: 4 synthetic speakers (sessions 1-2), fold Session2.
TINY = {
    "model.name": "_blstm_fcn_tiny",
    "model.blstm.layers": 1,
    "model.head_layers": 1,
    "data.synthetic.num_speakers": 4,
    "data.synthetic.utterances_per_speaker": 12,
    "protocol.folds": "Session2",
    "train.num_epochs": 1,
    "train.batch_size": 8,
    "train.eval_batch_size": 16,
    "eval.bootstrap": 50,
}


def tiny_config():
    cfg = iemocap_blstm_fcn.get_config("blstm_fcn_2")
    for key, value in TINY.items():
        *parents, leaf = key.split(".")
        node = cfg
        for p in parents:
            node = getattr(node, p)
        setattr(node, leaf, value)
    return cfg


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Trains the tiny C3 config, then exports it in a 1-device subprocess."""
    from jaxpara import train

    workdir = tmp_path_factory.mktemp("c3")
    cfg = tiny_config()
    cfg.mesh.data = 2  # 2 of the 8 fake devices (the export subprocess has 1).
    results = train.train_and_evaluate(cfg, str(workdir))
    # Trained on 8 fake devices, exported on 1: the restore is device-agnostic.
    env = subprocess_env(devices=1)
    cmd = [
        sys.executable,
        "-m",
        "jaxpara.main",
        f"--config={CONFIG}",
        f"--workdir={workdir}",
        "--mode=export_features",
        *[f"--config.{k}={v}" for k, v in TINY.items()],
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cfg, workdir, results


def test_c3_config_trains_on_synthetic_iemocap(exported):
    _, workdir, results = exported
    on_disk = json.loads((workdir / "results.json").read_text())
    assert on_disk["corpus"]["synthetic"] is True
    assert on_disk["model"]["name"] == "_blstm_fcn_tiny"
    assert on_disk["config"]["data"]["improvised_only"] is True
    for rep in results["splits"].values():
        assert 0.0 <= rep["uar"] <= 1.0 and 0.0 <= rep["wa"] <= 1.0


def test_export_writes_every_utterance_of_every_split(exported):
    cfg, workdir, _ = exported
    corpus = corpora.read_corpus(
        "iemocap",
        corpora.generate_synthetic(
            "iemocap", str(workdir / "data"), cfg.data.synthetic, seed=cfg.seed
        ),
        improvised_only=True,
    )
    (fold,) = splits.build_folds(corpus, cfg.protocol)
    with np.load(workdir / export.FEATURES_FILE) as z:
        ids, vectors, labels, split = z["ids"], z["vectors"], z["labels"], z["split"]
        assert list(z["label_names"]) == list(corpus.labels)
    dim = 2 * 8 + 4  # Tiny fusion: BLSTM 2 x 8 + one FCN block of 4.
    assert vectors.shape == (len(ids), dim) and vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors)) and np.ptp(vectors, axis=0).max() > 0
    label_of = {e.utterance_id: corpus.label_index(e.label) for e in corpus.examples}
    for name, examples in fold.items():
        in_split = split == name
        assert sorted(ids[in_split]) == sorted(e.utterance_id for e in examples)
        assert list(labels[in_split]) == [label_of[u] for u in ids[in_split]]

    svm = json.loads((workdir / export.RESULTS_FILE).read_text())
    assert svm["feature_dim"] == dim
    assert svm["features"][0]["checkpoint"]["kind"] == "best"
    sizes = {name: len(examples) for name, examples in fold.items()}
    assert set(svm["splits"]) == set(sizes) == {"train", "validation", "test"}
    for name, rep in svm["splits"].items():
        assert rep["n_utterances"] == sizes[name] == int(np.sum(split == name))
        assert 0.0 <= rep["uar"] <= 1.0 and 0.0 <= rep["wa"] <= 1.0
        assert np.asarray(rep["confusion_matrix"]).sum() == rep["n_utterances"]
    rows = (workdir / export.PREDICTIONS_FILE).read_text().splitlines()
    assert len(rows) == 1 + len(ids)


def test_linear_svm_learns_a_known_answer():
    rng = np.random.default_rng(0)
    means = 3.0 * rng.normal(size=(3, 6))
    y_train, y_test = rng.integers(0, 3, 300), rng.integers(0, 3, 150)
    x_train = means[y_train] + rng.normal(size=(300, 6))
    x_test = means[y_test] + rng.normal(size=(150, 6))
    svm = export.fit_linear_svm(1e3 * x_train, y_train, seed=0, balanced=True)
    pred = svm.predict(1e3 * x_test)  # Standardisation makes the scale moot.
    recall = [np.mean(pred[y_test == k] == k) for k in range(3)]
    assert np.mean(recall) >= 0.95
    # Labels independent of the features: nothing to learn.
    shuffled = export.fit_linear_svm(
        x_train, rng.permutation(y_train), seed=0, balanced=False
    )
    assert np.mean(shuffled.predict(x_test) == y_test) < 0.6


def test_single_class_train_split_is_an_error():
    with pytest.raises(ValueError, match="single class"):
        export.fit_linear_svm(np.zeros((4, 2)), np.ones(4, int), seed=0, balanced=False)


def test_utterance_vectors_average_segments():
    split = pipeline.SplitData(
        name="test",
        utterance_ids=["a", "b"],
        utterance_labels=np.zeros(2, np.int32),
        utterance_gender=np.zeros(2, np.int32),
        segments=np.zeros((3, 1, 1, 1), np.float32),
        frames=np.ones(3, np.int32),
        utterance_index=np.array([0, 1, 0], np.int32),
        skipped=[],
    )
    seg = np.array([[1.0, 2.0], [5.0, 5.0], [3.0, 0.0]], np.float32)
    np.testing.assert_array_equal(
        export.utterance_vectors(seg, split), [[2.0, 1.0], [5.0, 5.0]]
    )


def test_model_without_deep_spectrum_is_named():
    model = models.MODELS["_acrnn_tiny"](num_classes=4)
    x = np.zeros((2, 8, 4, 1), np.float32)
    variables = jax.eval_shape(
        functools.partial(model.init, train=False), jax.random.key(0), x
    )
    batch = {"inputs": x, "frames": np.full(2, 8), "gender": np.zeros(2, int)}
    with pytest.raises(ValueError, match="deep_spectrum"):
        jax.eval_shape(
            functools.partial(export.deep_spectrum_step, model=model), variables, batch
        )
