"""ICBHI 2017 Respiratory Sound Database reader (card C2).

Layout under `root`:

```
ICBHI_final_database/<recording>.wav
ICBHI_final_database/<recording>.txt     one line per respiratory cycle:
                                          start <tab> end <tab> crackle <tab> wheeze
ICBHI_challenge_train_test.txt            <recording> <tab> train|test
```

The split file may also sit inside `ICBHI_final_database/`. Recording names look
like `101_1b1_Al_sc_Meditron`: patient id (first 3 digits), recording index,
chest location, acquisition mode, device.

One `Example` per annotated cycle, `utterance_id = <recording>_<k:03d>` where
`k` is the 0-based line index of the cycle among the file's annotation lines
(stable when a cycle is excluded). Labels follow the (crackle, wheeze) flags:
normal (0,0), crackle (1,0), wheeze (0,1), both (1,1).

The official split is used as given (card C2): patients in both halves, split
names that match a recording only up to the device suffix, names that match
nothing and annotated recordings missing from the split file are recorded in
`Corpus.warnings` (and logged), never fixed and never dropped silently. A
recording missing from the split file is in neither half: its cycles are in
`Corpus.excluded` (reason `NOT_IN_SPLIT`), so results.json counts them.
Malformed annotation or split lines raise `CorpusError` naming file and line.
"""

from __future__ import annotations

import logging
import math
import os
import re

import soundfile as sf

from jaxpara.data.types import Corpus, CorpusError, Example

NAME = "icbhi"
LABELS = ("normal", "crackle", "wheeze", "both")
DATABASE_DIR = "ICBHI_final_database"
SPLIT_FILE = "ICBHI_challenge_train_test.txt"
OFFICIAL_SPLITS = ("train", "test")
NOT_IN_SPLIT = "recording absent from the official split file"

# An annotation file is a .txt whose name starts with a 3-digit patient id; the
# split file and the challenge's diagnosis / demographics files never do.
_RECORDING_RE = re.compile(r"^(\d{3})_")

logger = logging.getLogger(__name__)


def _label(crackle: int, wheeze: int) -> str:
    return LABELS[crackle + 2 * wheeze]


