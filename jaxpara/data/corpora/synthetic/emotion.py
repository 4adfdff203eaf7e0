"""Synthetic emotion corpora in the IEMOCAP, FAU Aibo, EmoDB and manifest layouts.

Every writer is deterministic from its seed (each file has its own random
stream, so one file does not depend on the order of the others) and writes
mono 16-bit WAV files (16 kHz; EmoDB: 22.05 kHz, 2.0 s, as the development
copy) plus the corpus's own label files, so the real readers
(`iemocap.read`, `fau_aibo.read`, `emodb.read`, `manifest.read`) parse them.

The voices come from `_voice` (glottal pulses -> formant resonators, syllables,
pauses, breath, channel and background noise). Emotions are speaker-relative
prosodic styles: the strongest cues are temporal (pitch range and contour,
speaking rate, stress dynamics, attacks, pauses) and the static ones (level,
tilt, mean pitch) are small next to the between-speaker spread, so a sequence
model on log-Mel frames does clearly better than a linear model on the
utterance-mean log-Mel vector. `difficulty` blurs the styles towards neutral
speech: 0 = well separated, 1 = indistinguishable (chance).

Class counts do not depend on the seed; see `iemocap_codes`, `fau_codes`,
`emodb_codes` and `manifest_labels`.
"""

from __future__ import annotations

import collections
import csv
import os
import string

import numpy as np

from jaxpara.data.corpora import emodb
from jaxpara.data.corpora.synthetic import _noise, _voice

SAMPLE_RATE = _voice.SAMPLE_RATE
_IEMOCAP, _FAU, _MANIFEST, _EMODB = 1, 2, 3, 4  # Random-stream tags per corpus.
_rng = _noise.rng_for

# IEMOCAP emotion code -> voice style ({style: weight}).
_IEMOCAP_STYLES = {
    "neu": {"neutral": 1.0},
    "hap": {"happy": 1.0},
    "exc": {"happy": 0.75, "angry": 0.25},
    "sad": {"sad": 1.0},
    "ang": {"angry": 1.0},
    "fru": {"angry": 0.5, "sad": 0.3, "neutral": 0.2},
}
_IEMOCAP_WORDS = {
    "neu": "Neutral",
    "hap": "Happiness",
    "exc": "Excited",
    "sad": "Sadness",
    "ang": "Anger",
    "fru": "Frustration",
}
# Typical (valence, activation, dominance) on IEMOCAP's 1-5 scale.
_IEMOCAP_VAD = {
    "neu": (3.0, 2.5, 2.5),
    "hap": (4.0, 3.0, 3.0),
    "exc": (4.0, 3.5, 3.0),
    "sad": (2.0, 2.0, 2.0),
    "ang": (1.5, 4.0, 4.0),
    "fru": (2.0, 3.5, 3.5),
    "xxx": (2.5, 3.0, 3.0),
}
_FAU_STYLES = {
    "A": {"angry": 1.0},
    "E": {"emphatic": 1.0},
    "N": {"neutral": 1.0},
    "P": {"positive": 1.0},
}
_FAU_WEIGHTS = {"A": 0.17, "E": 0.20, "N": 0.33, "P": 0.13, "R": 0.17}
# EmoDB letter -> voice style. The voice model has no boredom, disgust or
# fear: those are mixtures of its styles (a stand-in, not a model of EmoDB).
_EMODB_STYLES = {
    "W": {"angry": 1.0},
    "L": {"sad": 0.5, "neutral": 0.5},
    "E": {"emphatic": 0.7, "sad": 0.3},
    "A": {"happy": 0.5, "emphatic": 0.5},
    "F": {"happy": 1.0},
    "T": {"sad": 1.0},
    "N": {"neutral": 1.0},
}
EMODB_SAMPLE_RATE = 22050  # The development copy's rate; files are 2.0 s.
EMODB_SECONDS = 2.0
# EmoDB's ten sentence codes.
EMODB_SENTENCES = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
_EMOTIONS = ("neutral", "happy", "sad", "angry")


