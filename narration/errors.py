"""Typed engine errors with stable codes; callers map the code, never the message."""

from __future__ import annotations

from typing import Literal

ImageErrorCode = Literal["NOT_AN_IMAGE", "UNSUPPORTED_FORMAT", "FILE_TOO_LARGE", "TOO_MANY_PIXELS", "CORRUPT_IMAGE"]


class NarrationError(Exception):
    """Base class: every engine failure carries a stable `code` and a human `message`."""

    code: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class ImageError(NarrationError):
    """The photo was rejected: not an image, unsupported, too big, a bomb, or damaged."""

    def __init__(self, code: ImageErrorCode, message: str) -> None:
        super().__init__(code, message)


class EngineError(NarrationError):
    """A provider (model or remote API) failed; the photo itself was fine."""

    def __init__(self, code: str = "ENGINE_FAILED", message: str = "the narration engine failed") -> None:
        super().__init__(code, message)


class InvalidOptions(NarrationError, ValueError):
    """Options out of range or unknown (also a ValueError, so plain validation code catches it)."""

    def __init__(self, message: str) -> None:
        super().__init__("INVALID_OPTIONS", message)
