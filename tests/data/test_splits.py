"""Tests of the evaluation protocols in jaxpara.data.splits."""

import dataclasses

import ml_collections
import pytest

from jaxpara.data import splits
from jaxpara.data.types import Corpus, Example, Fold

LABELS = ("ang", "hap", "neu", "sad")


def _iemocap_like(num_sessions=5, per_speaker=6):
    """num_sessions x 2 speakers (F, M) x per_speaker utterances, labels cycling."""
    examples = []
    for s in range(1, num_sessions + 1):
        for g in "FM":
            spk = f"Ses{s:02d}{g}"
            for u in range(per_speaker):
                examples.append(
                    Example(
                        utterance_id=f"{spk}_{u:03d}",
                        path=f"/x/{spk}_{u:03d}.wav",
                        label=LABELS[u % 4],
                        speaker=spk,
                        session=f"Session{s}",
                        gender=g.lower(),
                    )
                )
    return Corpus("iemocap", LABELS, examples)


def _speakers(examples):
    return sorted({e.speaker for e in examples})


def _cfg(name, folds="", fraction=0.3, validation="default"):
    c = ml_collections.ConfigDict()
    c.name, c.folds, c.validation_fraction = name, folds, fraction
    c.validation = validation
    return c


def _accounted(corpus, folds):
    """Every utterance of `corpus` is tested exactly once over `folds` (all
    folds of a protocol), and within each fold in at most one split."""
    tested = [e.utterance_id for f in folds for e in f.test]
    assert sorted(tested) == sorted(e.utterance_id for e in corpus.examples)
    for fold in folds:
        ids = [e.utterance_id for _, ex in fold.items() for e in ex]
        assert len(ids) == len(set(ids))
        splits.check_disjoint(fold)


def test_leave_one_session_out_membership():
    corpus = _iemocap_like()
    folds = splits.leave_one_session_out(corpus)
    assert [f.name for f in folds] == [f"session{k}" for k in range(1, 6)]
    expected_test = ["Ses01F", "Ses02M", "Ses03F", "Ses04M", "Ses05F"]
    expected_val = ["Ses01M", "Ses02F", "Ses03M", "Ses04F", "Ses05M"]
    for k, fold in enumerate(folds):
        assert _speakers(fold.test) == [expected_test[k]]
        assert _speakers(fold.validation) == [expected_val[k]]
        assert {e.session for e in fold.train} == {
            f"Session{s}" for s in range(1, 6)
        } - {f"Session{k + 1}"}
        assert (len(fold.train), len(fold.validation), len(fold.test)) == (48, 6, 6)
        splits.check_disjoint(fold)
        assert fold.warnings == []
    only = splits.leave_one_session_out(corpus, test_session="Session5")
    assert [f.name for f in only] == ["session5"]
    assert _speakers(only[0].test) == ["Ses05F"]
    with pytest.raises(ValueError, match="Session9.*available"):
        splits.leave_one_session_out(corpus, test_session="Session9")


def test_leave_one_speaker_out_uses_session_partner():
    corpus = _iemocap_like()
    folds = splits.leave_one_speaker_out(corpus)
    assert len(folds) == 10
    assert folds[0].name == "speaker_Ses01F"
    for fold in folds:
        test_spk = fold.name.removeprefix("speaker_")
        partner = test_spk[:-1] + ("M" if test_spk.endswith("F") else "F")
        assert _speakers(fold.test) == [test_spk]
        assert _speakers(fold.validation) == [partner]
        assert len(_speakers(fold.train)) == 8  # card C5: 8 / 1 / 1.
        assert test_spk[:5] not in {e.speaker[:5] for e in fold.train}
        assert (len(fold.train), len(fold.validation), len(fold.test)) == (48, 6, 6)
    assert [f.name for f in splits.leave_one_speaker_out(corpus, num_folds=3)] == [
        "speaker_Ses01F",
        "speaker_Ses01M",
        "speaker_Ses02F",
    ]


def test_leave_one_speaker_out_without_sessions_takes_next_speaker():
    corpus = _iemocap_like(num_sessions=2, per_speaker=2)
    corpus.examples = [
        Example(e.utterance_id, e.path, e.label, speaker=e.speaker)
        for e in corpus.examples
    ]
    folds = splits.leave_one_speaker_out(corpus)
    pairs = [(_speakers(f.test)[0], _speakers(f.validation)[0]) for f in folds]
    assert pairs == [
        ("Ses01F", "Ses01M"),
        ("Ses01M", "Ses02F"),
        ("Ses02F", "Ses02M"),
        ("Ses02M", "Ses01F"),
    ]
    assert all(len(f.train) == 4 for f in folds)


