"""Turn what the local models measured into sentences for a listener.

Only what a model saw is said; confidence shows in the wording ("a photo of", "it looks like",
"it may show"), and a dark, blurred or featureless photo is called what it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from narration.options import ALT_TEXT_MAX_CHARS, NarrationOptions
from narration.text import capitalise, join_words, number_word, truncate, with_article
from narration.vision.classifier import MASS_NOUNS, Classification
from narration.vision.extra import ExtraFindings
from narration.vision.faces import Face
from narration.vision.look import Look
from narration.vision.ocr import ReadText

Level = Literal["sure", "likely", "maybe"]
SURE, LIKELY, MAYBE = 0.6, 0.35, 0.15
GROUP_LIKELY = 0.5
WITH_PEOPLE = 0.8  # ImageNet has no "person": beside faces its guesses are mostly clothes and props
ENGLISH_ONLY_NOTE = "This description is in English, because offline narration speaks English only."
# Words of photographed text read out, per detail level.
SCENE_TEXT_WORDS = {"brief": 8, "standard": 40, "detailed": 200}
DOCUMENT_TEXT_WORDS = {"brief": 30, "standard": 250, "detailed": 1500}
_BREEDS_NEED_GROUP = {"dog", "cat"}  # "a Beagle" means little to some listeners; "a Beagle dog" doesn't


@dataclass
class Findings:
    """Everything the local models found in one photo."""

    width: int
    height: int
    orientation: str
    look: Look
    classification: Classification | None = None
    faces: list[Face] = field(default_factory=list)
    text: ReadText = field(default_factory=lambda: ReadText(()))
    explicit: bool = False
    extra: ExtraFindings = field(default_factory=ExtraFindings)


@dataclass(frozen=True)
class Subject:
    phrase: str  # "a dog, most likely a Beagle"
    short: str  # "dog" (for alt text)
    level: Level
    others: tuple[str, ...] = ()  # runner-up candidates, with articles
    score: float = 0.0


def noun_phrase(label: str, group: str | None = None) -> str:
    if group in _BREEDS_NEED_GROUP and group not in label.lower():
        label = f"{label} {group}"
    return label if label in MASS_NOUNS else with_article(label)


def _without_group(label: str, group: str) -> str:
    """'tabby cat' under 'a cat, most likely ...' reads better as 'tabby'."""
    if label.lower().endswith(f" {group}"):
        return label[: -len(group) - 1]
    return label


def resolve_subject(classification: Classification | None, extra: ExtraFindings) -> Subject | None:
    """The main subject at the strongest honest confidence level, or None."""
    guesses = list(classification.guesses) if classification else []
    # An operator's stronger classifier wins when it is at least as sure.
    if extra.guesses and (not guesses or extra.guesses[0].score >= guesses[0].score):
        guesses = [*extra.guesses, *guesses]
    if not guesses:
        return None
    top = guesses[0]
    group = classification.groups[0] if classification and classification.groups else None
    others = tuple(noun_phrase(g.label, g.group) for g in guesses[1:4] if g.score >= 0.08)
    if top.score >= SURE:
        return Subject(noun_phrase(top.label, top.group), top.label, "sure", others, top.score)
    if group is not None and group.score >= GROUP_LIKELY:
        members = [_without_group(g.label, group.label) for g in guesses
                   if g.group == group.label and g.score >= MAYBE]
        phrase = group.label if group.label in MASS_NOUNS else with_article(group.label)
        if members and guesses[0].group == group.label and guesses[0].score >= LIKELY:
            phrase += f", most likely {noun_phrase(members[0])}"
        elif members:
            phrase += f", possibly {join_words([noun_phrase(m) for m in members[:2]], 'or')}"
        level: Level = "sure" if group.score >= 0.85 else "likely"
        return Subject(phrase, group.label, level, (), group.score)
    if top.score >= LIKELY:
        return Subject(noun_phrase(top.label, top.group), top.label, "likely", others, top.score)
    if top.score >= MAYBE:
        return Subject(noun_phrase(top.label, top.group), top.label, "maybe", others, top.score)
    return None


def compose(findings: Findings, options: NarrationOptions) -> str:
    """The spoken description for this photo, mode and detail level."""
    if options.mode == "alt_text":
        return alt_text(findings)
    sentences = document(findings, options) if options.mode == "document" else scene(findings, options)
    if options.base_language != "en":
        sentences.insert(0, ENGLISH_ONLY_NOTE)
    return " ".join(s for s in sentences if s)


def _cap(subject: Subject | None) -> Subject | None:
    if subject is None:
        return None
    return Subject(subject.phrase, subject.short, "maybe", subject.others, subject.score)


def _people(faces: list[Face]) -> str | None:
    if not faces:
        return None
    n = len(faces)
    sentence = "One person's face is visible" if n == 1 else f"{capitalise(number_word(n))} faces are visible"
    largest = max(f.area for f in faces)
    if largest >= 0.06:
        sentence += ", close up" if n == 1 else ", one of them close up"
    elif largest < 0.004:
        sentence += ", small and far away" if n == 1 else ", all small and far away"
    return f"{sentence}."


def _objects(extra: ExtraFindings) -> str | None:
    if not extra.objects:
        return None
    parts = [f"{number_word(c)} {_plural(label) if c > 1 else label}" for label, c in
             sorted(extra.objects.items(), key=lambda kv: -kv[1])]
    verb = "is" if len(parts) == 1 and next(iter(extra.objects.values())) == 1 else "are"
    return f"There {verb} {join_words(parts)}."


def _plural(word: str) -> str:
    if word == "person":
        return "people"
    if word.endswith(("s", "x", "ch", "sh")):
        return f"{word}es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return f"{word[:-1]}ies"
    return f"{word}s"


def _subject_sentence(subject: Subject | None, have_people: bool) -> str | None:
    if subject is None:
        return None
    if have_people and subject.score < WITH_PEOPLE:
        return None
    if subject.level == "sure":
        return f"A photo of {subject.phrase}."
    if subject.level == "likely":
        return f"It looks like a photo of {subject.phrase}."
    return f"It may show {subject.phrase}, but that is not certain."


def _quality_warning(look: Look) -> str | None:
    if look.light == "very dark":
        return "The photo is very dark, so little can be made out."
    if look.plain:
        colour = look.colours[0][0] if look.colours else "grey"
        return f"The picture is almost plain {colour}, with no visible detail."
    if look.blurry:
        return "The photo is blurred, so fine detail is hard to make out."
    return None


def _colours(look: Look) -> str | None:
    if look.black_and_white:
        return "in black and white"
    main = [name for name, share in look.colours[:3] if share >= 0.15]
    if not main:
        return "in many colours"
    if look.colours[0][1] >= 0.6:
        return f"mostly {look.colours[0][0]}"
    return f"mainly {join_words(main)}"


def _look_sentence(look: Look, detail: str) -> str | None:
    if look.light == "very dark" or look.plain:
        return None  # already said by the warning
    colours = _colours(look)
    light = {"dim": "the light is dim", "bright": "it is brightly lit", "very bright": "it is very brightly lit",
             "even": "the light is even" if detail == "detailed" else None}[look.light]
    if colours and light:
        return f"The colours are {colours}, and {light}." if colours.startswith(("mostly", "mainly")) \
            else f"It is {colours}, and {light}."
    if colours:
        return f"The colours are {colours}." if colours.startswith(("mostly", "mainly")) else f"It is {colours}."
    return None


def _clipped_prose(text: ReadText, limit: int) -> tuple[str, bool]:
    """The text as prose, cut to `limit` words (the bool says whether it was cut)."""
    words = text.as_prose().split()
    if len(words) <= limit:
        return " ".join(words), False
    return " ".join(words[:limit]).rstrip(".,;:!?"), True


def _text_sentence(text: ReadText, detail: str) -> str | None:
    if not text.lines:
        return "There is no readable text." if detail == "detailed" else None
    prose, clipped = _clipped_prose(text, SCENE_TEXT_WORDS[detail])
    if clipped:
        return f"It contains text that begins: {prose}, and goes on."
    return f"It contains the text: {prose}"


def scene(f: Findings, options: NarrationOptions) -> list[str]:
    detail = options.detail
    subject = resolve_subject(f.classification, f.extra)
    warning = _quality_warning(f.look)
    if f.look.graphic:
        # Photo classifiers are overconfident on drawings and flat graphics: never more than "may".
        subject = _cap(subject)
        if not f.text.lines:
            warning = "It looks like a graphic with flat colours rather than a photograph."
    lead: list[str | None] = []
    if f.explicit:
        lead.append("The photo appears to contain nudity, so it is described only in general terms.")
        subject = None
    subject_sentence = _subject_sentence(subject, bool(f.faces))
    lead += [_objects(f.extra), _people(f.faces), subject_sentence]
    found = [s for s in lead if s]
    text = None if f.explicit and detail == "brief" else _text_sentence(f.text, detail)
    if not f.text.lines and (not found or (len(found) == 1 and f.explicit)):
        found.append("Nothing in it could be recognised with confidence.")
    if warning:
        found.insert(0, warning)
    look = _look_sentence(f.look, detail)
    if detail == "brief":
        rest = [s for s in (text, look) if s]
        return [*found[:2], *rest[: max(0, 2 - len(found))]]
    sentences = [*found, text, look]
    if detail == "detailed":
        if subject and subject.others and subject_sentence:
            others = list(subject.others)
            sentences.append(f"Another possibility is {others[0]}." if len(others) == 1
                             else f"Other possibilities are {join_words(others)}.")
        sentences.append(f"It is a {f.orientation} picture, {f.width} by {f.height} pixels.")
    return [s for s in sentences if s]


def document(f: Findings, options: NarrationOptions) -> list[str]:
    detail = options.detail
    if not f.text.lines:
        reason = _quality_warning(f.look)
        sentences = ["No readable text was found in this photo."]
        if reason:
            sentences.append(reason)
        return sentences + scene(f, NarrationOptions(detail="brief"))[:1 if not reason else 0]
    limit = DOCUMENT_TEXT_WORDS[detail]
    words = f.text.words
    prose = f.text.as_prose()
    if len(words) > limit:
        prose = " ".join(prose.split()[:limit]).rstrip(",;:") + "."
        tail = "The text goes on beyond this."
    else:
        tail = ""
    sentences = [f"The text reads: {prose}", tail]
    if detail != "brief":
        subject = resolve_subject(f.classification, f.extra)
        if subject and subject.level != "maybe" and not f.explicit:
            sentences.append(f"It appears to be {subject.phrase}.")
        if f.look.blurry:
            sentences.append("The photo is blurred, so some words may be misread.")
    return [s for s in sentences if s]


def alt_text(f: Findings) -> str:
    """A compact description of at most 125 characters."""
    subject = resolve_subject(f.classification, f.extra)
    if f.explicit or (f.faces and subject and subject.score < WITH_PEOPLE):
        subject = None
    if f.look.graphic:
        subject = _cap(subject)
    parts: list[str] = []
    if subject:
        hedge = {"sure": "", "likely": "Probably ", "maybe": "Possibly "}[subject.level]
        parts.append(f"{hedge}{subject.phrase}" if hedge else capitalise(subject.phrase))
    if f.faces:
        n = len(f.faces)
        parts.append(f"{number_word(n)} {'person' if n == 1 else 'people'}" if parts else
                     f"{capitalise(number_word(n))} {'person' if n == 1 else 'people'}")
    warning = _quality_warning(f.look)
    if not parts and f.text.lines:
        quoted, _ = _clipped_prose(f.text, 20)
        prefix = "Photo that may contain nudity. " if f.explicit else ""
        return truncate(f'{prefix}Text: "{quoted.rstrip(".")}".', ALT_TEXT_MAX_CHARS)
    if not parts:
        parts.append("Very dark photo" if f.look.light == "very dark" else
                     "Plain, featureless image" if f.look.plain else
                     "Graphic with flat colours" if f.look.graphic else "Unclear photo")
    sentence = capitalise(", ".join(parts)) + "."
    if f.explicit:
        sentence = f"Photo that may contain nudity. {sentence}"
    if f.text.lines:
        quoted, _ = _clipped_prose(f.text, 12)
        sentence += f' Text: "{quoted.rstrip(".")}".'
    elif warning is None or f.look.blurry:
        colours = _colours(f.look)
        if colours:
            sentence += f" {capitalise(colours)}."
    return truncate(sentence, ALT_TEXT_MAX_CHARS)
