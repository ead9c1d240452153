"""RabbitMQ job queue through aio-pika.

Topology for a queue `q` (all durable, on the default exchange):
  q                 the work queue
  q.retry.<ms>      one delay queue per backoff step: x-message-ttl=<ms>, dead-lettered back to `q`.
                    A fixed TTL per queue keeps expiry in order (per-message TTLs only expire at the head)
  q.dlq             failed messages, with the error in their headers

A message is acked only after its handler returned, or after its retry/dead-letter copy was confirmed
by the broker; a consumer that dies first leaves it unacked and RabbitMQ redelivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPConnectionError, ChannelInvalidStateError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from adapters.interfaces import Delivery, Handler
from adapters.jobs import ATTEMPT_HEADER, RetryPolicy, dlq_name, failure_headers

log = logging.getLogger(__name__)

_CONNECTION_ERRORS = (AMQPConnectionError, ChannelInvalidStateError, ConnectionError, OSError)


def retry_queue_name(queue: str, delay: float) -> str:
    return f"{queue}.retry.{round(delay * 1000)}"


def _attempt(headers: Mapping[str, Any] | None) -> int:
    value = (headers or {}).get(ATTEMPT_HEADER, 1)
    return int(value) if isinstance(value, int | str) else 1


def _plain(value: Any) -> Any:
    """Header values as the handler expects them (AMQP long strings arrive as bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class AmqpQueue:
    """JobQueue on RabbitMQ. One robust connection; a confirming channel for publishing, one per consumer."""

    def __init__(
        self, url: str, *, close_timeout: float = 30.0, connect_attempts: int = 5, max_backoff: float = 300.0
    ) -> None:
        self._url = url
        self._close_timeout = close_timeout
        self._connect_attempts = connect_attempts
        self._max_backoff = max_backoff
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._connect_lock = asyncio.Lock()
        self._declared: set[str] = set()
        self._consumers: list[tuple[AbstractChannel, AbstractQueue, str]] = []
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    # -- connection and topology ------------------------------------------------------------------

    async def _connect(self) -> AbstractChannel:
        """The publishing channel, connecting first (with retries: the broker may still be starting)."""
        async with self._connect_lock:
            if self._connection is None or self._publisher is None:
                if self._closing:
                    raise RuntimeError("queue is closed")
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self._connect_attempts),
                    wait=wait_exponential(multiplier=0.5, max=5),
                    retry=retry_if_exception_type(_CONNECTION_ERRORS),
                    reraise=True,
                ):
                    with attempt:
                        connection = await aio_pika.connect_robust(self._url)
                self._connection = connection
                self._publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
            return self._publisher

    def _policy(self, max_attempts: int, backoff_seconds: float) -> RetryPolicy:
        return RetryPolicy(max_attempts, backoff_seconds, self._max_backoff)

    async def _declare(self, channel: AbstractChannel, name: str, arguments: dict[str, Any] | None = None) -> int:
        """Declare a durable queue (idempotent) and return its ready-message count."""
        queue = await channel.declare_queue(name, durable=True, arguments=arguments)
        self._declared.add(name)
        return queue.declaration_result.message_count or 0

    async def _ensure(self, channel: AbstractChannel, queue: str) -> None:
        for name in (queue, dlq_name(queue)):
            if name not in self._declared:
                await self._declare(channel, name)

    async def _declare_retry(self, channel: AbstractChannel, queue: str, delay: float) -> tuple[str, int]:
        name = retry_queue_name(queue, delay)
        arguments = {
            "x-message-ttl": round(delay * 1000),
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue,
        }
        return name, await self._declare(channel, name, arguments)

    # -- publishing -------------------------------------------------------------------------------

    async def publish(self, queue: str, body: dict[str, Any], *, message_id: str) -> None:
        """Persistent, confirmed by the broker; retried briefly across a reconnect."""
        payload = json.dumps(body, separators=(",", ":")).encode()
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(3),
            wait=wait_exponential(multiplier=0.2, max=2),
            retry=retry_if_exception_type(_CONNECTION_ERRORS),
            reraise=True,
        ):
            with attempt:
                channel = await self._connect()
                await self._ensure(channel, queue)
                await self._send(channel, queue, payload, message_id, {ATTEMPT_HEADER: 1})

    async def _send(
        self, channel: AbstractChannel, routing_key: str, payload: bytes, message_id: str, headers: dict[str, Any]
    ) -> None:
        message = aio_pika.Message(
            payload,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            headers=headers,
        )
        # mandatory: an unroutable message raises instead of vanishing.
        await channel.default_exchange.publish(message, routing_key=routing_key, mandatory=True)

    # -- consuming --------------------------------------------------------------------------------

    async def consume(
        self, queue: str, handler: Handler, *, prefetch: int = 1, max_attempts: int = 3,
        backoff_seconds: float = 2.0,
    ) -> None:
        """Start a consumer on its own channel; up to `prefetch` handlers run at once."""
        publisher = await self._connect()
        await self._ensure(publisher, queue)
        assert self._connection is not None
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=max(1, prefetch))
        source = await channel.declare_queue(queue, durable=True)
        policy = self._policy(max_attempts, backoff_seconds)
        tag = await source.consume(partial(self._on_message, queue, handler, policy), no_ack=False)
        self._consumers.append((channel, source, tag))

    async def _on_message(
        self, queue: str, handler: Handler, policy: RetryPolicy, message: AbstractIncomingMessage
    ) -> None:
        if self._closing:
            # Delivered while we were shutting down: hand it straight back.
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await message.nack(requeue=True)
            return
        self._inflight += 1
        self._idle.clear()
        try:
            await self._process(queue, message, handler, policy)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def _process(
        self, queue: str, message: AbstractIncomingMessage, handler: Handler, policy: RetryPolicy
    ) -> bool:
        """Run the handler and settle the message; True when it was sent to a retry queue."""
        headers = {k: _plain(v) for k, v in (message.headers or {}).items() if k != "x-death"}
        attempt = _attempt(headers)
        retryable = True
        try:
            try:
                body = json.loads(message.body)
                if not isinstance(body, dict):
                    raise ValueError("message body is not a JSON object")
            except ValueError:
                retryable = False  # a malformed message never gets better
                raise
            delivery = Delivery(
                queue=queue, body=body, message_id=message.message_id or "", attempt=attempt,
                headers=headers, redelivered=bool(message.redelivered),
            )
            await handler(delivery)
        except Exception as exc:
            try:
                if retryable and policy.should_retry(attempt, exc):
                    await self._retry(queue, message, headers, attempt, policy.delay(attempt), exc)
                    return True
                await self._dead_letter(queue, message, headers, attempt, exc)
            except _CONNECTION_ERRORS:
                log.warning("could not reroute job %s; the broker will redeliver it", message.message_id)
            return False
        try:
            await message.ack()
        except _CONNECTION_ERRORS:
            # The channel died after the work was done: the job will run again (handlers are idempotent).
            log.warning("ack of job %s failed; the broker will redeliver it", message.message_id)
        return False

    async def _retry(
        self, queue: str, message: AbstractIncomingMessage, headers: dict[str, Any], attempt: int,
        delay: float, exc: Exception,
    ) -> None:
        log.info("job %s on %s failed (%s); retry in %.1fs", message.message_id, queue, exc, delay)
        channel = await self._connect()
        name, _ = await self._declare_retry(channel, queue, delay)
        retry_headers = {**headers, ATTEMPT_HEADER: attempt + 1, "x-last-error": str(exc)[:1000]}
        await self._send(channel, name, message.body, message.message_id or "", retry_headers)
        await message.ack()

    async def _dead_letter(
        self, queue: str, message: AbstractIncomingMessage, headers: dict[str, Any], attempt: int,
        exc: Exception,
    ) -> None:
        log.warning("job %s on %s dead-lettered after %d attempt(s): %s", message.message_id, queue, attempt, exc)
        channel = await self._connect()
        await self._ensure(channel, queue)
        dead_headers = {**headers, **failure_headers(queue, attempt, exc)}
        await self._send(channel, dlq_name(queue), message.body, message.message_id or "", dead_headers)
        await message.ack()

    async def drain(
        self, queue: str, handler: Handler, *, max_attempts: int = 3, backoff_seconds: float = 2.0,
        settle_seconds: float = 2.0,
    ) -> int:
        """Burst mode: basic.get until the queue and its retry queues are empty; return the handler calls.

        An expired retry is briefly in neither queue while RabbitMQ dead-letters it back, so drain also
        waits for the retries it sent itself (up to `settle_seconds` without progress, in case another
        consumer took them).
        """
        publisher = await self._connect()
        await self._ensure(publisher, queue)
        assert self._connection is not None
        policy = self._policy(max_attempts, backoff_seconds)
        handled = outstanding = 0
        loop = asyncio.get_running_loop()
        last_progress = loop.time()
        async with self._connection.channel() as channel:
            source = await channel.declare_queue(queue, durable=True)
            while True:
                message = await source.get(no_ack=False, fail=False)
                if message is not None:
                    if _attempt(message.headers) > 1:
                        outstanding = max(0, outstanding - 1)
                    outstanding += await self._process(queue, message, handler, policy)
                    handled += 1
                    last_progress = loop.time()
                    continue
                waiting = 0
                for delay in policy.delays():
                    waiting += (await self._declare_retry(channel, queue, delay))[1]
                settled = outstanding == 0 or loop.time() - last_progress > settle_seconds
                if waiting == 0 and settled:
                    return handled
                await asyncio.sleep(min(0.05, policy.backoff_seconds / 4 or 0.01))

    async def depth(self, queue: str) -> int:
        """Ready messages in the queue (excluding those held unacked by consumers)."""
        channel = await self._connect()
        return await self._declare(channel, queue)

    async def ping(self) -> None:
        await self._connect()
        if self._connection is None or self._connection.is_closed:
            raise ConnectionError("RabbitMQ connection is closed")

    async def close(self) -> None:
        """Cancel consumers, wait (up to close_timeout) for running handlers, then close the connection.

        Handlers still running after the timeout are cancelled with their channel; their messages stay
        unacked, so RabbitMQ redelivers them to another worker.
        """
        self._closing = True
        connection = self._connection
        alive = connection is not None and not connection.is_closed
        # Each broker step is bounded: a robust channel waits for a reconnect that may never come.
        for _, source, tag in self._consumers if alive else ():
            with contextlib.suppress(TimeoutError, *_CONNECTION_ERRORS):
                await asyncio.wait_for(source.cancel(tag), timeout=5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=self._close_timeout)
        for channel, _, _ in self._consumers if alive else ():
            with contextlib.suppress(TimeoutError, *_CONNECTION_ERRORS):
                await asyncio.wait_for(channel.close(), timeout=5)
        self._consumers.clear()
        self._connection, self._publisher = None, None
        if connection is not None:
            with contextlib.suppress(TimeoutError, *_CONNECTION_ERRORS):
                await asyncio.wait_for(connection.close(), timeout=5)
