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

Every fold is checked: no split may be empty, and the subject-independent
protocols raise `SplitOverlapError` when a speaker appears in two splits. The
official predefined split is used as given and its overlaps are recorded in
`Fold.warnings` instead (card C2).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from jaxpara.data.types import SPLITS, Corpus, Example, Fold

PROTOCOLS = ("predefined", "loso_session", "loso_speaker")
UNASSIGNED = ("error", "train")
_FIELDS = tuple(f.name for f in dataclasses.fields(Example))


class SplitOverlapError(ValueError):
    """A speaker / patient appears in more than one split of a fold."""


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
    validation_fraction: float = 0.3,
    seed: int = 0,
    unassigned: str = "error",
) -> Fold:
    """The corpus's own split (`Example.split`), used as given.

    If the corpus defines no validation examples, a subject-independent holdout
    of `validation_fraction` of the training speakers becomes the validation
    split (card C2: 30% of the official training patients); it is disjoint from
    the remaining training speakers by construction. Speakers shared by two
    official splits are not an error (card C2: the benchmark's definition even
    where imperfect): each such overlap is appended to `Fold.warnings`.

    Args:
      corpus: the parsed corpus.
      validation_fraction: holdout share when no validation split exists.
      seed: holdout shuffling seed.
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
    train, validation = by_split["train"], by_split["validation"]
    if not validation and train:
        train, validation = holdout_by_subject(train, validation_fraction, seed)
    fold = Fold("predefined", train, validation, by_split["test"])
    _check_nonempty(fold)
    for a, b, shared in _overlaps(fold, "speaker"):
        fold.warnings.append(
            f"predefined split of {corpus.name!r}: {len(shared)} speakers/patients "
            f"in both {a} and {b}: {shared}"
        )
    return fold


def leave_one_session_out(
    corpus: Corpus, *, test_session: str | None = None
) -> list[Fold]:
    """One fold per session (card C3): train = the other sessions.

    The held-out session is split by speaker. Its speakers are sorted and
    rotated by the session's position i in sorted session order; the first
    ceil(n / 2) of the rotated list test, the rest validate. With IEMOCAP's
    two speakers per session the test speaker alternates F, M, F, M, F over
    sessions 1-5 (sorted ids 'Ses01F' < 'Ses01M'), so neither gender is
    always the test speaker.

    Args:
      corpus: a corpus whose examples all have a session and a speaker.
      test_session: only build the fold of this session (None = all).

    Returns:
      Folds named `session<k>` ('Session5' and '5' both give 'session5'), in
      sorted session order.

    Raises:
      ValueError: missing sessions / speakers, fewer than 2 sessions, a held-out
        session with fewer than 2 speakers, an unknown `test_session`, or an
        empty split.
      SplitOverlapError: a speaker recorded in two sessions.
    """
    _require_field(corpus, "session", "loso_session")
    sessions = sorted({e.session for e in corpus.examples})
    if len(sessions) < 2:
        raise ValueError(
            f"corpus {corpus.name!r}: leave-one-session-out needs >= 2 sessions, "
            f"got {sessions}"
        )
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
                "splitting it into validation and test by speaker needs >= 2"
            )
        r = i % len(speakers)
        rotated = speakers[r:] + speakers[:r]
        test_speakers = set(rotated[: (len(rotated) + 1) // 2])
        fold = Fold(
            name,
            train=[e for e in corpus.examples if e.session != session],
            validation=[e for e in held if e.speaker not in test_speakers],
            test=[e for e in held if e.speaker in test_speakers],
        )
        _check_nonempty(fold)
        check_disjoint(fold)
        folds.append(fold)
    return folds


def leave_one_speaker_out(
    corpus: Corpus, *, num_folds: int | None = None
) -> list[Fold]:
    """One fold per test speaker, in sorted speaker order (card C5).

    Validation speaker(s): when every example has a session, the other
    speakers of the test speaker's session(s), so the whole session leaves
    training (IEMOCAP: 8 train, 1 validation, 1 test speaker, card C5, and no
    session partner of the test speaker -- who shares its dialogues -- is
    trained on). Without sessions, or when the test speaker is alone in its
    session, the next speaker in sorted order (cyclic) validates.

    Args:
      corpus: a corpus whose examples all have a speaker (>= 3 speakers).
      num_folds: keep only the first n test speakers (None = all).

    Returns:
      Folds named `speaker_<id>`.

    Raises:
      ValueError: missing speakers, fewer than 3 speakers, bad `num_folds`, or
        an empty split.
    """
    _require_field(corpus, "speaker", "loso_speaker")
    speakers = sorted({e.speaker for e in corpus.examples})
    if len(speakers) < 3:
        raise ValueError(
            f"corpus {corpus.name!r}: leave-one-speaker-out needs >= 3 speakers "
            f"(train, validation, test), got {speakers}"
        )
    if num_folds is not None and not 1 <= num_folds <= len(speakers):
        raise ValueError(f"num_folds must be in [1, {len(speakers)}], got {num_folds}")
    use_sessions = all(e.session for e in corpus.examples)
    sessions_of: dict[str, set[str]] = {}
    for e in corpus.examples:
        sessions_of.setdefault(e.speaker, set()).add(e.session)
    folds = []
    for i, test_speaker in enumerate(speakers[:num_folds]):
        validation_speakers: set[str] = set()
        if use_sessions:
            validation_speakers = {
                s
                for s in speakers
                if s != test_speaker and sessions_of[s] & sessions_of[test_speaker]
            }
        if not validation_speakers:
            validation_speakers = {speakers[(i + 1) % len(speakers)]}
        fold = Fold(
            f"speaker_{test_speaker}",
            train=[
                e
                for e in corpus.examples
                if e.speaker != test_speaker and e.speaker not in validation_speakers
            ],
            validation=[e for e in corpus.examples if e.speaker in validation_speakers],
            test=[e for e in corpus.examples if e.speaker == test_speaker],
        )
        _check_nonempty(fold)
        check_disjoint(fold)
        folds.append(fold)
    return folds


def build_folds(corpus: Corpus, protocol_cfg, seed: int = 0) -> list[Fold]:
    """Builds the folds of `config.protocol` for `corpus`.

    Args:
      corpus: the parsed corpus.
      protocol_cfg: `config.protocol` (name, folds, validation_fraction).
      seed: seed of the predefined protocol's validation holdout.

    Returns:
      The folds named in `protocol_cfg.folds` (comma-separated, matched
      case-insensitively; '' = all), in protocol order.

    Raises:
      ValueError: unknown protocol name or fold name.
    """
    name = protocol_cfg.name
    if name == "predefined":
        folds = [
            predefined(
                corpus,
                validation_fraction=protocol_cfg.validation_fraction,
                seed=seed,
            )
        ]
    elif name == "loso_session":
        folds = leave_one_session_out(corpus)
    elif name == "loso_speaker":
        folds = leave_one_speaker_out(corpus)
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


def _check_nonempty(fold: Fold) -> None:
    for split, examples in fold.items():
        if not examples:
            raise ValueError(f"fold {fold.name!r}: the {split} split is empty")


def _require_field(corpus: Corpus, field: str, protocol: str) -> None:
    missing = [e.utterance_id for e in corpus.examples if not getattr(e, field)]
    if missing:
        raise ValueError(
            f"protocol {protocol!r} needs a {field} for every example; corpus "
            f"{corpus.name!r} has {len(missing)} without one, e.g. {missing[:5]}"
        )
    if not corpus.examples:
        raise ValueError(f"corpus {corpus.name!r} has no examples")


def _session_fold_name(session: str) -> str:
    match = re.fullmatch(r"(?i)(?:session|ses)?[_-]?0*(\d+)", session)
    if match:
        return f"session{int(match.group(1))}"
    return f"session_{session}"


def _round(x: float) -> int:
    """Rounds half up (not to even), so 0.3 * 5 = 1.5 -> 2."""
    return int(np.floor(x + 0.5))
