"""In-process fan-out of messages by channel to many subscribers, each with a bounded queue.

Shared by the Redis pub/sub adapter (which feeds it from one Redis connection) and the embedded one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger(__name__)

_CLOSED = object()  # sentinel that ends a subscriber's iterator


class Subscriber:
    """One reader: a bounded queue. A slow reader loses its oldest messages, never blocks the others."""

    __slots__ = ("channels", "dropped", "queue")

    def __init__(self, channels: tuple[str, ...], max_queue: int) -> None:
        self.channels = channels
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max_queue)
        self.dropped = 0

    def offer(self, message: Any) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # Drop the oldest: readers resync from the database, and the newest state matters most.
            self.queue.get_nowait()
            self.queue.put_nowait(message)
            self.dropped += 1

    def messages(self) -> AsyncIterator[dict[str, Any]]:
        return _Messages(self.queue)


class _Messages:
    """An iterator, not an async generator: cancelling a pending `__anext__` (e.g. wait_for timing out
    while a reader checks the database) must leave it usable, and an async generator would be closed."""

    __slots__ = ("_queue",)

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        self._queue = queue

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> dict[str, Any]:
        message = await self._queue.get()
        if message is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # stay ended for later calls
            raise StopAsyncIteration
        return message


class FanOut:
    """Channel → subscribers. `add`/`remove` report when a channel gains its first or loses its last one."""

    def __init__(self, max_queue: int = 256) -> None:
        self.max_queue = max_queue
        self._by_channel: defaultdict[str, set[Subscriber]] = defaultdict(set)

    def add(self, channels: tuple[str, ...]) -> tuple[Subscriber, list[str]]:
        """Register a subscriber; return it and the channels that had no subscriber before."""
        subscriber = Subscriber(channels, self.max_queue)
        new = []
        for channel in dict.fromkeys(channels):
            subs = self._by_channel[channel]
            if not subs:
                new.append(channel)
            subs.add(subscriber)
        return subscriber, new

    def remove(self, subscriber: Subscriber) -> list[str]:
        """Unregister; return the channels left without subscribers."""
        empty = []
        for channel in dict.fromkeys(subscriber.channels):
            subs = self._by_channel.get(channel)
            if subs is None:
                continue
            subs.discard(subscriber)
            if not subs:
                del self._by_channel[channel]
                empty.append(channel)
        return empty

    def deliver(self, channel: str, message: dict[str, Any]) -> int:
        """Hand one message to every subscriber of the channel (they share the dict: treat it as read-only)."""
        subs = self._by_channel.get(channel)
        if not subs:
            return 0
        for subscriber in subs:
            subscriber.offer(message)
        return len(subs)

    def has(self, channel: str) -> bool:
        return channel in self._by_channel

    @property
    def channels(self) -> list[str]:
        return list(self._by_channel)

    @property
    def subscriber_count(self) -> int:
        return len({s for subs in self._by_channel.values() for s in subs})

    def close_all(self) -> None:
        """End every subscriber's iterator."""
        for subscriber in {s for subs in self._by_channel.values() for s in subs}:
            subscriber.offer(_CLOSED)
        self._by_channel.clear()
