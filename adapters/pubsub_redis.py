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
from collections import defaultdict
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
        self._lock = asyncio.Lock()  # one sender of SUBSCRIBE/UNSUBSCRIBE at a time
        self._to_subscribe: dict[str, None] = {}  # ordered sets of channels not yet sent
        self._to_unsubscribe: dict[str, None] = {}
        self._outstanding: defaultdict[str, int] = defaultdict(int)  # SUBSCRIBEs sent, not yet confirmed
        self._ready: dict[str, asyncio.Future[None]] = {}  # per locally subscribed channel: confirmed
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
        subscriber, new = self._fanout.add(channels)
        try:
            for channel in new:
                self._want(channel)
            waits = [self._ready[c] for c in set(channels) if not self._ready[c].done()]
            await self._flush()
            if waits:
                _, pending = await asyncio.wait(waits, timeout=self._subscribe_timeout)  # never cancels them
                if pending:
                    raise TimeoutError("Redis did not confirm the subscription")
                for future in waits:
                    future.result()  # re-raise a failed SUBSCRIBE
            yield subscriber.messages()
        finally:
            self._unwant(self._fanout.remove(subscriber))
            if not self._closed:
                await self._flush()

    # Bookkeeping is synchronous, so it is consistent between awaits. A channel is never in both
    # _to_subscribe and _to_unsubscribe: a change of mind before the command is sent cancels it.

    def _want(self, channel: str) -> None:
        """The first local subscriber of `channel` arrived."""
        self._ready[channel] = asyncio.get_running_loop().create_future()
        if channel in self._to_unsubscribe:
            del self._to_unsubscribe[channel]  # still subscribed in Redis
            if self._outstanding.get(channel, 0) == 0:
                self._ready[channel].set_result(None)
        else:
            self._to_subscribe[channel] = None

    def _unwant(self, channels: list[str]) -> None:
        """The last local subscriber of each channel left."""
        for channel in channels:
            future = self._ready.pop(channel, None)
            if future is not None and not future.done():
                future.cancel()
            if channel in self._to_subscribe:
                del self._to_subscribe[channel]  # never sent: nothing to undo
            else:
                self._to_unsubscribe[channel] = None

    async def _flush(self) -> None:
        """Send what is pending as at most two commands: concurrent callers share one round of I/O."""
        async with self._lock:
            if self._to_unsubscribe:
                batch = list(self._to_unsubscribe)
                self._to_unsubscribe.clear()
                try:
                    await self._pubsub.unsubscribe(*batch)
                except (RedisError, OSError):
                    # redis-py already dropped them from the list it resubscribes after a reconnect.
                    log.warning("pubsub unsubscribe failed", exc_info=True)
            if self._to_subscribe:
                batch = list(self._to_subscribe)
                self._to_subscribe.clear()
                for channel in batch:
                    self._outstanding[channel] += 1
                try:
                    await self._pubsub.subscribe(*batch)
                except (RedisError, OSError) as exc:
                    self._fail(batch, exc)
                    return
                self._start_reader()
                if self._pubsub.connection is not None:  # idempotent: redis-py dedupes callbacks
                    self._pubsub.connection.register_connect_callback(self._on_reconnect)

    def _fail(self, channels: list[str], exc: Exception) -> None:
        for channel in channels:
            self._outstanding[channel] = max(0, self._outstanding[channel] - 1)
            future = self._ready.get(channel)
            if future is not None and not future.done():
                future.set_exception(ConnectionError(f"Redis SUBSCRIBE failed: {exc}"))
                future.exception()  # mark retrieved: subscribers call result(); nobody else must log it

    def _confirmed(self, channel: str) -> None:
        """A SUBSCRIBE reply: the channel is live once every SUBSCRIBE sent for it is confirmed."""
        left = max(0, self._outstanding.get(channel, 0) - 1)
        if left:
            self._outstanding[channel] = left
            return
        self._outstanding.pop(channel, None)
        future = self._ready.get(channel)
        if future is not None and not future.done():
            future.set_result(None)

    def _confirm_all(self) -> None:
        """After a reconnect redis-py has resubscribed everything; older replies will never come."""
        self._outstanding.clear()
        for future in self._ready.values():
            if not future.done():
                future.set_result(None)

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
