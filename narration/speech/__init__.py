"""Speech providers: text in, audio out, behind one interface."""

from narration.speech.base import Speech, SpeechProvider

__all__ = ["Speech", "SpeechProvider"]
