"""A real deployment in miniature: the API under uvicorn, `talkative worker` processes, and real servers.

PostgreSQL, RabbitMQ and Redis are the machine's; S3 is the SeaweedFS test server; mail goes to an
outbox folder (the notification tests cover SMTP).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn
from PIL import Image, ImageDraw

from talkative.app import create_app
from talkative.settings import Settings
from tests.support.servers import SeaweedFS, free_port

TALKATIVE = str(Path(sys.executable).parent / "talkative")
PASSWORD = "correct horse battery staple"


def photo_jpeg(size: tuple[int, int] = (800, 600), colour: str = "skyblue") -> bytes:
    """A small real photo-like JPEG: a sky, a sun and some text."""
    img = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(img)
    draw.ellipse([50, 50, 200, 200], fill="gold")
    draw.rectangle([0, size[1] * 2 // 3, size[0], size[1]], fill="forestgreen")
    draw.text((300, 100), "HELLO WORLD", fill="black")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@dataclass
class Stack:
    env: dict[str, str]
    settings: Settings
    base_url: str
    bucket: str
    s3: SeaweedFS
    workers: list[Worker] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/graphql"

    def register(self) -> tuple[str, str]:
        """A new account; returns (user id, access token)."""
        email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
        query = """mutation($e: String!, $p: String!) { register(email: $e, password: $p, displayName: "E2E") {
                     ... on AuthPayload { accessToken user { id } } ... on Error { code message } } }"""
        body = httpx.post(f"{self.base_url}/graphql", json={"query": query, "variables": {"e": email, "p": PASSWORD}},
                          timeout=30).json()
        result = body["data"]["register"]
        return result["user"]["id"], result["accessToken"]

    def gql(self, token: str, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = httpx.post(f"{self.base_url}/graphql", json={"query": query, "variables": variables or {}},
                              headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert response.status_code == 200, response.text
        body = response.json()
        assert not body.get("errors"), body
        return body["data"]

    def start_worker(self, queues: str = "narrations,notifications") -> Worker:
        worker = Worker(self.env, queues)
        self.workers.append(worker)
        return worker


class Worker:
    """`talkative worker` in a subprocess, ready once it logs that it is consuming."""

    def __init__(self, env: dict[str, str], queues: str) -> None:
        self.lines: list[str] = []
        self._ready = threading.Event()
        # As deployed: workers get no signing key (they verify no tokens).
        worker_env = {k: v for k, v in {**os.environ, **env}.items() if k != "SIGNING_KEY_FILE"}
        self.process = subprocess.Popen(
            [TALKATIVE, "worker", "--queues", queues], env=worker_env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(180) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("worker did not start:\n" + "\n".join(self.lines[-30:]))

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip())
            if "worker consuming" in line:
                self._ready.set()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return int(self.process.wait(30))


def stack_env(*, database_url: str, s3: SeaweedFS, bucket: str, signing_key_file: Path, data_dir: Path,
              port: int) -> dict[str, str]:
    endpoint = quote(s3.endpoint, safe="")
    return {
        "DATABASE_URL": database_url,
        "STORAGE_URL": f"s3://{bucket}?endpoint={endpoint}&region={s3.region}&path_style=true",
        "QUEUE_URL": os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        "PUBSUB_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "SECRET_KEY": "e2e-" + uuid.uuid4().hex,
        "SIGNING_KEY_FILE": str(signing_key_file),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DATA_DIR": str(data_dir),
        "QUEUE_PREFIX": f"test-{bucket}-",  # this stack's own queues on the shared broker
        "MAX_ATTEMPTS": "3",
        "RETRY_BACKOFF_SECONDS": "0.5",
        "LOG_JSON": "false",
        "LOG_LEVEL": "INFO",
        "UPLOAD_RATE_LIMIT": "1000/minute",
        **s3.env(),
    }


def settings_from_env(env: dict[str, str]) -> Settings:
    values = {k.lower(): v for k, v in env.items() if not k.startswith("AWS_")}
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@dataclass
class ApiServer:
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_api(settings: Settings, port: int) -> ApiServer:
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False,
                            lifespan="on", ws="websockets-sansio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    return ApiServer(server, thread)


def run_stack(*, pg_database: str, seaweedfs: SeaweedFS, signing_key_file: Path, data_dir: Path) -> Iterator[Stack]:
    """Start the API for a module's tests; workers are started by the tests that need them."""
    bucket = f"e2e-{uuid.uuid4().hex[:10]}"
    port = free_port()
    env = stack_env(database_url=pg_database, s3=seaweedfs, bucket=bucket, signing_key_file=signing_key_file,
                    data_dir=data_dir, port=port)
    saved = {k: os.environ.get(k) for k in seaweedfs.env()}
    os.environ.update(seaweedfs.env())  # boto3 in this process reads the keys from the environment
    settings = settings_from_env(env)
    api = start_api(settings, port)
    stack = Stack(env=env, settings=settings, base_url=f"http://127.0.0.1:{port}", bucket=bucket, s3=seaweedfs)
    try:
        yield stack
    finally:
        for worker in stack.workers:
            worker.stop()
        api.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
