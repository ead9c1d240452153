"""Crash safety and dead-lettering with real RabbitMQ, PostgreSQL, Redis, S3 and `talkative worker` processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Narration, NarrationStatus, OutboxMessage
from db.session import make_engine, make_sessionmaker
from tests.narrations.stack import Stack, Worker, photo_jpeg
from tests.narrations.test_e2e import upload


@pytest.fixture
async def sessions(stack: Stack) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(stack.settings.effective_database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def wait_for_status(sessions: async_sessionmaker[AsyncSession], narration_id: uuid.UUID,
                          statuses: set[NarrationStatus], timeout: float) -> Narration:
    deadline = time.monotonic() + timeout
    while True:
        async with sessions() as session:
            row = await session.get(Narration, narration_id)
        if row is not None and row.status in statuses:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"narration {narration_id} stayed {row.status if row else 'missing'}")
        await asyncio.sleep(0.02)


async def test_worker_killed_mid_job_loses_nothing_and_finishes_once(
    stack: Stack, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = stack.start_worker("narrations")
    _, token = stack.register()
    created = await upload(stack, token, photo_jpeg(size=(3000, 2000)), {"detail": "DETAILED", "audioFormat": "WAV"})
    narration_id = uuid.UUID(created["id"])

    await wait_for_status(sessions, narration_id, {NarrationStatus.PROCESSING}, timeout=60)
    first.kill()  # SIGKILL: no chance to ack, nack or clean up
    async with sessions() as session:
        assert (await session.get(Narration, narration_id)).status == NarrationStatus.PROCESSING  # type: ignore[union-attr]

    second = stack.start_worker("narrations")  # RabbitMQ redelivers the unacked message to it
    row = await wait_for_status(sessions, narration_id, {NarrationStatus.READY, NarrationStatus.FAILED}, timeout=120)
    assert row.status == NarrationStatus.READY, (row.error_code, row.error_message)
    assert row.attempts == 2  # the killed attempt and the one that finished
    await asyncio.sleep(1.0)  # give a hypothetical duplicate time to show up
    async with sessions() as session:
        notices = await session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.message_id.like(f"notify:{narration_id}:%")))
        final = await session.get(Narration, narration_id)
    assert notices == 1  # exactly one terminal transition, so exactly one email will go out
    assert final is not None and final.finished_at == row.finished_at
    audio = [o["Key"] for o in stack.s3.client().list_objects_v2(Bucket=stack.bucket, Prefix="audio/")
             .get("Contents", []) if str(narration_id) in o["Key"]]
    assert len(audio) == 1
    assert second.stop() == 0  # SIGTERM: a clean exit


async def test_jobs_that_keep_failing_are_dead_lettered_and_marked_failed(
    stack: Stack, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # A worker whose vision endpoint is down: every attempt fails, retries run out, the dead letter marks it.
    env = {**stack.env, "VISION_PROVIDER": "openai", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
           "OPENAI_API_KEY": "sk-test", "RETRY_BACKOFF_SECONDS": "0.2"}
    worker = Worker(env, "narrations")
    stack.workers.append(worker)
    _, token = stack.register()
    created = await upload(stack, token, photo_jpeg(size=(320, 240)), {"detail": "BRIEF"})
    row = await wait_for_status(sessions, uuid.UUID(created["id"]), {NarrationStatus.READY, NarrationStatus.FAILED},
                                timeout=120)
    assert row.status == NarrationStatus.FAILED
    assert row.error_code == "ENGINE_FAILED"
    assert row.error_message and "could not be completed" in row.error_message
    assert row.attempts == 3
    assert worker.stop() == 0


async def test_sigterm_finishes_the_job_in_hand_then_exits(
    stack: Stack, sessions: async_sessionmaker[AsyncSession]
) -> None:
    worker = stack.start_worker("narrations")
    _, token = stack.register()
    created = await upload(stack, token, photo_jpeg(size=(3000, 2000)), {"detail": "DETAILED", "audioFormat": "WAV"})
    narration_id = uuid.UUID(created["id"])
    await wait_for_status(sessions, narration_id, {NarrationStatus.PROCESSING}, timeout=60)
    assert await asyncio.to_thread(worker.stop) == 0  # SIGTERM while the engine is busy
    async with sessions() as session:
        row = await session.get(Narration, narration_id)
    assert row is not None and row.status == NarrationStatus.READY and row.attempts == 1
