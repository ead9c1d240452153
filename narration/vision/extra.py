"""Operator-supplied models: a folder with `models.json` and ONNX/TFLite files, each checked by SHA-256.

    {"models": [{"name": "coco", "file": "yolov8n.onnx", "sha256": "<64 hex>", "kind": "detector",
                 "labels": ["person", "bicycle", ...] or "labels.txt", "input_size": [640, 640],
                 "threshold": 0.5}]}

kind "classifier": one output of class scores (softmax applied unless "activation" is "sigmoid" or
"none"); input scaled to 0..1, then ("mean", "std") if given; ONNX (NCHW) or TFLite (NHWC, float or uint8).
kind "detector": ONNX in the YOLOv8 layout, (1, 4 + classes, anchors) or transposed, boxes in input pixels.
A file whose checksum doesn't match is never loaded: the engine refuses to start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from narration.errors import EngineError
from narration.runtime import ort_session
from narration.vision.classifier import Guess

MANIFEST = "models.json"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: Path
    sha256: str
    kind: str
    labels: tuple[str, ...]
    input_size: tuple[int, int]  # width, height
    threshold: float = 0.5
    activation: str = "softmax"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)


@dataclass
class ExtraFindings:
    guesses: list[Guess] = field(default_factory=list)
    objects: dict[str, int] = field(default_factory=dict)  # label -> count, from detectors


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path) -> list[ModelSpec]:
    """Parse and validate the manifest (paths stay inside the folder); checksums are checked at load."""
    folder = folder.resolve()
    try:
        raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        entries = raw["models"]
        specs = [_spec(folder, entry) for entry in entries]
    except EngineError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineError("ENGINE_FAILED", f"cannot read {folder / MANIFEST}: {exc}") from exc
    return specs


def _spec(folder: Path, entry: dict[str, Any]) -> ModelSpec:
    path = (folder / str(entry["file"])).resolve()
    if not path.is_relative_to(folder) or path.suffix not in (".onnx", ".tflite"):
        raise EngineError("ENGINE_FAILED", f"model file {entry['file']!r} must be an .onnx or .tflite inside {folder}")
    kind = str(entry["kind"])
    if kind not in ("classifier", "detector") or (kind == "detector" and path.suffix != ".onnx"):
        raise EngineError("ENGINE_FAILED", f"model {entry['file']!r}: unsupported kind {kind!r}")
    labels = entry["labels"]
    if isinstance(labels, str):
        label_path = (folder / labels).resolve()
        if not label_path.is_relative_to(folder):
            raise EngineError("ENGINE_FAILED", f"label file {labels!r} must be inside {folder}")
        labels = [line.strip() for line in label_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    width, height = (int(v) for v in entry.get("input_size", (224, 224)))
    return ModelSpec(
        name=str(entry.get("name", path.stem)),
        path=path,
        sha256=str(entry["sha256"]).lower(),
        kind=kind,
        labels=tuple(str(label) for label in labels),
        input_size=(width, height),
        threshold=float(entry.get("threshold", 0.5)),
        activation=str(entry.get("activation", "softmax")),
        mean=tuple(float(v) for v in entry.get("mean", (0.0, 0.0, 0.0))),
        std=tuple(float(v) for v in entry.get("std", (1.0, 1.0, 1.0))),
    )


class ExtraModels:
    """Every model listed in the folder's manifest, verified and loaded once."""

    def __init__(self, folder: Path, threads: int) -> None:
        self.folder = folder
        self.threads = threads
        self._lock = threading.Lock()
        self._loaded: list[tuple[ModelSpec, Any]] | None = None

    def load(self) -> None:
        with self._lock:
            if self._loaded is not None:
                return
            loaded = []
            for spec in read_manifest(self.folder):
                actual = sha256_file(spec.path) if spec.path.is_file() else "missing"
                if not hmac.compare_digest(actual, spec.sha256):
                    raise EngineError(
                        "ENGINE_FAILED", f"model file {spec.path.name} failed its SHA-256 check; refusing to load it"
                    )
                loaded.append((spec, self._open(spec)))
            self._loaded = loaded

    def _open(self, spec: ModelSpec) -> Any:
        if spec.path.suffix == ".onnx":
            return ort_session(spec.path.read_bytes(), self.threads)  # the bytes just verified, not a re-read
        from ai_edge_litert.interpreter import Interpreter

        from narration.native import quiet_native_stderr

        with quiet_native_stderr():
            interpreter = Interpreter(model_content=spec.path.read_bytes(), num_threads=self.threads)
            interpreter.allocate_tensors()
        return interpreter

    def run(self, image: Image.Image) -> ExtraFindings:
        self.load()
        findings = ExtraFindings()
        with self._lock:  # TFLite interpreters are not thread-safe; ONNX sessions don't mind
            for spec, model in self._loaded or []:
                if spec.kind == "classifier":
                    findings.guesses.extend(_classify(spec, model, image))
                else:
                    for label, count in _detect(spec, model, image).items():
                        findings.objects[label] = max(count, findings.objects.get(label, 0))
        findings.guesses.sort(key=lambda g: -g.score)
        return findings


