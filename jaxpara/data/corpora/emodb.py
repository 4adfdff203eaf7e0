"""EmoDB (Berlin Database of Emotional Speech) reader: 7 emotion classes.

Layout::

    root/wav/03a01Wa.wav ...

The file name is the only label source: `<speaker><sentence><emotion><version>`,
e.g. `03a01Wa` = speaker 03, sentence a01, emotion W, version a. Speakers and
their genders are the corpus documentation's table (`SPEAKERS`); emotion
letters are the German initials (`EMOTIONS`): W anger (Aerger), L boredom
(Langeweile), E disgust (Ekel), A fear (Angst), F happiness (Freude),
T sadness (Trauer), N neutral. Copies of EmoDB in circulation carry side CSVs
that map the letters wrongly (e.g. F -> disgust), so no CSV is ever read.

Every `.wav` directly in `wav/` must have such a name with a known speaker and
emotion letter: anything else is a `CorpusError` naming the file (the name is
the label, so a guessed one would mislabel silently). Names starting with '.'
(macOS resource forks) are skipped; other non-wav files are counted in
`Corpus.warnings`. EmoDB has no sessions and no official split: the usual
protocol is leave-one-speaker-out over the 10 speakers (`loso_speaker`).
"""

from __future__ import annotations

import os
import re

from jaxpara.data.types import Corpus, CorpusError, Example

NAME = "emodb"
# Emotion letter -> class, in the class order of `LABELS`.
EMOTIONS: dict[str, str] = {
    "W": "anger",
    "L": "boredom",
    "E": "disgust",
    "A": "fear",
    "F": "happiness",
    "T": "sadness",
    "N": "neutral",
}
LABELS: tuple[str, ...] = tuple(EMOTIONS.values())
# Speaker code -> gender (the corpus documentation: 5 male, 5 female actors).
SPEAKERS: dict[str, str] = {
    "03": "m",
    "08": "f",
    "09": "f",
    "10": "m",
    "11": "m",
    "12": "m",
    "13": "f",
    "14": "f",
    "15": "m",
    "16": "f",
}
WAV_DIR = "wav"

_NAME = re.compile(
    r"^(?P<speaker>\d{2})(?P<sentence>[ab]\d{2})(?P<emotion>[A-Z])(?P<version>[a-z])$"
)


def parse_name(path: str) -> dict[str, str]:
    """The fields of an EmoDB file name.

    Args:
      path: the file (only its base name without `.wav` is read).

    Returns:
      {'speaker', 'gender', 'sentence', 'emotion' (the letter), 'label',
      'version'}.

    Raises:
      CorpusError: a name not of the form `03a01Wa`, an unknown speaker or an
        unknown emotion letter, naming `path`.
    """
    stem = os.path.splitext(os.path.basename(path))[0]
    match = _NAME.match(stem)
    if match is None:
        raise CorpusError(
            f"{path}: not an EmoDB file name; expected <speaker: 2 digits>"
            "<sentence: a|b + 2 digits><emotion letter><version letter>, e.g. "
            "03a01Wa.wav"
        )
    fields = match.groupdict()
    if fields["speaker"] not in SPEAKERS:
        raise CorpusError(
            f"{path}: unknown EmoDB speaker {fields['speaker']!r}; expected one "
            f"of {sorted(SPEAKERS)}"
        )
    if fields["emotion"] not in EMOTIONS:
        raise CorpusError(
            f"{path}: unknown EmoDB emotion letter {fields['emotion']!r}; "
            f"expected one of {sorted(EMOTIONS)} ({EMOTIONS})"
        )
    fields["gender"] = SPEAKERS[fields["speaker"]]
    fields["label"] = EMOTIONS[fields["emotion"]]
    return fields


def read(root: str) -> Corpus:
    """Parses EmoDB from its file names, in sorted file-name order.

    Args:
      root: folder holding `wav/`.

    Returns:
      The corpus: labels `LABELS`; utterance id = the file name without
      `.wav`; speaker '03'-style, gender 'm'/'f', session and split '' (no
      sessions, no official split); attrs 'sentence', 'emotion' (the
      letter) and 'version'.

    Raises:
      CorpusError: no `wav/` folder, no wav files, or a wav file whose name
        `parse_name` refuses.
    """
    wav_dir = os.path.join(root, WAV_DIR)
    if not os.path.isdir(wav_dir):
        raise CorpusError(
            f"{root!r} does not look like EmoDB: expected the folder {wav_dir} "
            "with files <speaker><sentence><emotion><version>.wav (03a01Wa.wav)"
        )
    names = sorted(n for n in os.listdir(wav_dir) if not n.startswith("."))
    examples: list[Example] = []
    for name in names:
        if not name.endswith(".wav"):
            continue
        path = os.path.abspath(os.path.join(wav_dir, name))
        fields = parse_name(path)
        examples.append(
            Example(
                utterance_id=name[: -len(".wav")],
                path=path,
                label=fields["label"],
                speaker=fields["speaker"],
                gender=fields["gender"],
                attrs={k: fields[k] for k in ("sentence", "emotion", "version")},
            )
        )
    if not examples:
        raise CorpusError(f"no EmoDB wav files in {wav_dir}")
    warnings = []
    others = len(names) - len(examples)
    if others:
        warnings.append(f"{others} file(s) in {wav_dir} are not .wav and are not used")
    return Corpus(name=NAME, labels=LABELS, examples=examples, warnings=warnings)
