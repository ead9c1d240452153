"""Plain HTTP endpoints: signed downloads (with ETag and Range), the unsubscribe link, local uploads.

Thin like the GraphQL resolvers: parse the request, call one service, shape the response.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from adapters.interfaces import ObjectNotFound
from services import downloads, notifications, photos
from services.errors import DomainError, ErrorCode

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_STATUS = {
    ErrorCode.TOKEN_EXPIRED: 403, ErrorCode.TOKEN_INVALID: 403, ErrorCode.NOT_FOUND: 404,
    ErrorCode.NOT_READY: 409, ErrorCode.VALIDATION: 400, ErrorCode.RATE_LIMITED: 429,
    ErrorCode.FILE_TOO_LARGE: 413, ErrorCode.CONFLICT: 409,
}


def _error(exc: DomainError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": exc.code.value, "message": exc.message}},
                        status_code=_STATUS.get(exc.code, 400), headers=headers)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _limit(request: Request, *keys: str) -> None:
    c = request.app.state.container
    limit = c.settings.download_rate_limit
    if not limit:  # DOWNLOAD_RATE_LIMIT="" turns it off (e.g. behind a gateway that limits already)
        return
    retry = await c.limiter.hit(limit, "download", *keys)
    if retry:
        raise _RateLimited(retry)


class _RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive


def parse_range(header: str | None, size: int) -> ByteRange | str | None:
    """None for a full response, a ByteRange, or "unsatisfiable"."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # multi-range or malformed: RFC 9110 lets us ignore it and send everything
    first, last = m.group(1), m.group(2)
    if not first:
        length = int(last)
        if length == 0 or size == 0:
            return "unsatisfiable"
        return ByteRange(max(0, size - length), size - 1)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return ByteRange(start, end)


def _none_match(header: str | None, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/"x" matches "x"."""
    if not header:
        return False
    offered = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in offered or etag in offered


async def _send(request: Request, target: downloads.DownloadTarget) -> Response:
    c = request.app.state.container
    headers = {
        "Content-Disposition": f'attachment; filename="{downloads.safe_filename(target.filename)}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=3600",
        "Accept-Ranges": "bytes",
    }
    if target.body is not None:
        size, etag = len(target.body), downloads.etag_for(target.body, len(target.body))
    else:
        assert target.key is not None
        if c.settings.download_redirect:
            url = await c.storage.presign_get(target.key, expires=300, filename=target.filename,
                                              content_type=target.content_type)
            if url:
                return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
        size, etag = target.size, downloads.etag_for(target.key, target.size, target.etag)
    headers["ETag"] = etag
    if _none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if_range = request.headers.get("if-range")
    rng = parse_range(request.headers.get("range"), size) if not if_range or if_range == etag else None
    if rng == "unsatisfiable":
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    status, start, end = 200, 0, size - 1
    if isinstance(rng, ByteRange):
        status, start, end = 206, rng.start, rng.end
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(0, end - start + 1))
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type=target.content_type)
    if target.body is not None:
        return Response(target.body[start:end + 1], status_code=status, headers=headers,
                        media_type=target.content_type)
    body: AsyncIterator[bytes] = c.storage.read_range(target.key, start, end)
    try:
        first = await anext(body)  # a lost object is a 404 here, before any header has been sent
    except BaseException:
        await _close(body)
        raise
    return StreamingResponse(_prepend(first, body), status_code=status, headers=headers,
                             media_type=target.content_type)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        await _close(rest)  # also when the client goes away mid-stream: the storage stream is released


async def _close(stream: AsyncIterator[bytes]) -> None:
    if (aclose := getattr(stream, "aclose", None)) is not None:
        await aclose()


async def download(request: Request) -> Response:
    """GET /download/{token}: a signed link from `downloadUrl` or an email."""
    c = request.app.state.container
    try:
        narration_id, user_id, kind, fmt = downloads.open_link(c.download_signer, request.path_params["token"])
        await _limit(request, "user", str(user_id))
        await _limit(request, "address", client_ip(request))
        async with c.sessions() as session:
            target = await downloads.resolve(session, storage=c.storage, cache=c.cache, viewer_id=user_id,
                                             narration_id=narration_id, kind=kind, fmt=fmt)
        return await _send(request, target)
    except ObjectNotFound:
        # The row says it exists but storage lost it (a lifecycle rule, a delete racing this request).
        return _error(DomainError(ErrorCode.NOT_FOUND, "this file is gone"))
    except _RateLimited as exc:
        err = DomainError(ErrorCode.RATE_LIMITED, "too many downloads; try again shortly")
        return _error(err, {"Retry-After": str(exc.retry_after)})
    except DomainError as exc:
        return _error(exc)


async def unsubscribe(request: Request) -> Response:
    """GET shows a one-click page; POST (also RFC 8058 one-click from mail clients) turns emails off."""
    c = request.app.state.container
    token = request.query_params.get("token", "")
    if request.method == "GET":
        return HTMLResponse(
            "<!doctype html><title>Unsubscribe</title><form method=post>"
            f"<input type=hidden name=token value='{_attr(token)}'>"
            "<p>Stop all Talkative Photo emails?</p><button>Unsubscribe</button></form>"
        )
    if not token:
        form = await request.form()
        token = str(form.get("token") or "")
    try:
        async with c.sessions() as session:
            await notifications.unsubscribe(session, signer=c.unsubscribe_signer, token=token)
    except DomainError as exc:
        return _error(exc)
    return HTMLResponse("<!doctype html><title>Unsubscribed</title><p>You will get no more emails from us.</p>")


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;")


async def local_upload(request: Request) -> Response:
    """PUT /uploads/{ticket}?token=…: the presigned-upload stand-in when storage cannot presign."""
    c = request.app.state.container
    try:
        payload: dict[str, Any] = c.upload_signer.verify(request.query_params.get("token", ""), max_age=1800)
        ticket_id = uuid.UUID(request.path_params["ticket"])
        if payload.get("t") != str(ticket_id):
            raise DomainError(ErrorCode.TOKEN_INVALID, "this link is not valid")
        async with c.sessions() as session:
            ticket = await photos.load_open_ticket(session, owner_id=uuid.UUID(payload["u"]), ticket_id=ticket_id)
            data = await photos.read_capped(request.stream(), max_bytes=ticket.byte_size)
            await c.storage.put(ticket.object_key, data, content_type=ticket.content_type)
    except DomainError as exc:
        return _error(exc)
    return Response(status_code=200)


routes = [
    Route("/download/{token}", download, methods=["GET", "HEAD"]),
    Route("/unsubscribe", unsubscribe, methods=["GET", "POST"]),
    Route("/uploads/{ticket}", local_upload, methods=["PUT"]),
]
