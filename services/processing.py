"""Run one narration job: QUEUED → PROCESSING → READY | FAILED, idempotent on redelivery."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.interfaces import ObjectNotFound, ObjectStorage, PermanentJobError, PubSub
from db.models import Narration, NarrationStatus, Photo, utcnow
from narration import Engine, ImageError
from services import outbox, progress
from services.errors import ErrorCode
from services.messages import NarrateJob, NotifyJob
from services.narrations import audio_key, engine_options

log = logging.getLogger(__name__)

# Progress events below this spacing are coalesced; stage boundaries always go out.
_MIN_EVENT_INTERVAL = 0.25


@dataclass(slots=True)
class Deps:
    sessions: async_sessionmaker[AsyncSession]
    storage: ObjectStorage
    pubsub: PubSub
    engine: Engine
    relay: outbox.OutboxRelay | None = None
    # Counted in the row, so a job that kills its worker every time (never acked) still gives up.
    max_attempts: int = 3


async def _event(deps: Deps, row_id: uuid.UUID, owner_id: uuid.UUID, status: NarrationStatus,
                 stage: str | None, percent: int, message: str) -> None:
    async with deps.sessions() as session, session.begin():
        seq = await progress.next_sequence(session, row_id)
    await progress.publish(deps.pubsub, progress.ProgressEvent(
        narration_id=row_id, owner_id=owner_id, sequence=seq, status=status, stage=stage, percent=percent,
        message=message,
    ))


class _GiveUp(Exception):
    pass


async def _claim(deps: Deps, job: NarrateJob) -> tuple[Narration, Photo] | None:
    """Mark the narration PROCESSING; None when there is nothing to do (done, deleted, superseded)."""
    async with deps.sessions() as session, session.begin():
        row = await session.scalar(select(Narration).where(Narration.id == job.narration_id).with_for_update())
        if row is None or row.run != job.run or row.status in progress.TERMINAL:
            return None
        photo = await session.get(Photo, row.photo_id) if row.photo_id else None
        if photo is None or row.attempts >= deps.max_attempts:
            raise _GiveUp("the photo is gone" if photo is None else f"gave up after {row.attempts} attempts")
        row.status = NarrationStatus.PROCESSING
        row.attempts += 1
        row.started_at = row.started_at or utcnow()
        row.event_sequence += 1
        seq = row.event_sequence
    await progress.publish(deps.pubsub, progress.ProgressEvent(
        narration_id=row.id, owner_id=row.owner_id, sequence=seq, status=NarrationStatus.PROCESSING,
        stage=None, percent=0, message="processing",
    ))
    return row, photo


async def _finish(deps: Deps, job: NarrateJob, owner_id: uuid.UUID, values: dict[str, Any]) -> None:
    """Write the terminal state and the notification message in one transaction, then announce it."""
    status: NarrationStatus = values["status"]
    async with deps.sessions() as session, session.begin():
        result = await session.execute(
            update(Narration)
            .where(Narration.id == job.narration_id, Narration.run == job.run,
                   Narration.status.not_in(list(progress.TERMINAL)))
            .values(**values, finished_at=utcnow(), event_sequence=Narration.event_sequence + 1)
            .returning(Narration.event_sequence)
        )
        seq = result.scalar_one_or_none()
        if seq is None:
            return  # someone else finished it first: exactly one terminal transition
        outbox.enqueue_notify(session, NotifyJob(narration_id=job.narration_id, status=status.value, run=job.run))
    if deps.relay is not None:
        await deps.relay.publish_now()
    message = values.get("error_message") or status.value.lower()
    await progress.publish(deps.pubsub, progress.ProgressEvent(
        narration_id=job.narration_id, owner_id=owner_id, sequence=seq, status=status, stage=None,
        percent=100, message=message,
    ))


async def process(deps: Deps, job: NarrateJob) -> None:
    """Handle one narrate message. Raises on transient failures so the queue retries it."""
    try:
        claimed = await _claim(deps, job)
    except _GiveUp as exc:
        await fail(deps, job, code=ErrorCode.ENGINE_FAILED, message=f"The narration could not be completed: {exc}")
        return
    if claimed is None:
        log.info("narration %s run %s: nothing to do", job.narration_id, job.run)
        return
    row, photo = claimed
    try:
        data = await deps.storage.get(photo.object_key)
    except ObjectNotFound as exc:
        await fail(deps, job, owner_id=row.owner_id, code=ErrorCode.NOT_FOUND, message="the photo is gone")
        raise PermanentJobError("photo missing") from exc

    last = 0.0

    async def on_progress(stage: str, percent: int, message: str) -> None:
        nonlocal last
        now = time.monotonic()
        if percent not in (0, 100) and now - last < _MIN_EVENT_INTERVAL:
            return
        last = now
        await _event(deps, row.id, row.owner_id, NarrationStatus.PROCESSING, stage, percent, message)

    options = engine_options(row.options)
    try:
        result = await deps.engine.narrate(data, options, on_progress)
    except ImageError as exc:
        await fail(deps, job, owner_id=row.owner_id, code=exc.code, message=exc.message)
        return
    except ValueError as exc:
        await fail(deps, job, owner_id=row.owner_id, code=ErrorCode.VALIDATION, message=str(exc))
        return

    key = audio_key(row.owner_id, row.id, result.audio_format)
    # A fixed key makes a redelivered job overwrite rather than duplicate.
    info = await deps.storage.put(key, result.audio, content_type=result.content_type)
    await _finish(deps, job, row.owner_id, {
        "status": NarrationStatus.READY, "text": result.text, "audio_key": key,
        "audio_format": result.audio_format, "audio_byte_size": info.size,
        "duration_seconds": result.duration_seconds, "timings": result.timings,
        "vision_provider": result.vision_provider, "speech_provider": result.speech_provider,
        "error_code": None, "error_message": None,
    })


async def fail(deps: Deps, job: NarrateJob, *, owner_id: uuid.UUID | None = None, code: str, message: str) -> None:
    """Mark the narration FAILED with a reason (also used by the dead-letter consumer)."""
    if owner_id is None:
        async with deps.sessions() as session:
            owner_id = await session.scalar(select(Narration.owner_id).where(Narration.id == job.narration_id))
        if owner_id is None:
            return
    await _finish(deps, job, owner_id, {
        "status": NarrationStatus.FAILED, "error_code": str(code), "error_message": message[:2000],
    })
