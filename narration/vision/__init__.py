"""Vision providers: turn a prepared photo into words, behind one interface."""

from narration.vision.base import Report, VisionProvider

__all__ = ["Report", "VisionProvider"]
