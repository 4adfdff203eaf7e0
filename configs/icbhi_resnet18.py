"""ResNet-18 with attention blocks for ICBHI 2017 (SPEC card C2, seed 001).

    python -m jaxpara.main --config=configs/icbhi_resnet18.py:se_spatial \
        --workdir=/tmp/icbhi_se_spatial --config.data.root=/data/ICBHI

Variants `:none`, `:se`, `:spatial`, `:se_spatial` (default), `:component` set
`model.attention`; `--config.model.resnet.attention_stages="(3,4)"` ablates the
stages that get attention, `--config.model.resnet.se_reduction=8` the SE ratio.
With an empty `data.root` the synthetic respiratory corpus (ICBHI layout) is
generated into the workdir and used, and the log says so.

Pipeline (card C2): resample to 4 kHz; 5th-order Butterworth 100-2000 Hz,
zero-phase, which at 4 kHz is a 100 Hz high-pass (2000 Hz is the Nyquist
frequency, card C0 rule); log STFT magnitude, 100 ms Hamming window (n_fft =
window = 400 samples, 201 bins), 40 ms hop; each cycle cut to 63 frames
(2.5 s: a 10,000-sample cycle gives 1 + 10000 // 160 = 63 centred frames), at
a random start in training, from frame 0 in evaluation, zero-padded when
shorter; per-bin z-normalisation with training-split statistics. Split: the
official 60/40 train/test list as given, validation = 30% of the official
training patients (subject-independent), the checkpoint with the best
validation ICBHI score is tested (seed 001 selects on AS = (SE + SP) / 2,
Table 2; `train.selection_metric = 'icbhi_score'`). Reports SE, SP and the ICBHI score (SE + SP) / 2 per split.
Training holds every training cycle whole, zero-padded to the longest one (on
the real database about 2,900 cycles x 405 frames x 201 bins, ~1 GB float32).

The paper gives no optimiser, batch size or epoch count; Adam (lr 1e-3), batch
32 and 30 epochs are our choices.

Seed 001, Table 2 (the paper's figures on the REAL ICBHI 2017 database, %):

    method                   validation AS   test SE   test SP   test AS
    ResNet-18                        51.19     19.46     77.96     48.71
    ResNet-18 + SE                   53.28     15.04     78.85     46.94
    ResNet-18 + spatial              54.99     11.38     82.23     46.86
    ResNet-18 + SE + spatial         54.14     17.84     81.25     49.55
    ResNet-18 + component            54.24     20.65     77.83     49.24
"""

from configs import default

VARIANTS = ("none", "se", "spatial", "se_spatial", "component")

# `python -m jaxpara.sweep --grid=paper`: seed 001 Table 2 (real ICBHI 2017).
PAPER_SWEEPS = {
    "table2": {
        "grid": ["variant=" + ",".join(VARIANTS)],
        "columns": "icbhi",  # validation AS, test SE, SP, AS.
        "source": "seed 001 Table 2, the paper's figures on the real ICBHI 2017",
        "reference": """
            none        51.19  19.46  77.96  48.71
            se          53.28  15.04  78.85  46.94
            spatial     54.99  11.38  82.23  46.86
            se_spatial  54.14  17.84  81.25  49.55
            component   54.24  20.65  77.83  49.24
        """,
    }
}


def get_config(arg: str = "se_spatial"):
    """`variant[,aug]` (`default.parse_variant`; `,aug`: `default.augment`)."""
    variant, options = default.parse_variant("configs/icbhi_resnet18.py", arg, VARIANTS)
    c = default.get_config()
    c.data.corpus = "icbhi"
    c.data.sample_rate = 4000
    c.data.synthetic.num_recordings = 120
    c.data.bandpass.enabled = True
    c.data.bandpass.low_hz = 100.0
    c.data.bandpass.high_hz = 2000.0
    c.data.bandpass.order = 5
    c.data.features.kind = "stft"
    c.data.features.win_ms = 100.0
    c.data.features.hop_ms = 40.0
    c.data.features.n_fft = 0  # = window; seed 001's "n_fft = 100" (card C2).
    c.data.features.deltas = False
    c.data.segment.length = 63  # 2.5 s crop.
    c.data.segment.hop = 63
    c.data.segment.min_frames = 0
    c.data.segment.mode = "first"  # Evaluation: crop from frame 0, zero-padded.
    c.data.segment.random_crop = True  # Training: crop at a random start.
    c.data.normalise = True
    c.protocol.name = "predefined"
    c.protocol.validation_fraction = 0.3
    c.model.name = "resnet18"
    c.model.attention = variant
    c.model.resnet.stage_features = (64, 128, 256, 512)
    c.model.resnet.blocks_per_stage = (2, 2, 2, 2)
    c.model.resnet.stem = "7x7"
    c.model.resnet.se_reduction = 16
    c.model.resnet.attention_stages = (1, 2, 3, 4)
    c.train.optimizer = "adam"
    c.train.learning_rate = 1e-3
    c.train.batch_size = 32
    c.train.eval_batch_size = 64
    c.train.num_epochs = 30
    c.eval.aggregation = "vote"  # One crop per cycle: the cycle's prediction.
    c.eval.icbhi_normal_label = "normal"
    c.train.selection_metric = "icbhi_score"
    if "aug" in options:
        default.augment(c)
    return c
