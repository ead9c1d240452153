"""The local provider's sentence composer, on hand-made findings (no models needed)."""

from __future__ import annotations

import re

from narration import NarrationOptions
from narration.options import ALT_TEXT_MAX_CHARS
from narration.vision.classifier import Classification, Guess
from narration.vision.compose import ENGLISH_ONLY_NOTE, Findings, compose, resolve_subject
from narration.vision.extra import ExtraFindings
from narration.vision.faces import Face
from narration.vision.look import Look
from narration.vision.ocr import ReadText, TextLine

NORMAL = Look(colours=(("blue", 0.5), ("white", 0.3), ("green", 0.2)), brightness=0.5, contrast=0.2,
              sharpness=0.08, saturation=0.4)
DARK = Look(colours=(("black", 1.0),), brightness=0.05, contrast=0.02, sharpness=0.001, saturation=0.3)
BLURRY = Look(colours=(("brown", 0.7), ("grey", 0.3)), brightness=0.45, contrast=0.15, sharpness=0.001,
              saturation=0.3)


def findings(look: Look = NORMAL, guesses: tuple[Guess, ...] = (), groups: tuple[Guess, ...] = (),
             **kwargs: object) -> Findings:
    return Findings(1200, 800, "landscape", look, Classification(guesses, groups), **kwargs)  # type: ignore[arg-type]


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def speakable(text: str) -> None:
    assert text and not re.search(r"[*#`\[\]]|^\s*-", text)
    assert not text.lower().startswith(("this image shows", "the image shows"))


DOG = (Guess("Beagle", 0.7, "dog"), Guess("Basset Hound", 0.1, "dog"))


def test_confident_subject() -> None:
    text = compose(findings(guesses=DOG, groups=(Guess("dog", 0.85, "dog"),)), NarrationOptions())
    assert text.startswith("A photo of a Beagle dog.")
    assert "mainly blue, white and green" in text
    speakable(text)


def test_group_pools_spread_out_breeds() -> None:
    guesses = (Guess("tabby cat", 0.38, "cat"), Guess("Egyptian Mau", 0.36, "cat"))
    subject = resolve_subject(Classification(guesses, (Guess("cat", 0.92, "cat"),)), ExtraFindings())
    assert subject is not None
    assert subject.phrase == "a cat, most likely a tabby" and subject.level == "sure"


def test_low_confidence_is_hedged_or_omitted() -> None:
    maybe = compose(findings(guesses=(Guess("tripod", 0.2),)), NarrationOptions())
    assert "It may show a tripod, but that is not certain." in maybe
    nothing = compose(findings(guesses=(Guess("tripod", 0.05),)), NarrationOptions())
    assert "tripod" not in nothing and "could be recognised with confidence" in nothing


def test_faces_counted_and_clothing_guesses_dropped() -> None:
    faces = [Face(0.3, 0.2, 0.6, 0.6, 0.9), Face(0.7, 0.3, 0.75, 0.38, 0.8)]
    text = compose(findings(guesses=(Guess("suit", 0.4),), faces=faces), NarrationOptions())
    assert text.startswith("Two faces are visible, one of them close up.")
    assert "suit" not in text


def test_dark_and_blurry_photos_are_called_unclear() -> None:
    assert compose(findings(DARK), NarrationOptions()).startswith("The photo is very dark")
    assert "blurred" in compose(findings(BLURRY, guesses=DOG), NarrationOptions())


def test_text_is_read_in_scene_and_document_modes() -> None:
    text = ReadText((TextLine("Quarterly Report", 0.99, 0.1, 0.05), TextLine("Sales grew.", 0.98, 0.2, 0.05)))
    scene = compose(findings(text=text), NarrationOptions())
    assert "It contains the text: Quarterly Report. Sales grew." in scene
    assert "could be recognised" not in scene
    document = compose(findings(text=text), NarrationOptions(mode="document"))
    assert document.startswith("The text reads: Quarterly Report. Sales grew.")


def test_document_without_text_says_so() -> None:
    assert compose(findings(guesses=DOG), NarrationOptions(mode="document")).startswith(
        "No readable text was found in this photo."
    )


def test_long_text_is_clipped_by_detail_level() -> None:
    words = " ".join(f"word{i}" for i in range(400))
    text = ReadText((TextLine(words, 0.99, 0.1, 0.05),))
    brief = compose(findings(text=text), NarrationOptions(detail="brief", mode="document"))
    detailed = compose(findings(text=text), NarrationOptions(detail="detailed", mode="document"))
    assert "word29" in brief and "word30 " not in brief and "goes on" in brief
    assert "word399" in detailed


def test_detail_levels() -> None:
    f = findings(guesses=DOG, groups=(Guess("dog", 0.85, "dog"),),
                 text=ReadText((TextLine("BEWARE OF THE DOG", 0.99, 0.1, 0.05),)))
    brief = compose(f, NarrationOptions(detail="brief"))
    standard = compose(f, NarrationOptions())
    detailed = compose(f, NarrationOptions(detail="detailed"))
    assert 1 <= len(sentences(brief)) <= 2
    assert len(brief) < len(standard) < len(detailed)
    assert "1200 by 800 pixels" in detailed and "Another possibility is a Basset Hound dog." in detailed


def test_alt_text_fits_125_characters() -> None:
    long_text = ReadText((TextLine("A very long notice " * 20, 0.99, 0.1, 0.05),))
    for f in (findings(guesses=DOG), findings(DARK), findings(text=long_text),
              findings(guesses=DOG, faces=[Face(0.1, 0.1, 0.5, 0.5, 0.9)] * 3, text=long_text)):
        alt = compose(f, NarrationOptions(mode="alt_text"))
        assert 0 < len(alt) <= ALT_TEXT_MAX_CHARS, alt
        speakable(alt)


def test_nudity_is_handled_tactfully() -> None:
    text = compose(findings(guesses=DOG, explicit=True), NarrationOptions(detail="detailed"))
    assert text.startswith("The photo appears to contain nudity, so it is described only in general terms.")
    assert "Beagle" not in text
    alt = compose(findings(guesses=DOG, explicit=True), NarrationOptions(mode="alt_text"))
    assert alt.startswith("Photo that may contain nudity.") and "Beagle" not in alt


def test_other_languages_get_a_note_and_english() -> None:
    text = compose(findings(guesses=DOG), NarrationOptions(language="de"))
    assert text.startswith(ENGLISH_ONLY_NOTE)
    assert ENGLISH_ONLY_NOTE not in compose(findings(guesses=DOG), NarrationOptions(language="en-GB"))


def test_operator_detector_counts_objects() -> None:
    extra = ExtraFindings(objects={"person": 2, "bicycle": 1})
    text = compose(findings(extra=extra), NarrationOptions())
    assert text.startswith("There are two people and one bicycle.")


def test_very_confident_subject_is_kept_beside_faces() -> None:
    face = [Face(0.4, 0.1, 0.55, 0.3, 0.9)]
    text = compose(findings(guesses=(Guess("tripod", 0.94),), faces=face), NarrationOptions())
    assert text.startswith("One person's face is visible. A photo of a tripod.")
    alt = compose(findings(guesses=(Guess("suit", 0.7),), faces=face), NarrationOptions(mode="alt_text"))
    assert "suit" not in alt and alt.startswith("One person.")
