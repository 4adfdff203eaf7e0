"""Generic CSV manifest reader: any labelled audio collection.

The CSV has a header row. Required columns: `path` (absolute, or relative to
the CSV's folder) and `label`. Optional: `id` (utterance id; default: the path
relative to the CSV's folder without its extension, '/'-separated), `speaker`,
`session`, `gender` (m / f; M, F, male, female accepted), `split` (train /
validation / test; dev and devel accepted as validation; empty = none).
Column names are matched case-insensitively; any other column is kept in
`Example.attrs`. Class order (`Corpus.labels`) is the sorted set of labels.
"""

from __future__ import annotations

import csv
import os

from jaxpara.data.types import Corpus, CorpusError, Example, is_missing_file

NAME = "manifest"
# The classes come from the CSV: `Corpus.labels` is the sorted set of its
# labels, so this module fixes none.
LABELS: tuple[str, ...] = ()
REQUIRED = ("path", "label")
OPTIONAL = ("id", "speaker", "session", "gender", "split")
DEFAULT_FILE = "manifest.csv"

_GENDERS = {"m": "m", "male": "m", "f": "f", "female": "f", "": ""}
_SPLITS = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "devel": "validation",
    "test": "test",
    "": "",
}


def read(root: str) -> Corpus:
    """Parses a CSV manifest.

    Args:
      root: path of the CSV file (a folder is accepted when it holds
        `manifest.csv`).

    Returns:
      The corpus in CSV row order, labels sorted.

    Raises:
      CorpusError: unreadable or empty CSV, a missing required column, an empty
        path or label, a missing audio file, a bad gender or split value, or a
        duplicate path or id; each names the CSV file, line and value.
    """
    csv_path = root
    if os.path.isdir(root):
        csv_path = os.path.join(root, DEFAULT_FILE)
    if not os.path.isfile(csv_path):
        raise CorpusError(
            f"manifest {root!r} is not a CSV file (nor a folder holding {DEFAULT_FILE})"
        )
    folder = os.path.dirname(os.path.abspath(csv_path))
    examples: list[Example] = []
    paths: dict[str, int] = {}
    ids: dict[str, int] = {}
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise CorpusError(f"{csv_path}: empty manifest (no header row)")
        columns = [h.strip().lower() for h in header]
        for name in REQUIRED:
            if name not in columns:
                raise CorpusError(
                    f"{csv_path}:1: missing required column {name!r}; header is "
                    f"{header}, expected at least {list(REQUIRED)}"
                )
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                raise CorpusError(
                    f"{csv_path}:{line}: {len(row)} fields, the header has "
                    f"{len(columns)}"
                )
            values = {c: v.strip() for c, v in zip(columns, row, strict=True)}
            examples.append(_example(values, csv_path, line, folder, paths, ids))
    if not examples:
        raise CorpusError(f"{csv_path}: empty manifest (no data rows)")
    labels = tuple(sorted({e.label for e in examples}))
    return Corpus(name=NAME, labels=labels, examples=examples)


def _example(
    values: dict[str, str],
    csv_path: str,
    line: int,
    folder: str,
    paths: dict[str, int],
    ids: dict[str, int],
) -> Example:
    """One CSV row -> Example; `paths` / `ids` record rows seen (duplicates)."""
    where = f"{csv_path}:{line}"
    raw_path, label = values["path"], values["label"]
    if not raw_path:
        raise CorpusError(f"{where}: empty path")
    if not label:
        raise CorpusError(f"{where}: empty label for {raw_path!r}")
    path = os.path.normpath(os.path.join(folder, raw_path))
    if path in paths:
        raise CorpusError(
            f"{where}: duplicate path {raw_path!r} (first on line {paths[path]})"
        )
    paths[path] = line
    if is_missing_file(path):
        raise CorpusError(f"{where}: missing audio file {path} (path {raw_path!r})")
    gender_raw = values.get("gender", "")
    if gender_raw.lower() not in _GENDERS:
        raise CorpusError(
            f"{where}: bad gender {gender_raw!r}; expected m, f, male, female "
            "(any case) or empty"
        )
    split_raw = values.get("split", "")
    if split_raw.lower() not in _SPLITS:
        raise CorpusError(
            f"{where}: bad split {split_raw!r}; expected train, validation "
            "(dev, devel), test or empty"
        )
    utterance_id = values.get("id", "")
    if not utterance_id:
        utterance_id = os.path.splitext(os.path.relpath(path, folder))[0]
        utterance_id = utterance_id.replace(os.sep, "/")
    if utterance_id in ids:
        raise CorpusError(
            f"{where}: duplicate utterance id {utterance_id!r} (first on line "
            f"{ids[utterance_id]}); add an 'id' column to disambiguate"
        )
    ids[utterance_id] = line
    known = set(REQUIRED) | set(OPTIONAL)
    return Example(
        utterance_id=utterance_id,
        path=path,
        label=label,
        speaker=values.get("speaker", ""),
        session=values.get("session", ""),
        gender=_GENDERS[gender_raw.lower()],
        split=_SPLITS[split_raw.lower()],
        attrs={k: v for k, v in values.items() if k not in known},
    )
