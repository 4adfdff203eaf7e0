"""FAU Aibo Emotion Corpus reader: the 5-class chunk task (card C3).

Layout::

    root/wav/Ohm_01_001_00.wav ...
    root/labels/chunk_labels_5cl_corpus.txt

The label file has one chunk per line, whitespace separated:
`<chunk id> <label> [<confidence>]`, e.g. `Ohm_01_001_00 N 1.000`; blank lines
and lines starting with '#' are skipped. Labels: A (Anger), E (Emphatic),
N (Neutral), P (Positive), R (Rest). The school is the id's prefix: Ohm chunks
are the training split, Mont chunks the test split (the INTERSPEECH 2009
partition, 9,959 / 8,257 chunks). The speaker is school + speaker number
(`Ohm_01`).
"""

from __future__ import annotations

import os

from jaxpara.data.types import Corpus, CorpusError, Example

NAME = "fau_aibo"
LABELS: tuple[str, ...] = ("A", "E", "N", "P", "R")
LABEL_FILE = os.path.join("labels", "chunk_labels_5cl_corpus.txt")
SCHOOL_SPLITS = {"Ohm": "train", "Mont": "test"}


def read(root: str) -> Corpus:
    """Parses FAU Aibo (5 classes), in label-file order.

    Args:
      root: folder holding wav/ and labels/.

    Returns:
      The corpus: labels `LABELS`; speaker 'Ohm_01'-style, split 'train'
      (Ohm) or 'test' (Mont), gender and session '' (not in this layout);
      attrs 'school' and 'confidence' (as written, '' when absent). Wav files
      without a label line are counted in `Corpus.warnings`.

    Raises:
      CorpusError: missing label file or wav folder, a malformed line, an
        unknown label or school, a duplicate chunk id, or a labelled chunk
        whose wav is missing (each naming the label file and line).
    """
    label_path = os.path.join(root, LABEL_FILE)
    wav_dir = os.path.join(root, "wav")
    if not os.path.isfile(label_path) or not os.path.isdir(wav_dir):
        raise CorpusError(
            f"{root!r} does not look like FAU Aibo: expected {label_path} and "
            f"the folder {wav_dir}"
        )
    examples: list[Example] = []
    seen: dict[str, int] = {}
    with open(label_path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for line_no, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{label_path}:{line_no}"
        if len(fields) not in (2, 3):
            raise CorpusError(
                f"{where}: expected '<chunk id> <label> [<confidence>]', got {line!r}"
            )
        chunk, label = fields[0], fields[1]
        confidence = fields[2] if len(fields) == 3 else ""
        if label not in LABELS:
            raise CorpusError(
                f"{where}: unknown label {label!r} for chunk {chunk}; expected "
                f"one of {list(LABELS)}"
            )
        if confidence:
            try:
                float(confidence)
            except ValueError:
                raise CorpusError(
                    f"{where}: confidence {confidence!r} of chunk {chunk} is not "
                    "a number"
                ) from None
        parts = chunk.split("_")
        school = parts[0]
        if school not in SCHOOL_SPLITS or len(parts) < 3:
            raise CorpusError(
                f"{where}: chunk id {chunk!r} is not of the form "
                f"<school>_<speaker>_<turn>[_<chunk>] with school in "
                f"{sorted(SCHOOL_SPLITS)}"
            )
        if chunk in seen:
            raise CorpusError(
                f"{where}: chunk {chunk} is listed twice (first on line {seen[chunk]})"
            )
        seen[chunk] = line_no
        wav = os.path.join(wav_dir, chunk + ".wav")
        if not os.path.isfile(wav):
            raise CorpusError(f"missing wav {wav} for chunk {chunk} at {where}")
        examples.append(
            Example(
                utterance_id=chunk,
                path=os.path.abspath(wav),
                label=label,
                speaker=f"{school}_{parts[1]}",
                split=SCHOOL_SPLITS[school],
                attrs={"school": school, "confidence": confidence},
            )
        )
    if not examples:
        raise CorpusError(f"{label_path} lists no chunks")
    warnings = []
    unlabelled = sum(
        1
        for name in os.listdir(wav_dir)
        if name.endswith(".wav") and name[: -len(".wav")] not in seen
    )
    if unlabelled:
        warnings.append(
            f"{unlabelled} wav file(s) in {wav_dir} have no line in {label_path} "
            "and are not used"
        )
    return Corpus(name=NAME, labels=LABELS, examples=examples, warnings=warnings)
