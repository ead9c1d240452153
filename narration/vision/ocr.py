"""Text in the photo, read with RapidOCR (PP-OCR models bundled in the `rapidocr` wheel)."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

MIN_LINE_SCORE = 0.75  # recogniser confidence per line; below this it is mostly texture read as letters
_WORDISH = re.compile(r"[^\W_]{2,}")


@dataclass(frozen=True)
class TextLine:
    text: str
    score: float
    top: float  # relative 0..1
    height: float  # relative 0..1


@dataclass(frozen=True)
class ReadText:
    lines: tuple[TextLine, ...]

    @property
    def words(self) -> list[str]:
        return " ".join(line.text for line in self.lines).split()

    def as_prose(self) -> str:
        """Lines joined for reading aloud: a line that continues in lower case joins without a stop."""
        out = ""
        for i, line in enumerate(self.lines):
            text = line.text.strip()
            nxt = self.lines[i + 1].text.strip() if i + 1 < len(self.lines) else ""
            out += text
            if nxt:
                ends = text[-1:] in ".!?:;,"
                out += " " if ends or nxt[:1].islower() else ". "
        out = out.strip()
        return out if out[-1:] in ".!?" else f"{out}."


class TextReader:
    """Wraps RapidOCR; its per-call parameter updates aren't thread-safe, so calls are serialised."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._lock = threading.Lock()
        self._engine: Any = None

    def load(self) -> None:
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self._engine is not None:
            return
        from rapidocr import RapidOCR

        self._engine = RapidOCR(
            params={
                "Global.log_level": "error",
                "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                # Never upscale (the default scales the short side up to 736, slow and noisy on photos);
                # callers pass a smaller picture when they want a faster, coarser read.
                "Det.limit_type": "max",
                "Det.limit_side_len": 1280,
            }
        )
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        # Build the three sessions now rather than on the first photo.
        self._engine(Image.new("RGB", (64, 32), "white"))

    def read(self, image: Image.Image, max_side: int | None = None) -> ReadText:
        """Lines of text, in reading order; `max_side` shrinks the picture first (faster, misses small print)."""
        if max_side and max(image.size) > max_side:
            image = image.copy()
            image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
        with self._lock:
            self._load_locked()
            result = self._engine(image)
        if not result.txts:
            return ReadText(())
        height = image.height
        lines = []
        for box, text, score in zip(result.boxes, result.txts, result.scores, strict=False):
            text = str(text).strip()
            if float(score) < MIN_LINE_SCORE or not _WORDISH.search(text):
                continue
            ys = np.asarray(box)[:, 1]
            lines.append(TextLine(text, float(score), float(ys.min()) / height, float(ys.max() - ys.min()) / height))
        return ReadText(tuple(_reading_order(lines)))


def _reading_order(lines: list[TextLine]) -> list[TextLine]:
    """Top to bottom; pieces on the same row (centres within half a line height) stay in detector order."""
    ordered = sorted(lines, key=lambda line: line.top + line.height / 2)
    rows: list[list[TextLine]] = []
    for line in ordered:
        centre = line.top + line.height / 2
        if rows:
            last = rows[-1][-1]
            if abs(centre - (last.top + last.height / 2)) < max(line.height, last.height) / 2:
                rows[-1].append(line)
                continue
        rows.append([line])
    return [line for row in rows for line in row]
