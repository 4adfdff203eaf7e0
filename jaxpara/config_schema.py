"""The config schema: every key jaxpara knows, each with a one-line comment.

It lives inside the package so that an installed wheel (no source tree) can
rebuild a trained run's config (`jaxpara.rundir.load_config`);
`configs/default.py` re-exports `get_config` for the paper configs and users.
Paper configs start from `get_config()` and override values; they never add
keys (STYLE convention 2). `python -m jaxpara.main` locks the config, so a
mistyped `--config.x.y=...` fails before anything is compiled, naming the key.
"""

import ml_collections


def check_variant(config_file: str, variant: str, variants) -> None:
    """A paper config's `get_config(variant)` argument check.

    Raises:
      ValueError: an unknown variant, naming the file and the known ones.
    """
    if variant not in variants:
        raise ValueError(
            f"{config_file}:{variant}: unknown variant {variant!r}; expected one "
            f"of {sorted(variants)}"
        )


def get_config() -> ml_collections.ConfigDict:
    """The default config: every key, each with its one-line comment."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # Base PRNG seed: init, dropout, shuffling, synthetic corpus.
    c.num_seeds = 1  # Seeds per fold; seed s of a protocol run uses `seed + s`.

    _add_data(c)

    # ------------------------------------------------------------ protocol
    c.protocol = ml_collections.ConfigDict()
    c.protocol.name = "predefined"  # predefined | loso_session | loso_speaker.
    c.protocol.folds = ""  # Comma-separated fold names to run; '' = all.
    c.protocol.validation_fraction = 0.3  # Holdout share of train subjects.
    c.protocol.validation = "default"  # default | none | train_subjects (splits.py).

    _add_model(c)

    # ---------------------------------------------------------------- mesh
    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1  # Devices on the data-parallel axis; -1 = all devices.
    c.mesh.model = 1  # Devices sharing each parameter (large models); 1 = off.

    # ------------------------------------------------------------ training
    c.train = ml_collections.ConfigDict()
    c.train.num_epochs = 30  # Passes over the training segments.
    c.train.batch_size = 64  # Global batch size (segments).
    c.train.eval_batch_size = 128  # Global evaluation batch size.
    c.train.optimizer = "nadam"  # adam | nadam (optax) | nadam_keras.
    # nadam_keras' momentum schedule: 0.004 Keras 2 / tf.keras <= 2.10, 1.0 Keras 3.
    c.train.nadam_schedule_decay = 0.004
    c.train.learning_rate = 1e-3  # Peak learning rate.
    c.train.lr_decay = 0.0  # Per-step decay: lr / (1 + decay * step).
    c.train.weight_decay = 0.0  # Decoupled weight decay (0 = off).
    c.train.grad_clip = 0.0  # Global-norm clipping (0 = off).
    c.train.class_weights = False  # Cross-entropy weights N / N_k.
    c.train.selection_metric = "uar"  # Selection: uar | wa | icbhi_score | f1_macro.
    c.train.plateau_patience = 0  # Reduce when bad evals exceed this (0 = off).
    c.train.plateau_factor = 0.1  # Reduce-on-plateau factor.
    c.train.plateau_threshold = 1e-4  # Plateau: better = score > best * (1 + this).
    c.train.early_stopping = 0  # Stop after this many evals w/o gain (0 = off).
    c.train.eval_every_epochs = 1  # Validation interval in epochs.
    c.train.checkpoint_every_steps = 200  # Periodic checkpoint interval.
    c.train.log_every_steps = 20  # Progress / scalar logging interval.
    c.train.max_steps = 0  # Stop after this many steps (0 = no limit).
    c.train.vmap_seeds = True  # num_seeds > 1: all seeds of a fold in one vmapped jit.
    c.train.label_smoothing = 0.0  # Cross-entropy targets (1 - e) y + e / K (0 = off).

    _add_augment(c)

    # ---------------------------------------------------------- evaluation
    c.eval = ml_collections.ConfigDict()
    c.eval.aggregation = "vote"  # Segment -> utterance: vote | mean | max.
    c.eval.positive_label = ""  # Binary tasks: SE/SP/CI w.r.t. this class.
    c.eval.icbhi_normal_label = ""  # ICBHI score w.r.t. this normal class.
    c.eval.bootstrap = 1000  # Bootstrap draws for the UAR 95% CI.
    c.eval.baseline = False  # Also fit a logistic-regression baseline.
    c.eval.save_attention = False  # C4: attention_<split>.npz per fold (sown [B, T]).
    return c


def _add_augment(c: ml_collections.ConfigDict) -> None:
    """The `augment` section: training-step augmentation (`jaxpara.augment`).

    Everything is off by default, so the paper configs stay faithful; the
    paper configs' `,aug` modifier (`configs/default.py:augment`) turns on a
    preset per card.
    """
    # ------------------------------------------------------------- augment
    c.augment = ml_collections.ConfigDict()
    c.augment.time_masks = 0  # SpecAugment time masks per segment (0 = off).
    c.augment.time_mask_frames = 20  # Max width of each, in frames (<= valid frames).
    c.augment.freq_masks = 0  # SpecAugment frequency masks per segment (0 = off).
    c.augment.freq_mask_bins = 8  # Max width of each, in frequency bins.
    c.augment.mixup_alpha = 0.0  # Mixup lambda ~ Beta(alpha, alpha) (0 = off).
    c.augment.noise = False  # Gaussian noise on the step's features at a random SNR.
    c.augment.noise_snr_min = 10.0  # Noise SNR (dB) ~ uniform [min, max] per segment.
    c.augment.noise_snr_max = 30.0  # Upper end of the noise SNR range in dB.
    c.augment.gain_db = 0.0  # Random gain ~ uniform [-g, +g] dB per segment (0 = off).
    # Speed perturbation (input pipeline, not the step): one extra training copy
    # of each utterance per factor, e.g. (0.9, 1.1); () = off.
    c.augment.speed_factors = ()


def _add_data(c: ml_collections.ConfigDict) -> None:
    """The `data` section: corpus, front-end, features, segments."""
    # ---------------------------------------------------------------- data
    c.data = ml_collections.ConfigDict()
    c.data.corpus = "iemocap"  # ccs | icbhi | iemocap | fau_aibo | emodb | manifest
    c.data.root = ""  # Local corpus folder (manifest: CSV file); '' = synthetic.
    c.data.sample_rate = 16000  # Working sample rate in Hz; audio is resampled.
    c.data.improvised_only = False  # IEMOCAP: keep improvised dialogues only.
    c.data.on_error = "raise"  # Unreadable training files: raise | skip (counted).
    c.data.cache = True  # Cache extracted features under <workdir>/cache.
    c.data.source = "memory"  # memory (features in host memory) | records (stream).
    c.data.records_dir = ""  # TFDS data dir of the records; '' = <workdir>/records.
    c.data.shuffle_buffer = 1024  # Records: segments in the training shuffle buffer.
    c.data.read_shards = 0  # Records: reading pipelines (x processes); 0 = processes.

    c.data.synthetic = ml_collections.ConfigDict()
    c.data.synthetic.num_speakers = 10  # Emotion corpora: speakers (even: m/f).
    c.data.synthetic.utterances_per_speaker = 40  # Emotion corpora: per speaker.
    c.data.synthetic.num_recordings = 60  # Respiratory / cough: audio files.
    c.data.synthetic.difficulty = 0.5  # 0 = trivially separable .. 1 = chance.
    c.data.synthetic.snr_db = 20.0  # Background noise level.

    c.data.vad = ml_collections.ConfigDict()
    c.data.vad.enabled = False  # Trim leading/trailing non-speech (webrtcvad).
    c.data.vad.aggressiveness = 2  # webrtcvad mode 0-3.
    c.data.vad.frame_ms = 30  # VAD frame length: 10, 20 or 30 ms.

    c.data.bandpass = ml_collections.ConfigDict()
    c.data.bandpass.enabled = False  # Butterworth band-pass (card C2).
    c.data.bandpass.low_hz = 100.0  # Lower edge in Hz.
    c.data.bandpass.high_hz = 2000.0  # Upper edge; >= Nyquist -> high-pass.
    c.data.bandpass.order = 5  # Filter order.
    # Per-utterance waveform normalisation after VAD / band-pass (card C5):
    # none | zscore (zero mean, unit variance) | peak (zero mean, unit peak).
    c.data.waveform_norm = "none"

    c.data.features = ml_collections.ConfigDict()
    c.data.features.kind = "log_mel"  # log_mel | stft (log-compressed magnitude).
    c.data.features.n_mels = 40  # Mel bands (log_mel).
    c.data.features.win_ms = 25.0  # Analysis window (Hamming) in ms.
    c.data.features.hop_ms = 10.0  # Frame shift in ms.
    c.data.features.n_fft = 0  # FFT size; 0 = window length in samples.
    c.data.features.fmin = 0.0  # Lowest mel frequency in Hz.
    c.data.features.fmax = 0.0  # Highest mel frequency; 0 = Nyquist.
    c.data.features.log_floor = 1e-6  # log(x + floor).
    c.data.features.deltas = True  # 3 channels [static, delta, delta-delta].
    c.data.features.delta_width = 5  # Regression window (N = 2 -> width 5).
    c.data.features.mel_scale = (
        "slaney"  # Hz -> mel: slaney | htk (2595 log10(1 + f/700)).
    )

    c.data.segment = ml_collections.ConfigDict()
    c.data.segment.length = 300  # Segment length in frames.
    c.data.segment.hop = 300  # Hop between segments in frames.
    c.data.segment.min_frames = 100  # Shorter tails dropped unless only segment.
    c.data.segment.mode = "all"  # all | first (crop/pad utterance to one segment).
    c.data.segment.random_crop = False  # Train: `length` frames, random start (C2).

    c.data.normalise = True  # Per (bin, channel) z-norm with training stats.
    # First z-normalise each speaker's features with their own per (bin, channel)
    # statistics (label-free; a test speaker's from its own audio).
    c.data.speaker_norm = False


def _add_model(c: ml_collections.ConfigDict) -> None:
    """The `model` section: every architecture's keys."""
    # --------------------------------------------------------------- model
    c.model = ml_collections.ConfigDict()
    c.model.name = "acrnn"  # Key of jaxpara.models.MODELS.
    c.model.num_classes = 0  # 0 = from the corpus.
    c.model.dropout = 0.2  # Dropout rate of the dense head.
    c.model.conv_features = (32, 64)  # CNN block widths.
    c.model.frame_features = 256  # Per-frame dense width before the LSTM.
    c.model.lstm_features = 128  # LSTM units per direction.
    c.model.bidirectional = False  # BLSTM instead of LSTM.
    c.model.attention_features = 64  # Temporal attention width.
    c.model.attention_bias = False  # Bias b in v^T tanh(W h + b) (card C1: none).
    c.model.frame_activation = "linear"  # After ACRNN's frame layer: linear | relu.
    c.model.head_features = 64  # Dense head width.
    c.model.dtype = "float32"  # Compute dtype: float32 | bfloat16.
    c.model.attention = "spatial"  # Attention variant of the model (see registry).
    c.model.fusion_loss = "fused_and_branches"  # Fusion: fused | fused_and_branches.
    c.model.convlstm = ml_collections.ConfigDict()
    c.model.convlstm.features = 128  # Attentive ConvLSTM hidden channels (C1).
    c.model.convlstm.iterations = 4  # T_s: iterations over the same feature map.
    c.model.convlstm.kernel_size = 3  # Gate convolution kernel size.
    # -- C3 Attention-BLSTM-FCN (seed 002) --
    c.model.head_layers = 2  # C3: hidden Dense+ReLU+Dropout layers of the DNN head.
    c.model.blstm = ml_collections.ConfigDict()
    c.model.blstm.layers = 2  # C3: stacked (B)LSTM layers (Table 5: 1, 2, 3).
    c.model.fcn = ml_collections.ConfigDict()
    c.model.fcn.attention_scale = 0.3  # C3: lambda in softmax(lambda * e) over cells.
    c.model.fcn.dropout = 0.2  # C3: dropout after each FCN conv block.
    # -- end C3 --
    # -- C2 ResNet-18 with attention blocks (seed 001); model.attention selects --
    c.model.resnet = ml_collections.ConfigDict()
    c.model.resnet.stage_features = (64, 128, 256, 512)  # Channels per stage (C2).
    c.model.resnet.blocks_per_stage = (2, 2, 2, 2)  # BasicBlocks per stage.
    c.model.resnet.stem = "7x7"  # 7x7 (conv/2 + max-pool/2) | 3x3 (conv/1).
    c.model.resnet.se_reduction = 16  # SE reduction ratio r.
    c.model.resnet.attention_stages = (1, 2, 3, 4)  # Stages with attention.
    # -- C4 MOMA (seed 003); the BLSTM encoder depth is model.blstm.layers --
    c.model.moma = ml_collections.ConfigDict()
    c.model.moma.blocks = 3  # C4: attention blocks n of the MOMA layer.
    c.model.moma.mixture = "raw"  # C4: a_mix = sum gamma_n a_n: raw | softmax(gamma).
    c.model.moma.attention_features = 128  # C4: width of E in each attention block.
    c.model.moma.attention_bias = False  # C4: E = tanh(W_h Y) * tanh(W_m M), no b.
    c.model.moma.projection_features = 1024  # C4: projection of the pooled vector.
    # -- C5 CNN-BiLSTM (seed 004); model.attention = temporal | local_self --
    c.model.conv_kernel = (5, 3)  # C5: conv kernel (time, freq).
    c.model.local_attention = ml_collections.ConfigDict()
    c.model.local_attention.width = 15  # C5 Model 2: self-attention window (frames).
    c.model.local_attention.features = 32  # C5: width of the additive score layer.
    c.model.local_attention.activation = "relu"  # C5: relu | tanh | sigmoid | none.
    c.model.use_gender = False  # C5: concatenate a gender embedding (1=m, 0=f).
    c.model.gender = ml_collections.ConfigDict()
    c.model.gender.embedding = 300  # C5: gender embedding width (2 -> 300).
    c.model.gender.features = 64  # C5: gender Dense width after the embedding.
    # -- end C4/C5 --
