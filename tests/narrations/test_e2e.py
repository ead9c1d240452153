"""A narration driven over HTTP and a websocket by a real GraphQL client, through RabbitMQ and a worker."""

from __future__ import annotations

import asyncio
import io
import uuid
from typing import Any

import httpx
import pytest
from gql import Client, FileVar, GraphQLRequest, gql
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy import func, select

from db.models import Narration, OutboxMessage
from db.session import make_engine, make_sessionmaker
from tests.narrations.stack import Stack, Worker, photo_jpeg

UPLOAD = """
mutation($file: Upload!, $options: NarrationOptionsInput) {
  uploadPhoto(file: $file, options: $options) {
    __typename
    ... on Narration { id status photo { width height format } }
    ... on Error { code message }
  }
}"""
EVENTS = gql("subscription { narrationEvents { narrationId sequence status stage percent message } }")
PROGRESS_QUERY = "subscription($id: ID!) { narrationProgress(id: $id) { narrationId sequence status stage percent } }"


def progress_of(narration_id: str) -> GraphQLRequest:
    return GraphQLRequest(PROGRESS_QUERY, variable_values={"id": narration_id})
NARRATION = """query($id: ID!) { narration(id: $id) { __typename ... on Narration { id status text attempts
  audio { format durationSeconds byteSize } timings { stage seconds } photo { width height }
  error { code message } } ... on Error { code message } } }"""
DOWNLOAD = """query($id: ID!) { downloadUrl(narrationId: $id, kind: AUDIO) {
  ... on DownloadLink { url } ... on Error { code message } } }"""


def ws_transport(stack: Stack, token: str) -> WebsocketsTransport:
    return WebsocketsTransport(url=stack.ws_url, init_payload={"Authorization": f"Bearer {token}"},
                               subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])


async def upload(stack: Stack, token: str, data: bytes, options: dict[str, Any] | None = None) -> dict[str, Any]:
    transport = HTTPXAsyncTransport(url=f"{stack.base_url}/graphql", headers={"Authorization": f"Bearer {token}"},
                                    timeout=60)
    async with Client(transport=transport) as session:
        request = GraphQLRequest(UPLOAD, variable_values={
            "file": FileVar(io.BytesIO(data), filename="photo.jpg", content_type="image/jpeg"), "options": options,
        })
        result = await session.execute(request, upload_files=True)
    return dict(result["uploadPhoto"])


async def test_upload_to_ready_with_live_progress(stack: Stack, worker: Worker) -> None:
    _, token = stack.register()
    events: list[dict[str, Any]] = []
    async with Client(transport=ws_transport(stack, token)) as ws:

        async def collect() -> None:
            async for item in ws.subscribe(EVENTS):
                events.append(item["narrationEvents"])
                if item["narrationEvents"]["status"] in ("READY", "FAILED"):
                    return

        listener = asyncio.create_task(collect())
        await asyncio.sleep(0.5)  # let the subscription reach the server before the job can start
        created = await upload(stack, token, photo_jpeg(), {"detail": "BRIEF", "audioFormat": "MP3"})
        assert created["__typename"] == "Narration", created
        assert created["status"] == "QUEUED"
        assert created["photo"] == {"width": 800, "height": 600, "format": "JPEG"}
        await asyncio.wait_for(listener, 120)

    assert {e["narrationId"] for e in events} == {created["id"]}
    sequences = [e["sequence"] for e in events]
    assert sequences == sorted(set(sequences)), sequences  # strictly increasing, no duplicates
    assert events[0]["status"] == "PROCESSING" and events[-1]["status"] == "READY"
    assert events[-1]["percent"] == 100
    stages = [e["stage"] for e in events if e["stage"]]
    assert [s for i, s in enumerate(stages) if s not in stages[:i]] == ["prepare", "describe", "speak", "encode"]

    narration = stack.gql(token, NARRATION, {"id": created["id"]})["narration"]
    assert narration["status"] == "READY" and narration["attempts"] == 1
    assert narration["text"] and len(narration["text"]) > 10
    assert narration["audio"]["format"] == "MP3" and narration["audio"]["durationSeconds"] > 0.5
    assert {t["stage"] for t in narration["timings"]} >= {"prepare", "describe", "speak", "encode"}

    # The audio is really in S3, and the download link serves exactly those bytes.
    keys = [o["Key"] for o in stack.s3.client().list_objects_v2(Bucket=stack.bucket).get("Contents", [])]
    audio_key = next(k for k in keys if k.startswith("audio/") and created["id"] in k)
    stored = stack.s3.client().get_object(Bucket=stack.bucket, Key=audio_key)["Body"].read()
    assert len(stored) == narration["audio"]["byteSize"]
    link = stack.gql(token, DOWNLOAD, {"id": created["id"]})["downloadUrl"]["url"]
    downloaded = httpx.get(link, timeout=30)
    assert downloaded.status_code == 200 and downloaded.content == stored
    assert downloaded.headers["content-type"] == "audio/mpeg"

    # A late subscriber gets the current state from the database, then the subscription completes.
    async with Client(transport=ws_transport(stack, token)) as ws:
        late = [item["narrationProgress"] async for item in ws.subscribe(progress_of(created["id"]))]
    assert [e["status"] for e in late] == ["READY"]
    assert late[0]["sequence"] == sequences[-1]


