"""Start the consumers a worker process runs: each queue with its dead-letter queue."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from adapters.interfaces import Handler, JobQueue
from services import notifications, processing
from services.messages import NARRATIONS_QUEUE, NOTIFICATIONS_QUEUE
from workers import narrate, notify

log = logging.getLogger(__name__)

QUEUES = (NARRATIONS_QUEUE, NOTIFICATIONS_QUEUE)


@dataclass(frozen=True, slots=True)
class Consumer:
    queue: str
    handler: Handler
    dead_letter: Handler


def consumers(
    queues: list[str], *, narrate_deps: processing.Deps | None, notify_deps: notifications.NotifyDeps | None
) -> list[Consumer]:
    """The consumers for the named queues (`narrations`, `notifications`)."""
    unknown = set(queues) - set(QUEUES)
    if unknown:
        raise ValueError(f"unknown queue(s): {', '.join(sorted(unknown))}; choose from {', '.join(QUEUES)}")
    out = []
    if NARRATIONS_QUEUE in queues:
        assert narrate_deps is not None
        out.append(Consumer(NARRATIONS_QUEUE, narrate.handler(narrate_deps), narrate.dead_letter_handler(narrate_deps)))
    if NOTIFICATIONS_QUEUE in queues:
        assert notify_deps is not None
        out.append(Consumer(NOTIFICATIONS_QUEUE, notify.handler(notify_deps), notify.dead_letter_handler(notify_deps)))
    return out


async def start(
    queue: JobQueue, items: list[Consumer], *, prefetch: int, max_attempts: int, backoff_seconds: float
) -> None:
    """Begin consuming every queue and its dead-letter queue."""
    for c in items:
        await queue.consume(c.queue, c.handler, prefetch=prefetch, max_attempts=max_attempts,
                            backoff_seconds=backoff_seconds)
        await queue.consume(f"{c.queue}.dlq", c.dead_letter, prefetch=prefetch, max_attempts=max_attempts,
                            backoff_seconds=backoff_seconds)
        log.info("consuming %s (prefetch %s, %s attempts)", c.queue, prefetch, max_attempts)


async def drain(queue: JobQueue, items: list[Consumer], *, max_attempts: int, backoff_seconds: float) -> int:
    """Burst mode: handle everything queued (and dead-lettered) now, then return how many jobs ran."""
    total = 0
    for c in items:
        total += await queue.drain(c.queue, c.handler, max_attempts=max_attempts, backoff_seconds=backoff_seconds)
        total += await queue.drain(f"{c.queue}.dlq", c.dead_letter, max_attempts=max_attempts,
                                   backoff_seconds=backoff_seconds)
    return total
