"""Narrations area: upload (multipart or presigned), read, list, retry, delete, downloads, live progress.

Thin: parse input, call one service, map the result. DomainError becomes the `Error` member of a result.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import strawberry
from strawberry.file_uploads import Upload

from db.models import Narration as NarrationRow
from graph.context import Context, Info
from graph.pagination import Connection, check_first, decode_cursor, encode_cursor
from graph.types.narrations import (
    AudioFormat,
    DeletedNarration,
    DeleteNarrationResult,
    DownloadKind,
    DownloadLink,
    DownloadLinkResult,
    HttpHeader,
    Narration,
    NarrationOptionsInput,
    NarrationResult,
    NarrationStatus,
    NotificationSettings,
    NotificationSettingsResult,
    PhotoUpload,
    PhotoUploadResult,
    ProgressEvent,
)
from services import downloads, narrations, notifications, photos, progress
from services.errors import DomainError, ErrorCode
from services.principal import Principal

DOWNLOAD_LINK_TTL = timedelta(minutes=15)
_CHUNK = 256 * 1024


def _id(value: str, what: str = "narration") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise DomainError(ErrorCode.NOT_FOUND, f"{what} not found", field="id") from exc


async def _throttle(ctx: Context, principal: Principal, action: str) -> None:
    """Mutations that cost compute or mail are limited per user and per client address."""
    limit = ctx.settings.upload_rate_limit
    retry_after = max(
        await ctx.container.limiter.hit(limit, action, "user", str(principal.user_id)),
        await ctx.container.limiter.hit(limit, action, "address", ctx.client_address),
    )
    if retry_after:
        raise DomainError(ErrorCode.RATE_LIMITED, f"too many requests; retry in {retry_after} s",
                          retry_after=retry_after)


async def _narration(info: Info, row: NarrationRow) -> Narration:
    photo = await info.context.loaders.photo.load(row.photo_id) if row.photo_id else None
    return Narration.from_model(row, photo)


def _limits(ctx: Context) -> photos.IntakeLimits:
    return photos.IntakeLimits(max_bytes=ctx.settings.max_upload_bytes, max_pixels=ctx.settings.max_pixels)


async def _after_commit(ctx: Context) -> None:
    await ctx.container.relay.publish_now()


async def _upload_chunks(file: Any) -> AsyncIterator[bytes]:
    """Read Starlette's spooled upload (the runtime type behind strawberry's `Upload`) in chunks."""
    while chunk := await file.read(_CHUNK):
        yield chunk


@strawberry.type
class Query:
    @strawberry.field(description="One of your narrations (admins: any).")
    async def narration(self, info: Info, id: strawberry.ID) -> NarrationResult:
        principal = info.context.require_principal()
        async with info.context.session() as session:
            row = await narrations.get_narration(session, principal=principal, narration_id=_id(id))
        return await _narration(info, row)

    @strawberry.field(description="Your narrations, newest first.")
    async def narrations(
        self, info: Info, first: int = 20, after: str | None = None,
        status: NarrationStatus | None = None,  # type: ignore[valid-type]
    ) -> Connection[Narration]:
        principal = info.context.require_principal()
        check_first(first, info.context.settings.max_page_size)
        key = decode_cursor(after, datetime, uuid.UUID) if after else None
        async with info.context.session() as session:
            rows, has_next = await narrations.list_narrations(
                session, principal=principal, first=first, after=key, status=status,
            )
        # Gathered so the photo DataLoader batches the whole page into one query.
        mapped = await asyncio.gather(*(_narration(info, row) for row in rows))
        nodes = {row.id: node for row, node in zip(rows, mapped, strict=True)}
        return Connection[Narration].build(rows, has_next=has_next, cursor=lambda r: encode_cursor(r.created_at, r.id),
                                           node=lambda r: nodes[r.id])

    @strawberry.field(description="A short-lived link to download or stream the audio, text or photo. Audio "
                                  "in another format is converted on first request.")
    async def download_url(
        self, info: Info, narration_id: strawberry.ID, kind: DownloadKind,  # type: ignore[valid-type]
        format: AudioFormat | None = None,
    ) -> DownloadLinkResult:
        ctx = info.context
        principal = ctx.require_principal()
        async with ctx.session() as session:
            link = await downloads.create_link(
                session, storage=ctx.container.storage, cache=ctx.container.cache, signer=ctx.container.download_signer,
                public_url=ctx.settings.public_url, principal=principal, narration_id=_id(narration_id),
                kind=kind, fmt=format.value if format else None, ttl=DOWNLOAD_LINK_TTL,
            )
        return DownloadLink(url=link.url, expires_at=link.expires_at)

    @strawberry.field(description="Which emails you get.")
    async def notification_settings(self, info: Info) -> NotificationSettingsResult:
        principal = info.context.require_principal()
        async with info.context.session() as session:
            row = await notifications.get_settings(session, user_id=principal.user_id)
        return NotificationSettings.from_model(row)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Upload a photo (GraphQL multipart request) and queue its narration.")
    async def upload_photo(
        self, info: Info, file: Upload, options: NarrationOptionsInput | None = None
    ) -> NarrationResult:
        ctx = info.context
        principal = ctx.require_principal()
        await _throttle(ctx, principal, "upload")
        stored = narrations.validate_options(options.choices() if options else None)
        async with ctx.session() as session:
            row = await photos.upload_photo(
                session, storage=ctx.container.storage, owner_id=principal.user_id, chunks=_upload_chunks(file),
                options=stored, limits=_limits(ctx),
            )
        await _after_commit(ctx)
        return await _narration(info, row)

    @strawberry.mutation(description="Start a direct-to-storage upload: PUT the photo to the returned URL.")
    async def create_photo_upload(self, info: Info, content_type: str, byte_size: int) -> PhotoUploadResult:
        ctx = info.context
        principal = ctx.require_principal()
        await _throttle(ctx, principal, "upload")
        signer = ctx.container.upload_signer

        def fallback(ticket: uuid.UUID) -> str:
            token = signer.sign({"t": str(ticket), "u": str(principal.user_id)})
            return f"{ctx.settings.public_url.rstrip('/')}/uploads/{ticket}?token={token}"

        async with ctx.session() as session:
            up = await photos.create_photo_upload(
                session, storage=ctx.container.storage, owner_id=principal.user_id, content_type=content_type,
                byte_size=byte_size, limits=_limits(ctx), fallback_url=fallback,
            )
        return PhotoUpload(ticket=strawberry.ID(str(up.ticket)), url=up.url, method=up.method,
                           headers=[HttpHeader(name=k, value=v) for k, v in up.headers.items()],
                           expires_at=up.expires_at)

    @strawberry.mutation(description="Finish a direct upload: the stored file is checked before anything is queued.")
    async def complete_photo_upload(
        self, info: Info, ticket: strawberry.ID, options: NarrationOptionsInput | None = None
    ) -> NarrationResult:
        ctx = info.context
        principal = ctx.require_principal()
        stored = narrations.validate_options(options.choices() if options else None)
        async with ctx.session() as session:
            row = await photos.complete_photo_upload(
                session, storage=ctx.container.storage, owner_id=principal.user_id,
                ticket_id=_id(ticket, "upload ticket"), options=stored, limits=_limits(ctx),
            )
        await _after_commit(ctx)
        return await _narration(info, row)

    @strawberry.mutation(description="Queue a FAILED narration again.")
    async def retry_narration(self, info: Info, id: strawberry.ID) -> NarrationResult:
        ctx = info.context
        principal = ctx.require_principal()
        await _throttle(ctx, principal, "retry")
        async with ctx.session() as session:
            row = await narrations.retry_narration(session, principal=principal, narration_id=_id(id))
        await _after_commit(ctx)
        return await _narration(info, row)

    @strawberry.mutation(description="Delete a narration, its photo and its audio.")
    async def delete_narration(self, info: Info, id: strawberry.ID) -> DeleteNarrationResult:
        ctx = info.context
        principal = ctx.require_principal()
        async with ctx.session() as session:
            gone = await narrations.delete_narration(
                session, storage=ctx.container.storage, cache=ctx.container.cache, principal=principal,
                narration_id=_id(id),
            )
        return DeletedNarration(id=strawberry.ID(str(gone)))

    @strawberry.mutation(description="Choose which emails you get. Omitted fields stay as they are.")
    async def update_notification_settings(
        self, info: Info, email_on_ready: bool | None = None, email_on_failure: bool | None = None
    ) -> NotificationSettingsResult:
        principal = info.context.require_principal()
        async with info.context.session() as session:
            row = await notifications.update_settings(
                session, principal=principal, email_on_ready=email_on_ready, email_on_failure=email_on_failure
            )
        return NotificationSettings.from_model(row)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The narration's current state, then each change; ends after READY or "
                                         "FAILED. Owners and admins only.")
    async def narration_progress(self, info: Info, id: strawberry.ID) -> AsyncGenerator[ProgressEvent, None]:
        ctx = info.context
        principal = ctx.require_principal()
        narration_id = _id(id)
        async with ctx.session() as session:
            await narrations.get_narration(session, principal=principal, narration_id=narration_id)
        async for event in progress.follow(sessions=ctx.container.sessions, pubsub=ctx.container.pubsub,
                                           narration_id=narration_id):
            yield ProgressEvent.from_event(event)

    @strawberry.subscription(description="Every change to any of your narrations, as it happens (for list views).")
    async def narration_events(self, info: Info) -> AsyncGenerator[ProgressEvent, None]:
        principal = info.context.require_principal()
        async for event in progress.follow_owner(pubsub=info.context.container.pubsub, owner_id=principal.user_id):
            yield ProgressEvent.from_event(event)
