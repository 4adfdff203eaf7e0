"""Paper systems on EmoDB, 7 emotions, leave-one-speaker-out (issue 16).

    python -m jaxpara.main --config=configs/emodb.py:acrnn \
        --workdir=/tmp/emodb_acrnn --config.data.root=/data/emodb
    python -m jaxpara.sweep --config=configs/emodb.py --workdir=/tmp/emodb \
        --grid=paper --config.data.root=/data/emodb

`data.root` is the folder holding `wav/03a01Wa.wav ...` (the labels come from
the file names, `jaxpara.data.corpora.emodb`); with an empty root a synthetic
EmoDB (10 speakers x 40 utterances, the real layout, 22.05 kHz, 2.0 s) is
generated into the workdir and used, and the log says so. The second line is
the sweep `systems`: the three variants below, each a cell, in one table of
test UAR / WA mean +- std (ddof 0) over the 10 folds (no paper reports
these systems on EmoDB, so the table has no reference figures).

Variants, each the paper config's default front-end, model and training,
with only what the corpus changes overridden:

  `:acrnn` (default)  card C1's ACRNN (`configs/covid_cough_sacrnn.py:acrnn`):
                      webrtcvad trimming, 3-channel log-Mel (40 bands), Nadam
                      1e-3, batch 16, 30 epochs, majority vote over segments.
  `:cnn_bilstm`       card C5's Model 2 (`configs/iemocap_cnn_bilstm.py:model2`):
                      z-scored waveform, 3-channel log-Mel, CNN-BiLSTM with
                      local self-attention and the speaker-gender embedding
                      (EmoDB's gender table), Nadam 1e-4, 5 seeds per fold,
                      max over segments.
  `:blstm_fcn`        card C3's Attention-BLSTM-FCN, 2 BLSTM layers
                      (`configs/iemocap_blstm_fcn.py:blstm_fcn_2`): HTK-mel
                      log-Mel (40 bands, no deltas), one crop per utterance,
                      Adam 1e-3 with decay, class weights, 100 epochs.

Every variant takes `,aug` (`default.augment`, the emotion preset),
`,spknorm` (`data.speaker_norm`: every speaker's features z-normalised with
its own statistics, the test speaker's from its own unlabeled audio; a
transductive, label-free step that none of the three papers takes, so it is
an option, not the default) and `,small` (`SMALL`: the reduced widths, epochs
and batch of the README's EmoDB table, 2 seeds, sized for a 2-core CPU; not
the papers' models). The README's table is one sweep:

    python -m jaxpara.sweep --config=configs/emodb.py --workdir=/tmp/emodb \
        --config.data.root=/data/emodb --grid=variant=acrnn+small,\
    acrnn+small+spknorm,acrnn+small+aug+spknorm,blstm_fcn+small+spknorm,\
    blstm_fcn+small+aug+spknorm

What EmoDB changes, for every variant:
  * corpus `emodb`: 7 classes (anger, boredom, disgust, fear, happiness,
    sadness, neutral), 535 utterances of 10 speakers;
  * protocol `loso_speaker`, all 10 folds: one test speaker per fold; EmoDB
    has no sessions, so the next speaker in sorted order validates (best
    checkpoint on validation UAR) and the other 8 train;
  * sample rate: the files are 22.05 kHz (the development copy) or 16 kHz
    (the original release); every variant works at the papers' 16 kHz, the
    decoder resamples (soxr) and webrtcvad decides at 16 kHz;
  * segments: a 2.0 s file is 201 frames at a 10 ms hop, so segments are
    200 frames (2 s) instead of the papers' 300 / 500: one segment per
    utterance, the 1-frame remainder a tail under `min_frames` (dropped) or
    cut by the crop (`:blstm_fcn`); VAD-trimmed utterances are zero-padded;
  * no binary / IEMOCAP settings: `eval.positive_label` is cleared (card
    C1's 'positive') and `data.improvised_only` off (card C5).
"""

from configs import covid_cough_sacrnn, default, iemocap_blstm_fcn, iemocap_cnn_bilstm

CONFIG_FILE = "configs/emodb.py"
# variant -> (paper config module, its variant).
VARIANTS = {
    "acrnn": (covid_cough_sacrnn, "acrnn"),
    "cnn_bilstm": (iemocap_cnn_bilstm, "model2"),
    "blstm_fcn": (iemocap_blstm_fcn, "blstm_fcn_2"),
}
# 2.0 s at a 10 ms hop: 201 frames; one 200-frame segment per utterance.
SEGMENT_FRAMES = 200

# `,small`: the reduced widths and budgets of the README's EmoDB table, sized
# for the 2-core reference CPU: a 10-fold x 2-seed cell took ~80 core-minutes
# for the ACRNN, ~130 for the BLSTM-FCN (the CNN-BiLSTM's, ~3.5 core-hours, is
# an estimate from its training rate). Every variant: 2 seeds.
SMALL = {
    "acrnn": {  # 116,023 parameters (card C1: 32 / 64 conv, 256, 128, 128).
        "model.conv_features": (16, 32),
        "model.frame_features": 128,
        "model.lstm_features": 64,
        "model.attention_features": 64,
        "train.num_epochs": 20,  # Batch 16 as the card.
    },
    "cnn_bilstm": {  # Card C5: 128 / 256 x 5 conv, 768, 128, 128, batch 40.
        "model.conv_features": (32, 64, 64, 64, 64, 64),
        "model.frame_features": 128,
        "model.lstm_features": 64,
        "model.attention_features": 64,
        "train.num_epochs": 15,
        "train.batch_size": 16,
    },
    "blstm_fcn": {  # Card C3: 64 / 128 / 128 conv, LSTM 128, head 128, 100 epochs.
        "model.conv_features": (32, 64, 64),
        "model.lstm_features": 64,
        "model.head_features": 64,
        "model.attention_features": 32,
        "train.num_epochs": 15,
        "train.batch_size": 32,
    },
}

# `python -m jaxpara.sweep --grid=paper`: the three systems, UAR / WA mean +-
# ddof-0 std over the 10 folds. No paper reports them on EmoDB: no figures.
PAPER_SWEEPS = {
    "systems": {
        "grid": ["variant=" + ",".join(VARIANTS)],
        "columns": "folds",
        "source": "",
        "reference": "",
    }
}


def get_config(arg: str = "acrnn"):
    """`variant[,aug][,spknorm][,small]` (`default.parse_variant`; `,aug`:
    `default.augment`; `,spknorm`: `data.speaker_norm`; `,small`: `SMALL`)."""
    variant, options = default.parse_variant(
        CONFIG_FILE, arg, VARIANTS, options=("spknorm", "small")
    )
    module, paper_variant = VARIANTS[variant]
    c = module.get_config(paper_variant)
    c.data.corpus = "emodb"
    c.data.root = ""
    c.data.improvised_only = False
    c.data.synthetic.num_speakers = 10
    c.data.synthetic.utterances_per_speaker = 40
    c.data.sample_rate = 16000
    c.data.segment.length = SEGMENT_FRAMES
    c.data.segment.hop = SEGMENT_FRAMES
    c.data.segment.min_frames = SEGMENT_FRAMES // 2
    c.protocol.name = "loso_speaker"
    c.protocol.folds = ""  # All 10 speakers.
    c.protocol.validation = "default"
    c.eval.positive_label = ""
    c.eval.icbhi_normal_label = ""
    if "small" in options:
        c.num_seeds = 2
        for key, value in SMALL[variant].items():
            section, name = key.split(".")
            setattr(c[section], name, value)
    if "aug" in options:
        default.augment(c)
    c.data.speaker_norm = "spknorm" in options
    return c
