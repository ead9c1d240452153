"""Download links and what they resolve to: short-lived signed URLs, lazily converted audio, cached metadata."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from adapters.interfaces import Cache, ObjectNotFound, ObjectStorage
from db.models import Narration, NarrationStatus, Photo
from narration import convert_audio
from services.errors import DomainError, ErrorCode
from services.narrations import AUDIO_FORMATS, derived_prefix, download_cache_key
from services.principal import Principal
from services.signing import LinkSigner

AUDIO_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg; codecs=opus", "wav": "audio/wav"}
AUDIO_EXT = {"mp3": "mp3", "opus": "ogg", "wav": "wav"}
METADATA_TTL = 300


class DownloadKind(enum.StrEnum):
    AUDIO = "AUDIO"
    TEXT = "TEXT"
    PHOTO = "PHOTO"


@dataclass(frozen=True, slots=True)
class DownloadLink:
    url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class DownloadTarget:
    """Exactly one of `key` (stream from storage; `size` and the storage's `etag` too) or `body` (inline,
    e.g. the text) is set."""

    content_type: str
    filename: str
    owner_id: uuid.UUID
    key: str | None = None
    body: bytes | None = None
    size: int = 0
    etag: str = ""


async def _metadata(session: AsyncSession, cache: Cache | None, narration_id: uuid.UUID) -> dict[str, Any] | None:
    """What a download needs to know about a narration, cached and dropped on delete."""
    cache_key = download_cache_key(narration_id)
    if cache is not None and (hit := await cache.get(cache_key)) is not None:
        return dict(hit)
    row = await session.get(Narration, narration_id)
    if row is None:
        return None
    photo = await session.get(Photo, row.photo_id) if row.photo_id else None
    meta = {
        "owner_id": str(row.owner_id), "status": row.status.value, "text": row.text,
        "audio_key": row.audio_key, "audio_format": row.audio_format,
        "photo_key": photo.object_key if photo else None,
        "photo_type": photo.content_type if photo else None,
        "created": row.created_at.date().isoformat(),
    }
    # Only settled narrations are cached: a READY row changes only by deletion, which invalidates it.
    if cache is not None and row.status == NarrationStatus.READY:
        await cache.set(cache_key, meta, ttl=METADATA_TTL)
    return meta


def _filename(narration_id: uuid.UUID, meta: dict[str, Any], ext: str) -> str:
    return f"narration-{meta['created']}-{str(narration_id)[:8]}.{ext}"


async def _stat(
    storage: ObjectStorage, cache: Cache | None, narration_id: uuid.UUID, meta: dict[str, Any], key: str
) -> tuple[int, str]:
    """(size, storage ETag) of `key`, kept in the cached metadata: the objects of a READY narration never
    change (renditions are written once), so a cached download touches storage only to read the bytes."""
    objects = meta.setdefault("objects", {})
    if key not in objects:
        info = await storage.head(key)
        objects[key] = [info.size, info.etag]
        if cache is not None and meta["status"] == NarrationStatus.READY.value:
            await cache.set(download_cache_key(narration_id), meta, ttl=METADATA_TTL)
    size, etag = objects[key]
    return int(size), str(etag)


async def _rendition(
    storage: ObjectStorage, cache: Cache | None, narration_id: uuid.UUID, meta: dict[str, Any], fmt: str
) -> str:
    """The storage key of the audio in `fmt`, converting it once and keeping the result."""
    if fmt == meta["audio_format"]:
        return str(meta["audio_key"])
    key = f"{derived_prefix(narration_id)}{fmt}"
    try:
        await _stat(storage, cache, narration_id, meta, key)
    except ObjectNotFound:
        source = await storage.get(str(meta["audio_key"]))
        data, _ = await asyncio.to_thread(convert_audio, source, str(meta["audio_format"]), fmt)
        await storage.put(key, data, content_type=AUDIO_TYPES[fmt])
    return key


async def resolve(
    session: AsyncSession, *, storage: ObjectStorage, cache: Cache | None, viewer_id: uuid.UUID | None,
    viewer_is_admin: bool = False, narration_id: uuid.UUID, kind: DownloadKind, fmt: str | None,
) -> DownloadTarget:
    """What to send for (narration, kind, format); NOT_FOUND for someone else's narration."""
    meta = await _metadata(session, cache, narration_id)
    if meta is None or (not viewer_is_admin and meta["owner_id"] != str(viewer_id)):
        raise DomainError(ErrorCode.NOT_FOUND, "narration not found")
    owner_id = uuid.UUID(meta["owner_id"])
    if kind == DownloadKind.PHOTO:
        if not meta["photo_key"]:
            raise DomainError(ErrorCode.NOT_FOUND, "the photo of this narration is gone")
        ext = "png" if meta["photo_type"] == "image/png" else "jpg"
        key = str(meta["photo_key"])
        size, etag = await _stat(storage, cache, narration_id, meta, key)
        return DownloadTarget(content_type=meta["photo_type"], filename=_filename(narration_id, meta, ext),
                              owner_id=owner_id, key=key, size=size, etag=etag)
    if meta["status"] != NarrationStatus.READY.value:
        raise DomainError(ErrorCode.NOT_READY, f"the narration is {meta['status']}, not READY yet")
    if kind == DownloadKind.TEXT:
        return DownloadTarget(content_type="text/plain; charset=utf-8", filename=_filename(narration_id, meta, "txt"),
                              owner_id=owner_id, body=str(meta["text"] or "").encode())
    fmt = fmt or str(meta["audio_format"])
    if fmt not in AUDIO_FORMATS:
        raise DomainError(ErrorCode.VALIDATION, f"format must be one of {', '.join(AUDIO_FORMATS)}", field="format")
    key = await _rendition(storage, cache, narration_id, meta, fmt)
    size, etag = await _stat(storage, cache, narration_id, meta, key)
    return DownloadTarget(content_type=AUDIO_TYPES[fmt], filename=_filename(narration_id, meta, AUDIO_EXT[fmt]),
                          owner_id=owner_id, key=key, size=size, etag=etag)


