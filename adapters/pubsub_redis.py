"""Redis pub/sub multiplexed for thousands of local subscribers on one connection.

One API process holds one Redis pub/sub connection. A background task reads it and fans each message out
to in-process subscribers' bounded queues; a Redis channel is subscribed while at least one local
subscriber wants it (reference counted through FanOut).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.fanout import FanOut

log = logging.getLogger(__name__)


class RedisPubSub:
    """PubSub over Redis. `client_name` tags the connections (visible in CLIENT LIST); `max_connections`
    bounds the publishing pool (the subscription connection is one more)."""

    def __init__(
        self,
        url: str,
        *,
        max_queue: int = 256,
        subscribe_timeout: float = 10.0,
        idle_ping_seconds: float = 15.0,
        client_name: str = "talkative-pubsub",
        max_connections: int = 16,
    ) -> None:
        # A blocking pool: a burst of publishes waits for a free connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=10, decode_responses=True, client_name=client_name,
            socket_keepalive=True,
        )
        self._redis = aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
        self._pubsub = self._redis.pubsub()
        self._fanout = FanOut(max_queue)
        self._lock = asyncio.Lock()  # orders SUBSCRIBE/UNSUBSCRIBE with the reference counts
        # Redis confirms subscriptions in order, so each channel keeps a FIFO of waiters.
        self._confirm: defaultdict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._reader: asyncio.Task[None] | None = None
        self._subscribe_timeout = subscribe_timeout
        self._idle_ping = idle_ping_seconds
        self._closed = False
        self.reconnects = 0

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        await self._redis.publish(channel, json.dumps(message, separators=(",", ":")))

    @asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Subscribed (confirmed by Redis) before the body runs, so no later publish is missed."""
        if not channels:
            raise ValueError("subscribe needs at least one channel")
        if self._closed:
            raise RuntimeError("pubsub is closed")
        async with self._lock:
            subscriber, new = self._fanout.add(channels)
            waiters = []
            try:
                if new:
                    waiters = [self._expect_confirmation(c) for c in new]
                    await self._pubsub.subscribe(*new)
                    self._start_reader()
                    if self._pubsub.connection is not None:  # idempotent: redis-py dedupes callbacks
                        self._pubsub.connection.register_connect_callback(self._on_reconnect)
            except BaseException:
                await self._release(subscriber)
                raise
        try:
            if waiters:
                async with asyncio.timeout(self._subscribe_timeout):
                    await asyncio.gather(*waiters)
            yield subscriber.messages()
        finally:
            async with self._lock:
                await self._release(subscriber)

    async def _release(self, subscriber: Any) -> None:
        empty = self._fanout.remove(subscriber)
        if empty and not self._closed:
            try:
                await self._pubsub.unsubscribe(*empty)
            except RedisError:
                # The reconnect resubscribes from redis-py's own list, which unsubscribe already updated.
                log.warning("pubsub unsubscribe failed", exc_info=True)

    def _expect_confirmation(self, channel: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm[channel].append(future)
        return future

    def _confirmed(self, channel: str) -> None:
        waiters = self._confirm.get(channel)
        if not waiters:
            return
        future = waiters.popleft()
        if not waiters:
            del self._confirm[channel]
        if not future.done():
            future.set_result(None)

    def _confirm_all(self) -> None:
        """After a reconnect redis-py resubscribes everything; older confirmations will never come."""
        for waiters in self._confirm.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)
        self._confirm.clear()

    def _on_reconnect(self, _connection: Any) -> None:
        self.reconnects += 1
        self._confirm_all()

    def _start_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_loop(), name="redis-pubsub-reader")

    async def _read_loop(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                message = await self._pubsub.get_message(timeout=self._idle_ping)
                delay = 0.1
                if message is None:
                    # Quiet line: a ping proves the connection is alive (or triggers the reconnect).
                    if self._pubsub.subscribed:
                        await self._pubsub.ping()
                    continue
                self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("redis pubsub connection lost (%s); reconnecting in %.1fs", exc, delay)
                self._confirm_all()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.connect()  # resubscribes to every channel in redis-py's list
            except Exception:
                log.exception("redis pubsub reader failed; continuing")
                await asyncio.sleep(delay)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "message":
            channel = message["channel"]
            if not self._fanout.has(channel):
                return
            try:
                data = json.loads(message["data"])
            except (TypeError, ValueError):
                log.warning("dropping a non-JSON message on %s", channel)
                return
            self._fanout.deliver(channel, data)
        elif kind == "subscribe":
            self._confirmed(message["channel"])

    @property
    def channels(self) -> list[str]:
        """Channels with at least one local subscriber (for tests and metrics)."""
        return self._fanout.channels

    @property
    def subscriber_count(self) -> int:
        return self._fanout.subscriber_count

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        """Stop the reader, end every subscriber's iterator and close both connections."""
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._confirm_all()
        self._fanout.close_all()
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()
        await self._redis.aclose()