def test_check_disjoint_names_speaker_and_ignores_empty():
    a = Example("a1", "/a1", "x", speaker="spkA")
    b = Example("b1", "/b1", "x", speaker="spkB")
    a2 = Example("a2", "/a2", "x", speaker="spkA")
    anon = Example("n1", "/n1", "x")
    with pytest.raises(splits.SplitOverlapError, match="train and test.*spkA"):
        splits.check_disjoint(Fold("f", [a, anon], [b], [a2, anon]))
    splits.check_disjoint(Fold("f", [a, anon], [b], [anon]))  # '' ignored
    assert issubclass(splits.SplitOverlapError, ValueError)


def _icbhi_like():
    """Patients 101-110 in train, 111-114 in test; 104 also in test."""
    examples = []
    for p in range(101, 115):
        split = "train" if p <= 110 else "test"
        for c in range(3):
            examples.append(
                Example(
                    f"{p}_rec_{c}",
                    f"/{p}.wav",
                    ("normal", "crackle")[c % 2],
                    speaker=str(p),
                    split=split,
                )
            )
    examples.append(
        Example("104_other_0", "/104b.wav", "normal", speaker="104", split="test")
    )
    return Corpus("icbhi", ("normal", "crackle"), examples)


def test_predefined_carves_subject_independent_validation():
    corpus = _icbhi_like()
    fold = splits.predefined(corpus, validation=splits.Validation(fraction=0.3))
    assert fold.name == "predefined"
    val_spk, train_spk = set(_speakers(fold.validation)), set(_speakers(fold.train))
    assert len(val_spk) == 3  # 30% of 10 training patients
    assert val_spk | train_spk == {str(p) for p in range(101, 111)}
    assert not val_spk & train_spk
    assert len(fold.test) == 13
    # The official overlap is recorded, not raised, and names the patient.
    assert len(fold.warnings) == 1
    assert "and test" in fold.warnings[0] and "['104']" in fold.warnings[0]
    again = splits.predefined(corpus, validation=splits.Validation(fraction=0.3))
    assert _speakers(again.validation) == sorted(val_spk)
    other = [
        _speakers(
            splits.predefined(corpus, validation=splits.Validation(seed=s)).validation
        )
        for s in range(5)
    ]
    assert len({tuple(v) for v in other}) > 1


def test_predefined_uses_given_validation_and_unassigned():
    corpus = _icbhi_like()
    ex = corpus.examples
    corpus.examples = [
        Example(
            e.utterance_id,
            e.path,
            e.label,
            speaker=e.speaker,
            split="validation" if e.speaker == "101" else e.split,
        )
        for e in ex
    ]
    fold = splits.predefined(corpus)
    assert _speakers(fold.validation) == ["101"]
    corpus.examples = corpus.examples + [Example("u1", "/u1", "normal", speaker="120")]
    with pytest.raises(ValueError, match="1 examples have no predefined split.*u1"):
        splits.predefined(corpus)
    fold = splits.predefined(corpus, unassigned="train")
    assert "u1" in {e.utterance_id for e in fold.train}


def test_predefined_without_speakers_is_stratified():
    examples = [
        Example(
            f"c{i}",
            f"/c{i}",
            ("negative", "positive")[i % 4 == 0],
            split="test" if i >= 40 else "train",
        )
        for i in range(50)
    ]
    fold = splits.predefined(Corpus("ccs", ("negative", "positive"), examples))
    labels = [e.label for e in fold.validation]
    assert labels.count("positive") == 3 and labels.count("negative") == 9
    assert len(fold.train) == 28 and fold.warnings == []
    ids = {e.utterance_id for e in fold.train}
    assert not ids & {e.utterance_id for e in fold.validation}


def test_holdout_by_subject_fraction():
    corpus = _iemocap_like()
    kept, held = splits.holdout_by_subject(corpus.examples, 0.3, seed=1)
    assert len(_speakers(held)) == 3 and len(_speakers(kept)) == 7
    assert not set(_speakers(held)) & set(_speakers(kept))
    assert len(kept) + len(held) == len(corpus.examples)
    with pytest.raises(ValueError, match="fraction"):
        splits.holdout_by_subject(corpus.examples, 1.0, seed=1)


