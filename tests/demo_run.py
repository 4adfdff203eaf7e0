"""One tiny trained demo workdir, shared by test_predict, test_report and
test_robustness (training is the expensive part: it is done once per test
session, also under pytest-xdist, where the first worker trains it under a
file lock and the others reuse it).

The corpus is the tiny synthetic IEMOCAP of `tests/test_train.tiny_config`
(48 files) made bad the way a real copy can be: `CORRUPT` (2 = 5% of the
files, rounded down) training files overwritten with garbage, and the
training dialogue folder `UNREADABLE_DIR` made unreadable. As root a
`chmod 000` would still be readable, so the folder is replaced by a symlink
to itself: every access fails with ELOOP ("Too many levels of symbolic
links"), an OSError other than "not found", as for a permission-denied
folder. The run uses `data.on_error='skip'`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil

from tests.test_train import tiny_config

CORRUPT = ("Ses01F_impro01_F001", "Ses01F_impro01_M002")
UNREADABLE_DIR = os.path.join("Session1", "sentences", "wav", "Ses01F_script01_1")


def make_bad_corpus(base: str) -> dict:
    """Generates the synthetic corpus under `base` and damages it.

    Returns:
      {"root", "corrupt": {utterance id: path}, "unreadable": {id: path}}.
    """
    from jaxpara.data import corpora

    root = corpora.generate_synthetic(
        "iemocap", base, tiny_config("").data.synthetic, seed=0
    )
    wav_root = os.path.join(root, "Session1", "sentences", "wav")
    corrupt = {}
    for utt in CORRUPT:
        path = os.path.join(wav_root, utt.rsplit("_", 1)[0], utt + ".wav")
        with open(path, "wb") as f:
            f.write(b"RIFF\x24\x00\x00\x00WAVEfmt garbage, not audio")
        corrupt[utt] = path
    folder = os.path.join(root, UNREADABLE_DIR)
    names = sorted(n[:-4] for n in os.listdir(folder) if n.endswith(".wav"))
    shutil.rmtree(folder)
    os.symlink(folder, folder)  # Points at itself: ELOOP on every access.
    unreadable = {n: os.path.join(folder, n + ".wav") for n in names}
    return {"root": root, "corrupt": corrupt, "unreadable": unreadable}


def demo_config(root: str):
    """tiny_config, one epoch, skips allowed, no logistic baseline."""
    cfg = tiny_config(root)
    cfg.train.num_epochs = 1
    cfg.data.on_error = "skip"
    cfg.eval.baseline = False
    return cfg


def _shared_dir(tmp_path_factory) -> str:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # The session's folder, common to all workers.
    return str(base / "jaxpara_demo_run")


def trained_demo(tmp_path_factory) -> dict:
    """Trains (once per session) and returns the demo run's description.

    Returns:
      make_bad_corpus's dict plus "workdir"; `demo_config(info["root"])` is
      the run's config.
    """
    from jaxpara import train

    shared = _shared_dir(tmp_path_factory)
    os.makedirs(shared, exist_ok=True)
    done = os.path.join(shared, "DONE.json")
    with open(os.path.join(shared, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # Released when the file closes.
        if not os.path.exists(done):
            info = make_bad_corpus(os.path.join(shared, "corpus"))
            workdir = os.path.join(shared, "run")
            train.train_and_evaluate(demo_config(info["root"]), workdir)
            with open(done, "w") as f:
                json.dump({**info, "workdir": workdir}, f)
    with open(done) as f:
        return json.load(f)
