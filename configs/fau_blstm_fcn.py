"""Attention-BLSTM-FCN on FAU Aibo, 5 classes (SPEC card C3, seed 002).

    python -m jaxpara.main --config=configs/fau_blstm_fcn.py:blstm_fcn_2 \
        --workdir=/tmp/c3_fau --config.data.root=/data/FAU_Aibo
    python -m jaxpara.main --config=configs/fau_blstm_fcn.py:blstm_fcn_2 \
        --workdir=/tmp/c3_fau --mode=export_features

Variants, input, model and training as in `configs/iemocap_blstm_fcn.py`
(same `:fcn` ... `:blstm_fcn_3`, class weights r_k = N / N_k; seed 002 Table 4
lists them for FAU Aibo). Protocol: the INTERSPEECH 2009 partition, train =
Ohm school (9,959 chunks), test = Mont school (8,257 chunks), classes A, E, N,
P, R. The seed names no validation set and trains on all of Ohm: so does the
default (`protocol.validation=none`: fixed `train.num_epochs`, the final
checkpoint is reported). Append `,holdout` to the variant
(`:blstm_fcn_2,holdout`) to select the checkpoint on a held-out 30% of the
Ohm speakers instead (`protocol.validation_fraction`); no Mont chunk ever
selects a checkpoint either way. With an empty `data.root` a synthetic corpus in
the FAU Aibo layout is generated (12 speakers: 6 Ohm, 6 Mont).

Seed 002, Tables 5 and 7 (the paper's figures on the REAL FAU Aibo, UA %):

    model                           UA
    FCNs                            42.1
    Attention-FCN                   42.9
    Attention-LSTM                  42.6
    Attention-BLSTM                 43.5
    Attention-BLSTM-FCN, 1 layer    44.2
    Attention-BLSTM-FCN, 2 layers   45.4
    Attention-BLSTM-FCN, 3 layers   45.0
    deep spectrum + linear SVM      43.9
"""

from configs import default, iemocap_blstm_fcn

# `python -m jaxpara.sweep --grid=paper` (Table 5) / `--grid=paper:table6`:
# seed 002's UA on the real FAU Aibo (Mont).
PAPER_SWEEPS = {
    "table5": {
        "grid": iemocap_blstm_fcn.PAPER_SWEEPS["table5"]["grid"],
        "columns": "uar",
        "source": "seed 002 Table 5, the paper's figures on the real FAU Aibo",
        "reference": """
            fcn 42.1
            attention_fcn 42.9
            attention_lstm 42.6
            attention_blstm 43.5
            blstm_fcn_1 44.2
            blstm_fcn_2 45.4
            blstm_fcn_3 45.0
        """,
    },
    "table6": {
        "grid": ["data.features.n_mels=30,40,60,80,100"],
        "columns": "uar",
        "source": "seed 002 Table 6 (Attention-BLSTM-FCN), real FAU Aibo",
        "reference": "30 42.9\n40 45.4\n60 43.0\n80 42.7\n100 41.0",
    },
}


def get_config(arg: str = "blstm_fcn_2"):
    """`variant[,holdout][,aug]` (`default.parse_variant`)."""
    config_file = "configs/fau_blstm_fcn.py"
    variant, options = default.parse_variant(
        config_file, arg, iemocap_blstm_fcn.VARIANTS, options=("holdout",)
    )
    c = iemocap_blstm_fcn.common(variant, config_file)
    c.data.corpus = "fau_aibo"
    c.data.synthetic.num_speakers = 12
    c.data.synthetic.utterances_per_speaker = 40
    c.protocol.name = "predefined"
    c.protocol.validation = "default" if "holdout" in options else "none"
    c.protocol.validation_fraction = 0.3
    if "aug" in options:
        default.augment(c)
    return c