def test_build_folds_dispatch_and_filter():
    corpus = _iemocap_like()
    folds = splits.build_folds(corpus, _cfg("loso_session", "Session5, session2"))
    assert [f.name for f in folds] == ["session2", "session5"]
    folds = splits.build_folds(corpus, _cfg("loso_speaker", "speaker_Ses03M"))
    assert [f.name for f in folds] == ["speaker_Ses03M"]
    assert len(splits.build_folds(corpus, _cfg("loso_speaker"))) == 10
    with pytest.raises(ValueError, match=r"session7.*available.*session1"):
        splits.build_folds(corpus, _cfg("loso_session", "session7"))
    with pytest.raises(ValueError, match=r"protocol\.name.*loso_session"):
        splits.build_folds(corpus, _cfg("kfold"))
    with pytest.raises(ValueError, match="no predefined split"):
        splits.build_folds(corpus, _cfg("predefined"))


def test_empty_split_raises():
    examples = [
        Example(f"t{i}", f"/t{i}", "a", speaker=f"s{i % 3}", split="train")
        for i in range(6)
    ]
    with pytest.raises(ValueError, match="'predefined'.*test split is empty"):
        splits.predefined(Corpus("c", ("a",), examples))


def test_loso_session_validation_none_tests_the_whole_session():
    """Card C4 IEM4: sessions 1-4 train, the WHOLE of session 5 tests."""
    corpus = _iemocap_like()
    folds = splits.build_folds(corpus, _cfg("loso_session", validation="none"))
    _accounted(corpus, folds)
    for k, fold in enumerate(folds, start=1):
        assert _speakers(fold.test) == [f"Ses0{k}F", f"Ses0{k}M"]
        assert fold.validation == [] and fold.warnings == []
        assert {e.session for e in fold.test} == {f"Session{k}"}
        assert (len(fold.train), len(fold.test)) == (48, 12)
    (s5,) = splits.build_folds(
        corpus, _cfg("loso_session", "Session5", validation="none")
    )
    assert {e.session for e in s5.train} == {f"Session{k}" for k in range(1, 5)}


def test_loso_session_train_subjects_validates_on_training_speakers():
    corpus = _iemocap_like()
    (fold,) = splits.leave_one_session_out(
        corpus, test_session="Session5", validation=splits.Validation("train_subjects")
    )
    assert _speakers(fold.test) == ["Ses05F", "Ses05M"]
    assert len(_speakers(fold.validation)) == 2  # round(0.3 * 8 speakers)
    assert {e.session for e in fold.validation} <= {f"Session{k}" for k in range(1, 5)}
    assert len(fold.train) + len(fold.validation) == 48
    splits.check_disjoint(fold)


def test_loso_speaker_validation_none():
    corpus = _iemocap_like()
    folds = splits.build_folds(corpus, _cfg("loso_speaker", validation="none"))
    _accounted(corpus, folds)
    fold = folds[0]
    assert fold.name == "speaker_Ses01F" and fold.validation == []
    assert len(_speakers(fold.train)) == 8 and "Ses01M" not in _speakers(fold.train)
    assert len(fold.warnings) == 1
    assert "6 utterances of ['Ses01M']" in fold.warnings[0]
    # Without sessions every other speaker trains (EmoDB: 9 train, 1 test).
    corpus.examples = [
        Example(e.utterance_id, e.path, e.label, speaker=e.speaker)
        for e in corpus.examples
    ]
    folds = splits.leave_one_speaker_out(corpus, validation=splits.Validation("none"))
    _accounted(corpus, folds)
    assert all(len(_speakers(f.train)) == 9 and not f.warnings for f in folds)


def test_predefined_validation_none_trains_on_the_whole_training_side():
    """Card C3 FAU Aibo: train = all of the training split, no carve-out."""
    corpus = _icbhi_like()
    fold = splits.build_folds(corpus, _cfg("predefined", validation="none"))[0]
    assert fold.validation == []
    assert sorted(e.utterance_id for e in fold.train) == sorted(
        e.utterance_id for e in corpus.examples if e.split == "train"
    )
    assert len(fold.test) == 13 and "['104']" in fold.warnings[0]
    # A corpus's own validation split trains too; train_subjects carves anew.
    corpus.examples = [
        dataclasses.replace(e, split="validation") if e.speaker == "101" else e
        for e in corpus.examples
    ]
    fold = splits.predefined(corpus, validation=splits.Validation("none"))
    assert "101" in _speakers(fold.train) and len(fold.train) == 30
    fold = splits.predefined(corpus, validation=splits.Validation("train_subjects"))
    assert len(_speakers(fold.validation)) == 3 and len(fold.train) == 21
    with pytest.raises(ValueError, match="protocol.validation must be one of"):
        splits.build_folds(corpus, _cfg("predefined", validation="dev"))