def _parse_float(text: str, where: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CorpusError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise CorpusError(f"{where}: {what} {text!r} is not finite")
    return value


def read_annotations(path: str) -> list[tuple[float, float, int, int]]:
    """Parses one ICBHI annotation file.

    Args:
      path: `<recording>.txt`.

    Returns:
      One `(start_s, end_s, crackle, wheeze)` tuple per non-blank line, in file
      order; flags are 0 or 1.

    Raises:
      CorpusError: a line without exactly 4 fields, a non-numeric or negative
        time, a flag other than 0/1, or end <= start (message: `path:line`).
    """
    cycles = []
    for line_no, fields, line in _nonblank_lines(path):
        where = f"{path}:{line_no}"
        if len(fields) != 4:
            raise CorpusError(
                f"{where}: expected 4 fields 'start end crackle wheeze', "
                f"got {len(fields)}: {line.rstrip()!r}"
            )
        start = _parse_float(fields[0], where, "start")
        end = _parse_float(fields[1], where, "end")
        flags = []
        for name, text in zip(("crackle", "wheeze"), fields[2:]):
            if text not in ("0", "1"):
                raise CorpusError(f"{where}: {name} flag {text!r} is not 0 or 1")
            flags.append(int(text))
        if start < 0:
            raise CorpusError(f"{where}: negative start {start}")
        if end <= start:
            raise CorpusError(f"{where}: end {end} <= start {start}")
        cycles.append((start, end, flags[0], flags[1]))
    return cycles


def _nonblank_lines(path: str):
    """Yields `(line_no, fields, line)` of each non-blank line of a text file."""
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            fields = line.split()
            if fields:
                yield line_no, fields, line


def find_split_file(root: str) -> str:
    """Returns the official split file: under `root`, else under the database."""
    candidates = [
        os.path.join(root, SPLIT_FILE),
        os.path.join(root, DATABASE_DIR, SPLIT_FILE),
    ]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise CorpusError(
        f"ICBHI split file {SPLIT_FILE!r} not found; looked for {candidates}"
    )


def read_split_file(path: str) -> list[tuple[str, str, int]]:
    """Parses the official split file.

    Args:
      path: `ICBHI_challenge_train_test.txt`.

    Returns:
      `(name, split, line_no)` per non-blank line; `split` is 'train' or
      'test'; a trailing `.wav` / `.txt` on the name is removed.

    Raises:
      CorpusError: a line that is not `<name> train|test`, or one name listed
        with two different splits (message: `path:line`).
    """
    entries: list[tuple[str, str, int]] = []
    seen: dict[str, tuple[str, int]] = {}
    for line_no, fields, line in _nonblank_lines(path):
        where = f"{path}:{line_no}"
        if len(fields) != 2 or fields[1].lower() not in OFFICIAL_SPLITS:
            raise CorpusError(
                f"{where}: expected '<recording> train|test', got {line.rstrip()!r}"
            )
        name, split = fields[0], fields[1].lower()
        if name.endswith((".wav", ".txt")):
            name = name[:-4]
        if name in seen:
            first_split, first_line = seen[name]
            if first_split != split:
                raise CorpusError(
                    f"{where}: {name!r} is listed as {split!r} here and as "
                    f"{first_split!r} on line {first_line}"
                )
            continue  # An exact repeat carries no information.
        seen[name] = (split, line_no)
        entries.append((name, split, line_no))
    return entries


def _device_prefix(name: str) -> str:
    """The recording name without its device suffix (last `_` part)."""
    return name.rsplit("_", 1)[0]


def match_split(
    entries: list[tuple[str, str, int]], recordings: list[str], split_path: str
) -> tuple[dict[str, str], list[str]]:
    """Assigns the official split to recordings.

    An entry matches a recording of the same name; failing that, the one
    recording (not itself named in the split file) whose name agrees up to the
    device suffix. Every other case is recorded, not fixed.

    Args:
      entries: from `read_split_file`.
      recordings: names of the annotated recordings.
      split_path: the split file, for messages.

    Returns:
      `(split of each matched recording, warnings)`.
    """
    warnings: list[str] = []
    available = set(recordings)
    listed = {name for name, _, _ in entries}
    by_prefix: dict[str, list[str]] = {}
    for rec in sorted(available - listed):
        by_prefix.setdefault(_device_prefix(rec), []).append(rec)

    split_of: dict[str, str] = {}
    fuzzy: list[str] = []
    unmatched: list[str] = []
    for name, split, line_no in entries:
        if name in available:
            split_of[name] = split
            continue
        candidates = [
            r for r in by_prefix.get(_device_prefix(name), []) if r not in split_of
        ]
        if len(candidates) == 1:
            split_of[candidates[0]] = split
            fuzzy.append(f"{name!r} (line {line_no}) -> {candidates[0]!r}")
        elif candidates:
            unmatched.append(
                f"{name!r} (line {line_no}, ambiguous: {', '.join(candidates)})"
            )
        else:
            unmatched.append(f"{name!r} (line {line_no})")
    if fuzzy:
        warnings.append(
            f"{split_path}: {len(fuzzy)} split name(s) match a recording only up "
            f"to the device suffix and were used for it: {'; '.join(fuzzy)}"
        )
    if unmatched:
        warnings.append(
            f"{split_path}: {len(unmatched)} split name(s) match no recording: "
            f"{'; '.join(unmatched)}"
        )
    missing = sorted(available - set(split_of))
    if missing:
        warnings.append(
            f"{split_path}: {len(missing)} annotated recording(s) are absent from "
            "the split file and left out of both halves (their cycles are "
            f"excluded): {', '.join(missing)}"
        )
    return split_of, warnings


def patient_overlap(split_of: dict[str, str]) -> list[str]:
    """Patient ids whose recordings appear in more than one official split."""
    splits: dict[str, set[str]] = {}
    for rec, split in split_of.items():
        splits.setdefault(rec[:3], set()).add(split)
    return sorted(p for p, s in splits.items() if len(s) > 1)


def read(root: str) -> Corpus:
    """Reads the ICBHI 2017 database, one example per respiratory cycle.

    Args:
      root: folder holding `ICBHI_final_database/` and the split file.

    Returns:
      Corpus 'icbhi' with labels `LABELS`; `speaker` is the patient id, `split`
      'train' / 'test' from the official file, `attrs = {'recording',
      'device'}`. Cycles of recordings absent from the split file and cycles
      starting at or past the end of their file are in `excluded`; cycles
      reaching past it are clipped to the file length and noted in
      `warnings`, as are split-file problems.

    Raises:
      CorpusError: missing database folder or split file, an annotation file
        without its wav, or a malformed annotation / split line.
    """
    database = os.path.join(root, DATABASE_DIR)
    if not os.path.isdir(database):
        raise CorpusError(f"ICBHI database folder not found: {database}")
    split_path = find_split_file(root)

    warnings: list[str] = []
    excluded: list[tuple[str, str]] = []
    files = set(os.listdir(database))
    recordings = sorted(
        f[:-4] for f in files if f.endswith(".txt") and _RECORDING_RE.match(f)
    )
    for rec in recordings:
        if rec + ".wav" not in files:
            raise CorpusError(
                f"{os.path.join(database, rec + '.txt')}: annotation file has no "
                f"audio; expected {os.path.join(database, rec + '.wav')}"
            )
    for wav in sorted(f for f in files if f.endswith(".wav")):
        if wav[:-4] + ".txt" not in files:
            path = os.path.abspath(os.path.join(database, wav))
            excluded.append((path, "recording has no annotation (.txt) file"))

    split_of, split_warnings = match_split(
        read_split_file(split_path), recordings, split_path
    )
    warnings.extend(split_warnings)
    overlap = patient_overlap(split_of)
    if overlap:
        warnings.append(
            f"{split_path}: {len(overlap)} patient(s) appear in both the train and "
            f"test halves of the official split (used as given): {', '.join(overlap)}"
        )

    examples: list[Example] = []
    clipped: list[str] = []
    late: list[str] = []
    for rec in recordings:
        wav = os.path.abspath(os.path.join(database, rec + ".wav"))
        txt = os.path.join(database, rec + ".txt")
        try:
            info = sf.info(wav)
        except RuntimeError as e:
            raise CorpusError(f"{wav}: unreadable audio file: {e}") from None
        duration = info.frames / info.samplerate
        attrs = {"recording": rec, "device": rec.rsplit("_", 1)[-1]}
        for k, (start, end, crackle, wheeze) in enumerate(read_annotations(txt)):
            uid = f"{rec}_{k:03d}"
            if rec not in split_of:
                excluded.append((uid, NOT_IN_SPLIT))
                continue
            if start >= duration:
                late.append(uid)
                excluded.append(
                    (
                        uid,
                        f"cycle starts at {start:.3f} s, at or past the end of "
                        f"{wav} ({duration:.3f} s)",
                    )
                )
                continue
            if end > duration:
                clipped.append(f"{uid} ({end:.3f} s > {duration:.3f} s)")
                end = duration
            examples.append(
                Example(
                    utterance_id=uid,
                    path=wav,
                    label=_label(crackle, wheeze),
                    speaker=rec[:3],
                    split=split_of[rec],
                    start=start,
                    end=end,
                    attrs=attrs,
                )
            )
    if clipped:
        warnings.append(
            f"{len(clipped)} cycle(s) end past their file and were clipped to its "
            f"length: {', '.join(clipped)}"
        )
    if late:
        warnings.append(
            f"{len(late)} cycle(s) start at or past the end of their file and "
            f"were excluded: {', '.join(late)}"
        )
    for message in warnings:
        logger.warning("ICBHI: %s", message)
    return Corpus(
        name=NAME,
        labels=LABELS,
        examples=examples,
        excluded=excluded,
        warnings=warnings,
    )
