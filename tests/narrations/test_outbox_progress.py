"""The outbox relay publishes what a crash left behind; progress followers survive dropped pub/sub messages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.factory import make_queue
from adapters.interfaces import Delivery
from adapters.pubsub_memory import MemoryPubSub
from adapters.queue_prefixed import PrefixedQueue
from db.models import Narration, NarrationStatus, OutboxMessage, Photo, User
from db.session import make_engine, make_sessionmaker
from services import outbox, progress
from services.messages import NARRATIONS_QUEUE, NarrateJob


@pytest.fixture
async def sessions(pg_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(pg_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _narration(sessions: async_sessionmaker[AsyncSession]) -> Narration:
    async with sessions() as session:
        user = User(email=f"{uuid.uuid4().hex}@example.com", display_name="O", roles=["user"])
        session.add(user)
        await session.flush()
        photo = Photo(owner_id=user.id, object_key=f"photos/{uuid.uuid4()}.jpg", content_type="image/jpeg",
                      source_format="JPEG", width=1, height=1, byte_size=1, sha256="0" * 64)
        session.add(photo)
        await session.flush()
        row = Narration(owner_id=user.id, photo_id=photo.id, options={}, timings={})
        session.add(row)
        await session.commit()
        return row


async def test_relay_publishes_rows_left_by_a_crash_exactly_once(
    sessions: async_sessionmaker[AsyncSession], amqp_url: str
) -> None:
    row = await _narration(sessions)
    async with sessions() as session:  # committed, never published: what a crash after commit leaves
        outbox.enqueue_narrate(session, NarrateJob(narration_id=row.id))
        await session.commit()

    queue = PrefixedQueue(make_queue(amqp_url), f"test-outbox-{uuid.uuid4().hex[:8]}-")
    relay = outbox.OutboxRelay(sessions, queue, interval=0.1)
    relay.start()
    try:
        received: list[Delivery] = []
        got = asyncio.Event()

        async def handle(delivery: Delivery) -> None:
            received.append(delivery)
            got.set()

        await queue.consume(NARRATIONS_QUEUE, handle)
        await asyncio.wait_for(got.wait(), 10)  # the periodic sweep found it without a kick
        await relay.flush()  # nothing left: a second pass publishes nothing again
        await asyncio.sleep(0.3)
    finally:
        await relay.stop()
        await queue.close()
    assert [d.body for d in received] == [{"narration_id": str(row.id), "run": 1}]
    async with sessions() as session:
        published = (await session.scalars(select(OutboxMessage.published_at))).all()
    assert len(published) == 1 and published[0] is not None


async def test_follow_resyncs_from_the_database_when_events_are_lost(
    sessions: async_sessionmaker[AsyncSession]
) -> None:
    row = await _narration(sessions)
    pubsub = MemoryPubSub()
    seen: list[progress.ProgressEvent] = []

    async def follow() -> None:
        async for event in progress.follow(sessions=sessions, pubsub=pubsub, narration_id=row.id,
                                           resync_seconds=0.2):
            seen.append(event)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.1)
    await progress.publish(pubsub, progress.ProgressEvent(
        narration_id=row.id, owner_id=row.owner_id, sequence=1, status=NarrationStatus.PROCESSING,
        stage="describe", percent=40, message="describing"))
    await progress.publish(pubsub, progress.ProgressEvent(  # a stale duplicate is ignored
        narration_id=row.id, owner_id=row.owner_id, sequence=1, status=NarrationStatus.PROCESSING,
        stage="describe", percent=40, message="describing"))
    async with sessions() as session:  # the READY event itself is "dropped": only the row changes
        narration = await session.get(Narration, row.id)
        assert narration is not None
        narration.status = NarrationStatus.READY
        narration.event_sequence = 5
        await session.commit()
    await asyncio.wait_for(task, 5)
    assert [(e.sequence, e.status) for e in seen] == [
        (0, NarrationStatus.QUEUED), (1, NarrationStatus.PROCESSING), (5, NarrationStatus.READY)]
    await pubsub.close()
