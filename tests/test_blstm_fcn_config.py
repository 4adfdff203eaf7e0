"""Card C3 configs: variants, protocol keys, and a test-sized FAU Aibo run.

The IEMOCAP config's test-sized run is the fixture of tests/test_export.py,
which trains it and then exports its deep-spectrum features.
"""

import json

import pytest

from configs import default, fau_blstm_fcn, iemocap_blstm_fcn
from jaxpara import models

# variant -> (branches, bidirectional, fcn_attention, blstm_layers)
EXPECTED = {
    "fcn": ("fcn", None, False, None),
    "attention_fcn": ("fcn", None, True, None),
    "attention_lstm": ("blstm", False, None, 2),
    "attention_blstm": ("blstm", True, None, 2),
    "blstm_fcn_1": ("blstm_fcn", True, True, 1),
    "blstm_fcn_2": ("blstm_fcn", True, True, 2),
    "blstm_fcn_3": ("blstm_fcn", True, True, 3),
}


@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_variants_build_their_models(variant):
    for module in (iemocap_blstm_fcn, fau_blstm_fcn):
        model = models.create_model(module.get_config(variant).model, 4)
        branches, bidirectional, attention, layers = EXPECTED[variant]
        assert model.branches == branches
        if bidirectional is not None:
            assert model.bidirectional is bidirectional
            assert model.blstm_layers == layers
        if attention is not None:
            assert model.fcn_attention is attention
        assert model.lstm_features == 128 and tuple(model.conv_features) == (
            64,
            128,
            128,
        )
        assert model.fcn_attention_scale == 0.3


def test_default_variant_and_card_settings():
    c = iemocap_blstm_fcn.get_config()
    assert c.model.name == "attention_blstm_fcn" and c.model.blstm.layers == 2
    assert c.data.corpus == "iemocap" and c.data.improvised_only
    assert c.protocol.name == "loso_session" and c.protocol.folds == ""
    assert c.data.features.n_mels == 40 and not c.data.features.deltas
    assert (c.data.segment.mode, c.data.segment.length) == ("first", 500)
    assert (c.train.optimizer, c.train.learning_rate, c.train.lr_decay) == (
        "adam",
        1e-3,
        1e-6,
    )
    assert c.train.class_weights and c.train.batch_size == 100
    f = fau_blstm_fcn.get_config()
    assert f.data.corpus == "fau_aibo" and f.protocol.name == "predefined"
    assert f.model.name == "attention_blstm_fcn" and not f.data.improvised_only


def test_unknown_variant_is_named():
    for module in (iemocap_blstm_fcn, fau_blstm_fcn):
        with pytest.raises(ValueError, match="blstm_fcn_9"):
            module.get_config("blstm_fcn_9")


def test_configs_only_override_default_keys():
    keys = set(default.get_config().to_dict())
    for variant in EXPECTED:
        for module in (iemocap_blstm_fcn, fau_blstm_fcn):
            assert set(module.get_config(variant).to_dict()) == keys


def test_fau_config_runs_on_synthetic_fau_layout(tmp_path):
    from jaxpara import train

    cfg = fau_blstm_fcn.get_config("blstm_fcn_2")
    cfg.model.name = "_blstm_fcn_tiny"
    cfg.model.blstm.layers = 1
    cfg.model.head_layers = 1
    cfg.data.synthetic.num_speakers = 4  # 2 Ohm (train), 2 Mont (test).
    cfg.data.synthetic.utterances_per_speaker = 10
    cfg.train.num_epochs = 1
    cfg.train.batch_size = 8
    cfg.train.eval_batch_size = 16
    cfg.eval.bootstrap = 50
    # 2 of the 8 fake test devices: still data-parallel, without the
    # per-step overhead of 8 device programs on a 2-core CI machine.
    cfg.mesh.data = 2
    results = train.train_and_evaluate(cfg, str(tmp_path))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["corpus"]["synthetic"] is True
    assert on_disk["corpus"]["labels"] == ["A", "E", "N", "P", "R"]
    assert on_disk["model"]["name"] == "_blstm_fcn_tiny"
    n = {s: r["n_utterances"] for s, r in results["splits"].items()}
    # Card C3: all of Ohm trains (no validation; the final checkpoint), Mont tests.
    assert n == {"train": 20, "test": 20}
    assert results["selection"]["checkpoint"] == "final"
    assert not results["selection"]["validation"]
    for rep in results["splits"].values():
        assert 0.0 <= rep["uar"] <= 1.0 and 0.0 <= rep["wa"] <= 1.0
        assert len(rep["confusion_matrix"]) == 5


def test_fau_holdout_variant_validates_on_ohm_speakers(tmp_path):
    """`:blstm_fcn_2,holdout`: 30% of the Ohm speakers validate; Mont tests
    whole either way."""
    from jaxpara.data import corpora, splits

    for variant, validates in (("blstm_fcn_2", False), ("blstm_fcn_2,holdout", True)):
        cfg = fau_blstm_fcn.get_config(variant)
        cfg.data.synthetic.num_speakers = 8
        cfg.data.synthetic.utterances_per_speaker = 5
        corpus, _ = corpora.load_corpus(cfg.data, str(tmp_path / variant), seed=0)
        (fold,) = splits.build_folds(corpus, cfg.protocol, seed=0)
        ohm = {e.speaker for e in corpus.examples if e.speaker.startswith("Ohm")}
        mont = {e.speaker for e in corpus.examples if e.speaker.startswith("Mont")}
        assert {e.speaker for e in fold.test} == mont
        val = {e.speaker for e in fold.validation}
        assert bool(val) == validates
        assert val | {e.speaker for e in fold.train} == ohm
        assert not val & {e.speaker for e in fold.train}
    with pytest.raises(ValueError, match="unknown option 'val'"):
        fau_blstm_fcn.get_config("blstm_fcn_2,val")
