"""Nudity check with NudeNet's bundled 320n detector (YOLOv8 layout), run here with our thread settings."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from narration.errors import EngineError
from narration.runtime import ort_session

INPUT = 320
# Class order of the 320n model (NudeNet 3.4).
LABELS = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
    "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED",
)
EXPLICIT = {"BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "ANUS_EXPOSED",
            "MALE_GENITALIA_EXPOSED"}
MIN_SCORE = 0.6


def model_path() -> Path:
    spec = importlib.util.find_spec("nudenet")  # its __init__ imports OpenCV; we only need the file
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("ENGINE_FAILED", "the nudenet package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "320n.onnx"


class NudityDetector:
    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._lock = threading.Lock()
        self._session: Any = None

    def load(self) -> None:
        with self._lock:
            if self._session is None:
                session = ort_session(model_path(), self.threads)
                self._input = session.get_inputs()[0].name
                self._session = session

    def explicit_labels(self, image: Image.Image) -> set[str]:
        """Names of explicit classes found with confidence (empty for ordinary photos)."""
        self.load()
        side = max(image.size)
        canvas = Image.new("RGB", (side, side))  # pad right/bottom, as NudeNet does
        canvas.paste(image.convert("RGB"), (0, 0))
        x = np.asarray(canvas.resize((INPUT, INPUT), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        output = self._session.run(None, {self._input: x})[0][0]  # (4 + classes, anchors)
        scores = output[4:].max(axis=1)
        return {LABELS[i] for i, s in enumerate(scores) if s >= MIN_SCORE and LABELS[i] in EXPLICIT}
