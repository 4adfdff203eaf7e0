"""jaxpara.predict on the shared tiny demo run (tests/demo_run.py)."""

import csv
import os

import numpy as np
import pytest

from jaxpara import checkpointing, models, predict, rundir
from jaxpara import state as state_lib
from jaxpara.data import corpora
from tests import demo_run


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_run.trained_demo(tmp_path_factory)


def _test_rows(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "predictions.csv")) as f:
        return [r for r in csv.DictReader(f) if r["split"] == "test"]


def _paths(demo, rows) -> list[str]:
    by_id = corpora.read_corpus("iemocap", demo["root"]).by_id()
    return [by_id[r["utterance_id"]].path for r in rows]


def test_restore_replica_picks_the_requested_checkpoint(demo):
    run = demo["workdir"]
    best = checkpointing.Checkpointer(os.path.join(run, "checkpoints", "best"))
    step = best.latest_step()
    state, _ = best.restore_arrays()
    best.close()
    config = rundir.load_config(run)
    model = models.create_model(config.model, 4)
    tx = state_lib.make_optimizer(config.train)
    abstract = state_lib.abstract_state(model, tx, (200, 40, 3), 1)
    program = rundir.find_program(run, config)
    variables, info = rundir.restore_variables(program, abstract, str(step))
    assert info == {"kind": "best", "step": step}
    np.testing.assert_array_equal(
        variables["params"]["logits"]["kernel"],
        np.asarray(state["params"]["logits"]["kernel"][0]),
    )
    _, info = rundir.restore_variables(program, abstract, "latest")
    assert info["kind"] == "latest" and info["step"] >= step
    with pytest.raises(FileNotFoundError, match="no '999999' checkpoint"):
        rundir.restore_variables(program, abstract, "999999")
    with pytest.raises(ValueError, match="--checkpoint='newest'"):
        rundir.restore_variables(program, abstract, "newest")
    with pytest.raises(ValueError, match="num_seeds=1"):
        rundir.find_program(run, config, seed_index=1)


def test_api_and_cli_reproduce_the_runs_test_posteriors(demo, tmp_path, capsys):
    """Python API: the test split's posteriors of predictions.csv, exactly; a
    corrupt file gets an error and the others are predicted. CLI: one line per
    file, ERROR lines naming bad inputs, the CSV, exit status 1 (2: no run)."""
    rows = _test_rows(demo["workdir"])
    predictor = predict.Predictor.from_workdir(demo["workdir"])
    labels = ["neutral", "happy", "sad", "angry"]
    assert predictor.labels == labels
    corrupt = demo["corrupt"]["Ses01F_impro01_M002"]
    out = predictor.predict([*_paths(demo, rows[:5]), corrupt, *_paths(demo, rows[5:])])
    bad = out.pop(5)
    assert bad.label is None and bad.posteriors is None
    assert corrupt in bad.error
    expected = np.array([[float(r[f"p_{k}"]) for k in labels] for r in rows])
    got = np.stack([p.posteriors for p in out])
    np.testing.assert_allclose(got, expected, atol=1e-5)  # CSV holds 6 decimals.
    assert [p.label for p in out] == [r["prediction"] for r in rows]
    assert all(p.num_segments >= 1 for p in out)
    # The CLI, in-process (the same compiled programs).
    rows = rows[:4]
    paths = _paths(demo, rows)
    empty = tmp_path / "no_audio"
    empty.mkdir()
    corrupt = demo["corrupt"]["Ses01F_impro01_F001"]
    missing = str(tmp_path / "missing.wav")
    out_csv = tmp_path / "preds.csv"
    status = predict.main(
        [
            f"--workdir={demo['workdir']}",
            f"--output={out_csv}",
            *paths[:2],
            corrupt,
            *paths[2:],
            missing,
            str(empty),
        ]
    )
    assert status == 1
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].split("\t") == [
        "path",
        "prediction",
        *(f"p_{k}" for k in labels),
        "speech",
        "num_segments",
    ]
    by_path = {line.split("\t")[0]: line.split("\t")[1:] for line in lines[1:]}
    assert len(by_path) == 7
    for path, r in zip(paths, rows):
        assert by_path[path][0] == r["prediction"]
    for path, text in (
        (corrupt, corrupt),
        (missing, "not found"),
        (str(empty), "no audio files"),
    ):
        assert by_path[path][0] == "ERROR" and text in by_path[path][1]
    assert "4 of 7 files predicted, 3 failed" in err
    with open(out_csv) as f:
        written = {r["path"]: r for r in csv.DictReader(f)}
    for path, r in zip(paths, rows):
        for k in labels:
            assert float(written[path][f"p_{k}"]) == pytest.approx(
                float(r[f"p_{k}"]), abs=1e-5
            )
    assert corrupt in written[corrupt]["error"]
    # A workdir that cannot be used: status 2 and one error line.
    assert predict.main([f"--workdir={tmp_path}", paths[0]]) == 2
    assert "config.json not found" in capsys.readouterr().err
