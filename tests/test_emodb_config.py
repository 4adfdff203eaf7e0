"""configs/emodb.py: variants, the systems sweep, and a tiny run on REAL EmoDB.

The run (module fixture) trains `:acrnn` at test size on 8 real files of 2
speakers plus one file of digital silence, leave-one-speaker-out (2 folds,
no validation, 1 epoch), with speaker normalisation (`data.speaker_norm`).
`jaxpara.predict` on the raw 22.05 kHz files of a test speaker (one call: one
speaker) then gives the posteriors of the run's predictions.csv, and the
silent file is counted by the feature store, results.json and the report
(issue 16 items 1, 5, 6). Skipped when the development copy is absent.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from configs import default, emodb
from jaxpara import models, predict, protocol, report, rundir, sweep
from jaxpara import state as state_lib
from jaxpara.audio import features as features_lib
from jaxpara.data.corpora import emodb as emodb_reader

REAL = Path(__file__).parents[1].parent / "shared/corpora/emodb_22k"
FILES = {
    "03": ("03a01Fa", "03a01Nc", "03a01Wa", "03a02Ta"),
    "08": ("08a01Ab", "08a01Lc", "08a01Na", "08a02Tb"),
}
SILENT = "03a04Nz"  # A name the reader accepts; 2.0 s of digital zeros.
# variant -> (model class, VAD, aggregation, segment mode, seeds)
EXPECTED = {
    "acrnn": ("ACRNN", True, "vote", "all", 1),
    "cnn_bilstm": ("CNNBiLSTM", False, "max", "all", 5),
    "blstm_fcn": ("AttentionBLSTMFCN", False, "mean", "first", 1),
}


@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_variants_check_build_and_initialise(variant):
    cfg = emodb.get_config(variant)
    protocol.check_config(cfg)
    assert set(cfg.to_dict()) == set(default.get_config().to_dict())
    assert (cfg.data.corpus, cfg.data.root) == ("emodb", "")
    assert (cfg.protocol.name, cfg.protocol.folds) == ("loso_speaker", "")
    assert cfg.protocol.validation == "default" and not cfg.data.improvised_only
    assert cfg.eval.positive_label == "" and cfg.data.sample_rate == 16000
    assert (cfg.data.segment.length, cfg.data.segment.hop) == (200, 200)
    name, vad, aggregation, mode, seeds = EXPECTED[variant]
    assert cfg.data.vad.enabled is vad and cfg.eval.aggregation == aggregation
    assert cfg.data.segment.mode == mode and cfg.num_seeds == seeds
    model = models.create_model(cfg.model, len(emodb_reader.LABELS))
    assert type(model).__name__ == name
    if variant == "cnn_bilstm":
        assert model.use_gender and cfg.data.waveform_norm == "zscore"
    spec = features_lib.FeatureSpec.from_config(cfg.data.features, cfg.data.sample_rate)
    shape = (cfg.data.segment.length, spec.num_bins, spec.num_channels)
    abstract = state_lib.abstract_state(
        model, state_lib.make_optimizer(cfg.train), shape, 1
    )
    assert models.count_params(abstract.params) > 0
    assert abstract.params["logits"]["kernel"].shape[-1] == 7


def test_options_unknown_variant_and_the_systems_sweep():
    assert emodb.get_config("cnn_bilstm,aug").augment.mixup_alpha == 0.2
    assert emodb.get_config("cnn_bilstm").augment.mixup_alpha == 0.0
    assert emodb.get_config("acrnn,aug,spknorm").data.speaker_norm is True
    assert emodb.get_config("acrnn,aug").data.speaker_norm is False
    with pytest.raises(ValueError, match="unknown option 'spk'"):
        emodb.get_config("acrnn,spk")
    with pytest.raises(ValueError, match="configs/emodb.py:nope"):
        emodb.get_config("nope")
    paper = sweep.paper_sweep(emodb, "systems")
    assert paper["columns"] == sweep.COLUMN_SETS["folds"] and not paper["reference"]
    cells = sweep.build_cells(
        emodb, emodb.get_config(), {}, sweep.parse_axes(paper["grid"])
    )
    assert [c.label for c in cells] == list(EXPECTED)
    assert [c.config.model.name for c in cells] == [
        "acrnn",
        "cnn_bilstm",
        "attention_blstm_fcn",
    ]


# variant -> parameters at the paper width and with `,small` (7 classes).
PARAMS = {
    "acrnn": (452_199, 116_023),
    "cnn_bilstm": (9_341_024, 582_336),
    "blstm_fcn": (864_967, 227_687),
}


def _flat(config) -> dict:
    out = {}
    for key, value in config.items():
        if hasattr(value, "items"):
            out.update({f"{key}.{k}": v for k, v in _flat(value).items()})
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("variant", sorted(PARAMS))
def test_small_option_changes_only_its_keys_and_the_seeds(variant):
    paper, small = (_flat(emodb.get_config(a)) for a in (variant, f"{variant},small"))
    changed = {k for k in paper if paper[k] != small[k]}
    assert changed == set(emodb.SMALL[variant]) | {"num_seeds"}
    assert small["num_seeds"] == 2
    assert all(small[k] == v for k, v in emodb.SMALL[variant].items())
    # Options compose in any order; `,aug` masks depend on nothing `,small` sets.
    assert _flat(emodb.get_config(f"{variant},aug,small,spknorm")) == _flat(
        emodb.get_config(f"{variant}+spknorm+small+aug")
    )
    counts = []
    for arg in (variant, f"{variant},small"):
        cfg = emodb.get_config(arg)
        spec = features_lib.FeatureSpec.from_config(
            cfg.data.features, cfg.data.sample_rate
        )
        shape = (cfg.data.segment.length, spec.num_bins, spec.num_channels)
        model = models.create_model(cfg.model, len(emodb_reader.LABELS))
        abstract = state_lib.abstract_state(
            model, state_lib.make_optimizer(cfg.train), shape, 1
        )
        counts.append(models.count_params(abstract.params))
    assert tuple(counts) == PARAMS[variant]


# ----------------------------------------------------- real EmoDB, tiny run
def tiny_config(root: str):
    """`:acrnn` at test size: tiny widths, 60-frame segments, 1 epoch."""
    cfg = emodb.get_config("acrnn")
    cfg.data.root = root
    cfg.data.segment.length = cfg.data.segment.hop = 60
    cfg.data.segment.min_frames = 30
    cfg.protocol.validation = "none"  # 2 speakers: train on one, test the other.
    cfg.model.name = "_acrnn_tiny"
    cfg.train.num_epochs = 1
    cfg.train.batch_size = 4
    cfg.train.eval_batch_size = 8
    cfg.train.log_every_steps = 1
    cfg.eval.bootstrap = 0
    cfg.mesh.data = 2
    return cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if not (REAL / "wav").is_dir():
        pytest.skip(f"the EmoDB development copy is not at {REAL}")
    from jaxpara import train

    root = tmp_path_factory.mktemp("emodb")
    (root / "wav").mkdir()
    for name in (n for names in FILES.values() for n in names):
        os.symlink(REAL / "wav" / f"{name}.wav", root / "wav" / f"{name}.wav")
    sf.write(root / "wav" / f"{SILENT}.wav", np.zeros(44100), 22050, subtype="PCM_16")
    workdir = str(tmp_path_factory.mktemp("run"))
    cfg = tiny_config(str(root))
    cfg.data.speaker_norm = True  # `,spknorm`: prediction must reproduce it.
    train.train_and_evaluate(cfg, workdir)
    return {"root": root, "workdir": workdir}


def test_tiny_run_on_real_files_accounts_for_every_utterance(run):
    results = rundir.read_results(run["workdir"])
    corpus = results["corpus"]
    assert corpus["synthetic"] is False and corpus["labels"] == list(
        emodb_reader.LABELS
    )
    every = sorted([*FILES["03"], *FILES["08"], SILENT])
    assert sum(corpus["counts"].values()) == len(every)
    assert [f["fold"] for f in results["folds"]] == ["speaker_03", "speaker_08"]
    assert results["splits"]["test"]["n_utterances"] == len(every)
    assert results["summary"]["test"]["n_folds"] == 2
    rows = rundir.read_predictions(run["workdir"])
    tested = sorted(r["utterance_id"] for r in rows if r["split"] == "test")
    assert tested == every  # Each utterance tested once, by its speaker's fold.
    for r in rows:
        if r["split"] == "test":
            assert r["fold"] == f"speaker_{r['utterance_id'][:2]}"
    # The silent file is counted by the feature store (webrtcvad: acrnn).
    assert corpus["no_speech"] == [SILENT] and corpus["vad_no_speech"] == 1
    assert corpus["speech_check"] == "webrtcvad mode 2"


def test_predict_on_raw_files_gives_the_runs_posteriors(run):
    """Item 5: the raw 22.05 kHz files of test speaker 03 (and the silent
    one) through `jaxpara.predict` with fold speaker_03's model."""
    predictor = predict.Predictor.from_workdir(run["workdir"], fold="speaker_03")
    rows = [
        r
        for r in rundir.read_predictions(run["workdir"])
        if r["fold"] == "speaker_03" and r["split"] == "test"
    ]
    paths = [
        str(REAL / "wav" / f"{r['utterance_id']}.wav")
        if r["utterance_id"] != SILENT
        else str(run["root"] / "wav" / f"{SILENT}.wav")
        for r in rows
    ]
    assert sf.info(paths[0]).samplerate == 22050
    out = predictor.predict(paths)
    labels = list(emodb_reader.LABELS)
    expected = np.array([[float(r[f"p_{k}"]) for k in labels] for r in rows])
    np.testing.assert_allclose(
        np.stack([p.posteriors for p in out]), expected, atol=1e-5
    )
    assert [p.label for p in out] == [r["prediction"] for r in rows]
    # Real speech is speech; the silent file is flagged (VAD), still scored.
    assert [p.speech_found for p in out] == [r["utterance_id"] != SILENT for r in rows]
    # VAD trims the speech; the silent file stays whole: 201 frames, 3 segments.
    assert [p.num_segments for p in out][-1] == 3 and rows[-1]["utterance_id"] == SILENT
    assert all(p.num_segments >= 1 for p in out)


def test_report_says_how_many_test_utterances_had_no_speech(run):
    paths = report.write_report(run["workdir"])
    with open(paths["report"]) as f:
        md = f.read()
    assert (
        "No speech found (webrtcvad mode 2; such utterances are kept whole and "
        f"scored): test 1 of 9 utterances. `{SILENT}`" in md
    )
