"""Paper configs load, build their models and run end to end at test size."""

import json

import pytest

from configs import covid_cough_sacrnn, default, demo
from jaxpara import models


@pytest.mark.parametrize("variant", ["sacrnn", "acrnn", "fusion"])
def test_covid_variants_build_their_models(variant):
    cfg = covid_cough_sacrnn.get_config(variant)
    assert cfg.data.corpus == "ccs" and cfg.data.vad.enabled
    assert cfg.eval.aggregation == "vote" and cfg.eval.positive_label == "positive"
    model = models.create_model(cfg.model, 2)
    expected = {"sacrnn": "SACRNN", "acrnn": "ACRNN", "fusion": "SACRNNACRNNFusion"}
    assert type(model).__name__ == expected[variant]


def test_unknown_variant_is_named():
    with pytest.raises(ValueError, match="nope"):
        covid_cough_sacrnn.get_config("nope")


def test_configs_only_override_default_keys():
    keys = set(default.get_config().to_dict())
    for cfg in (demo.get_config(), covid_cough_sacrnn.get_config()):
        assert set(cfg.to_dict()) == keys


def test_paper_settings_of_each_card():
    """What each paper computes (issue 14): C2 selects on the ICBHI score, C3
    FAU trains on all of Ohm, C4 IEM4 has no validation and PyTorch's
    ReduceLROnPlateau (patience 4, factor 0.1, rel. threshold 1e-4), C5
    z-scores each waveform; every other config leaves the waveform alone."""
    from configs import (
        fau_blstm_fcn,
        icbhi_resnet18,
        iemocap_blstm_fcn,
        iemocap_cnn_bilstm,
        iemocap_moma,
    )
    from jaxpara import selection

    assert icbhi_resnet18.get_config().train.selection_metric == "icbhi_score"
    # C1 ACRNN (seed 000): a LINEAR frame layer, attention width 128 (Table 2),
    # no bias in the score; the old ReLU stays reachable by config.
    for variant in ("acrnn", "fusion"):
        model = models.create_model(covid_cough_sacrnn.get_config(variant).model, 2)
        assert model.frame_activation == "linear"
        assert model.attention_features == 128 and model.attention_bias is False
    cfg = covid_cough_sacrnn.get_config("acrnn")
    cfg.model.frame_activation = "relu"
    assert models.create_model(cfg.model, 2).frame_activation == "relu"
    cfg.model.frame_activation = "tanh"
    with pytest.raises(ValueError, match="model.frame_activation='tanh'"):
        models.create_model(cfg.model, 2)
    for cfg in (iemocap_blstm_fcn.get_config(), fau_blstm_fcn.get_config()):
        assert cfg.data.features.mel_scale == "htk"  # Seed 002 eq. 2.
    for cfg in (iemocap_cnn_bilstm.get_config(), demo.get_config()):
        assert cfg.data.features.mel_scale == "slaney"
    assert fau_blstm_fcn.get_config().protocol.validation == "none"
    moma = iemocap_moma.get_config()
    assert moma.protocol.validation == "none"
    model = models.create_model(moma.model, 4)  # Card C4: E has no biases.
    assert model.moma_attention_bias is False
    moma.model.moma.attention_bias = True
    assert models.create_model(moma.model, 4).moma_attention_bias is True
    assert selection.Rule.from_config(moma) == selection.Rule(
        metric="uar", plateau_patience=4, plateau_factor=0.1, plateau_threshold=1e-4
    )
    for variant in ("model1", "model2"):
        assert iemocap_cnn_bilstm.get_config(variant).data.waveform_norm == "zscore"
    for cfg in (
        demo.get_config(),
        covid_cough_sacrnn.get_config(),
        icbhi_resnet18.get_config(),
        iemocap_blstm_fcn.get_config(),
        moma,
    ):
        assert cfg.data.waveform_norm == "none"


def test_check_config_names_a_bad_waveform_norm():
    from jaxpara import protocol
    from jaxpara.errors import ConfigError

    cfg = demo.get_config()
    cfg.data.waveform_norm = "unit"
    with pytest.raises(ConfigError, match="data.waveform_norm='unit'"):
        protocol.check_config(cfg)


def test_covid_fusion_learns_synthetic_cough_corpus(tmp_path):
    """Card C1 acceptance: the fusion config, test-sized, beats chance clearly.

    Tiny widths (`_fusion_tiny`), 60 files at difficulty 0.2 and 8 epochs; the
    tiny model needs lr 1e-2 (with the linear frame layer of card C1) and class
    weights (positives are the minority).
    """
    from jaxpara import train

    cfg = covid_cough_sacrnn.get_config("fusion")
    cfg.model.name = "_fusion_tiny"
    cfg.data.synthetic.num_recordings = 60
    cfg.data.synthetic.difficulty = 0.2
    cfg.train.num_epochs = 8
    cfg.train.batch_size = 8
    cfg.train.learning_rate = 1e-2  # Tiny widths, 24 training files.
    cfg.train.class_weights = True
    cfg.eval.bootstrap = 200
    # 2 of the 8 fake test devices: still data-parallel, without the
    # per-step overhead of 8 device programs on a 2-core CI machine.
    cfg.mesh.data = 2
    train.train_and_evaluate(cfg, str(tmp_path))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["corpus"]["synthetic"] is True
    for split in ("validation", "test"):
        rep = results["splits"][split]
        assert {"sensitivity", "specificity", "uar_ci95"} <= set(rep)
        lo, hi = rep["uar_ci95"]
        assert 0.0 <= lo <= rep["uar"] <= hi <= 1.0
    test = results["splits"]["test"]
    # Card C1 Table 3 from this one run: each branch's own posteriors, scored
    # on the same test files (its rows of the paper sweep).
    assert set(results["branches"]) == {"sacrnn", "acrnn"}
    for branch in results["branches"].values():
        rep = branch["splits"]["test"]
        assert rep["n_utterances"] == test["n_utterances"]
        assert {"sensitivity", "specificity", "uar_ci95"} <= set(rep)
        assert 0.0 <= rep["uar"] <= 1.0
    assert test["uar"] >= 0.8, test
    assert test["uar_ci95"][0] > 0.5, test  # Chance (0.5) outside the 95% CI.
    assert min(test["sensitivity"], test["specificity"]) >= 0.6, test
    counts = results["corpus"]["counts"]
    assert sum(counts.values()) == 60
    assert sum(results["splits"][s]["n_utterances"] for s in results["splits"]) == 60
