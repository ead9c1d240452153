"""In-process pub/sub for embedded mode: one process, no server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from adapters.fanout import FanOut


class MemoryPubSub:
    """Fan-out inside this process. Messages round-trip through JSON so they match the Redis adapter."""

    def __init__(self, *, max_queue: int = 256) -> None:
        self._fanout = FanOut(max_queue)
        self._closed = False

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        if self._closed:
            raise RuntimeError("pubsub is closed")
        self._fanout.deliver(channel, json.loads(json.dumps(message)))

    @asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        if not channels:
            raise ValueError("subscribe needs at least one channel")
        if self._closed:
            raise RuntimeError("pubsub is closed")
        subscriber, _ = self._fanout.add(channels)
        try:
            yield subscriber.messages()
        finally:
            self._fanout.remove(subscriber)

    @property
    def channels(self) -> list[str]:
        """Channels with at least one subscriber (for tests and metrics)."""
        return self._fanout.channels

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._closed = True
        self._fanout.close_all()
