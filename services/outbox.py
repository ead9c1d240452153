"""Transactional outbox: queue messages are rows written with the state change, published after commit.

A crash between commit and publish leaves the row unpublished; the relay's periodic sweep publishes it
later. A crash between publish and marking it published re-publishes it: delivery is at-least-once and
every handler is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.interfaces import JobQueue
from db.models import OutboxMessage, utcnow
from services.messages import NARRATIONS_QUEUE, NOTIFICATIONS_QUEUE, NarrateJob, NotifyJob

log = logging.getLogger(__name__)


def enqueue(session: AsyncSession, *, queue: str, body: dict[str, Any], message_id: str) -> None:
    """Add a message to the outbox inside the caller's transaction."""
    session.add(OutboxMessage(queue=queue, body=body, message_id=message_id))


def enqueue_narrate(session: AsyncSession, job: NarrateJob) -> None:
    enqueue(session, queue=NARRATIONS_QUEUE, body=job.to_body(), message_id=job.message_id)


def enqueue_notify(session: AsyncSession, job: NotifyJob) -> None:
    enqueue(session, queue=NOTIFICATIONS_QUEUE, body=job.to_body(), message_id=job.message_id)


class OutboxRelay:
    """Publishes pending outbox rows: right after a commit (`kick`) and on a periodic sweep."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], queue: JobQueue, *, interval: float = 2.0,
        batch: int = 100,
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._interval = interval
        self._batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def flush(self) -> int:
        """Publish every pending row now; returns how many were published."""
        published = 0
        async with self._lock:
            while True:
                n = await self._publish_batch()
                published += n
                if n < self._batch:
                    return published

    async def _publish_batch(self) -> int:
        async with self._sessions() as session, session.begin():
            # SKIP LOCKED lets several API/worker processes relay without publishing the same row twice.
            rows: Iterable[OutboxMessage] = (
                await session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.published_at.is_(None))
                    .order_by(OutboxMessage.id)
                    .limit(self._batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            count = 0
            for row in rows:
                await self._queue.publish(row.queue, row.body, message_id=row.message_id)
                row.published_at = utcnow()
                count += 1
            return count

    def kick(self) -> None:
        """Ask the background loop to publish now (cheap; safe to call after every commit)."""
        self._wake.set()

    async def publish_now(self) -> None:
        """Publish after a commit; failures are left to the sweep and only logged."""
        try:
            await self.flush()
        except Exception:
            log.warning("outbox publish failed; the sweep will retry", exc_info=True)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.warning("outbox sweep failed", exc_info=True)
