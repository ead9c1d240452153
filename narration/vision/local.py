"""The offline vision provider: several small models whose findings are composed into sentences.

Models: EfficientNet-Lite0 ImageNet classes (torch), BlazeFace faces (LiteRT), PP-OCR text
(RapidOCR, onnxruntime), NudeNet (onnxruntime), plus any operator models from `local_models_dir`.
English only: for another language the text says so in its first sentence (ENGLISH_ONLY_NOTE).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from PIL import Image

from narration.image import PreparedImage
from narration.options import NarrationOptions
from narration.vision.base import Report
from narration.vision.classifier import ImageNetClassifier
from narration.vision.compose import Findings, compose
from narration.vision.extra import ExtraModels
from narration.vision.faces import FaceDetector
from narration.vision.look import analyse
from narration.vision.nsfw import NudityDetector
from narration.vision.ocr import TextReader

SCENE_OCR_SIDE = 800  # det cost grows with pixels; 800 px still reads signs and labels
MIN_FACE_SIDE = 0.02  # faces narrower than 2% of the photo are mostly false alarms in textures


def _warm_up_image() -> PreparedImage:
    picture = Image.new("RGB", (320, 240), (90, 120, 160))
    return PreparedImage(data=b"", content_type="image/jpeg", format="JPEG", width=320, height=240,
                         model_image=picture)


class LocalVisionProvider:
    name = "local"

    def __init__(self, threads: int = 2, models_dir: Path | None = None) -> None:
        self.classifier = ImageNetClassifier(threads)
        self.faces = FaceDetector(threads)
        self.reader = TextReader(threads)
        self.nudity = NudityDetector(threads)
        self.extra = ExtraModels(models_dir, threads) if models_dir else None

    def load(self) -> None:
        if self.extra:
            self.extra.load()  # first: a failed checksum should stop us before anything else loads
        self.classifier.load()
        self.faces.load()
        self.reader.load()
        self.nudity.load()
        # One pass on a small picture: the runtimes size their buffers on the first real call.
        self.analyse(_warm_up_image())

    async def describe(self, image: PreparedImage, options: NarrationOptions, report: Report) -> str:
        findings = await asyncio.to_thread(self.analyse, image, report, options.mode == "document")
        return compose(findings, options)

    def analyse(self, image: PreparedImage, report: Report | None = None, document: bool = False) -> Findings:
        """Run every model on the photo (blocking)."""

        def step(percent: int, message: str) -> None:
            if report:
                report(percent, message)

        picture = image.model_image
        step(0, "looking at colours and light")
        findings = Findings(image.width, image.height, image.orientation, analyse(picture))
        step(10, "checking for sensitive content")
        findings.explicit = bool(self.nudity.explicit_labels(picture))
        step(25, "recognising the subject")
        findings.classification = self.classifier.classify(picture)
        step(40, "counting faces")
        findings.faces = [
            f for f in self.faces.detect(picture) if (f.right - f.left) >= MIN_FACE_SIDE
        ]
        step(50, "reading text")
        # Documents get the full model copy for small print; scenes a smaller, much faster read.
        findings.text = self.reader.read(picture, None if document else SCENE_OCR_SIDE)
        if self.extra:
            step(90, "running additional models")
            findings.extra = self.extra.run(picture)
        step(100, "description ready")
        return findings
