"""GET/HEAD /download/{token} against real S3 (SeaweedFS), Redis (cache, limiter) and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from db.models import Narration, Photo
from services import downloads
from services.downloads import DownloadKind
from tests.downloads.flow import Gql, Stack, User
from tests.support.servers import S3Server

pytestmark = pytest.mark.asyncio(loop_scope="session")

_FILENAME = re.compile(r'^attachment; filename="narration-\d{4}-\d{2}-\d{2}-[0-9a-f]{8}\.(\w+)"$')


async def _keys(stack: Stack, narration_id: str) -> tuple[str, str]:
    """(audio key, photo key) of a narration, from the database."""
    async with stack.container.sessions() as session:
        row = await session.get(Narration, uuid.UUID(narration_id))
        assert row is not None and row.audio_key and row.photo_id
        photo = await session.get(Photo, row.photo_id)
        assert photo is not None
        return row.audio_key, photo.object_key


def _s3_get(s3: S3Server, key: str) -> Any:
    return s3.client().get_object(Bucket=s3.bucket, Key=key)


async def _stored(s3: S3Server, key: str) -> bytes:
    response = await asyncio.to_thread(_s3_get, s3, key)
    return bytes(response["Body"].read())


def _common_headers(response: Any, *, content_type: str, ext: str) -> None:
    h = response.headers
    assert h["content-type"] == content_type
    match = _FILENAME.match(h["content-disposition"])
    assert match and match.group(1) == ext, h["content-disposition"]
    assert h["x-content-type-options"] == "nosniff"
    assert re.fullmatch(r'"[0-9a-f]{32}"', h["etag"])
    assert h["cache-control"] == "private, max-age=3600"
    assert h["accept-ranges"] == "bytes"


async def test_audio_download_has_the_stored_bytes_and_headers(
    stack: Stack, gql: Gql, owner: User, ready: Any, s3: S3Server
) -> None:
    url = await gql.link(owner, ready["id"], "AUDIO")
    response = await stack.http.get(url)  # no Authorization header: the signed link is enough
    assert response.status_code == 200, response.text
    audio_key, _ = await _keys(stack, ready["id"])
    stored = await _stored(s3, audio_key)
    assert response.content == stored
    assert int(response.headers["content-length"]) == len(stored) == ready["audio"]["byteSize"]
    assert stored[:3] == b"ID3" or stored[0] == 0xFF  # an MP3 stream
    _common_headers(response, content_type="audio/mpeg", ext="mp3")
    assert ready["id"][:8] in response.headers["content-disposition"]


async def test_if_none_match_answers_304(stack: Stack, gql: Gql, owner: User, ready: Any) -> None:
    url = await gql.link(owner, ready["id"], "AUDIO")
    first = await stack.http.get(url)
    etag = first.headers["etag"]
    for offered in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        again = await stack.http.get(url, headers={"If-None-Match": offered})
        assert again.status_code == 304, offered
        assert again.content == b""
        assert again.headers["etag"] == etag
    # A fresh link to the same bytes has the same validator.
    other = await stack.http.get(await gql.link(owner, ready["id"], "AUDIO"), headers={"If-None-Match": etag})
    assert other.status_code == 304
    changed = await stack.http.get(url, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200 and changed.content == first.content


async def test_ranges_give_exactly_the_requested_bytes(stack: Stack, gql: Gql, owner: User, ready: Any) -> None:
    url = await gql.link(owner, ready["id"], "AUDIO")
    full = (await stack.http.get(url)).content
    size = len(full)
    assert size > 2000
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=1000-1999": (1000, 1999),
        f"bytes={size - 10}-": (size - 10, size - 1),
        f"bytes=500-{size + 5000}": (500, size - 1),  # an end past the object is clamped
        "bytes=-100": (size - 100, size - 1),  # suffix: the last 100 bytes
        f"bytes=-{size * 2}": (0, size - 1),  # a suffix longer than the object is all of it
        f"bytes={size - 1}-{size - 1}": (size - 1, size - 1),
    }
    for header, (start, end) in cases.items():
        response = await stack.http.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.headers["content-range"] == f"bytes {start}-{end}/{size}", header
        assert int(response.headers["content-length"]) == end - start + 1
        assert response.content == full[start:end + 1], header
        assert response.headers["content-type"] == "audio/mpeg"


async def test_unsatisfiable_ranges_answer_416(stack: Stack, gql: Gql, owner: User, ready: Any) -> None:
    url = await gql.link(owner, ready["id"], "AUDIO")
    size = ready["audio"]["byteSize"]
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        response = await stack.http.get(url, headers={"Range": header})
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{size}"
    # Malformed and multi-range headers may be ignored: the whole object comes back.
    for header in ("bytes=abc", "items=0-5", "bytes=0-1,5-6"):
        response = await stack.http.get(url, headers={"Range": header})
        assert response.status_code == 200 and len(response.content) == size, header


async def test_if_range_with_a_stale_validator_sends_everything(
    stack: Stack, gql: Gql, owner: User, ready: Any
) -> None:
    url = await gql.link(owner, ready["id"], "AUDIO")
    etag = (await stack.http.head(url)).headers["etag"]
    current = await stack.http.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert current.status_code == 206 and len(current.content) == 10
    stale = await stack.http.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200 and len(stale.content) == ready["audio"]["byteSize"]


async def test_head_has_the_headers_and_no_body(stack: Stack, gql: Gql, owner: User, ready: Any) -> None:
    url = await gql.link(owner, ready["id"], "AUDIO")
    get = await stack.http.get(url)
    head = await stack.http.head(url)
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "content-length", "etag", "content-disposition", "accept-ranges"):
        assert head.headers[name] == get.headers[name], name
    ranged = await stack.http.head(url, headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == b""
    assert ranged.headers["content-length"] == "10"


async def test_other_formats_are_converted_once_and_kept(
    stack: Stack, gql: Gql, owner: User, ready: Any, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversions: list[str] = []
    real = downloads.convert_audio

    def counting(data: bytes, source: str, target: str) -> Any:
        conversions.append(target)
        return real(data, source, target)

    monkeypatch.setattr(downloads, "convert_audio", counting)
    key = f"audio/renditions/{ready['id']}.wav"
    url = await gql.link(owner, ready["id"], "AUDIO", "WAV")
    assert conversions == ["wav"]  # converted when the link was made, not on every download
    stored = await asyncio.to_thread(_s3_get, s3, key)
    first_modified = stored["LastModified"]
    response = await stack.http.get(url)
    assert response.status_code == 200
    assert response.content == stored["Body"].read()
    assert response.content[:4] == b"RIFF" and response.content[8:12] == b"WAVE"
    _common_headers(response, content_type="audio/wav", ext="wav")

    second = await gql.link(owner, ready["id"], "AUDIO", "WAV")
    again = await stack.http.get(second, headers={"Range": "bytes=0-11"})
    assert again.status_code == 206 and again.content == response.content[:12]
    assert again.headers["etag"] == response.headers["etag"]
    assert conversions == ["wav"]  # the kept rendition was reused
    assert (await asyncio.to_thread(_s3_get, s3, key))["LastModified"] == first_modified

    opus = await stack.http.get(await gql.link(owner, ready["id"], "AUDIO", "OPUS"))
    assert opus.status_code == 200 and opus.content[:4] == b"OggS"
    _common_headers(opus, content_type="audio/ogg; codecs=opus", ext="ogg")
    assert conversions == ["wav", "opus"]
    # Asking for the format the narration was made in converts nothing.
    assert (await stack.http.get(await gql.link(owner, ready["id"], "AUDIO", "MP3"))).status_code == 200
    assert conversions == ["wav", "opus"]


async def test_text_and_photo_downloads(stack: Stack, gql: Gql, owner: User, ready: Any, s3: S3Server) -> None:
    text = await stack.http.get(await gql.link(owner, ready["id"], "TEXT"))
    assert text.status_code == 200
    assert text.content.decode() == ready["text"] and ready["text"]
    _common_headers(text, content_type="text/plain; charset=utf-8", ext="txt")
    assert int(text.headers["content-length"]) == len(ready["text"].encode())
    part = await stack.http.get(await gql.link(owner, ready["id"], "TEXT"), headers={"Range": "bytes=4-9"})
    assert part.status_code == 206 and part.content == ready["text"].encode()[4:10]

    photo_url = await gql.link(owner, ready["id"], "PHOTO")
    photo = await stack.http.get(photo_url)
    assert photo.status_code == 200
    _, photo_key = await _keys(stack, ready["id"])
    assert photo.content == await _stored(s3, photo_key)
    assert photo.content[:3] == b"\xff\xd8\xff"  # the cleaned JPEG
    _common_headers(photo, content_type="image/jpeg", ext="jpg")
    assert (await stack.http.get(photo_url, headers={"If-None-Match": photo.headers["etag"]})).status_code == 304


async def test_expired_link_answers_403(stack: Stack, owner: User, ready: Any) -> None:
    link = downloads.sign_link(
        stack.container.download_signer, public_url=stack.settings.public_url, narration_id=uuid.UUID(ready["id"]),
        owner_id=uuid.UUID(owner.id), kind=DownloadKind.AUDIO, fmt=None, ttl=timedelta(seconds=-1),
    )
    response = await stack.http.get(link.url)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "TOKEN_EXPIRED"
    assert (await stack.http.head(link.url)).status_code == 403


async def test_tampered_links_answer_403(stack: Stack, gql: Gql, owner: User, ready: Any) -> None:
    url = await gql.link(owner, ready["id"], "AUDIO")
    prefix, token = url.rsplit("/", 1)
    payload, stamp, signature = token.rsplit(".", 2)
    middle = len(payload) // 2
    swapped = "A" if payload[middle] != "A" else "B"
    tampered = [
        f"{payload}.{stamp}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}",  # signature changed
        f"{payload[:middle]}{swapped}{payload[middle + 1:]}.{stamp}.{signature}",  # payload changed
        f"{payload}.A{stamp}.{signature}",  # timestamp changed
        token + "x",
        "not-a-token",
        # A valid token for another purpose (an unsubscribe link) is no download link.
        stack.container.unsubscribe_signer.sign({"n": ready["id"], "u": owner.id, "k": "AUDIO", "f": None,
                                                  "e": 2**40}),
    ]
    for bad in tampered:
        response = await stack.http.get(f"{prefix}/{bad}")
        assert response.status_code == 403, bad
        assert response.json()["error"]["code"] == "TOKEN_INVALID"
        assert "content-disposition" not in response.headers


async def test_another_users_narration_is_not_found(stack: Stack, gql: Gql, owner: User, ready: Any) -> None:
    stranger = await gql.register("Stranger")
    for kind in ("AUDIO", "TEXT", "PHOTO"):
        result = await gql.download_url(stranger, ready["id"], kind)
        assert result == {"__typename": "Error", "code": "NOT_FOUND", "message": "narration not found"}, kind
    assert (await gql.download_url(stranger, str(uuid.uuid4()), "AUDIO"))["code"] == "NOT_FOUND"
    # A link can only come from the server's signer, which names the owner; sign one naming the stranger
    # (what a link issued to them would carry) to check the endpoint's own ownership test.
    link = downloads.sign_link(
        stack.container.download_signer, public_url=stack.settings.public_url, narration_id=uuid.UUID(ready["id"]),
        owner_id=uuid.UUID(stranger.id), kind=DownloadKind.AUDIO, fmt=None, ttl=timedelta(minutes=5),
    )
    response = await stack.http.get(link.url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


async def test_missing_object_is_404_not_500(stack: Stack, gql: Gql, owner: User, ready: Any) -> None:
    """Metadata says there is a rendition, storage has lost it (e.g. a lifecycle rule): 404, not a crash."""
    link = downloads.sign_link(
        stack.container.download_signer, public_url=stack.settings.public_url, narration_id=uuid.UUID(ready["id"]),
        owner_id=uuid.UUID(owner.id), kind=DownloadKind.PHOTO, fmt=None, ttl=timedelta(minutes=5),
    )
    _, photo_key = await _keys(stack, ready["id"])
    original = await stack.container.storage.get(photo_key)
    await stack.container.storage.delete(photo_key)
    try:
        response = await stack.http.get(link.url)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "NOT_FOUND"
    finally:
        await stack.container.storage.put(photo_key, original, content_type="image/jpeg")
    assert (await stack.http.get(link.url)).status_code == 200



async def test_cached_downloads_only_read_the_bytes(
    stack: Stack, gql: Gql, owner: User, ready: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metadata, size and ETag come from Redis after the first request: storage is asked for the bytes only."""
    url = await gql.link(owner, ready["id"], "AUDIO")
    await stack.http.get(url)
    calls: list[str] = []
    storage = stack.container.storage
    for name in ("head", "get", "read_range"):
        real = getattr(storage, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(storage, name, spy)
    assert (await stack.http.get(url)).status_code == 200
    assert (await stack.http.get(url, headers={"Range": "bytes=0-9"})).status_code == 206
    etag = (await stack.http.head(url)).headers["etag"]
    assert (await stack.http.get(url, headers={"If-None-Match": etag})).status_code == 304
    assert calls == ["read_range", "read_range"]


async def test_redirect_mode_sends_a_presigned_s3_url(
    stack: Stack, gql: Gql, owner: User, ready: Any, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack.settings, "download_redirect", True)
    url = await gql.link(owner, ready["id"], "AUDIO")
    response = await stack.http.get(url)
    assert response.status_code == 307
    assert response.headers["cache-control"] == "no-store"
    location = response.headers["location"]
    assert location.startswith(s3.endpoint) and "X-Amz-Signature=" in location
    audio_key, _ = await _keys(stack, ready["id"])
    async with httpx.AsyncClient() as outside:  # the player follows it straight to S3
        direct = await outside.get(location)
    assert direct.status_code == 200
    assert direct.content == await _stored(s3, audio_key)
    assert direct.headers["content-type"] == "audio/mpeg"
    assert direct.headers["content-disposition"].startswith('attachment; filename="narration-')
    assert f'-{ready["id"][:8]}.mp3"' in direct.headers["content-disposition"]
    # The text is not in storage: it is still answered by the API.
    text = await stack.http.get(await gql.link(owner, ready["id"], "TEXT"))
    assert text.status_code == 200 and text.text == ready["text"]
