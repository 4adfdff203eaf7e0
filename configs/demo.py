"""Demo: ACRNN on the synthetic 4-class emotion corpus (IEMOCAP layout).

    python -m jaxpara.main --config=configs/demo.py --workdir=/tmp/demo

Trains on a fresh machine with nothing downloaded: the synthetic corpus is
generated into `<workdir>/data` on first use and read back by the IEMOCAP
reader. Speaker-independent split: sessions 1-4 (8 speakers) train; session 5
is held out, one speaker validates (model selection), the other tests.
results.json also reports `splits.test.baseline_uar`, a logistic regression on
utterance-mean log-Mel vectors, showing the task is not trivially linear.
"""

from configs import default


def get_config():
    c = default.get_config()
    c.seed = 0
    c.data.corpus = "iemocap"
    c.data.root = ""
    c.data.synthetic.num_speakers = 10
    c.data.synthetic.utterances_per_speaker = 48
    c.data.synthetic.difficulty = 0.5
    c.data.features.n_mels = 40
    c.data.features.deltas = True
    c.data.segment.length = 200
    c.data.segment.hop = 200
    c.data.segment.min_frames = 100
    c.protocol.name = "loso_session"
    c.protocol.folds = "Session5"
    c.model.name = "acrnn"
    c.model.conv_features = (8, 16)
    c.model.frame_features = 64
    c.model.lstm_features = 64
    c.model.attention_features = 64
    c.model.head_features = 64
    c.train.optimizer = "nadam"
    c.train.learning_rate = 1e-3
    c.train.batch_size = 32
    c.train.num_epochs = 20
    c.train.log_every_steps = 25
    c.eval.aggregation = "mean"
    c.eval.baseline = True
    return c
