"""jaxpara.predict on input without speech (issue 16 item 6), on the shared
tiny demo run (tests/demo_run.py, VAD off: the energy floor decides) and the
same model behind a VAD front-end: 3 s of digital silence and 3 s of hiss at
-80 dBFS are flagged, scored whole, and warned about; speech is not flagged."""

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jaxpara import predict, report, rundir
from jaxpara.audio import features as features_lib
from jaxpara.audio import segment, vad
from jaxpara.data import corpora, pipeline
from tests import demo_run

EMODB_FILE = (
    Path(__file__).parents[1].parent / "shared/corpora/emodb_22k/wav/03a01Wa.wav"
)
RATE = 22050  # Written like the EmoDB copy; the demo works at 16 kHz.


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_run.trained_demo(tmp_path_factory)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """{"silence", "hiss"}: 3 s files at 22.05 kHz."""
    folder = tmp_path_factory.mktemp("no_speech")
    hiss = 10 ** (-80 / 20) * np.random.default_rng(0).standard_normal(3 * RATE)
    paths = {"silence": folder / "silence.wav", "hiss": folder / "hiss.wav"}
    sf.write(paths["silence"], np.zeros(3 * RATE), RATE, subtype="PCM_16")
    sf.write(paths["hiss"], hiss, RATE, subtype="FLOAT")
    return {k: str(v) for k, v in paths.items()}


def _rows(demo, split: str) -> list[dict]:
    return [r for r in rundir.read_predictions(demo["workdir"]) if r["split"] == split]


def _speech_file(demo) -> str:
    """A test utterance of the demo corpus."""
    by_id = corpora.read_corpus("iemocap", demo["root"]).by_id()
    return by_id[_rows(demo, "test")[0]["utterance_id"]].path


def _expected_segments(config, seconds: float) -> int:
    """Segments of a whole (untrimmed) file of `seconds` at the run's rate."""
    spec = features_lib.FeatureSpec.from_config(
        config.data.features, config.data.sample_rate
    )
    seg = config.data.segment
    frames = spec.num_frames(round(seconds * config.data.sample_rate))
    return len(segment.segment_starts(frames, seg.length, seg.hop, seg.min_frames))


def _with_vad(predictor: predict.Predictor) -> predict.Predictor:
    """The same trained model behind a webrtcvad front-end (mode 2)."""
    config = predictor.config.copy_and_resolve_references()
    config.data.vad.enabled = True
    return predict.Predictor(
        config,
        predictor.labels,
        predictor.model,
        predictor.variables,
        predictor.norm,
        predictor.checkpoint,
    )


def test_energy_floor():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(16000)
    assert vad.ENERGY_FLOOR_DBFS == -60.0
    assert not vad.above_energy_floor(np.zeros(16000), 16000)
    assert not vad.above_energy_floor(np.zeros(0), 16000)
    assert not vad.above_energy_floor(10 ** (-65 / 20) * noise, 16000)
    assert vad.above_energy_floor(10 ** (-55 / 20) * noise, 16000)
    # One loud 30 ms frame is enough; a signal shorter than a frame is one.
    burst = np.zeros(16000)
    burst[8000:8480] = 0.1
    assert vad.above_energy_floor(burst, 16000)
    assert vad.above_energy_floor(np.full(10, 0.01), 16000)
    cfg = demo_run.demo_config("").data
    assert pipeline.speech_check(cfg) == "energy floor -60 dBFS"
    cfg.vad.enabled = True
    assert pipeline.speech_check(cfg) == "webrtcvad mode 2"


