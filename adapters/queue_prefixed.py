"""A JobQueue decorator that namespaces queue names, so several environments can share one broker."""

from __future__ import annotations

from typing import Any

from adapters.interfaces import Delivery, Handler, JobQueue


class PrefixedQueue:
    """Adds `prefix` to every queue name on the way in and strips it from deliveries on the way out."""

    def __init__(self, inner: JobQueue, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def _wrap(self, handler: Handler) -> Handler:
        async def handle(delivery: Delivery) -> None:
            delivery.queue = delivery.queue.removeprefix(self.prefix)
            await handler(delivery)

        return handle

    async def publish(self, queue: str, body: dict[str, Any], *, message_id: str) -> None:
        await self.inner.publish(self.prefix + queue, body, message_id=message_id)

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 1, max_attempts: int = 3,
                      backoff_seconds: float = 2.0) -> None:
        await self.inner.consume(self.prefix + queue, self._wrap(handler), prefetch=prefetch,
                                 max_attempts=max_attempts, backoff_seconds=backoff_seconds)

    async def drain(self, queue: str, handler: Handler, *, max_attempts: int = 3, backoff_seconds: float = 2.0) -> int:
        return await self.inner.drain(self.prefix + queue, self._wrap(handler), max_attempts=max_attempts,
                                      backoff_seconds=backoff_seconds)

    async def depth(self, queue: str) -> int:
        return await self.inner.depth(self.prefix + queue)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()
