"""Evaluation protocols: a corpus's examples -> train / validation / test folds.

Protocols (`config.protocol.name`):
  predefined:   the corpus's own split (`Example.split`); a missing validation
                split is carved from the training subjects (card C2: 30% of the
                official training patients).
  loso_session: leave one session out; the held-out session is split by
                speaker into validation and test (card C3).
  loso_speaker: leave one speaker out; the validation speaker is the test
                speaker's session partner (card C5: 8 train, 1 validation,
                1 test speaker).

Validation (`config.protocol.validation`), for every protocol:
  default:        the protocol's own carve-out, as above.
  none:           no validation split (fixed epochs, final checkpoint; cards
                  C3 FAU Aibo, C4). What the protocol would have validated on
                  goes where the papers put it: predefined trains on it (FAU
                  Aibo: all of Ohm), loso_session tests on the WHOLE held-out
                  session (card C4 IEM4: all of session 5). loso_speaker trains
                  on every speaker that shares no session with the test speaker
                  (without sessions: all others); the test speaker's session
                  partners are in no split of the fold (they share its
                  dialogues), which `Fold.warnings` records.
  train_subjects: as `none`, then `validation_fraction` of the fold's training
                  subjects validate (`holdout_by_subject`), so the held-out
                  session / speaker is tested whole and still no test label
                  selects a checkpoint.

Every fold is checked: no split may be empty (validation may be, with
`none`), and the subject-independent protocols raise `SplitOverlapError` when
a speaker appears in two splits. The official predefined split is used as
given and its overlaps are recorded in `Fold.warnings` instead (card C2).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from jaxpara.data.types import SPLITS, Corpus, Example, Fold

PROTOCOLS = ("predefined", "loso_session", "loso_speaker")
VALIDATION = ("default", "none", "train_subjects")
UNASSIGNED = ("error", "train")
_FIELDS = tuple(f.name for f in dataclasses.fields(Example))


class SplitOverlapError(ValueError):
    """A speaker / patient appears in more than one split of a fold."""


@dataclasses.dataclass(frozen=True)
class Validation:
    """How a protocol makes its validation split (`config.protocol`).

    Attributes:
      mode: one of `VALIDATION` (see the module docstring).
      fraction: holdout share of the training subjects (predefined without a
        validation split of its own; 'train_subjects').
      seed: holdout shuffling seed.
    """

    mode: str = "default"
    fraction: float = 0.3
    seed: int = 0

    def __post_init__(self):
        if self.mode not in VALIDATION:
            raise ValueError(
                f"protocol.validation must be one of {list(VALIDATION)}, got "
                f"{self.mode!r}"
            )

    def from_train(self, train: list[Example]) -> tuple[list[Example], list[Example]]:
        """(train, validation) of the 'none' and 'train_subjects' modes."""
        if self.mode == "train_subjects":
            return holdout_by_subject(train, self.fraction, self.seed)
        return train, []


def check_disjoint(fold: Fold, key: str = "speaker") -> None:
    """Raises if any value of `key` occurs in two splits of `fold`.

    Examples whose `key` is empty (corpora without speakers, e.g. CCS) are
    ignored.

    Args:
      fold: the fold to check.
      key: an `Example` field, usually 'speaker' (patients for ICBHI).

    Raises:
      SplitOverlapError: naming each pair of splits and the shared values.
    """
    overlaps = _overlaps(fold, key)
    if overlaps:
        raise SplitOverlapError(
            f"fold {fold.name!r} is not {key}-independent: "
            + "; ".join(f"{a} and {b} share {key}s {v}" for a, b, v in overlaps)
        )


def holdout_by_subject(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Splits off about `fraction` of the subjects (speakers / patients).

    Speakers are sorted, shuffled with `np.random.default_rng(seed)` and the
    first `round(fraction * num_speakers)` (at least 1, at most all but 1) are
    held out with all their examples. If no example has a speaker, a stratified
    random holdout of `round(fraction * n_label)` utterances per label is used.

    Args:
      examples: the examples to split (e.g. the official training split).
      fraction: share of subjects (or utterances) to hold out, in (0, 1).
      seed: shuffling seed.

    Returns:
      (kept, held_out), each in the input order.

    Raises:
      ValueError: fraction outside (0, 1); only some examples have a speaker;
        fewer than 2 speakers; or too few examples for a non-empty holdout.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            f"validation fraction must be in (0, 1), got {fraction} "
            "(protocol.validation_fraction)"
        )
    examples = list(examples)
    rng = np.random.default_rng(seed)
    no_speaker = [e.utterance_id for e in examples if not e.speaker]
    if no_speaker and len(no_speaker) < len(examples):
        raise ValueError(
            f"{len(no_speaker)} of {len(examples)} examples have no speaker, so "
            f"a subject-independent holdout is impossible; e.g. {no_speaker[:5]}"
        )
    if not no_speaker:
        speakers = sorted({e.speaker for e in examples})
        if len(speakers) < 2:
            raise ValueError(
                f"a subject-independent holdout needs >= 2 speakers, got {speakers}"
            )
        n_hold = min(max(_round(fraction * len(speakers)), 1), len(speakers) - 1)
        held = set(rng.permutation(speakers)[:n_hold].tolist())
        mask = [e.speaker in held for e in examples]
    else:
        mask = [False] * len(examples)
        for label in sorted({e.label for e in examples}):
            members = [i for i, e in enumerate(examples) if e.label == label]
            chosen = rng.permutation(members)[: _round(fraction * len(members))]
            for i in chosen:
                mask[int(i)] = True
        if not any(mask) or all(mask):
            raise ValueError(
                f"a stratified holdout of {fraction} of {len(examples)} "
                "utterances leaves a side empty; too few examples"
            )
    kept = [e for e, m in zip(examples, mask) if not m]
    held_out = [e for e, m in zip(examples, mask) if m]
    return kept, held_out


def predefined(
    corpus: Corpus,
    *,
    validation: Validation = Validation(),
    unassigned: str = "error",
) -> Fold:
    """The corpus's own split (`Example.split`), used as given.

    If the corpus defines no validation examples, a subject-independent holdout
    of `validation.fraction` of the training speakers becomes the validation
    split (card C2: 30% of the official training patients); it is disjoint from
    the remaining training speakers by construction. Speakers shared by two
    official splits are not an error (card C2: the benchmark's definition even
    where imperfect): each such overlap is appended to `Fold.warnings`.

    Args:
      corpus: the parsed corpus.
      validation: modes 'none' and 'train_subjects' first move the corpus's
        own validation examples (if any) into training, so 'none' trains on
        the whole official training side (card C3 FAU Aibo: all of Ohm).
      unassigned: what to do with examples whose split is '': 'error' (raise)
        or 'train' (use them for training).

    Returns:
      A fold named 'predefined'.

    Raises:
      ValueError: unknown split values, unassigned examples with
        unassigned='error', or an empty split.
    """
    if unassigned not in UNASSIGNED:
        raise ValueError(f"unassigned must be one of {UNASSIGNED}, got {unassigned!r}")
    by_split: dict[str, list[Example]] = {s: [] for s in SPLITS}
    unknown: list[Example] = []
    blank: list[Example] = []
    for e in corpus.examples:
        if e.split in by_split:
            by_split[e.split].append(e)
        elif e.split == "":
            blank.append(e)
        else:
            unknown.append(e)
    if unknown:
        raise ValueError(
            f"corpus {corpus.name!r}: {len(unknown)} examples have a split outside "
            f"{SPLITS}: e.g. {[(e.utterance_id, e.split) for e in unknown[:5]]}"
        )
    if blank:
        if unassigned == "error":
            raise ValueError(
                f"corpus {corpus.name!r}: {len(blank)} examples have no predefined "
                f"split (e.g. {[e.utterance_id for e in blank[:5]]}); use a "
                "loso protocol or predefined(..., unassigned='train')"
            )
        by_split["train"].extend(blank)
    train, held = by_split["train"], by_split["validation"]
    if validation.mode != "default":
        train, held = validation.from_train(train + held)
    elif not held and train:
        train, held = holdout_by_subject(train, validation.fraction, validation.seed)
    fold = _checked_fold(
        "predefined", train, held, by_split["test"], validation, disjoint=False
    )
    for a, b, shared in _overlaps(fold, "speaker"):
        fold.warnings.append(
            f"predefined split of {corpus.name!r}: {len(shared)} speakers/patients "
            f"in both {a} and {b}: {shared}"
        )
    return fold


def leave_one_session_out(
    corpus: Corpus,
    *,
    test_session: str | None = None,
    validation: Validation = Validation(),
) -> list[Fold]:
    """One fold per session (card C3): train = the other sessions.

    Mode 'default': the held-out session is split by speaker. Its
    speakers are sorted and rotated by the session's position i in sorted
    session order; the first ceil(n / 2) of the rotated list test, the rest
    validate. With IEMOCAP's two speakers per session the test speaker
    alternates F, M, F, M, F over sessions 1-5 (sorted ids 'Ses01F' <
    'Ses01M'), so neither gender is always the test speaker. With 'none' or
    'train_subjects' the whole held-out session tests (card C4 IEM4: sessions
    1-4 train, all of session 5 tests); 'train_subjects' validates on
    `validation.fraction` of the training speakers.

    Args:
      corpus: a corpus whose examples all have a session (and, in mode
        'default', a speaker).
      test_session: only build the fold of this session (None = all).
      validation: the validation mode and holdout.

    Returns:
      Folds named `session<k>` ('Session5' and '5' both give 'session5'), in
      sorted session order.

    Raises:
      ValueError: missing sessions / speakers, fewer than 2 sessions, a held-out
        session with fewer than 2 speakers (mode 'default'), an unknown
        `test_session`, or an empty split.
      SplitOverlapError: a speaker recorded in two sessions.
    """
    sessions = _distinct(corpus, "session", "loso_session", 2)
    if test_session is not None and test_session not in sessions:
        raise ValueError(
            f"test_session {test_session!r} is not a session of corpus "
            f"{corpus.name!r}; available: {sessions}"
        )
    names = [_session_fold_name(s) for s in sessions]
    if len(set(names)) != len(names):
        names = [f"session_{s}" for s in sessions]
    folds = []
    for i, (session, name) in enumerate(zip(sessions, names)):
        if test_session is not None and session != test_session:
            continue
        held = [e for e in corpus.examples if e.session == session]
        train = [e for e in corpus.examples if e.session != session]
        if validation.mode == "default":
            held_validation, test = _split_by_speaker(session, held, rotation=i)
        else:
            test = held
            train, held_validation = validation.from_train(train)
        folds.append(_checked_fold(name, train, held_validation, test, validation))
    return folds


def leave_one_speaker_out(
    corpus: Corpus,
    *,
    num_folds: int | None = None,
    validation: Validation = Validation(),
) -> list[Fold]:
    """One fold per test speaker, in sorted speaker order (card C5).

    Mode 'default': when every example has a session, the other
    speakers of the test speaker's session(s) validate, so the whole session
    leaves training (IEMOCAP: 8 train, 1 validation, 1 test speaker, card C5,
    and no session partner of the test speaker -- who shares its dialogues --
    is trained on). Without sessions, or when the test speaker is alone in its
    session, the next speaker in sorted order (cyclic) validates. With 'none'
    or 'train_subjects' every speaker sharing no session with the test
    speaker trains (without sessions: all the others, e.g. EmoDB 9 / 1); the
    session partners are in no split, recorded in `Fold.warnings`;
    'train_subjects' then validates on `validation.fraction` of the training
    speakers.

    Args:
      corpus: a corpus whose examples all have a speaker (>= 3 speakers; 2
        in mode 'none').
      num_folds: keep only the first n test speakers (None = all).
      validation: the validation mode and holdout.

    Returns:
      Folds named `speaker_<id>`.

    Raises:
      ValueError: missing speakers, too few speakers, bad `num_folds`, or an
        empty split.
    """
    speakers = _distinct(
        corpus, "speaker", "loso_speaker", 2 if validation.mode == "none" else 3
    )
    if num_folds is not None and not 1 <= num_folds <= len(speakers):
        raise ValueError(f"num_folds must be in [1, {len(speakers)}], got {num_folds}")
    use_sessions = all(e.session for e in corpus.examples)
    sessions_of: dict[str, set[str]] = {}
    for e in corpus.examples:
        sessions_of.setdefault(e.speaker, set()).add(e.session)
    folds = []
    for i, test_speaker in enumerate(speakers[:num_folds]):
        partners: set[str] = set()
        if use_sessions:
            partners = {
                s
                for s in speakers
                if s != test_speaker and sessions_of[s] & sessions_of[test_speaker]
            }
        if validation.mode == "default":
            left_out = partners or {speakers[(i + 1) % len(speakers)]}
        else:
            left_out = partners
        train = [
            e
            for e in corpus.examples
            if e.speaker != test_speaker and e.speaker not in left_out
        ]
        held = [e for e in corpus.examples if e.speaker in left_out]
        warnings = []
        if validation.mode != "default":
            if held:
                warnings.append(
                    f"validation={validation.mode!r}: {len(held)} utterances of "
                    f"{sorted(left_out)} (the test speaker's session partners) "
                    "are in no split of this fold"
                )
            train, held = validation.from_train(train)
        test = [e for e in corpus.examples if e.speaker == test_speaker]
        fold = _checked_fold(f"speaker_{test_speaker}", train, held, test, validation)
        fold.warnings.extend(warnings)
        folds.append(fold)
    return folds


def build_folds(corpus: Corpus, protocol_cfg, seed: int = 0) -> list[Fold]:
    """Builds the folds of `config.protocol` for `corpus`.

    Args:
      corpus: the parsed corpus.
      protocol_cfg: `config.protocol` (name, folds, validation,
        validation_fraction).
      seed: seed of the validation holdouts (predefined, train_subjects).

    Returns:
      The folds named in `protocol_cfg.folds` (comma-separated, matched
      case-insensitively; '' = all), in protocol order.

    Raises:
      ValueError: unknown protocol name, validation mode or fold name.
    """
    name = protocol_cfg.name
    validation = Validation(
        protocol_cfg.validation, protocol_cfg.validation_fraction, seed
    )
    if name == "predefined":
        folds = [predefined(corpus, validation=validation)]
    elif name == "loso_session":
        folds = leave_one_session_out(corpus, validation=validation)
    elif name == "loso_speaker":
        folds = leave_one_speaker_out(corpus, validation=validation)
    else:
        raise ValueError(
            f"unknown protocol.name {name!r}; expected one of {list(PROTOCOLS)}"
        )
    wanted = [f.strip().lower() for f in protocol_cfg.folds.split(",") if f.strip()]
    if not wanted:
        return folds
    available = [f.name for f in folds]
    unknown = [w for w in wanted if w not in {a.lower() for a in available}]
    if unknown:
        raise ValueError(
            f"protocol.folds names {unknown} that protocol {name!r} does not "
            f"produce for corpus {corpus.name!r}; available: {available}"
        )
    return [f for f in folds if f.name.lower() in wanted]


def _split_by_speaker(
    session: str, held: list[Example], rotation: int
) -> tuple[list[Example], list[Example]]:
    """(validation, test) halves of a held-out session, by rotated speaker."""
    no_speaker = [e.utterance_id for e in held if not e.speaker]
    if no_speaker:
        raise ValueError(
            f"session {session!r}: {len(no_speaker)} examples have no speaker, "
            f"so it cannot be split by speaker; e.g. {no_speaker[:5]}"
        )
    speakers = sorted({e.speaker for e in held})
    if len(speakers) < 2:
        raise ValueError(
            f"session {session!r} has {len(speakers)} speaker(s) {speakers}; "
            "splitting it into validation and test by speaker needs >= 2 "
            "(protocol.validation='none' tests on the whole session)"
        )
    r = rotation % len(speakers)
    rotated = speakers[r:] + speakers[:r]
    test_speakers = set(rotated[: (len(rotated) + 1) // 2])
    return (
        [e for e in held if e.speaker not in test_speakers],
        [e for e in held if e.speaker in test_speakers],
    )


def _checked_fold(
    name: str,
    train: list[Example],
    validation_split: list[Example],
    test: list[Example],
    validation: Validation,
    *,
    disjoint: bool = True,
) -> Fold:
    """A fold whose splits are non-empty (validation: unless mode 'none') and,
    with `disjoint`, speaker-independent."""
    fold = Fold(name, train, validation_split, test)
    for split, examples in fold.items():
        if not examples and not (split == "validation" and validation.mode == "none"):
            raise ValueError(f"fold {fold.name!r}: the {split} split is empty")
    if disjoint:
        check_disjoint(fold)
    return fold


def _overlaps(fold: Fold, key: str) -> list[tuple[str, str, list[str]]]:
    if key not in _FIELDS:
        raise ValueError(f"unknown Example field {key!r}; expected one of {_FIELDS}")
    values = {s: {getattr(e, key) for e in ex} - {""} for s, ex in fold.items()}
    out = []
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            shared = sorted(values[a] & values[b])
            if shared:
                out.append((a, b, shared))
    return out


def _distinct(corpus: Corpus, field: str, protocol: str, minimum: int) -> list[str]:
    """The sorted values of `field`; every example must have one, >= minimum."""
    missing = [e.utterance_id for e in corpus.examples if not getattr(e, field)]
    if missing:
        raise ValueError(
            f"protocol {protocol!r} needs a {field} for every example; corpus "
            f"{corpus.name!r} has {len(missing)} without one, e.g. {missing[:5]}"
        )
    values = sorted({getattr(e, field) for e in corpus.examples})
    if len(values) < minimum:
        raise ValueError(
            f"corpus {corpus.name!r}: protocol {protocol!r} needs >= {minimum} "
            f"{field}s, got {values}"
        )
    return values


def _session_fold_name(session: str) -> str:
    match = re.fullmatch(r"(?i)(?:session|ses)?[_-]?0*(\d+)", session)
    if match:
        return f"session{int(match.group(1))}"
    return f"session_{session}"


def _round(x: float) -> int:
    """Rounds half up (not to even), so 0.3 * 5 = 1.5 -> 2."""
    return int(np.floor(x + 0.5))
