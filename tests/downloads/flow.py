"""A running API on the test's event loop, driven over HTTP by httpx (no TestClient thread).

`start_stack(settings)` builds the container exactly as `talkative serve` does (outbox relay, and the
in-process workers when QUEUE_URL is unset), starts it, and returns a `Stack` whose `http` client talks
to the ASGI app from one client address (unique per stack, so rate-limit keys never collide with other
tests). `Gql` wraps the GraphQL calls the download and notification tests need.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image, ImageDraw

from talkative.app import create_app
from talkative.container import Container
from talkative.settings import Settings
from talkative.wiring import prepare_api
from tests.foundation.fixtures import PASSWORD, REGISTER, truncate_all

UPLOAD = """mutation($f: Upload!, $o: NarrationOptionsInput) {
  uploadPhoto(file: $f, options: $o) {
    __typename ... on Narration { id status } ... on Error { code message retryAfterSeconds }
  }
}"""
NARRATION = """query($id: ID!) { narration(id: $id) {
  __typename
  ... on Narration { id status text error { code message } audio { format durationSeconds byteSize }
                     photo { width height format } }
  ... on Error { code message }
} }"""
DOWNLOAD_URL = """query($id: ID!, $kind: DownloadKind!, $format: AudioFormat) {
  downloadUrl(narrationId: $id, kind: $kind, format: $format) {
    __typename ... on DownloadLink { url expiresAt } ... on Error { code message }
  }
}"""


def photo_bytes(seed: int = 0) -> bytes:
    """A small JPEG; different seeds give different pictures."""
    rnd = random.Random(seed)
    image = Image.new("RGB", (320, 240), (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    ImageDraw.Draw(image).ellipse((60, 40, 260, 200), fill=(rnd.randrange(256), 90, 40))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


@dataclass
class User:
    id: str
    email: str
    token: str


@dataclass
class Stack:
    settings: Settings
    container: Container
    http: httpx.AsyncClient
    client_host: str

    async def stop(self) -> None:
        await self.http.aclose()
        await self.container.stop()


async def start_stack(settings: Settings) -> Stack:
    container = Container(settings)
    prepare_api(container)
    await container.start()
    app = create_app(container=container)
    host = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    http = httpx.AsyncClient(transport=transport, base_url=settings.public_url.rstrip("/"), timeout=30)
    return Stack(settings, container, http, host)


@contextlib.asynccontextmanager
async def running_stack(settings: Settings, *, pg_database: str) -> AsyncIterator[Stack]:
    """A started stack; stopped afterwards, and the shared test database emptied."""
    running = await start_stack(settings)
    try:
        yield running
    finally:
        await running.stop()
        # A fresh loop in a thread: the engine truncate_all makes must not outlive this loop's shutdown.
        await asyncio.to_thread(asyncio.run, truncate_all(pg_database))


class Gql:
    """GraphQL over HTTP against a Stack."""

    def __init__(self, stack: Stack) -> None:
        self.http = stack.http

    async def post(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                        headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert not body.get("errors"), body
        return body["data"]

    async def register(self, name: str = "Tester") -> User:
        email = f"user-{uuid.uuid4().hex[:10]}@example.com"
        data = await self.post(REGISTER, {"email": email, "password": PASSWORD, "name": name})
        result = data["register"]
        assert result["__typename"] == "AuthPayload", result
        return User(result["user"]["id"], email, result["accessToken"])

    async def upload(self, user: User, data: bytes, *, options: dict[str, Any] | None = None) -> Any:
        """The uploadPhoto result (a Narration or an Error), through the GraphQL multipart request spec."""
        operations = json.dumps({"query": UPLOAD, "variables": {"f": None, "o": options}})
        response = await self.http.post(
            "/graphql", data={"operations": operations, "map": json.dumps({"0": ["variables.f"]})},
            files={"0": ("photo.jpg", data, "image/jpeg")}, headers={"Authorization": f"Bearer {user.token}"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert not body.get("errors"), body
        return body["data"]["uploadPhoto"]

    async def narration(self, user: User, narration_id: str) -> Any:
        return (await self.post(NARRATION, {"id": narration_id}, token=user.token))["narration"]

    async def wait_finished(self, user: User, narration_id: str, timeout: float = 60) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                row = await self.narration(user, narration_id)
                if row["status"] in ("READY", "FAILED"):
                    return row
                await asyncio.sleep(0.05)

    async def narrate(self, user: User, seed: int = 0, *, options: dict[str, Any] | None = None) -> Any:
        """Upload a photo and wait for its narration to finish; returns the narration."""
        created = await self.upload(user, photo_bytes(seed), options=options)
        assert created["__typename"] == "Narration", created
        row = await self.wait_finished(user, created["id"])
        assert row["status"] == "READY", row
        return row

    async def download_url(self, user: User, narration_id: str, kind: str, fmt: str | None = None) -> Any:
        variables = {"id": narration_id, "kind": kind, "format": fmt}
        return (await self.post(DOWNLOAD_URL, variables, token=user.token))["downloadUrl"]

    async def link(self, user: User, narration_id: str, kind: str, fmt: str | None = None) -> str:
        result = await self.download_url(user, narration_id, kind, fmt)
        assert result["__typename"] == "DownloadLink", result
        return str(result["url"])