def test_silence_and_hiss_are_flagged_by_either_check(demo, inputs, caplog):
    energy = predict.Predictor.from_workdir(demo["workdir"])
    speech = _speech_file(demo)
    n = _expected_segments(energy.config, 3.0)
    assert n == 5  # 301 frames of 60: 0, 60, 120, 180, 240 (the 1-frame tail goes).
    for predictor, check in (
        (energy, "energy floor -60 dBFS"),
        (_with_vad(energy), "webrtcvad mode 2"),
    ):
        assert predictor.speech_check == check
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            silence, hiss, real = predictor.predict(
                [inputs["silence"], inputs["hiss"], speech]
            )
        for p in (silence, hiss):
            assert p.speech_found is False and p.error is None
            assert p.num_segments == n  # Kept whole, as in training.
            assert p.label in predictor.labels  # Still scored.
            np.testing.assert_allclose(p.posteriors.sum(), 1.0, atol=1e-5)
        assert real.speech_found is True and real.error is None
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 2 and all("no speech found" in m for m in warned)
        assert inputs["silence"] in warned[0] and check in warned[0]
        assert not any(r.levelno >= logging.ERROR for r in caplog.records)


def test_cli_marks_files_without_speech(demo, inputs, tmp_path, capsys):
    speech = _speech_file(demo)
    out_csv = tmp_path / "preds.csv"
    status = predict.main(
        [
            f"--workdir={demo['workdir']}",
            f"--output={out_csv}",
            inputs["silence"],
            inputs["hiss"],
            speech,
        ]
    )
    assert status == 0  # No speech is not a failure.
    out, err = capsys.readouterr()
    lines = [line.split("\t") for line in out.strip().splitlines()]
    header = lines[0]
    assert header[-2:] == ["speech", "num_segments"]
    by_path = {line[0]: dict(zip(header, line)) for line in lines[1:]}
    for name in ("silence", "hiss"):
        row = by_path[inputs[name]]
        assert (row["speech"], row["num_segments"]) == ("no", "5")
        assert row["prediction"] != "ERROR"
    assert by_path[speech]["speech"] == "yes"
    assert (
        "3 of 3 files predicted, 2 with no speech found (energy floor -60 dBFS)" in err
    )
    with open(out_csv) as f:
        written = {r["path"]: r for r in csv.DictReader(f)}
    assert written[inputs["silence"]]["speech"] == "no"
    assert written[inputs["silence"]]["num_segments"] == "5"
    assert written[speech]["speech"] == "yes" and written[speech]["error"] == ""


def test_real_emodb_speech_is_speech(demo):
    if not EMODB_FILE.is_file():
        pytest.skip(f"the EmoDB development copy is not at {EMODB_FILE.parent}")
    energy = predict.Predictor.from_workdir(demo["workdir"])
    for predictor in (energy, _with_vad(energy)):
        (p,) = predictor.predict([str(EMODB_FILE)])
        assert p.speech_found is True and p.error is None and p.num_segments >= 1


def test_report_counts_utterances_without_speech(demo):
    results = rundir.read_results(demo["workdir"])
    assert results["corpus"]["no_speech"] == []
    assert results["corpus"]["speech_check"] == "energy floor -60 dBFS"
    line = report.no_speech_line(results, rundir.read_predictions(demo["workdir"]))
    n = {name: rep["n_utterances"] for name, rep in results["splits"].items()}
    assert line == (
        "No speech found (energy floor -60 dBFS; such utterances are kept whole "
        f"and scored): train 0 of {n['train']}, validation 0 of "
        f"{n['validation']}, test 0 of {n['test']} utterances."
    )
    with open(report.write_report(demo["workdir"])["report"]) as f:
        assert line in f.read()
    # Ids recorded for a split are counted there (and listed); a results.json
    # from before the ids only has the count.
    results["corpus"]["no_speech"] = [
        r["utterance_id"] for r in _rows(demo, "test")[:2]
    ]
    assert f"test 2 of {n['test']} utterances. `" in report.no_speech_line(
        results, rundir.read_predictions(demo["workdir"])
    )
    old = {"corpus": {"vad_no_speech": 3}}
    assert report.no_speech_line(old, None) == (
        "No speech found by VAD in 3 of the run's utterances (kept whole and scored)."
    )