def _input(spec: ModelSpec, image: Image.Image, letterbox: bool) -> np.ndarray:
    width, height = spec.input_size
    if letterbox:
        scale = min(width / image.width, height / image.height)
        resized = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        canvas = Image.new("RGB", (width, height), (114, 114, 114))
        canvas.paste(resized, (0, 0))
        image = canvas
    else:
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return (arr - np.asarray(spec.mean, dtype=np.float32)) / np.asarray(spec.std, dtype=np.float32)


def _classify(spec: ModelSpec, model: Any, image: Image.Image) -> list[Guess]:
    x = _input(spec, image, letterbox=False)
    if spec.path.suffix == ".onnx":
        scores = np.asarray(model.run(None, {model.get_inputs()[0].name: x.transpose(2, 0, 1)[None]})[0]).ravel()
    else:
        detail = model.get_input_details()[0]
        tensor = (x * 255).clip(0, 255).astype(np.uint8) if detail["dtype"] == np.uint8 else x
        model.set_tensor(detail["index"], tensor[None].astype(detail["dtype"]))
        model.invoke()
        out = model.get_output_details()[0]
        scores = model.get_tensor(out["index"]).ravel().astype(np.float32)
        if out["dtype"] == np.uint8:
            scores = scores / 255.0
    if spec.activation == "softmax":
        scores = np.exp(scores - scores.max())
        scores = scores / scores.sum()
    elif spec.activation == "sigmoid":
        scores = 1.0 / (1.0 + np.exp(-scores))
    order = np.argsort(-scores)[:3]
    return [
        Guess(spec.labels[i], float(scores[i])) for i in order if i < len(spec.labels) and scores[i] >= spec.threshold
    ]


def _detect(spec: ModelSpec, model: Any, image: Image.Image) -> dict[str, int]:
    x = _input(spec, image, letterbox=True)
    out = np.asarray(model.run(None, {model.get_inputs()[0].name: x.transpose(2, 0, 1)[None]})[0])[0]
    classes = len(spec.labels)
    if out.shape[0] != 4 + classes:
        out = out.T
    if out.shape[0] != 4 + classes:
        raise EngineError("ENGINE_FAILED", f"detector {spec.name}: output shape does not match its {classes} labels")
    boxes, scores = out[:4].T, out[4:].T
    best = scores.argmax(axis=1)
    conf = scores.max(axis=1)
    keep = conf >= spec.threshold
    counts: dict[str, int] = {}
    for cls in np.unique(best[keep]):
        mask = keep & (best == cls)
        count = len(_nms(boxes[mask], conf[mask], 0.45))
        counts[spec.labels[int(cls)]] = count
    return counts


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    xyxy = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
    order = list(np.argsort(-scores))
    kept: list[int] = []
    while order:
        i = order.pop(0)
        kept.append(int(i))
        rest = np.array(order, dtype=int)
        if rest.size == 0:
            break
        lt = np.maximum(xyxy[i, :2], xyxy[rest, :2])
        rb = np.minimum(xyxy[i, 2:], xyxy[rest, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        areas = np.prod(xyxy[rest, 2:] - xyxy[rest, :2], axis=1)
        overlap = inter / np.maximum(np.prod(xyxy[i, 2:] - xyxy[i, :2]) + areas - inter, 1e-9)
        order = [j for j, o in zip(rest, overlap, strict=True) if o <= iou]
    return kept
