"""Photo intake: validate and clean a photo, store it, and queue its narration.

Two ways in: a multipart upload through the API (`upload_photo`), or a presigned direct-to-storage
upload (`create_photo_upload` then `complete_photo_upload`) that is checked before anything is queued.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from adapters.interfaces import ObjectNotFound, ObjectStorage
from db.models import Narration, Photo, UploadTicket, utcnow
from narration import ImageError, PreparedImage, prepare_image
from services.errors import DomainError, ErrorCode
from services.narrations import create_narration, photo_key

ALLOWED_UPLOAD_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/gif", "image/heic", "image/heif"}
)
TICKET_TTL = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    max_bytes: int
    max_pixels: int


@dataclass(frozen=True, slots=True)
class PhotoUpload:
    """What `create_photo_upload` hands the client."""

    ticket: uuid.UUID
    url: str
    method: str
    headers: dict[str, str]
    expires_at: Any


async def read_capped(chunks: AsyncIterator[bytes], *, max_bytes: int) -> bytes:
    """Collect an upload into one buffer, refusing as soon as it passes the cap."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        if len(buf) > max_bytes:
            raise DomainError(ErrorCode.FILE_TOO_LARGE, f"the photo is larger than {max_bytes // (1024 * 1024)} MB")
    return bytes(buf)


async def _prepare(data: bytes, limits: IntakeLimits) -> PreparedImage:
    try:
        return await asyncio.to_thread(prepare_image, data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
    except ImageError as exc:
        raise DomainError(exc.code, exc.message) from exc


async def _store_and_queue(
    session: AsyncSession, storage: ObjectStorage, *, owner_id: uuid.UUID, image: PreparedImage,
    options: dict[str, Any],
) -> Narration:
    photo_id = uuid.uuid4()
    ext = "png" if image.content_type == "image/png" else "jpg"
    key = photo_key(owner_id, photo_id, ext)
    info = await storage.put(key, image.data, content_type=image.content_type)
    session.add(Photo(
        id=photo_id, owner_id=owner_id, object_key=key, content_type=image.content_type,
        source_format=image.format, width=image.width, height=image.height, byte_size=info.size,
        sha256=hashlib.sha256(image.data).hexdigest(),
    ))
    await session.flush()
    try:
        row = await create_narration(session, owner_id=owner_id, photo_id=photo_id, options=options)
        await session.commit()
    except BaseException:
        await session.rollback()
        await storage.delete(key)
        raise
    return row


async def upload_photo(
    session: AsyncSession, *, storage: ObjectStorage, owner_id: uuid.UUID, chunks: AsyncIterator[bytes],
    options: dict[str, Any], limits: IntakeLimits,
) -> Narration:
    """Read a streamed upload (capped), clean it, store it and queue the narration."""
    data = await read_capped(chunks, max_bytes=limits.max_bytes)
    image = await _prepare(data, limits)
    del data
    return await _store_and_queue(session, storage, owner_id=owner_id, image=image, options=options)


async def create_photo_upload(
    session: AsyncSession, *, storage: ObjectStorage, owner_id: uuid.UUID, content_type: str, byte_size: int,
    limits: IntakeLimits, fallback_url: Callable[[uuid.UUID], str],
) -> PhotoUpload:
    """Issue a ticket and a URL the client PUTs the photo to (presigned S3, or our own upload endpoint)."""
    if content_type not in ALLOWED_UPLOAD_TYPES:
        raise DomainError(ErrorCode.UNSUPPORTED_FORMAT, f"{content_type} is not a supported photo type",
                          field="contentType")
    if byte_size <= 0:
        raise DomainError(ErrorCode.VALIDATION, "byteSize must be positive", field="byteSize")
    if byte_size > limits.max_bytes:
        raise DomainError(ErrorCode.FILE_TOO_LARGE, f"the photo is larger than {limits.max_bytes // (1024 * 1024)} MB",
                          field="byteSize")
    ticket = UploadTicket(
        id=uuid.uuid4(), owner_id=owner_id, content_type=content_type, byte_size=byte_size,
        expires_at=utcnow() + TICKET_TTL, object_key="",
    )
    ticket.object_key = f"uploads/{owner_id}/{ticket.id}"
    session.add(ticket)
    await session.commit()
    url = await storage.presign_put(
        ticket.object_key, content_type=content_type, byte_size=byte_size, expires=int(TICKET_TTL.total_seconds())
    )
    headers = {"Content-Type": content_type}
    return PhotoUpload(ticket=ticket.id, url=url or fallback_url(ticket.id), method="PUT", headers=headers,
                       expires_at=ticket.expires_at)


async def load_open_ticket(session: AsyncSession, *, owner_id: uuid.UUID, ticket_id: uuid.UUID) -> UploadTicket:
    """A ticket of this owner that is neither used nor expired."""
    ticket = await session.get(UploadTicket, ticket_id)
    if ticket is None or ticket.owner_id != owner_id:
        raise DomainError(ErrorCode.NOT_FOUND, "upload ticket not found", field="ticket")
    if ticket.completed_at is not None:
        raise DomainError(ErrorCode.CONFLICT, "this upload was already completed", field="ticket")
    expires = ticket.expires_at if ticket.expires_at.tzinfo else ticket.expires_at.replace(tzinfo=utcnow().tzinfo)
    if expires < utcnow():
        raise DomainError(ErrorCode.TOKEN_EXPIRED, "the upload ticket has expired", field="ticket")
    return ticket


async def complete_photo_upload(
    session: AsyncSession, *, storage: ObjectStorage, owner_id: uuid.UUID, ticket_id: uuid.UUID,
    options: dict[str, Any], limits: IntakeLimits,
) -> Narration:
    """Check the uploaded object (size, real type from its bytes), then store the cleaned photo and queue it."""
    ticket = await load_open_ticket(session, owner_id=owner_id, ticket_id=ticket_id)
    try:
        info = await storage.head(ticket.object_key)
    except ObjectNotFound as exc:
        raise DomainError(ErrorCode.UPLOAD_INCOMPLETE, "nothing was uploaded for this ticket yet") from exc
    if info.size != ticket.byte_size:
        raise DomainError(
            ErrorCode.UPLOAD_INCOMPLETE, f"expected {ticket.byte_size} bytes but {info.size} were uploaded"
        )
    raw_key = ticket.object_key
    ticket.completed_at = utcnow()
    try:
        image = await _prepare(await storage.get(raw_key), limits)
    except DomainError:
        await session.commit()  # a rejected upload uses up its ticket
        await storage.delete(raw_key)
        raise
    row = await _store_and_queue(session, storage, owner_id=owner_id, image=image, options=options)
    await storage.delete(raw_key)
    return row
