"""Expected failures: a stable code and a human message. The GraphQL layer maps these to typed errors."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable error codes, documented in the README. Never rename; only add."""

    VALIDATION = "VALIDATION"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    RATE_LIMITED = "RATE_LIMITED"
    CONFLICT = "CONFLICT"
    INTERNAL = "INTERNAL"  # unexpected failure; the message is masked and carries a request id
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"  # depth, token, alias or cost limit of a GraphQL document
    # accounts and tokens
    EMAIL_TAKEN = "EMAIL_TAKEN"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    TOKEN_INVALID = "TOKEN_INVALID"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_REUSED = "TOKEN_REUSED"
    # photos (mirrors narration.errors codes)
    NOT_AN_IMAGE = "NOT_AN_IMAGE"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    TOO_MANY_PIXELS = "TOO_MANY_PIXELS"
    CORRUPT_IMAGE = "CORRUPT_IMAGE"
    UPLOAD_INCOMPLETE = "UPLOAD_INCOMPLETE"
    # narrations
    NOT_RETRYABLE = "NOT_RETRYABLE"
    NOT_READY = "NOT_READY"
    ENGINE_FAILED = "ENGINE_FAILED"
    UNAVAILABLE = "UNAVAILABLE"


class DomainError(Exception):
    """An expected failure a client can act on."""

    def __init__(
        self, code: ErrorCode | str, message: str, *, field: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.field = field
        self.retry_after = retry_after  # seconds, for RATE_LIMITED and UNAVAILABLE

    def __repr__(self) -> str:
        return f"DomainError({self.code.value}, {self.message!r})"
