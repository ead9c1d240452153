"""The retry / dead-letter policy shared by the RabbitMQ and in-process queues."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.interfaces import PermanentJobError

ATTEMPT_HEADER = "x-attempt"
DLQ_SUFFIX = ".dlq"
MAX_ERROR_CHARS = 1000


def dlq_name(queue: str) -> str:
    return queue + DLQ_SUFFIX


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt n (1-based) that fails waits backoff * 2**(n-1) seconds, capped, before attempt n+1."""

    max_attempts: int = 3
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_seconds < 0:
            raise ValueError("backoff_seconds must not be negative")

    def delay(self, attempt: int) -> float:
        return min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))

    def delays(self) -> list[float]:
        """Every distinct delay a message may wait under this policy."""
        return sorted({self.delay(n) for n in range(1, self.max_attempts)})

    def should_retry(self, attempt: int, exc: BaseException) -> bool:
        return attempt < self.max_attempts and not isinstance(exc, PermanentJobError)


def failure_headers(queue: str, attempt: int, exc: BaseException) -> dict[str, Any]:
    """Why a message went to the dead-letter queue, as plain header values."""
    return {
        "x-error": f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS],
        "x-error-type": type(exc).__name__,
        "x-attempts": attempt,
        "x-original-queue": queue,
        "x-failed-at": datetime.now(UTC).isoformat(),
    }
