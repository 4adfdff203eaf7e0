"""`jaxpara.sweep`: grids, cells, the paper sweep of card C2 end to end."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from configs import (
    covid_cough_sacrnn,
    fau_blstm_fcn,
    icbhi_resnet18,
    iemocap_blstm_fcn,
    iemocap_cnn_bilstm,
    iemocap_moma,
)
from jaxpara import models, sweep
from jaxpara.errors import ConfigError, WorkdirError

CONFIG = "configs/icbhi_resnet18.py"
# Card C2 at test size: the tiny ResNet, 16 recordings, one short epoch.
TINY = {
    "model.name": "_resnet18_tiny",
    "data.synthetic.num_recordings": 16,
    "train.num_epochs": 1,
    "train.batch_size": 8,
    "eval.bootstrap": 0,
    "mesh.data": 2,
}


@pytest.mark.parametrize(
    "module",
    [
        covid_cough_sacrnn,
        icbhi_resnet18,
        iemocap_blstm_fcn,
        fau_blstm_fcn,
        iemocap_moma,
        iemocap_cnn_bilstm,
    ],
)
def test_every_paper_sweep_builds_its_cells_and_names_their_figures(module):
    for name in module.PAPER_SWEEPS:
        paper = sweep.paper_sweep(module, name)
        cells = sweep.build_cells(
            module, module.get_config(), {}, sweep.parse_axes(paper["grid"])
        )
        labels = [c.label for c in cells]
        labels += [  # A model's branches get rows `<cell>/<branch>`.
            f"{c.label}/{b}"
            for c in cells
            for b in models.branch_names(models.create_model(c.config.model, 2))
        ]
        assert set(paper["reference"]) <= set(labels), (name, labels)
        for row in paper["reference"].values():
            assert len(row) == len(paper["columns"])
        assert len({c.name for c in cells}) == len(cells)


def test_grid_product_types_values_and_names_errors():
    module = sweep.load_module(CONFIG)
    base = icbhi_resnet18.get_config()
    axes = sweep.parse_axes(["variant=none,se", "data.features.hop_ms=40,20.5"])
    cells = sweep.build_cells(module, base, {"train.num_epochs": 3}, axes)
    assert [c.label for c in cells] == ["none,40", "none,20.5", "se,40", "se,20.5"]
    assert cells[1].name == "variant-none__hop_ms-20.5"
    assert [c.config.model.attention for c in cells] == [
        "none",
        "none",
        "se",
        "se",
    ]
    assert cells[1].config.data.features.hop_ms == 20.5
    assert all(c.config.train.num_epochs == 3 for c in cells)  # Overrides kept.
    assert base.data.features.hop_ms == icbhi_resnet18.get_config().data.features.hop_ms
    with pytest.raises(ConfigError, match="no such config key 'train.lerning_rate'"):
        sweep.build_cells(module, base, {}, sweep.parse_axes(["train.lerning_rate=1"]))
    with pytest.raises(ConfigError, match="train.num_epochs='many'"):
        sweep.build_cells(module, base, {}, sweep.parse_axes(["train.num_epochs=many"]))
    with pytest.raises(ConfigError, match="variant=resnet50"):
        sweep.build_cells(module, base, {}, sweep.parse_axes(["variant=resnet50"]))
    with pytest.raises(ConfigError, match="expected KEY=V1,V2"):
        sweep.parse_axes(["train.num_epochs"])
    with pytest.raises(ConfigError, match="paper:table9"):
        sweep.paper_sweep(module, "table9")
    assert sweep.reference_table("a 1.5 -\n  b 59.43+-11.57 2\n", 2) == {
        "a": [1.5, None],
        "b": ["59.43 +- 11.57", 2.0],
    }
    with pytest.raises(ConfigError, match="'b 1': 1 values for 2 columns"):
        sweep.reference_table("a 1 2\nb 1", 2)


def _check_card_c2(cell: str) -> None:
    """One cell's results as card C2 computes them: every cycle predicted,
    ICBHI SE / SP / score from the confusion matrix, validation patients
    disjoint from training ones, the checkpoint chosen on the validation ICBHI
    score (seed 001, Table 2)."""
    results = json.loads(open(os.path.join(cell, "results.json")).read())
    assert results["corpus"]["synthetic"] is True
    n_cycles = sum(results["corpus"]["counts"].values())
    splits = results["splits"]
    assert sum(splits[s]["n_utterances"] for s in splits) == n_cycles
    for split, rep in splits.items():
        cm = np.asarray(rep["confusion_matrix"])
        se = np.trace(cm[1:, 1:]) / cm[1:].sum()  # Exact class, abnormal cycles.
        sp = cm[0, 0] / cm[0].sum()
        assert rep["sensitivity"] == pytest.approx(se), split
        assert rep["specificity"] == pytest.approx(sp), split
        assert rep["icbhi_score"] == pytest.approx((se + sp) / 2), split
    with open(os.path.join(cell, "predictions.csv")) as f:
        rows = list(csv.DictReader(f))
    patients = {
        s: {r["utterance_id"][:3] for r in rows if r["split"] == s}
        for s in ("train", "validation", "test")
    }
    assert patients["validation"] and not patients["validation"] & patients["train"]
    assert not patients["test"] & patients["train"]
    assert results["selection"]["metric"] == "icbhi_score"
    fold_result = json.loads(open(os.path.join(cell, "fold_result.json")).read())
    assert fold_result["selection_metric"] == "icbhi_score"
    scores = [h["validation_icbhi_score"] for h in fold_result["history"]]
    assert scores and fold_result["best_validation_icbhi_score"] == max(scores)
    assert splits["validation"]["icbhi_score"] == pytest.approx(max(scores))


def test_c2_paper_sweep_end_to_end(tmp_path, monkeypatch):
    """--grid=paper: the 5 attention variants of seed 001 Table 2, one row
    each with the paper's figures beside ours; a rerun retrains nothing and
    a cell trained with another config is refused."""
    from jaxpara import rundir, train
    from jaxpara.data import pipeline

    crops = []
    original = pipeline.train_batches

    def recording_train_batches(split, norm, **kwargs):
        crops.append((kwargs["random_crop"], split.segments.shape[1]))
        return original(split, norm, **kwargs)

    monkeypatch.setattr(pipeline, "train_batches", recording_train_batches)
    base = icbhi_resnet18.get_config()
    for key, value in TINY.items():
        sweep.config_path.set_value(key, base, value)
    workdir = str(tmp_path)
    rows = sweep.run_sweep(CONFIG, base, TINY, ["paper"], workdir)
    # Card C2: training crops 63 frames out of whole cycles (longer than it).
    assert len(crops) == 5 and all(c == 63 and t > 63 for c, t in crops)
    variants = ["none", "se", "spatial", "se_spatial", "component"]
    assert [r["cell"] for r in rows] == variants
    reference = sweep.paper_sweep(icbhi_resnet18)["reference"]
    for row in rows:
        cell = rundir.cell_dir(workdir, f"variant-{row['cell']}")
        results = rundir.read_results(cell)
        assert results["config"]["model"]["attention"] == row["cell"]
        assert row["test AS"] == results["splits"]["test"]["icbhi_score"]
        assert row["validation AS"] == results["splits"]["validation"]["icbhi_score"]
        assert row["paper test AS"] == reference[row["cell"]][3]
        assert row["params"] == results["model"]["num_params"]
        # The cells share the synthetic corpus and the feature cache.
        assert os.path.realpath(os.path.join(cell, "cache")) == os.path.join(
            workdir, "cache"
        )
    assert len(os.listdir(os.path.join(workdir, "data"))) == 1
    _check_card_c2(rundir.cell_dir(workdir, "variant-se_spatial"))
    assert rows[0]["z p"] is None
    assert all(
        0.0 <= r["z p"] <= 1.0 and 0.0 <= r["McNemar p"] <= 1.0 for r in rows[1:]
    )
    table = open(os.path.join(workdir, "table.md")).read().splitlines()
    body = [line for line in table if line.startswith("| ") and "---" not in line]
    assert len(body) == 1 + 5  # Header + one row per cell.
    assert body[0].startswith("| cell | params | validation AS | test SE")
    assert "(48.71)" in body[1] and "(49.24)" in body[5]
    assert "seed 001 Table 2" in "\n".join(table)
    with open(os.path.join(workdir, "table.csv")) as f:
        assert [r["cell"] for r in csv.DictReader(f)] == variants

    def no_training(*args, **kwargs):
        raise AssertionError("a finished cell was retrained")

    monkeypatch.setattr(train, "train_and_evaluate", no_training)
    again = sweep.run_sweep(CONFIG, base, TINY, ["paper"], workdir)
    assert again == rows
    sweep.config_path.set_value("train.learning_rate", base, 0.5)
    with pytest.raises(WorkdirError, match="trained with another config"):
        sweep.run_sweep(
            CONFIG, base, {**TINY, "train.learning_rate": 0.5}, ["paper"], workdir
        )