async def test_only_the_owner_may_subscribe(stack: Stack, worker: Worker) -> None:
    _, owner = stack.register()
    _, stranger = stack.register()
    created = await upload(stack, owner, photo_jpeg(size=(320, 240)), {"detail": "BRIEF"})
    async with Client(transport=ws_transport(stack, stranger)) as ws:
        with pytest.raises(Exception, match="not found"):
            async for _ in ws.subscribe(progress_of(created["id"])):
                pass
    assert stack.gql(stranger, NARRATION, {"id": created["id"]})["narration"]["code"] == "NOT_FOUND"


async def test_presigned_upload_of_a_non_image_is_rejected_and_nothing_is_queued(stack: Stack) -> None:
    user_id, token = stack.register()
    payload = b"just some notes in a text file, certainly not a photo\n" * 20
    up = stack.gql(token, """mutation($n: Int!) { createPhotoUpload(contentType: "image/jpeg", byteSize: $n) {
        ... on PhotoUpload { ticket url method headers { name value } } ... on Error { code message } } }""",
                   {"n": len(payload)})["createPhotoUpload"]
    assert up["url"].startswith(stack.s3.endpoint), up  # straight to S3, not through the API
    put = httpx.put(up["url"], content=payload, headers={h["name"]: h["value"] for h in up["headers"]}, timeout=30)
    assert put.status_code == 200, put.text

    engine = make_engine(stack.settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as session:
            outbox_before = await session.scalar(select(func.count()).select_from(OutboxMessage))
        result = stack.gql(token, """mutation($t: ID!) { completePhotoUpload(ticket: $t) {
            __typename ... on Error { code message } ... on Narration { id } } }""", {"t": up["ticket"]})
        assert result["completePhotoUpload"]["code"] == "NOT_AN_IMAGE", result
        async with sessions() as session:
            outbox_after = await session.scalar(select(func.count()).select_from(OutboxMessage))
            mine = await session.scalar(select(func.count()).select_from(Narration)
                                        .where(Narration.owner_id == uuid.UUID(user_id)))
    finally:
        await engine.dispose()
    assert mine == 0 and outbox_after == outbox_before
    keys = [o["Key"] for o in stack.s3.client().list_objects_v2(Bucket=stack.bucket).get("Contents", [])]
    assert not any(k.startswith(f"uploads/{user_id}") for k in keys)  # the rejected raw upload is gone


async def test_presigned_upload_of_a_photo_becomes_a_narration(stack: Stack, worker: Worker) -> None:
    _, token = stack.register()
    data = photo_jpeg(size=(640, 480), colour="tomato")
    up = stack.gql(token, """mutation($n: Int!) { createPhotoUpload(contentType: "image/jpeg", byteSize: $n) {
        ... on PhotoUpload { ticket url headers { name value } } } }""", {"n": len(data)})["createPhotoUpload"]
    assert httpx.put(up["url"], content=data, headers={h["name"]: h["value"] for h in up["headers"]},
                     timeout=30).status_code == 200
    done = stack.gql(token, """mutation($t: ID!) { completePhotoUpload(ticket: $t, options: {detail: BRIEF}) {
        ... on Narration { id status } ... on Error { code message } } }""", {"t": up["ticket"]})
    narration_id = done["completePhotoUpload"]["id"]
    again = stack.gql(token, """mutation($t: ID!) { completePhotoUpload(ticket: $t) {
        ... on Error { code } ... on Narration { id } } }""", {"t": up["ticket"]})
    assert again["completePhotoUpload"]["code"] == "CONFLICT"  # a ticket is used once
    async with Client(transport=ws_transport(stack, token)) as ws:
        statuses = [i["narrationProgress"]["status"]
                    async for i in ws.subscribe(progress_of(narration_id))]
    assert statuses[-1] == "READY"
