"""Hand-run check of how hard the synthetic IEMOCAP is (not part of the tests).

    python -m jaxpara.data.corpora.synthetic._emotion_check --difficulty 0 0.5 1
    python -m jaxpara.data.corpora.synthetic._emotion_check --sequence

For each difficulty it writes the default-size synthetic IEMOCAP (10 speakers
x 40 utterances), reads it with the IEMOCAP reader, and reports the test UAR of
a logistic regression on the standardised utterance-MEAN log-Mel vector (40
mels, 25 / 10 ms Hamming, log(x + 1e-6)), speaker-independent: train on the
8 speakers of four sessions, test on the 2 of the held-out one, for every
held-out session (the Session5 fold first, then the mean over all 5). With
`--sequence` it also trains a small temporal CNN on the log-Mel frames (JAX,
CPU, about a minute per fold), a stand-in for the sequence models: the corpus
is designed so that it beats the mean-vector baseline by a clear margin.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import librosa
import numpy as np
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from jaxpara.data.corpora import iemocap
from jaxpara.data.corpora.synthetic import emotion


def log_mel(path: str) -> np.ndarray:
    """[frames, 40] log-Mel of a wav (25 ms Hamming, 10 ms hop)."""
    audio, sr = sf.read(path, dtype="float32")
    mel = librosa.feature.melspectrogram(
        y=audio,
        sr=sr,
        n_fft=400,
        hop_length=160,
        window="hamming",
        n_mels=40,
        center=False,
        power=2.0,
    )
    return np.log(mel + 1e-6).T


def uar(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    recalls = [np.mean(y_pred[y_true == k] == k) for k in range(num_classes)]
    return float(np.mean(recalls))


def _logistic_uar(x, y, train, test, num_classes):
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(max_iter=5000).fit(scaler.transform(x[train]), y[train])
    return uar(y[test], clf.predict(scaler.transform(x[test])), num_classes)


def _sequence_uar(feats, y, train, test, num_classes, epochs=80, max_frames=400):
    """Small temporal CNN (3 conv layers, mean/std/max pooling) on log-Mel."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, mask, train):
            x = nn.relu(nn.Conv(48, (7,))(x))
            x = nn.max_pool(x, (3,), (3,))
            w = mask[:, ::3][:, : x.shape[1], None].astype(x.dtype)
            x = nn.relu(nn.Conv(48, (5,))(x))
            x = nn.relu(nn.Conv(48, (5,))(x))
            n = w.sum(1) + 1e-6
            mean = (x * w).sum(1) / n
            std = jnp.sqrt(((x - mean[:, None]) ** 2 * w).sum(1) / n + 1e-6)
            top = jnp.where(w > 0, x, -1e9).max(1)
            h = nn.Dropout(0.3, deterministic=not train)(
                jnp.concatenate([mean, std, top], -1)
            )
            return nn.Dense(num_classes)(nn.relu(nn.Dense(64)(h)))

    stacked = np.concatenate([feats[i] for i in np.flatnonzero(train)])
    mu, sd = stacked.mean(0), stacked.std(0) + 1e-6
    x = np.zeros((len(feats), max_frames, feats[0].shape[1]), np.float32)
    m = np.zeros((len(feats), max_frames), bool)
    for i, f in enumerate(feats):
        n = min(max_frames, len(f))
        x[i, :n], m[i, :n] = ((f - mu) / sd)[:n], True
    model, key = Net(), jax.random.key(0)
    params = model.init(key, x[:2], m[:2], False)
    tx = optax.adam(1e-3)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, xb, mb, yb, k):
        def loss(p):
            logits = model.apply(p, xb, mb, True, rngs={"dropout": k})
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        grads = jax.grad(loss)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt

    idx, rng = np.flatnonzero(train), np.random.default_rng(0)
    for _ in range(epochs):
        rng.shuffle(idx)
        for i in range(0, len(idx) - 31, 32):
            key, k = jax.random.split(key)
            b = idx[i : i + 32]
            params, opt = step(params, opt, x[b], m[b], y[b], k)
    pred = np.asarray(model.apply(params, x[test], m[test], False).argmax(-1))
    return uar(y[test], pred, num_classes)


def check(difficulty: float, sequence: bool, workdir: str) -> None:
    root = os.path.join(workdir, f"iemocap_{difficulty}")
    t0 = time.time()
    emotion.write_iemocap(root, difficulty=difficulty)
    gen_s = time.time() - t0
    corpus = iemocap.read(root)
    feats = [log_mel(e.path) for e in corpus.examples]
    x = np.stack([f.mean(0) for f in feats])
    y = np.array([corpus.label_index(e.label) for e in corpus.examples])
    sessions = np.array([e.session for e in corpus.examples])
    k = len(corpus.labels)
    order = sorted(set(sessions), key=lambda s: (s != "Session5", s))
    lr = [_logistic_uar(x, y, sessions != s, sessions == s, k) for s in order]
    print(
        f"difficulty {difficulty}: generated {len(corpus.examples)} + "
        f"{len(corpus.excluded)} excluded utterances in {gen_s:.1f} s; "
        f"mean-log-Mel logistic regression test UAR Session5 {lr[0]:.3f}, "
        f"all held-out sessions {np.round(lr, 3).tolist()} mean {np.mean(lr):.3f}",
        flush=True,
    )
    if sequence:
        seq = [
            _sequence_uar(feats, y, sessions != s, sessions == s, k) for s in order[:3]
        ]
        print(
            f"difficulty {difficulty}: temporal CNN test UAR "
            f"{np.round(seq, 3).tolist()} mean {np.mean(seq):.3f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--difficulty", type=float, nargs="+", default=[0.5])
    parser.add_argument("--sequence", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        for difficulty in args.difficulty:
            check(difficulty, args.sequence, workdir)


if __name__ == "__main__":
    main()
