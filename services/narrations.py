"""Narration use cases: create, read, list, retry, delete. Plain async functions over a session."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.interfaces import Cache, ObjectStorage
from db.models import Narration, NarrationStatus, Photo
from narration import NarrationOptions
from narration.errors import InvalidOptions
from services import outbox
from services.errors import DomainError, ErrorCode
from services.messages import NarrateJob
from services.principal import Principal

log = logging.getLogger(__name__)

AUDIO_FORMATS = ("mp3", "opus", "wav")


def validate_options(choices: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a client's choices with the engine's own rules; return the dict stored on the narration row.

    Missing choices take the engine's defaults; `engine_options(stored)` turns the dict back into options.
    """
    try:
        checked = NarrationOptions(**(choices or {}))
    except InvalidOptions as exc:
        raise DomainError(ErrorCode.VALIDATION, exc.message, field="options") from exc
    except TypeError as exc:  # an unknown choice name: a programming error upstream, still a client's 400
        raise DomainError(ErrorCode.VALIDATION, f"unknown option ({exc})", field="options") from exc
    return {**asdict(checked), "speed": float(checked.speed)}


def engine_options(stored: Mapping[str, Any]) -> NarrationOptions:
    """The engine options a narration row was created with."""
    return NarrationOptions(**stored)


async def create_narration(
    session: AsyncSession, *, owner_id: uuid.UUID, photo_id: uuid.UUID, options: dict[str, Any]
) -> Narration:
    """Insert a QUEUED narration and its queue message in the caller's transaction."""
    row = Narration(id=uuid.uuid4(), owner_id=owner_id, photo_id=photo_id, options=options,
                    status=NarrationStatus.QUEUED, event_sequence=0, attempts=0, run=1, timings={})
    session.add(row)
    await session.flush()
    outbox.enqueue_narrate(session, NarrateJob(narration_id=row.id, run=1))
    return row


async def get_narration(session: AsyncSession, *, principal: Principal, narration_id: uuid.UUID) -> Narration:
    """A narration the caller may read; another user's narration is NOT_FOUND, never FORBIDDEN."""
    row = await session.get(Narration, narration_id)
    if row is None or not principal.can_access(row.owner_id):
        raise DomainError(ErrorCode.NOT_FOUND, "narration not found")
    return row


async def get_photo(session: AsyncSession, *, photo_id: uuid.UUID | None) -> Photo | None:
    return await session.get(Photo, photo_id) if photo_id else None


async def list_narrations(
    session: AsyncSession, *, principal: Principal, first: int, after: tuple[datetime, uuid.UUID] | None,
    status: NarrationStatus | None,
) -> tuple[list[Narration], bool]:
    """The caller's narrations, newest first, keyset-paginated on (created_at, id); and whether more follow."""
    query = select(Narration).where(Narration.owner_id == principal.user_id)
    if status is not None:
        query = query.where(Narration.status == status)
    if after is not None:
        created, ident = after
        query = query.where(
            or_(Narration.created_at < created, and_(Narration.created_at == created, Narration.id < ident))
        )
    query = query.order_by(Narration.created_at.desc(), Narration.id.desc()).limit(first + 1)
    rows = list((await session.scalars(query)).all())
    return rows[:first], len(rows) > first


async def retry_narration(session: AsyncSession, *, principal: Principal, narration_id: uuid.UUID) -> Narration:
    """Queue a FAILED narration again as a new run (row and queue message in one commit)."""
    row = await get_narration(session, principal=principal, narration_id=narration_id)
    if row.status != NarrationStatus.FAILED:
        raise DomainError(ErrorCode.NOT_RETRYABLE, f"only FAILED narrations can be retried; this one is {row.status}")
    if row.photo_id is None:
        raise DomainError(ErrorCode.NOT_RETRYABLE, "the photo of this narration no longer exists")
    row.status = NarrationStatus.QUEUED
    row.error_code = None
    row.error_message = None
    row.finished_at = None
    row.started_at = None
    row.attempts = 0
    row.event_sequence += 1
    row.run += 1
    outbox.enqueue_narrate(session, NarrateJob(narration_id=row.id, run=row.run))
    await session.commit()
    return row


async def delete_narration(
    session: AsyncSession, *, storage: ObjectStorage, cache: Cache | None, principal: Principal,
    narration_id: uuid.UUID,
) -> uuid.UUID:
    """Delete the narration, its photo and every stored object. Objects go after the commit."""
    row = await get_narration(session, principal=principal, narration_id=narration_id)
    keys = [k for k in (row.audio_key,) if k]
    keys += [f"{derived_prefix(row.id)}{fmt}" for fmt in AUDIO_FORMATS]
    photo = await get_photo(session, photo_id=row.photo_id)
    await session.execute(delete(Narration).where(Narration.id == row.id))
    if photo is not None:
        keys.append(photo.object_key)
        await session.execute(delete(Photo).where(Photo.id == photo.id))
    await session.commit()
    if cache is not None:
        await cache.delete(download_cache_key(narration_id))
    try:
        await storage.delete(*keys)
    except Exception:
        # The rows are gone; an orphaned object is harmless and the lifecycle rules expire it.
        log.warning("could not delete objects of narration %s", narration_id, exc_info=True)
    if cache is not None:
        # Again: a download that read the row just before the commit may have cached it meanwhile.
        await cache.delete(download_cache_key(narration_id))
    return narration_id


def photo_key(owner_id: uuid.UUID, photo_id: uuid.UUID, ext: str) -> str:
    return f"photos/{owner_id}/{photo_id}.{ext}"


def audio_key(owner_id: uuid.UUID, narration_id: uuid.UUID, fmt: str) -> str:
    return f"audio/{owner_id}/{narration_id}.{fmt}"


def derived_prefix(narration_id: uuid.UUID) -> str:
    """Where converted audio renditions live (one per format)."""
    return f"audio/renditions/{narration_id}."


def download_cache_key(narration_id: uuid.UUID) -> str:
    return f"download:{narration_id}"
