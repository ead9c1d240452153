"""Storage adapters against real SeaweedFS S3 and a local folder."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from adapters.interfaces import ObjectNotFound, ObjectStorage
from adapters.storage_local import LocalStorage
from adapters.storage_s3 import S3Storage
from tests.support.servers import S3Server

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


def s3_storage_for(server: S3Server, **kwargs: int) -> S3Storage:
    return S3Storage(
        server.bucket, endpoint_url=server.endpoint, region=server.region, access_key=server.access_key,
        secret_key=server.secret_key, path_style=True, chunk_size=4096, **kwargs,
    )


@pytest.fixture
async def s3(s3_server: S3Server) -> AsyncIterator[S3Storage]:
    storage = s3_storage_for(s3_server, photo_retention_days=7, audio_retention_days=30)
    await storage.ensure_ready()
    yield storage
    await storage.close()


@pytest.fixture(params=["s3", "local"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStorage:
    # A plain fixture: it can pull the async `s3` fixture only when the S3 variant runs.
    if request.param == "s3":
        s3_storage: S3Storage = request.getfixturevalue("s3")
        return s3_storage
    return LocalStorage(tmp_path / "objects", chunk_size=4096)


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


async def test_round_trip(storage: ObjectStorage) -> None:
    info = await storage.put("photos/a/one.bin", PAYLOAD, content_type="image/png")
    assert (info.size, info.content_type) == (len(PAYLOAD), "image/png")
    assert info.etag == hashlib.md5(PAYLOAD).hexdigest()
    assert await storage.get("photos/a/one.bin") == PAYLOAD
    assert await storage.head("photos/a/one.bin") == info
    await storage.ping()


async def test_put_file_object(storage: ObjectStorage) -> None:
    info = await storage.put("audio/x.mp3", io.BytesIO(PAYLOAD), content_type="audio/mpeg")
    assert info.size == len(PAYLOAD)
    assert (await storage.head("audio/x.mp3")).content_type == "audio/mpeg"
    assert await storage.get("audio/x.mp3") == PAYLOAD


async def test_ranged_read_streams_in_chunks(storage: ObjectStorage) -> None:
    await storage.put("audio/r.bin", PAYLOAD, content_type="application/octet-stream")
    chunks = await collect(storage.read_range("audio/r.bin", 100, 9099))
    assert b"".join(chunks) == PAYLOAD[100:9100]
    assert len(chunks) >= 2 and all(len(c) <= 4096 for c in chunks)
    assert b"".join(await collect(storage.read_range("audio/r.bin", 5, 5))) == PAYLOAD[5:6]


async def test_missing_keys_raise_object_not_found(storage: ObjectStorage) -> None:
    with pytest.raises(ObjectNotFound):
        await storage.head("photos/missing")
    with pytest.raises(ObjectNotFound):
        await storage.get("photos/missing")
    with pytest.raises(ObjectNotFound):
        await collect(storage.read_range("photos/missing", 0, 10))


async def test_delete_is_idempotent(storage: ObjectStorage) -> None:
    await storage.put("photos/d1", b"1", content_type="text/plain")
    await storage.put("photos/d2", b"2", content_type="text/plain")
    await storage.delete("photos/d1", "photos/d2", "photos/never-existed")
    for key in ("photos/d1", "photos/d2"):
        with pytest.raises(ObjectNotFound):
            await storage.head(key)
    await storage.delete()


# -- S3 only -----------------------------------------------------------------------------------------


async def test_presigned_put_then_head(s3: S3Storage) -> None:
    body = b"\x89PNG fake"
    url = await s3.presign_put("photos/up.png", content_type="image/png", byte_size=len(body), expires=60)
    async with httpx.AsyncClient() as http:
        wrong = await http.put(url, content=body + b"x", headers={"Content-Type": "image/png"})
        assert wrong.status_code == 403  # the signed Content-Length does not match
        ok = await http.put(url, content=body, headers={"Content-Type": "image/png"})
        assert ok.status_code == 200, ok.text
    info = await s3.head("photos/up.png")
    assert (info.size, info.content_type) == (len(body), "image/png")


async def test_presigned_get_sets_disposition(s3: S3Storage) -> None:
    await s3.put("audio/n.mp3", PAYLOAD, content_type="audio/mpeg")
    url = await s3.presign_get("audio/n.mp3", expires=60, filename="Café narration.mp3", content_type="audio/mp3")
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert response.content == PAYLOAD
    assert response.headers["content-type"] == "audio/mp3"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Caf? narration.mp3"')
    assert "filename*=UTF-8''Caf%C3%A9%20narration.mp3" in disposition


async def test_anonymous_access_is_denied(s3: S3Storage, s3_server: S3Server) -> None:
    await s3.put("photos/private.jpg", b"secret", content_type="image/jpeg")
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{s3_server.endpoint}/{s3.bucket}/photos/private.jpg")).status_code == 403
        assert (await http.get(f"{s3_server.endpoint}/{s3.bucket}")).status_code == 403
        put = await http.put(f"{s3_server.endpoint}/{s3.bucket}/photos/evil", content=b"x")
        assert put.status_code == 403


async def test_unsupported_api_degrades_to_a_warning(s3_server: S3Server, caplog: pytest.LogCaptureFixture) -> None:
    storage = s3_storage_for(s3_server)
    with caplog.at_level("WARNING", logger="adapters.storage_s3"):
        await storage.ensure_ready()
    assert "does not support public access block (NotImplemented)" in caplog.text
    await storage.close()


async def test_lifecycle_and_policy_applied(s3: S3Storage, s3_server: S3Server) -> None:
    client = s3_server.client()
    rules = client.get_bucket_lifecycle_configuration(Bucket=s3.bucket)["Rules"]
    by_prefix = {r["Filter"]["Prefix"]: r["Expiration"]["Days"] for r in rules}
    assert by_prefix == {"photos/": 7, "audio/": 30}
    policy = json.loads(client.get_bucket_policy(Bucket=s3.bucket)["Policy"])
    assert policy["Statement"][0]["Sid"] == "DenyAnonymous"

    # Re-running start-up is safe, and retention 0 removes the rules again.
    off = s3_storage_for(s3_server)
    await off.ensure_ready()
    await off.ensure_ready()
    with pytest.raises(client.exceptions.ClientError):
        client.get_bucket_lifecycle_configuration(Bucket=s3.bucket)
    await off.close()


# -- local folder only -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "../x", "/abs", "a/../b", "a//b", ".meta/x", "a/.hidden", "a\\b", "a/", "x\x00"])
async def test_local_rejects_unsafe_keys(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path / "objects")
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.put(key, b"x", content_type="text/plain")


async def test_local_writes_atomically_and_cannot_presign(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "objects")
    await storage.ensure_ready()
    await storage.put("photos/p.jpg", b"first", content_type="image/jpeg")
    await storage.put("photos/p.jpg", b"second!", content_type="image/webp")
    assert await storage.get("photos/p.jpg") == b"second!"
    assert (await storage.head("photos/p.jpg")).content_type == "image/webp"
    assert list((tmp_path / "objects" / ".tmp").iterdir()) == []
    assert await storage.presign_put("photos/p.jpg", content_type="image/jpeg", byte_size=1, expires=60) is None
    assert await storage.presign_get("photos/p.jpg", expires=60) is None


async def test_local_head_without_sidecar(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "objects")
    await storage.ensure_ready()
    (tmp_path / "objects" / "audio").mkdir()
    (tmp_path / "objects" / "audio" / "copied.mp3").write_bytes(b"abc")
    info = await storage.head("audio/copied.mp3")
    assert (info.size, info.content_type, info.etag) == (3, "audio/mpeg", hashlib.md5(b"abc").hexdigest())
