"""Attention-BLSTM-FCN on IEMOCAP, improvised, 4 classes (SPEC card C3, seed 002).

    python -m jaxpara.main --config=configs/iemocap_blstm_fcn.py:blstm_fcn_2 \
        --workdir=/tmp/c3_iemocap --config.data.root=/data/IEMOCAP_full_release
    python -m jaxpara.main --config=configs/iemocap_blstm_fcn.py:blstm_fcn_2 \
        --workdir=/tmp/c3_iemocap --mode=export_features

The second line (same workdir, after training) exports the deep-spectrum
vectors and scores a linear SVM on them (`jaxpara.export`).

Variants (seed 002 Table 5): `:fcn`, `:attention_fcn`, `:attention_lstm`
(unidirectional), `:attention_blstm`, `:blstm_fcn_1`, `:blstm_fcn_2` (default),
`:blstm_fcn_3` (Attention-BLSTM-FCN with 1/2/3 BLSTM layers). Mel-band axis
(Table 6): `--config.data.features.n_mels=30|40|60|80|100`. With an empty
`data.root` the synthetic emotion corpus (IEMOCAP layout) is generated.

Protocol: improvised utterances only, happy + excited merged into happy,
leave-one-session-out (5 folds); the held-out session's speakers are split
into validation (model selection) and test halves. Input: 16 kHz log-Mel (40
bands on the HTK mel scale m = 2595 log10(1 + f / 700), seed 002 eq. 2;
25 / 10 ms Hamming, no deltas), each utterance cropped / zero-padded
to its first 500 frames (`data.segment.mode='first'`). Training: Adam, lr 1e-3
decayed as lr / (1 + 1e-6 step), batch 100, up to 100 epochs, class weights
r_k = N / N_k. Sizes the seed does not give (DNN head 2 x 128, FCN attention
width 64, dropout 0.2, conv kernel 3x3, 2x2 pools) are our choices.

Seed 002, Tables 5 and 7 (the paper's figures on the REAL IEMOCAP, %):

    model                           WA     UA
    FCNs                            64.5   62.0
    Attention-FCN                   63.0   64.1
    Attention-LSTM                  62.8   60.9
    Attention-BLSTM                 65.5   64.8
    Attention-BLSTM-FCN, 1 layer    66.3   65.8
    Attention-BLSTM-FCN, 2 layers   68.1   67.0
    Attention-BLSTM-FCN, 3 layers   66.7   66.2
    deep spectrum + linear SVM      66.7   66.5
"""

from configs import default

# variant -> (registry model name, BLSTM layers)
VARIANTS = {
    "fcn": ("fcn", 2),
    "attention_fcn": ("attention_fcn", 2),
    "attention_lstm": ("attention_lstm", 2),
    "attention_blstm": ("attention_blstm", 2),
    "blstm_fcn_1": ("attention_blstm_fcn", 1),
    "blstm_fcn_2": ("attention_blstm_fcn", 2),
    "blstm_fcn_3": ("attention_blstm_fcn", 3),
}

# `python -m jaxpara.sweep --grid=paper` (Table 5) / `--grid=paper:table6`:
# seed 002's figures on the real IEMOCAP (its UA is the UAR here). The deep
# spectrum + SVM row of Table 7 is `--mode=export_features`, not a sweep cell.
PAPER_SWEEPS = {
    "table5": {
        "grid": ["variant=" + ",".join(VARIANTS)],
        "columns": "wa_uar",
        "source": "seed 002 Table 5, the paper's figures on the real IEMOCAP",
        "reference": """
            fcn              64.5  62.0
            attention_fcn    63.0  64.1
            attention_lstm   62.8  60.9
            attention_blstm  65.5  64.8
            blstm_fcn_1      66.3  65.8
            blstm_fcn_2      68.1  67.0
            blstm_fcn_3      66.7  66.2
        """,
    },
    "table6": {
        "grid": ["data.features.n_mels=30,40,60,80,100"],
        "columns": "wa_uar",
        "source": "seed 002 Table 6 (Attention-BLSTM-FCN), real IEMOCAP",
        "reference": """
            30 66.9 66.2
            40 68.1 67.0
            60 66.6 66.3
            80 64.3 66.5
            100 65.0 63.4
        """,
    },
}


def common(variant: str, config_file: str):
    """Card C3's model, features and training on top of the defaults."""
    default.check_variant(config_file, variant, VARIANTS)
    c = default.get_config()
    c.data.sample_rate = 16000
    c.data.features.kind = "log_mel"
    c.data.features.n_mels = 40
    c.data.features.win_ms = 25.0
    c.data.features.hop_ms = 10.0
    c.data.features.deltas = False
    c.data.features.mel_scale = "htk"  # Seed 002 eq. 2.
    c.data.segment.mode = "first"  # One 500-frame crop / zero-pad per utterance.
    c.data.segment.length = 500
    c.data.segment.hop = 500
    name, layers = VARIANTS[variant]
    c.model.name = name
    c.model.blstm.layers = layers
    c.model.lstm_features = 128
    c.model.conv_features = (64, 128, 128)
    c.model.attention_features = 64
    c.model.fcn.attention_scale = 0.3
    c.model.fcn.dropout = 0.2
    c.model.head_features = 128
    c.model.head_layers = 2
    c.model.dropout = 0.2
    c.train.optimizer = "adam"
    c.train.learning_rate = 1e-3
    c.train.lr_decay = 1e-6
    c.train.batch_size = 100
    c.train.eval_batch_size = 100
    c.train.num_epochs = 100
    c.train.class_weights = True
    c.eval.aggregation = "mean"  # One segment per utterance: the identity.
    return c


def get_config(arg: str = "blstm_fcn_2"):
    """`variant[,aug]` (`default.parse_variant`; `,aug`: `default.augment`)."""
    config_file = "configs/iemocap_blstm_fcn.py"
    variant, options = default.parse_variant(config_file, arg, VARIANTS)
    c = common(variant, config_file)
    c.data.corpus = "iemocap"
    c.data.improvised_only = True
    c.protocol.name = "loso_session"
    c.protocol.folds = ""  # All 5 sessions.
    if "aug" in options:
        default.augment(c)
    return c
