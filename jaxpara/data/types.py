"""Records shared by every corpus reader, split builder and the pipeline."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Mapping, Sequence

from jaxpara.errors import UserError

SPLITS = ("train", "validation", "test")


class CorpusError(UserError, ValueError):
    """A corpus on disk is malformed (missing file, unknown label, bad layout)."""


def is_missing_file(path: str) -> bool:
    """True when `path` certainly is not a file (it or a parent does not exist).

    A path that cannot be checked (permission denied, I/O error, a symlink
    loop: an unreadable folder) is not "missing": readers keep the example,
    and decoding it fails with an `AudioError` naming the file, which
    `data.on_error` then handles (a counted skip in training splits, an error
    in evaluation splits) instead of the whole corpus being refused.
    """
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False


@dataclasses.dataclass(frozen=True)
class Example:
    """One utterance (or one respiratory cycle) of a corpus.

    Attributes:
      utterance_id: unique id within the corpus (ICBHI cycles: `<recording>_<k>`).
      path: absolute path of the audio file.
      label: class name, one of `Corpus.labels`.
      speaker: speaker / patient id ('' if unknown).
      session: recording session ('' if unknown).
      gender: 'm', 'f' or '' (unknown).
      split: the corpus's own split for this example: 'train', 'validation',
        'test' or '' when the corpus defines none.
      start: start of the excerpt in the file, seconds.
      end: end of the excerpt in seconds; None = to the end of the file.
      speed: speed-perturbation factor the decoder applies (1 = none; only
        the training copies of `pipeline.speed_copies` differ).
      attrs: further corpus-specific metadata (e.g. {"improvised": "1"}).
    """

    utterance_id: str
    path: str
    label: str
    speaker: str = ""
    session: str = ""
    gender: str = ""
    split: str = ""
    start: float = 0.0
    end: float | None = None
    speed: float = 1.0
    attrs: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False)


@dataclasses.dataclass
class Corpus:
    """A parsed corpus: its class order, its examples and what was not used.

    Attributes:
      name: registry name ('iemocap', 'icbhi', ...).
      labels: class names; the class index of a label is its position here.
      examples: every usable example.
      excluded: (utterance id or path, reason) for items the protocol leaves out
        by definition (e.g. IEMOCAP 'fru' utterances in a 4-class task); counted
        and reported, never silent.
      warnings: problems the corpus's own definition contains that are recorded
        rather than fixed (e.g. ICBHI official-split patient overlap).
    """

    name: str
    labels: tuple[str, ...]
    examples: list[Example]
    excluded: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    def label_index(self, label: str) -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            raise CorpusError(
                f"unknown label {label!r} in corpus {self.name!r}; "
                f"expected one of {list(self.labels)}"
            ) from None

    def by_id(self) -> dict[str, Example]:
        return {e.utterance_id: e for e in self.examples}

    def counts(self, field: str = "label") -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.examples:
            key = getattr(e, field)
            out[key] = out.get(key, 0) + 1
        return out


@dataclasses.dataclass
class Fold:
    """One train/validation/test partition of a corpus's examples.

    Attributes:
      name: e.g. 'predefined', 'session5', 'speaker_Ses01F'.
      train, validation, test: the examples of each split.
      warnings: recorded problems (e.g. an official split with patient overlap).
    """

    name: str
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    warnings: list[str] = dataclasses.field(default_factory=list)

    def split(self, name: str) -> list[Example]:
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    def items(self) -> Sequence[tuple[str, list[Example]]]:
        return [(s, getattr(self, s)) for s in SPLITS]
