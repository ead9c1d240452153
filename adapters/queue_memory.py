"""In-process job queue for embedded mode, with the RabbitMQ adapter's semantics.

At-least-once within the process: a handler that is cancelled puts its message back; failures retry
after a backoff; exhaustion or PermanentJobError moves the message to `<queue>.dlq`. Nothing survives a
restart (the transactional outbox re-publishes what was never handled only if it was never published).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from adapters.interfaces import Delivery, Handler
from adapters.jobs import ATTEMPT_HEADER, RetryPolicy, dlq_name, failure_headers

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Message:
    body: dict[str, Any]
    message_id: str
    headers: dict[str, Any] = field(default_factory=dict)
    redelivered: bool = False

    @property
    def attempt(self) -> int:
        return int(self.headers.get(ATTEMPT_HEADER, 1))


class MemoryQueue:
    """Named in-process queues. `close_timeout` bounds how long close() waits for running handlers."""

    def __init__(self, *, close_timeout: float = 30.0) -> None:
        self._queues: defaultdict[str, asyncio.Queue[_Message]] = defaultdict(asyncio.Queue)
        self._pending: defaultdict[str, int] = defaultdict(int)  # retries waiting out their backoff
        self._timers: set[asyncio.TimerHandle] = set()
        self._workers: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()
        self._closing = False
        self._close_timeout = close_timeout

    async def publish(self, queue: str, body: dict[str, Any], *, message_id: str) -> None:
        if self._closing:
            raise RuntimeError("queue is closed")
        # A JSON round trip gives the consumer its own copy and rejects what RabbitMQ could not carry.
        self._put(queue, _Message(json.loads(json.dumps(body)), message_id, {ATTEMPT_HEADER: 1}))

    def _put(self, queue: str, message: _Message) -> None:
        self._queues[queue].put_nowait(message)

    async def consume(
        self, queue: str, handler: Handler, *, prefetch: int = 1, max_attempts: int = 3,
        backoff_seconds: float = 2.0,
    ) -> None:
        """Start `prefetch` worker tasks on the queue."""
        policy = RetryPolicy(max_attempts, backoff_seconds)
        for _ in range(max(1, prefetch)):
            task = asyncio.create_task(self._work(queue, handler, policy), name=f"memory-queue:{queue}")
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _work(self, queue: str, handler: Handler, policy: RetryPolicy) -> None:
        source = self._queues[queue]
        task = asyncio.current_task()
        assert task is not None
        while not self._closing:
            message = await source.get()  # cancelling an idle worker here loses nothing
            self._busy.add(task)
            try:
                await self._process(queue, message, handler, policy)
            finally:
                self._busy.discard(task)

    async def _process(self, queue: str, message: _Message, handler: Handler, policy: RetryPolicy) -> None:
        delivery = Delivery(
            queue=queue, body=message.body, message_id=message.message_id, attempt=message.attempt,
            headers=dict(message.headers), redelivered=message.redelivered,
        )
        try:
            await handler(delivery)
        except asyncio.CancelledError:
            # The worker was stopped mid-job: hand the message back, as an unacked AMQP message would be.
            message.redelivered = True
            self._put(queue, message)
            raise
        except Exception as exc:
            if policy.should_retry(message.attempt, exc):
                self._retry_later(queue, message, policy.delay(message.attempt), exc)
            else:
                log.warning("job %s on %s dead-lettered: %s", message.message_id, queue, exc)
                headers = {**message.headers, **failure_headers(queue, message.attempt, exc)}
                self._put(dlq_name(queue), _Message(message.body, message.message_id, headers))

    def _retry_later(self, queue: str, message: _Message, delay: float, exc: Exception) -> None:
        log.info("job %s on %s failed (%s); retry in %.1fs", message.message_id, queue, exc, delay)
        retry = _Message(
            message.body, message.message_id,
            {**message.headers, ATTEMPT_HEADER: message.attempt + 1, "x-last-error": str(exc)[:1000]},
        )
        self._pending[queue] += 1

        def requeue() -> None:
            self._timers.discard(handle)
            self._pending[queue] -= 1
            self._put(queue, retry)

        handle = asyncio.get_running_loop().call_later(delay, requeue)
        self._timers.add(handle)

    async def drain(
        self, queue: str, handler: Handler, *, max_attempts: int = 3, backoff_seconds: float = 2.0
    ) -> int:
        """Handle messages until the queue is empty and no retry is waiting; return the handler calls."""
        policy = RetryPolicy(max_attempts, backoff_seconds)
        source = self._queues[queue]
        handled = 0
        while True:
            try:
                message = source.get_nowait()
            except asyncio.QueueEmpty:
                if self._pending[queue] == 0:
                    return handled
                await asyncio.sleep(0.02)  # a retry is waiting out its backoff
                continue
            await self._process(queue, message, handler, policy)
            handled += 1

    async def depth(self, queue: str) -> int:
        """Messages ready now (not counting retries waiting out their backoff)."""
        return self._queues[queue].qsize()

    async def pending_retries(self, queue: str) -> int:
        return self._pending[queue]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        """Stop idle workers at once; give running handlers `close_timeout`, then cancel them."""
        self._closing = True
        for task in self._workers - self._busy:
            task.cancel()
        busy = set(self._busy)
        if busy:
            _, late = await asyncio.wait(busy, timeout=self._close_timeout)
            for task in late:
                task.cancel()
        for task in set(self._workers):
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