def iemocap_codes(utterances_per_speaker: int) -> dict[str, int]:
    """Emotion-code counts of one synthetic IEMOCAP speaker.

    A tenth of the utterances (rounded down) are fru / xxx (excluded by the
    reader); the rest is split evenly over the 4 classes (remainder to
    neutral, happy, sad, angry in that order); a third of happy is 'exc'.
    Default 40: neu 9, hap 6, exc 3, sad 9, ang 9, fru 2, xxx 2.
    """
    n = utterances_per_speaker
    other = n // 10
    base, rem = divmod(n - other, 4)
    per_class = [base + (i < rem) for i in range(4)]
    exc = per_class[1] // 3
    return {
        "neu": per_class[0],
        "hap": per_class[1] - exc,
        "exc": exc,
        "sad": per_class[2],
        "ang": per_class[3],
        "fru": (other + 1) // 2,
        "xxx": other // 2,
    }


def improvised_count(count: int) -> int:
    """How many of a speaker's `count` utterances with one code are improvised.

    About 75% (`(3 * count + 2) // 4`); the rest come from scripted dialogues.
    """
    return (3 * count + 2) // 4


def fau_codes(utterances_per_speaker: int) -> dict[str, int]:
    """Label counts of one synthetic FAU Aibo speaker (largest remainder).

    Weights A .17, E .20, N .33, P .13, R .17; default 30: A 5, E 6, N 10,
    P 4, R 5.
    """
    return _largest_remainder(_FAU_WEIGHTS, utterances_per_speaker)


def manifest_labels(utterances_per_speaker: int) -> dict[str, int]:
    """Label counts of one synthetic manifest speaker: even over 4 emotions."""
    return _even_counts(_EMOTIONS, utterances_per_speaker)


def emodb_codes(utterances_per_speaker: int) -> dict[str, int]:
    """Emotion-letter counts of one synthetic EmoDB speaker: even over the 7
    letters, the remainder to W, L, E, A, F, T, N in that order. Default 40:
    W 6, L 6, E 6, A 6, F 6, T 5, N 5."""
    return _even_counts(tuple(emodb.EMOTIONS), utterances_per_speaker)


