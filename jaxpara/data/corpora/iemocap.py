"""IEMOCAP reader: 4 emotion classes from the EmoEvaluation files.

Layout (the corpus as distributed)::

    root/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav
    root/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt
    ... Session2 .. Session5

Each EmoEvaluation file holds one line per utterance,

    [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]

(start - end in the dialogue, utterance id, majority emotion code, valence /
activation / dominance), followed by annotator lines (`C-E1: ...`, `A-F1: ...`),
blank lines and a `%` header: only lines that start with `[` are read, and
such a line must have that form.

Classes (cards C3, C4, C5): neu -> neutral, hap and exc -> happy (merged),
sad -> sad, ang -> angry. Every other IEMOCAP code (fru, sur, fea, dis, oth,
xxx) is moved to `Corpus.excluded` with its reason; a code outside the IEMOCAP
set is a `CorpusError`. Improvised = 'impro' in the dialogue name; the speaker
is the session plus the gender letter of the utterance id's last part
(`Ses01F_impro01_M012` -> speaker `Ses01M`, gender 'm').
"""

from __future__ import annotations

import os
import re

from jaxpara.data.types import Corpus, CorpusError, Example, is_missing_file

NAME = "iemocap"
LABELS: tuple[str, ...] = ("neutral", "happy", "sad", "angry")
# Emotion code -> class; codes mapped to None are IEMOCAP codes outside the
# 4-class task (excluded, counted).
CODES: dict[str, str | None] = {
    "neu": "neutral",
    "hap": "happy",
    "exc": "happy",
    "sad": "sad",
    "ang": "angry",
    "fru": None,
    "sur": None,
    "fea": None,
    "dis": None,
    "oth": None,
    "xxx": None,
}

_SESSION_DIR = re.compile(r"^Session(\d+)$")
_LINE = re.compile(
    r"^\[\s*(?P<start>\d+(?:\.\d*)?)\s*-\s*(?P<end>\d+(?:\.\d*)?)\s*\]"
    r"\s+(?P<utt>\S+)\s+(?P<code>\S+)\s+\[[^\]]*\]\s*$"
)
_UTT = re.compile(r"^Ses(?P<session>\d+)[FM]_(?P<rest>.+)_(?P<gender>[FM])\d+$")


def _session_dirs(root: str) -> list[tuple[int, str]]:
    """(number, path) of every `Session<N>` folder of root, by number."""
    if not os.path.isdir(root):
        raise CorpusError(f"IEMOCAP root {root!r} is not a folder")
    found = []
    for name in os.listdir(root):
        match = _SESSION_DIR.match(name)
        if match and os.path.isdir(os.path.join(root, name)):
            found.append((int(match.group(1)), os.path.join(root, name)))
    if not found:
        raise CorpusError(
            f"{root!r} does not look like IEMOCAP: expected folders Session1 .. "
            "Session5, each with sentences/wav/<dialog>/<utterance>.wav and "
            "dialog/EmoEvaluation/<dialog>.txt"
        )
    return sorted(found)


def _evaluation_files(session_dir: str) -> list[str]:
    folder = os.path.join(session_dir, "dialog", "EmoEvaluation")
    if not os.path.isdir(folder):
        raise CorpusError(
            f"IEMOCAP session folder {session_dir!r} has no dialog/EmoEvaluation "
            "folder (expected dialog/EmoEvaluation/<dialog>.txt)"
        )
    # Only the per-dialogue files directly inside; sub-folders (Categorical/,
    # Attribute/, Self-evaluation/) hold per-annotator files. Names starting
    # with '.' are macOS resource forks found in some copies.
    return sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.endswith(".txt")
        and not name.startswith(".")
        and os.path.isfile(os.path.join(folder, name))
    )


def read(root: str, *, improvised_only: bool = False) -> Corpus:
    """Parses IEMOCAP into the 4-class emotion task.

    Examples are ordered by session number, EmoEvaluation file name and line.

    Args:
      root: folder holding Session1 .. Session5.
      improvised_only: move utterances of scripted dialogues to
        `Corpus.excluded` (cards C3, C5).

    Returns:
      The corpus: labels `LABELS`; speaker 'Ses01F'-style, gender 'm'/'f',
      session 'Session1'-style, split '' (protocols decide); attrs
      'improvised' ('1'/'0'), 'dialog' and 'code' (the original emotion code).
      An utterance excluded for its emotion code is not also listed as
      scripted.

    Raises:
      CorpusError: unknown layout, a malformed EmoEvaluation line, an unknown
        emotion code, a duplicate utterance id, or a labelled utterance whose
        wav is missing (naming the wav and the EmoEvaluation file and line).
    """
    examples: list[Example] = []
    excluded: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for _, session_dir in _session_dirs(root):
        session = os.path.basename(session_dir)
        wav_dir = os.path.join(session_dir, "sentences", "wav")
        for txt in _evaluation_files(session_dir):
            with open(txt, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
            for line_no, line in enumerate(lines, start=1):
                if not line.startswith("["):
                    continue
                where = f"{txt}:{line_no}"
                match = _LINE.match(line)
                if match is None:
                    raise CorpusError(
                        f"{where}: malformed EmoEvaluation line {line!r}; expected "
                        "'[start - end]<TAB>utterance<TAB>code<TAB>[v, a, d]'"
                    )
                utt, code = match.group("utt"), match.group("code")
                if code not in CODES:
                    raise CorpusError(
                        f"{where}: unknown emotion code {code!r} for {utt}; "
                        f"expected one of {sorted(CODES)}"
                    )
                parts = _UTT.match(utt)
                if parts is None:
                    raise CorpusError(
                        f"{where}: utterance id {utt!r} is not of the form "
                        "Ses01F_<dialog>_F000"
                    )
                if utt in seen:
                    raise CorpusError(
                        f"{where}: utterance {utt} is listed twice (first at "
                        f"{seen[utt]})"
                    )
                seen[utt] = where
                label = CODES[code]
                dialog = utt.rsplit("_", 1)[0]
                improvised = "impro" in dialog
                if label is None:
                    excluded.append(
                        (utt, f"emotion code {code!r} is not in the 4-class task")
                    )
                    continue
                if improvised_only and not improvised:
                    excluded.append((utt, "scripted dialogue (improvised_only=True)"))
                    continue
                wav = os.path.join(wav_dir, dialog, utt + ".wav")
                if is_missing_file(wav):
                    raise CorpusError(
                        f"missing wav {wav} for utterance {utt} labelled "
                        f"{code!r} at {where}"
                    )
                gender = parts.group("gender")
                examples.append(
                    Example(
                        utterance_id=utt,
                        path=os.path.abspath(wav),
                        label=label,
                        speaker=f"Ses{parts.group('session')}{gender}",
                        session=session,
                        gender=gender.lower(),
                        split="",
                        attrs={
                            "improvised": "1" if improvised else "0",
                            "dialog": dialog,
                            "code": code,
                        },
                    )
                )
    if not examples:
        raise CorpusError(
            f"no usable IEMOCAP utterances under {root!r} "
            f"({len(excluded)} excluded by the protocol)"
        )
    return Corpus(name=NAME, labels=LABELS, examples=examples, excluded=excluded)
