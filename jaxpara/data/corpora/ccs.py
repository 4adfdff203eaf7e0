"""ComParE 2021 COVID-19 Cough Sub-Challenge (CCS) reader (card C1).

Layout under `root`:

```
wav/<filename>.wav
lab/train.csv   lab/devel.csv   lab/test.csv     header `filename,label`,
                                                 label `positive` | `negative`
```

Partitions map to splits train / validation (devel) / test (card C1: 286 / 231
/ 208 files). `utterance_id` is the file name without extension. CCS ships no
speaker ids, so `speaker` is '' and the partitions' speaker independence cannot
be checked; the corpus records this in `Corpus.warnings`.
"""

from __future__ import annotations

import csv
import logging
import os

from jaxpara.data.types import Corpus, CorpusError, Example

NAME = "ccs"
LABELS = ("negative", "positive")
# CSV file name -> split name, in reading order.
PARTITIONS = (("train", "train"), ("devel", "validation"), ("test", "test"))
NO_SPEAKER_NOTE = (
    "CCS has no speaker ids: speaker is '' and speaker independence of the "
    "partitions cannot be checked"
)

logger = logging.getLogger(__name__)


def read_labels(csv_path: str) -> list[tuple[str, str, int]]:
    """Parses one partition file.

    Args:
      csv_path: `lab/<partition>.csv` with a header naming `filename` and
        `label` columns.

    Returns:
      `(filename, label, line_no)` per non-blank data row, in file order; the
      label is lower-cased and one of `LABELS`.

    Raises:
      CorpusError: missing columns, a short row, an empty filename or an
        unknown label (message: `csv_path:line`).
    """
    rows: list[tuple[str, str, int]] = []
    with open(csv_path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = None
        for row in reader:
            line_no = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in row]
                if "filename" not in header or "label" not in header:
                    raise CorpusError(
                        f"{csv_path}:{line_no}: header must name columns "
                        f"'filename' and 'label', got {row}"
                    )
                name_col, label_col = header.index("filename"), header.index("label")
                continue
            where = f"{csv_path}:{line_no}"
            if len(row) <= max(name_col, label_col):
                raise CorpusError(f"{where}: expected columns {header}, got {row}")
            filename = row[name_col].strip()
            label = row[label_col].strip().lower()
            if not filename:
                raise CorpusError(f"{where}: empty filename")
            if label not in LABELS:
                raise CorpusError(
                    f"{where}: unknown label {row[label_col]!r} for {filename!r}; "
                    f"expected one of {list(LABELS)}"
                )
            rows.append((filename, label, line_no))
    if header is None:
        raise CorpusError(f"{csv_path}: empty file (no 'filename,label' header)")
    return rows


def read(root: str) -> Corpus:
    """Reads the CCS corpus.

    Args:
      root: folder holding `wav/` and `lab/`.

    Returns:
      Corpus 'ccs' with labels `LABELS`, examples in partition order (train,
      devel, test) and file order within each; `attrs = {'partition'}`.
      Wav files listed in no partition are counted in `warnings`.

    Raises:
      CorpusError: missing `lab/` or `wav/` folder or partition file, unknown
        label, a listed wav that does not exist (names csv, line and wav), or a
        file listed twice (within or across partitions).
    """
    lab_dir = os.path.join(root, "lab")
    wav_dir = os.path.join(root, "wav")
    if not os.path.isdir(lab_dir):
        raise CorpusError(f"CCS label folder not found: {lab_dir}")
    if not os.path.isdir(wav_dir):
        raise CorpusError(f"CCS audio folder not found: {wav_dir}")
    csv_paths = [os.path.join(lab_dir, p + ".csv") for p, _ in PARTITIONS]
    missing = [p for p in csv_paths if not os.path.isfile(p)]
    if missing:
        raise CorpusError(f"CCS partition file(s) not found: {', '.join(missing)}")

    examples: list[Example] = []
    first_seen: dict[str, str] = {}
    for (partition, split), csv_path in zip(PARTITIONS, csv_paths):
        for filename, label, line_no in read_labels(csv_path):
            where = f"{csv_path}:{line_no}"
            if not os.path.splitext(filename)[1]:
                filename += ".wav"
            if filename in first_seen:
                raise CorpusError(
                    f"{where}: {filename!r} is already listed at {first_seen[filename]}"
                )
            first_seen[filename] = where
            wav = os.path.abspath(os.path.join(wav_dir, filename))
            if not os.path.isfile(wav):
                raise CorpusError(f"{where}: audio file not found: {wav}")
            examples.append(
                Example(
                    utterance_id=os.path.splitext(filename)[0],
                    path=wav,
                    label=label,
                    split=split,
                    attrs={"partition": partition},
                )
            )

    warnings = [NO_SPEAKER_NOTE]
    unlisted = sorted(
        f for f in os.listdir(wav_dir) if f.endswith(".wav") and f not in first_seen
    )
    if unlisted:
        warnings.append(
            f"{len(unlisted)} wav file(s) in {wav_dir} are listed in no partition "
            f"and are not used: {', '.join(unlisted)}"
        )
        logger.warning("CCS: %s", warnings[-1])
    return Corpus(name=NAME, labels=LABELS, examples=examples, warnings=warnings)