def manifest_split(speaker_index: int, num_speakers: int) -> str:
    """Speaker-independent split of the synthetic manifest.

    The last `max(1, S // 5)` speakers are test, the `max(1, S // 5)` before
    them validation, the rest train; with fewer than 3 speakers all train.
    """
    if num_speakers < 3:
        return "train"
    block = max(1, num_speakers // 5)
    if speaker_index >= num_speakers - block:
        return "test"
    if speaker_index >= num_speakers - 2 * block:
        return "validation"
    return "train"


def write_iemocap(
    root: str,
    *,
    seed: int = 0,
    num_speakers: int = 10,
    utterances_per_speaker: int = 40,
    difficulty: float = 0.5,
    snr_db: float = 20.0,
) -> None:
    """Writes a synthetic IEMOCAP in the real layout.

    Speakers come in (F, M) pairs, one pair per session: Session<k> holds
    speakers Ses0kF and Ses0kM. Each session has up to 4 improvised dialogues
    (`Ses01F_impro01`, `Ses01M_impro02`, ...) and up to 2 scripted ones
    (`Ses01F_script01_1`, ...), both speakers taking turns in each; utterance
    ids are `<dialog>_<F|M><NNN>`. Per speaker the codes are `iemocap_codes`,
    and `improvised_count` of each code are improvised. EmoEvaluation files
    have the real line format, annotator lines included.

    Args:
      root: output folder (created; must be empty if it exists).
      seed: random seed.
      num_speakers: even number of speakers (2 per session).
      utterances_per_speaker: utterances of each speaker.
      difficulty: 0 (emotions well separated) .. 1 (indistinguishable).
      snr_db: speech level over background noise.
    """
    if num_speakers < 2 or num_speakers % 2:
        raise ValueError(f"num_speakers must be even and >= 2, got {num_speakers}")
    _check_size(utterances_per_speaker, difficulty)
    _prepare(root)
    codes = iemocap_codes(utterances_per_speaker)
    for s_idx in range(num_speakers // 2):
        session = s_idx + 1
        ses = f"Ses{session:02d}"
        # dialog name -> list of (speaker letter, code, utterance rng)
        turns: dict[str, list[tuple[str, str, np.random.Generator]]] = {}
        speakers = {}
        for letter in ("F", "M"):
            spk_index = 2 * s_idx + (letter == "M")
            speakers[letter] = _voice.random_speaker(
                _rng(seed, _IEMOCAP, 0, spk_index), letter.lower()
            )
            plan = [
                (code, i < improvised_count(count))
                for code, count in codes.items()
                for i in range(count)
            ]
            order = _rng(seed, _IEMOCAP, 1, spk_index).permutation(len(plan))
            impro = [plan[i][0] for i in order if plan[i][1]]
            script = [plan[i][0] for i in order if not plan[i][1]]
            for kind, items, max_dialogs in (
                ("impro", impro, 4),
                ("script", script, 2),
            ):
                n_dialogs = max(1, min(max_dialogs, round(len(items) / 8)))
                for u, code in enumerate(items):
                    j = u % n_dialogs + 1
                    marker = "F" if j % 2 else "M"
                    name = f"{ses}{marker}_{kind}{j:02d}"
                    if kind == "script":
                        name += "_1"
                    utt_rng = _rng(seed, _IEMOCAP, 2, spk_index, kind == "script", u)
                    turns.setdefault(name, []).append((letter, code, utt_rng))
        session_dir = os.path.join(root, f"Session{session}")
        eval_dir = os.path.join(session_dir, "dialog", "EmoEvaluation")
        os.makedirs(eval_dir, exist_ok=True)
        for d_idx, dialog in enumerate(sorted(turns)):
            dialog_rng = _rng(seed, _IEMOCAP, 3, session, d_idx)
            _write_dialog(
                session_dir,
                eval_dir,
                dialog,
                turns[dialog],
                speakers,
                difficulty,
                snr_db,
                dialog_rng,
            )


def _write_dialog(
    session_dir: str,
    eval_dir: str,
    dialog: str,
    items: list[tuple[str, str, np.random.Generator]],
    speakers: dict[str, _voice.Speaker],
    difficulty: float,
    snr_db: float,
    rng: np.random.Generator,
) -> None:
    """Synthesises one dialogue's utterances and its EmoEvaluation file."""
    wav_dir = os.path.join(session_dir, "sentences", "wav", dialog)
    os.makedirs(wav_dir, exist_ok=True)
    by_letter = {
        letter: [it for it in items if it[0] == letter] for letter in ("F", "M")
    }
    # Alternate the two speakers' turns as long as both have some left.
    ordered = []
    while by_letter["F"] or by_letter["M"]:
        for letter in ("F", "M"):
            if by_letter[letter]:
                ordered.append(by_letter[letter].pop(0))
    counters = {"F": 0, "M": 0}
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    t = rng.uniform(1.0, 5.0)
    for letter, code, utt_rng in ordered:
        utt = f"{dialog}_{letter}{counters[letter]:03d}"
        counters[letter] += 1
        style = _IEMOCAP_STYLES.get(code) or _random_mixture(utt_rng)
        audio = _utterance(utt_rng, speakers[letter], style, difficulty, snr_db)
        _write_wav(os.path.join(wav_dir, utt + ".wav"), audio)
        end = t + audio.size / SAMPLE_RATE
        vad = np.clip(
            np.asarray(_IEMOCAP_VAD[code]) + 0.5 * utt_rng.integers(-1, 2, 3), 1, 5
        )
        lines.append(
            f"[{t:.4f} - {end:.4f}]\t{utt}\t{code}\t"
            f"[{vad[0]:.4f}, {vad[1]:.4f}, {vad[2]:.4f}]"
        )
        lines.extend(_annotator_lines(utt_rng, code, letter, vad))
        lines.append("")
        t = end + utt_rng.uniform(0.2, 1.5)
    with open(os.path.join(eval_dir, dialog + ".txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def _annotator_lines(
    rng: np.random.Generator, code: str, letter: str, vad: np.ndarray
) -> list[str]:
    """Categorical (C-) and dimensional (A-) evaluator lines of one utterance."""
    words = list(_IEMOCAP_WORDS.values())
    raters = ["E1", "E2", "E3", f"{letter}1"]
    out = []
    for i, rater in enumerate(raters):
        if code == "xxx":  # No majority: every rater says something else.
            word = words[(int(rng.integers(len(words))) + i) % len(words)]
        else:
            word = _IEMOCAP_WORDS[code]
        out.append(f"C-{rater}:\t{word};\t()")
    for rater in ("E1", "E2", f"{letter}1"):
        v, a, d = (int(np.clip(round(x + rng.integers(-1, 2)), 1, 5)) for x in vad)
        out.append(f"A-{rater}:\tval {v}; act {a}; dom  {d};\t()")
    return out


def write_fau_aibo(
    root: str,
    *,
    seed: int = 0,
    num_speakers: int = 8,
    utterances_per_speaker: int = 30,
    difficulty: float = 0.5,
    snr_db: float = 20.0,
) -> None:
    """Writes a synthetic FAU Aibo (5 classes) in the real layout.

    The first half of the speakers are Ohm_01 .. (training school), the rest
    Mont_01 .. (test school); genders alternate f, m. Per speaker the labels
    are `fau_codes`; chunks `<school>_<NN>_<turn>_<chunk>` are grouped into
    turns of 1-3 chunks. 'R' (rest) utterances are random mixtures of styles.

    Args:
      root: output folder (created; must be empty if it exists).
      seed: random seed.
      num_speakers: number of speakers (>= 2).
      utterances_per_speaker: chunks per speaker.
      difficulty: 0 (well separated) .. 1 (indistinguishable).
      snr_db: speech level over background noise.
    """
    if num_speakers < 2:
        raise ValueError(f"num_speakers must be >= 2, got {num_speakers}")
    _check_size(utterances_per_speaker, difficulty)
    _prepare(root)
    wav_dir = os.path.join(root, "wav")
    os.makedirs(wav_dir)
    os.makedirs(os.path.join(root, "labels"))
    counts = fau_codes(utterances_per_speaker)
    n_ohm = (num_speakers + 1) // 2
    lines = []
    for spk in range(num_speakers):
        school, number = ("Ohm", spk + 1) if spk < n_ohm else ("Mont", spk - n_ohm + 1)
        speaker, labels, plan_rng = _speaker_plan(
            seed, _FAU, spk, "f" if spk % 2 == 0 else "m", counts
        )
        turn, chunk = 1, 0
        turn_len = int(plan_rng.integers(1, 4))
        for u, label in enumerate(labels):
            chunk_id = f"{school}_{number:02d}_{turn:03d}_{chunk:02d}"
            utt_rng = _rng(seed, _FAU, 2, spk, u)
            style = _FAU_STYLES.get(label) or _random_mixture(utt_rng)
            audio = _utterance(utt_rng, speaker, style, difficulty, snr_db)
            _write_wav(os.path.join(wav_dir, chunk_id + ".wav"), audio)
            confidence = utt_rng.choice([1.0, 1.0, 0.8, 0.667, 0.6])
            lines.append(f"{chunk_id} {label} {confidence:.3f}")
            chunk += 1
            if chunk == turn_len:
                turn, chunk = turn + 1, 0
                turn_len = int(plan_rng.integers(1, 4))
    path = os.path.join(root, "labels", "chunk_labels_5cl_corpus.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(sorted(lines)) + "\n")


def write_emodb(
    root: str,
    *,
    seed: int = 0,
    num_speakers: int = 10,
    utterances_per_speaker: int = 40,
    difficulty: float = 0.5,
    snr_db: float = 20.0,
) -> None:
    """Writes a synthetic EmoDB (7 classes) in the real layout: `wav/<name>.wav`.

    The speakers are the first `num_speakers` of EmoDB's own (`emodb.SPEAKERS`,
    with their genders), so `emodb.read` parses the names. Per speaker the
    emotion letters are `emodb_codes`, in a random order; utterance u speaks
    sentence `EMODB_SENTENCES[u % 10]`, and repeats of a (sentence, emotion)
    pair get the versions a, b, c, ... Every file is 22.05 kHz and exactly
    `EMODB_SECONDS` long (zero-padded), like the development copy.

    Args:
      root: output folder (created; must be empty if it exists).
      seed: random seed.
      num_speakers: 1 .. 10 speakers.
      utterances_per_speaker: 1 .. 260 (10 sentences x 26 versions).
      difficulty: 0 (well separated) .. 1 (indistinguishable).
      snr_db: speech level over background noise.
    """
    if not 1 <= num_speakers <= len(emodb.SPEAKERS):
        raise ValueError(
            f"num_speakers must be in [1, {len(emodb.SPEAKERS)}] (EmoDB's "
            f"speakers), got {num_speakers}"
        )
    most = len(EMODB_SENTENCES) * len(string.ascii_lowercase)
    if utterances_per_speaker > most:
        raise ValueError(
            f"utterances_per_speaker must be <= {most} (10 sentences x 26 "
            f"versions), got {utterances_per_speaker}"
        )
    _check_size(utterances_per_speaker, difficulty)
    _prepare(root)
    wav_dir = os.path.join(root, emodb.WAV_DIR)
    os.makedirs(wav_dir)
    counts = emodb_codes(utterances_per_speaker)
    length = int(EMODB_SECONDS * EMODB_SAMPLE_RATE)
    for spk, (code, gender) in enumerate(list(emodb.SPEAKERS.items())[:num_speakers]):
        speaker, letters, _ = _speaker_plan(seed, _EMODB, spk, gender, counts)
        versions: collections.Counter = collections.Counter()
        for u, letter in enumerate(letters):
            sentence = EMODB_SENTENCES[u % len(EMODB_SENTENCES)]
            version = string.ascii_lowercase[versions[sentence, letter]]
            versions[sentence, letter] += 1
            audio = _utterance(
                _rng(seed, _EMODB, 2, spk, u),
                speaker,
                _EMODB_STYLES[letter],
                difficulty,
                snr_db,
                sample_rate=EMODB_SAMPLE_RATE,
                speech_s=(1.2, 1.5),
                silence_s=(0.1, 0.2),
            )[:length]
            _noise.write_pcm16(
                os.path.join(wav_dir, f"{code}{sentence}{letter}{version}.wav"),
                np.pad(audio, (0, length - audio.size)),
                EMODB_SAMPLE_RATE,
            )


def write_manifest(
    root: str,
    *,
    seed: int = 0,
    num_speakers: int = 6,
    utterances_per_speaker: int = 20,
    difficulty: float = 0.5,
    snr_db: float = 20.0,
) -> str:
    """Writes a synthetic 4-emotion corpus as audio files + a CSV manifest.

    Files: `root/audio/spk01/spk01_000.wav` ...; `root/manifest.csv` with
    columns path,label,speaker,session,gender,split (paths relative to root).
    Genders alternate f, m; sessions pair speakers (session1 = spk01, spk02);
    the split is speaker-independent (`manifest_split`); labels per speaker
    are `manifest_labels`.

    Args:
      root: output folder (created; must be empty if it exists).
      seed: random seed.
      num_speakers: number of speakers (>= 1).
      utterances_per_speaker: utterances per speaker.
      difficulty: 0 (well separated) .. 1 (indistinguishable).
      snr_db: speech level over background noise.

    Returns:
      The path of the CSV file.
    """
    if num_speakers < 1:
        raise ValueError(f"num_speakers must be >= 1, got {num_speakers}")
    _check_size(utterances_per_speaker, difficulty)
    _prepare(root)
    counts = manifest_labels(utterances_per_speaker)
    rows = []
    for spk in range(num_speakers):
        name = f"spk{spk + 1:02d}"
        gender = "f" if spk % 2 == 0 else "m"
        speaker, labels, _ = _speaker_plan(seed, _MANIFEST, spk, gender, counts)
        os.makedirs(os.path.join(root, "audio", name))
        for u, label in enumerate(labels):
            utt_rng = _rng(seed, _MANIFEST, 2, spk, u)
            audio = _utterance(utt_rng, speaker, label, difficulty, snr_db)
            rel = f"audio/{name}/{name}_{u:03d}.wav"
            _write_wav(os.path.join(root, rel), audio)
            split = manifest_split(spk, num_speakers)
            rows.append([rel, label, name, f"session{spk // 2 + 1}", gender, split])
    csv_path = os.path.join(root, "manifest.csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["path", "label", "speaker", "session", "gender", "split"])
        writer.writerows(rows)
    return csv_path


def _random_mixture(rng: np.random.Generator) -> dict[str, float]:
    """A random convex mixture of the 4 basic styles (ambiguous utterances)."""
    weights = rng.dirichlet(np.ones(len(_EMOTIONS)))
    return dict(zip(_EMOTIONS, (float(w) for w in weights), strict=True))


def _largest_remainder(weights: dict[str, float], total: int) -> dict[str, int]:
    keys = list(weights)
    raw = np.array([weights[k] for k in keys]) / sum(weights.values()) * total
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return {k: int(c) for k, c in zip(keys, counts, strict=True)}


def _even_counts(keys: tuple[str, ...], total: int) -> dict[str, int]:
    """`total` split evenly over `keys`, the remainder to the first ones."""
    base, rem = divmod(total, len(keys))
    return {k: base + (i < rem) for i, k in enumerate(keys)}


def _check_size(utterances_per_speaker: int, difficulty: float) -> None:
    _noise.check_size(
        "utterances_per_speaker", utterances_per_speaker, 1, difficulty=difficulty
    )


def _speaker_plan(
    seed: int, tag: int, index: int, gender: str, counts: dict[str, int]
) -> tuple[_voice.Speaker, list[str], np.random.Generator]:
    """Speaker `index`'s voice, its labels (`counts`) in a random order, and
    the plan stream that drew the order (for further per-speaker draws)."""
    speaker = _voice.random_speaker(_rng(seed, tag, 0, index), gender)
    labels = [lab for lab, c in counts.items() for _ in range(c)]
    plan_rng = _rng(seed, tag, 1, index)
    return speaker, [labels[i] for i in plan_rng.permutation(len(labels))], plan_rng


def _utterance(
    rng: np.random.Generator,
    speaker: _voice.Speaker,
    style: str | dict[str, float],
    difficulty: float,
    snr_db: float,
    **synthesize_kwargs,
) -> np.ndarray:
    """One utterance of `style` (a style or a mixture): [samples] float64."""
    prosody = _voice.sample_style(rng, style, difficulty)
    return _voice.synthesize(rng, speaker, prosody, snr_db=snr_db, **synthesize_kwargs)


def _prepare(root: str) -> None:
    """Creates `root`; refuses a non-empty one (files would mix corpora)."""
    if os.path.isdir(root) and os.listdir(root):
        raise FileExistsError(
            f"{root} is not empty; write a synthetic corpus into a new folder"
        )
    os.makedirs(root, exist_ok=True)


def _write_wav(path: str, audio: np.ndarray) -> None:
    """16-bit PCM mono WAV at `SAMPLE_RATE`."""
    _noise.write_pcm16(path, audio, SAMPLE_RATE)
