"""The vision provider interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from narration.image import PreparedImage
from narration.options import NarrationOptions

Report = Callable[[int, str], None]
"""Progress inside a stage: (percent 0..100, message). Thread-safe, never blocks."""


class VisionProvider(Protocol):
    """Describes a photo as plain, speakable text."""

    name: str

    def load(self) -> None:
        """Load every model now (blocking; called from a worker thread)."""

    async def describe(self, image: PreparedImage, options: NarrationOptions, report: Report) -> str:
        """The description, written to be heard, in options.language where the provider can."""
        ...
