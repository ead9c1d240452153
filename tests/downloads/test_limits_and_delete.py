"""The Redis-backed limiter on downloads and on costly mutations; deletion drops cached metadata and objects."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import botocore.exceptions
import pytest

from db.models import Narration, Photo
from services.narrations import download_cache_key
from tests.downloads.flow import Gql, Stack, User, photo_bytes
from tests.support.servers import S3Server

pytestmark = pytest.mark.asyncio(loop_scope="session")

CREATE_UPLOAD = """mutation { createPhotoUpload(contentType: "image/jpeg", byteSize: 1000) {
  __typename ... on PhotoUpload { ticket url } ... on Error { code message retryAfterSeconds } } }"""
RETRY = """mutation($id: ID!) { retryNarration(id: $id) {
  __typename ... on Error { code message retryAfterSeconds } } }"""
DELETE = """mutation($id: ID!) { deleteNarration(id: $id) {
  __typename ... on DeletedNarration { id } ... on Error { code message } } }"""
LIST = "{ narrations(first: 10) { edges { node { id } } } }"


async def test_downloads_over_the_limit_get_429_then_recover(
    stack: Stack, gql: Gql, owner: User, ready: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit is read per request; the keys (this user, this stack's client address) are new in Redis.
    monkeypatch.setattr(stack.settings, "download_rate_limit", "3/2 seconds")
    url = await gql.link(owner, ready["id"], "TEXT")
    started = time.monotonic()
    for _ in range(3):
        assert (await stack.http.get(url)).status_code == 200
    limited = await stack.http.get(url)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "RATE_LIMITED"
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 2
    assert (await stack.http.head(url)).status_code == 429  # HEAD counts too
    await asyncio.sleep(max(0.0, started + retry_after - time.monotonic()) + 0.1)
    recovered = await stack.http.get(url)
    assert recovered.status_code == 200, recovered.text
    assert recovered.content.decode() == ready["text"]


async def test_costly_mutations_are_rate_limited(
    stack: Stack, gql: Gql, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack.settings, "upload_rate_limit", "2/30 seconds")
    user = await gql.register("Busy")
    for _ in range(2):
        assert (await gql.post(CREATE_UPLOAD, token=user.token))["createPhotoUpload"]["__typename"] == "PhotoUpload"
    limited = (await gql.post(CREATE_UPLOAD, token=user.token))["createPhotoUpload"]
    assert limited["__typename"] == "Error" and limited["code"] == "RATE_LIMITED"
    assert 1 <= limited["retryAfterSeconds"] <= 30
    # uploadPhoto shares the "upload" allowance: refused before any photo is stored or narration queued.
    refused = await gql.upload(user, photo_bytes(7))
    assert refused["__typename"] == "Error" and refused["code"] == "RATE_LIMITED"
    assert refused["retryAfterSeconds"] >= 1
    assert (await gql.post(LIST, token=user.token))["narrations"]["edges"] == []
    # retryNarration has its own allowance; the limit is checked before the narration is even looked up.
    missing = str(uuid.uuid4())
    answers = [(await gql.post(RETRY, {"id": missing}, token=user.token))["retryNarration"] for _ in range(3)]
    assert [a["code"] for a in answers] == ["NOT_FOUND", "NOT_FOUND", "RATE_LIMITED"]
    assert answers[2]["retryAfterSeconds"] >= 1


def _head(s3: S3Server, key: str) -> int:
    try:
        s3.client().head_object(Bucket=s3.bucket, Key=key)
    except botocore.exceptions.ClientError as exc:
        return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])
    return 200


async def test_delete_drops_cached_metadata_and_stored_objects(
    stack: Stack, gql: Gql, owner: User, s3: S3Server
) -> None:
    row = await gql.narrate(owner, seed=3)
    links = {kind: await gql.link(owner, row["id"], kind) for kind in ("AUDIO", "TEXT", "PHOTO")}
    links["WAV"] = await gql.link(owner, row["id"], "AUDIO", "WAV")
    for url in links.values():
        assert (await stack.http.get(url)).status_code == 200
    cache_key = download_cache_key(uuid.UUID(row["id"]))
    cached = await stack.container.cache.get(cache_key)
    assert cached is not None and cached["owner_id"] == owner.id  # served from Redis, not the DB
    async with stack.container.sessions() as session:
        narration = await session.get(Narration, uuid.UUID(row["id"]))
        assert narration is not None and narration.audio_key and narration.photo_id
        photo = await session.get(Photo, narration.photo_id)
        assert photo is not None
        keys = [narration.audio_key, photo.object_key, f"audio/renditions/{row['id']}.wav"]
    assert [await asyncio.to_thread(_head, s3, k) for k in keys] == [200, 200, 200]

    deleted = (await gql.post(DELETE, {"id": row["id"]}, token=owner.token))["deleteNarration"]
    assert deleted == {"__typename": "DeletedNarration", "id": row["id"]}
    assert await stack.container.cache.get(cache_key) is None
    for kind, url in links.items():
        response = await stack.http.get(url)
        assert response.status_code == 404, kind
        assert response.json()["error"]["code"] == "NOT_FOUND"
    assert [await asyncio.to_thread(_head, s3, k) for k in keys] == [404, 404, 404]
    assert (await gql.download_url(owner, row["id"], "AUDIO"))["code"] == "NOT_FOUND"
