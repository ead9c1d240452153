"""The speech provider interface and its result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from narration.options import NarrationOptions
from narration.vision.base import Report


@dataclass(frozen=True, eq=False)
class Speech:
    """Either raw samples (float32 mono in [-1, 1]) or audio already encoded by the provider."""

    samples: np.ndarray | None = None
    sample_rate: int = 0
    encoded: bytes | None = None
    format: str | None = None  # of `encoded`: wav, mp3 or opus


class SpeechProvider(Protocol):
    name: str

    def load(self) -> None:
        """Load the default voice now (blocking; called from a worker thread)."""

    async def speak(self, text: str, options: NarrationOptions, report: Report) -> Speech:
        """Synthesize `text` with options.voice and options.speed."""
        ...
