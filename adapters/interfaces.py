"""Small Protocols for every outside part. Each has one real implementation and one embedded one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, BinaryIO, Protocol


class ObjectNotFound(Exception):
    """The key does not exist in storage."""


class TemporaryMailError(Exception):
    """The mail server said try later (4xx) or could not be reached."""


class PermanentMailError(Exception):
    """The mail server refused the message for good (5xx)."""


class PermanentJobError(Exception):
    """A job that must not be retried: it goes straight to the dead-letter queue."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str
    etag: str


class ObjectStorage(Protocol):
    """Blob storage (S3 or a local folder). All methods are safe to call from the event loop."""

    async def ensure_ready(self) -> None:
        """Create the bucket/folder if missing and apply lifecycle rules and the access policy."""

    async def put(self, key: str, data: bytes | BinaryIO, *, content_type: str) -> ObjectInfo: ...

    async def get(self, key: str) -> bytes: ...

    async def head(self, key: str) -> ObjectInfo:
        """Raise ObjectNotFound when missing."""
        ...

    def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Stream bytes [start, end] inclusive, in chunks (an async generator; ObjectNotFound on first read)."""
        ...

    async def delete(self, *keys: str) -> None:
        """Delete keys; missing keys are not an error."""

    async def presign_put(self, key: str, *, content_type: str, byte_size: int, expires: int) -> str | None:
        """A URL a client can PUT to directly, or None when the backend cannot presign."""
        ...

    async def presign_get(
        self, key: str, *, expires: int, filename: str | None = None, content_type: str | None = None
    ) -> str | None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class Delivery:
    """One message handed to a consumer. `attempt` starts at 1; `redelivered` means a consumer may have
    seen it before (it died before acking), so the handler must be idempotent."""

    queue: str
    body: dict[str, Any]
    message_id: str
    attempt: int = 1
    headers: dict[str, Any] = field(default_factory=dict)
    redelivered: bool = False


Handler = Callable[[Delivery], Awaitable[None]]


class JobQueue(Protocol):
    """Durable work queue with ids-only messages, at-least-once delivery, retries and a dead-letter queue.

    `consume` acks only after the handler returns. A handler exception retries the message with backoff
    up to `max_attempts`; `PermanentJobError` or exhaustion moves it to `<queue>.dlq`.
    """

    async def publish(self, queue: str, body: dict[str, Any], *, message_id: str) -> None:
        """Publish durably (publisher confirms) and return once the broker has it."""

    async def consume(
        self, queue: str, handler: Handler, *, prefetch: int = 1, max_attempts: int = 3,
        backoff_seconds: float = 2.0,
    ) -> None:
        """Register a consumer; returns once consuming has started."""

    async def drain(
        self, queue: str, handler: Handler, *, max_attempts: int = 3, backoff_seconds: float = 2.0
    ) -> int:
        """Burst mode: handle messages until the queue and its pending retries are empty; return how many
        handler calls were made (tests, CLI)."""
        ...

    async def depth(self, queue: str) -> int: ...

    async def ping(self) -> None: ...

    async def close(self) -> None:
        """Stop consuming (letting in-flight handlers finish) and close connections."""


class PubSub(Protocol):
    """Fire-and-forget fan-out of JSON events by channel. Messages may be dropped; readers resync from the DB."""

    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, *channels: str) -> AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        """Subscribe; the context yields an iterator of messages, subscribed before the context is entered."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class Mailer(Protocol):
    """Sends one email. Raises TemporaryMailError or PermanentMailError."""

    async def send(self, message: EmailMessage) -> None: ...

    async def close(self) -> None: ...


class Cache(Protocol):
    """A small TTL key-value cache for JSON values."""

    async def get(self, key: str) -> Any | None: ...

    async def set(self, key: str, value: Any, *, ttl: int) -> None: ...

    async def delete(self, *keys: str) -> None: ...


class RateLimiter(Protocol):
    """Moving-window limits keyed by caller; `hit` returns seconds to wait (0 when allowed)."""

    async def hit(self, limit: str, *keys: str) -> int:
        """Count one hit against `limit` (e.g. "10/minute") for the key; return 0 or Retry-After seconds."""
        ...

    async def reset(self, limit: str, *keys: str) -> None: ...
