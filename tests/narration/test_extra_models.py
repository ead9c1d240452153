"""Operator models from local_models_dir: checksums verified, classifiers and detectors used."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from narration import EngineError
from narration.vision.extra import ExtraModels
from narration.vision.local import LocalVisionProvider

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def save(model: object, path: Path) -> str:
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())  # type: ignore[attr-defined]
    return hashlib.sha256(path.read_bytes()).hexdigest()


def colour_classifier() -> object:
    """Mean colour -> logits: says 'red thing' for red pictures and 'blue thing' for blue ones."""
    weights = numpy_helper.from_array(np.array([[10, -10], [0, 0], [-10, 10]], dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "colour", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])], [weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def fixed_detector() -> object:
    """A YOLOv8-layout detector that always finds two dogs (and one cat below the threshold)."""
    boxes = np.array([[8, 24, 16], [8, 24, 16], [6, 6, 4], [6, 6, 4]], dtype=np.float32)  # cx, cy, w, h rows
    scores = np.array([[0.05, 0.05, 0.2], [0.9, 0.85, 0.1]], dtype=np.float32)  # cat, dog per anchor
    const = numpy_helper.from_array(np.concatenate([boxes, scores])[None], "c")
    zero = numpy_helper.from_array(np.array(0, dtype=np.float32), "zero")
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
         helper.make_node("Mul", ["s", "zero"], ["z"]),
         helper.make_node("Add", ["c", "z"], ["out"])],
        "detector", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 6, 3])], [const, zero],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    classifier_sum = save(colour_classifier(), tmp_path / "colour.onnx")
    detector_sum = save(fixed_detector(), tmp_path / "det.onnx")
    (tmp_path / "det-labels.txt").write_text("cat\ndog\n")
    manifest = {"models": [
        {"name": "colour", "file": "colour.onnx", "sha256": classifier_sum, "kind": "classifier",
         "labels": ["red thing", "blue thing"], "input_size": [8, 8], "threshold": 0.5},
        {"name": "pets", "file": "det.onnx", "sha256": detector_sum, "kind": "detector",
         "labels": "det-labels.txt", "input_size": [32, 32], "threshold": 0.5},
    ]}
    (tmp_path / "models.json").write_text(json.dumps(manifest))
    return tmp_path


def test_classifier_and_detector_run(models_dir: Path) -> None:
    extra = ExtraModels(models_dir, threads=1)
    red = extra.run(Image.new("RGB", (64, 48), (230, 10, 10)))
    assert red.guesses[0].label == "red thing" and red.guesses[0].score > 0.99
    assert red.objects == {"dog": 2}
    blue = extra.run(Image.new("RGB", (64, 48), (10, 10, 230)))
    assert blue.guesses[0].label == "blue thing"


def test_wrong_checksum_is_refused(models_dir: Path) -> None:
    manifest = json.loads((models_dir / "models.json").read_text())
    manifest["models"][0]["sha256"] = "0" * 64
    (models_dir / "models.json").write_text(json.dumps(manifest))
    with pytest.raises(EngineError, match="SHA-256"):
        ExtraModels(models_dir, threads=1).load()
    # The provider checks operator models first, so a bad file stops it before anything else loads.
    provider = LocalVisionProvider(threads=1, models_dir=models_dir)
    with pytest.raises(EngineError, match=r"colour\.onnx"):
        provider.load()
    assert provider.classifier._net is None


def test_tampered_file_is_refused(models_dir: Path) -> None:
    with (models_dir / "det.onnx").open("ab") as f:
        f.write(b"\x00")
    with pytest.raises(EngineError, match=r"det\.onnx"):
        ExtraModels(models_dir, threads=1).load()


def test_paths_must_stay_inside_the_folder(models_dir: Path) -> None:
    manifest = json.loads((models_dir / "models.json").read_text())
    manifest["models"][0]["file"] = "../outside.onnx"
    (models_dir / "models.json").write_text(json.dumps(manifest))
    with pytest.raises(EngineError, match="inside"):
        ExtraModels(models_dir, threads=1).load()


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"models\.json"):
        ExtraModels(tmp_path, threads=1).load()