def sign_link(
    signer: LinkSigner, *, public_url: str, narration_id: uuid.UUID, owner_id: uuid.UUID, kind: DownloadKind,
    fmt: str | None, ttl: timedelta,
) -> DownloadLink:
    """A URL that downloads without a bearer token until it expires."""
    expires = datetime.now(UTC) + ttl
    token = signer.sign({"n": str(narration_id), "u": str(owner_id), "k": kind.value, "f": fmt,
                         "e": int(expires.timestamp())})
    return DownloadLink(url=f"{public_url.rstrip('/')}/download/{token}", expires_at=expires)


def open_link(signer: LinkSigner, token: str) -> tuple[uuid.UUID, uuid.UUID, DownloadKind, str | None]:
    """Verify a link token; TOKEN_EXPIRED/TOKEN_INVALID otherwise."""
    data = signer.verify(token, max_age=None)
    try:
        if int(data["e"]) < datetime.now(UTC).timestamp():
            raise DomainError(ErrorCode.TOKEN_EXPIRED, "this link has expired")
        return uuid.UUID(data["n"]), uuid.UUID(data["u"]), DownloadKind(data["k"]), data.get("f")
    except (KeyError, ValueError, TypeError) as exc:
        raise DomainError(ErrorCode.TOKEN_INVALID, "this link is not valid") from exc


async def create_link(
    session: AsyncSession, *, storage: ObjectStorage, cache: Cache | None, signer: LinkSigner, public_url: str,
    principal: Principal, narration_id: uuid.UUID, kind: DownloadKind, fmt: str | None, ttl: timedelta,
) -> DownloadLink:
    """Check access, convert audio if needed, and sign a link."""
    target = await resolve(session, storage=storage, cache=cache, viewer_id=principal.user_id,
                           viewer_is_admin=principal.is_admin, narration_id=narration_id, kind=kind, fmt=fmt)
    return sign_link(signer, public_url=public_url, narration_id=narration_id, owner_id=target.owner_id,
                     kind=kind, fmt=fmt, ttl=ttl)


_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def etag_for(key_or_body: str | bytes, size: int, storage_etag: str = "") -> str:
    """A strong ETag that changes whenever the bytes do."""
    seed = key_or_body if isinstance(key_or_body, bytes) else f"{key_or_body}:{storage_etag}".encode()
    return '"' + hashlib.sha256(seed + str(size).encode()).hexdigest()[:32] + '"'


def safe_filename(name: str) -> str:
    return _SAFE.sub("_", name)
