"""GET /download/{token} for cached audio on one uvicorn process, beside a bare Starlette app serving the same
bytes, and the rate limiter's added latency.

    .venv/bin/python bench/bench_downloads.py [--seconds 5] [--concurrency 16] [--rounds 3] [--storage local,s3]

Ours: `talkative serve` with PostgreSQL, Redis (metadata cache and `limits` rate limiter) and RabbitMQ as
QUEUE_URL (so no workers run in the API process), storage a local folder and/or real S3 (a SeaweedFS
`weed mini` started here). The narration is a real MP3 (a 6 s tone encoded by the engine's encoder) stored
as a READY narration's audio; every request downloads the whole file through a signed link, so metadata
comes from the Redis cache after the first request. Rows:
  bare Response / bare FileResponse   a plain Starlette app returning the same bytes from memory / a file
  ours, limiter on                    DOWNLOAD_RATE_LIMIT="1000000/second" (two Redis hits per request)
  ours, limiter off                   DOWNLOAD_RATE_LIMIT="" (the endpoint skips the limiter)
All run one after another in interleaved rounds (medians reported); the load is a keep-alive HTTP/1.1
client with N connections on loopback, which costs little CPU beside the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import math
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ADMIN_PG = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


# -- the bare app (imported by uvicorn in its own process) ------------------------------------------------


def bare_app() -> Any:
    """/bytes: Response(the bytes); /file: FileResponse(the file). Same headers a browser needs."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, Response
    from starlette.routing import Route

    path = Path(os.environ["BENCH_FILE"])
    data = path.read_bytes()

    async def from_memory(request: Request) -> Response:
        return Response(data, media_type="audio/mpeg")

    async def from_file(request: Request) -> Response:
        return FileResponse(path, media_type="audio/mpeg", filename="narration.mp3")

    return Starlette(routes=[Route("/bytes", from_memory), Route("/file", from_file)])


# -- load generator -------------------------------------------------------------------------------------


async def _client(port: int, request: bytes, size: int, until: float, latencies: list[float],
                  errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = -1
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length < 0:
                raise RuntimeError(f"no Content-Length: {head[:300]!r}")
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200") or length != size:
                errors.append(head[:200].decode(errors="replace"))
    finally:
        writer.close()


async def load(port: int, path: str, size: int, *, seconds: float, concurrency: int) -> dict[str, float]:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    await asyncio.gather(*(_client(port, request, size, time.perf_counter() + 1.0, [], [])
                           for _ in range(concurrency)))
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, request, size, started + seconds, latencies, errors)
                           for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} bad responses, e.g. {errors[0]}")
    q = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / elapsed, "p50": q[49] * 1000, "p99": q[98] * 1000, "n": len(latencies)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(pid: int, port: int, path: str, size: int, *, seconds: float, concurrency: int) -> dict[str, float]:
    cpu = cpu_seconds(pid)
    result = asyncio.run(load(port, path, size, seconds=seconds, concurrency=concurrency))
    result["cpu_ms"] = (cpu_seconds(pid) - cpu) * 1000 / (result["n"] * (seconds + 1.0) / seconds)
    return result


# -- servers and data --------------------------------------------------------------------------------------


def free_port() -> int:
    from tests.support.servers import free_port as pick

    return pick()


@contextmanager
def server(cmd: list[str], env: dict[str, str], port: int, log: Path, probe: str) -> Iterator[int]:
    with log.open("a") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited: {log.read_text()[-2000:]}")
            try:
                httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def mp3_bytes(seconds: float = 6.0) -> bytes:
    """A real MP3: a soft two-tone WAV re-encoded by the engine's own encoder."""
    from narration import convert_audio

    rate = 22050
    frames = bytearray()
    for i in range(int(rate * seconds)):
        value = 0.2 * math.sin(2 * math.pi * 220 * i / rate) + 0.1 * math.sin(2 * math.pi * 330 * i / rate)
        frames += int(value * 32767).to_bytes(2, "little", signed=True)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    data, _ = convert_audio(out.getvalue(), "wav", "mp3")
    return data


async def create_database() -> tuple[str, str]:
    import asyncpg

    from db import migrate
    from db.session import make_engine

    name = f"talkative_bench_dl_{secrets.token_hex(4)}"
    connection = await asyncpg.connect(ADMIN_PG)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    url = f"{ADMIN_PG.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    engine = make_engine(url)
    await migrate.upgrade(engine)
    await engine.dispose()
    return url, name


async def drop_database(name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_PG)
    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await connection.close()


async def store_narration(database_url: str, storage_url: str | None, data_dir: Path, owner_id: str,
                          audio: bytes) -> str:
    """A READY narration of `owner_id` whose audio is `audio`, written to the database and the storage."""
    from adapters.factory import make_storage
    from db.models import Narration, NarrationStatus
    from db.session import make_engine, make_sessionmaker
    from services.narrations import audio_key

    narration_id = uuid.uuid4()
    key = audio_key(uuid.UUID(owner_id), narration_id, "mp3")
    storage = make_storage(storage_url, data_dir=data_dir)
    await storage.ensure_ready()
    await storage.put(key, audio, content_type="audio/mpeg")
    await storage.close()
    engine = make_engine(database_url)
    async with make_sessionmaker(engine)() as session:
        session.add(Narration(id=narration_id, owner_id=uuid.UUID(owner_id), status=NarrationStatus.READY, options={},
                              text="A soft two-tone hum.", audio_key=key, audio_format="mp3",
                              audio_byte_size=len(audio), duration_seconds=6.0, run=1, attempts=1,
                              event_sequence=3, timings={}))
        await session.commit()
    await engine.dispose()
    return str(narration_id)


REGISTER = """mutation($email: String!) { register(email: $email, password: "bench password", displayName: "Bench") {
  ... on AuthPayload { accessToken user { id } } } }"""
LINK = """query($id: ID!) { downloadUrl(narrationId: $id, kind: AUDIO) {
  ... on DownloadLink { url } ... on Error { code message } } }"""


def gql(port: int, query: str, variables: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables},
                       headers=headers, timeout=30)
    body = reply.json()
    assert not body.get("errors"), body
    return body["data"]


@contextmanager
def seaweedfs(workdir: Path) -> Iterator[dict[str, str]]:
    """A SeaweedFS S3 endpoint on loopback (as the tests start it); yields the environment boto3 needs."""
    from tests.support.servers import SeaweedFS, _start_weed, _stop, _wait_s3_ready

    access, secret = "bench-" + secrets.token_hex(4), secrets.token_hex(16)
    process, endpoint, _ = _start_weed(workdir / "weed", access, secret)
    try:
        _wait_s3_ready(SeaweedFS(endpoint, access, secret), process)
        yield {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret, "endpoint": endpoint}
    finally:
        _stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--storage", default="local,s3", help="local, s3 or both (comma-separated)")
    args = parser.parse_args()
    storages = [s.strip() for s in args.storage.split(",") if s.strip()]

    from joserfc.jwk import ECKey

    workdir = Path(tempfile.mkdtemp(prefix="bench_dl_"))
    audio = mp3_bytes()
    audio_file = workdir / "narration.mp3"
    audio_file.write_bytes(audio)
    key = workdir / "signing.pem"
    key.write_bytes(ECKey.generate_key("P-256", private=True).as_pem(private=True))
    names = {"DATABASE_URL", "STORAGE_URL", "QUEUE_URL", "PUBSUB_URL", "MAIL_URL", "OIDC_ISSUER",
             "DOWNLOAD_RATE_LIMIT"}
    base_env = {k: v for k, v in os.environ.items() if k.upper() not in names and not k.startswith("AWS_")}
    talkative = str(Path(sys.executable).with_name("talkative"))
    database_url, dbname = asyncio.run(create_database())
    results: dict[str, list[dict[str, float]]] = {}
    try:
        with contextlib.ExitStack() as stack:
            s3 = stack.enter_context(seaweedfs(workdir)) if "s3" in storages else None
            common = {**base_env, "DATABASE_URL": database_url, "SECRET_KEY": secrets.token_hex(24),
                      "SIGNING_KEY_FILE": str(key), "PUBSUB_URL": REDIS_URL, "QUEUE_URL": AMQP_URL,
                      "PUBLIC_URL": "http://127.0.0.1"}
            setups: dict[str, dict[str, str]] = {}  # storage → env
            paths: dict[str, str] = {}  # storage → download path
            for storage in storages:
                env = {**common, "DATA_DIR": str(workdir / f"data-{storage}")}
                storage_url = None
                if storage == "s3":
                    assert s3 is not None
                    storage_url = (f"s3://bench-{secrets.token_hex(4)}?endpoint={s3['endpoint']}"
                                   "&region=us-east-1&path_style=true")
                    env |= {"STORAGE_URL": storage_url, "AWS_ACCESS_KEY_ID": s3["AWS_ACCESS_KEY_ID"],
                            "AWS_SECRET_ACCESS_KEY": s3["AWS_SECRET_ACCESS_KEY"]}
                setups[storage] = env
                port = free_port()
                with server([talkative, "serve", "--port", str(port)], env, port, workdir / "ours.log", "/healthz"):
                    email = f"bench-{secrets.token_hex(4)}@example.com"
                    reply = gql(port, REGISTER, {"email": email})["register"]
                    if storage == "s3":
                        os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
                    narration_id = asyncio.run(store_narration(database_url, storage_url,
                                                               Path(env["DATA_DIR"]), reply["user"]["id"], audio))
                    link = gql(port, LINK, {"id": narration_id}, reply["accessToken"])
                    url = link["downloadUrl"]["url"]
                    paths[storage] = url.removeprefix("http://127.0.0.1")
            bare_env = {**base_env, "BENCH_FILE": str(audio_file), "PYTHONPATH": str(ROOT)}
            for _ in range(args.rounds):
                port = free_port()
                bare_cmd = [sys.executable, "-m", "uvicorn", "bench.bench_downloads:bare_app", "--factory", "--port",
                            str(port), "--no-access-log", "--log-level", "warning"]
                with server(bare_cmd, bare_env, port, workdir / "bare.log", "/bytes") as pid:
                    for route in ("bytes", "file"):
                        results.setdefault(f"bare {route}", []).append(measure(
                            pid, port, f"/{route}", len(audio), seconds=args.seconds, concurrency=args.concurrency))
                for storage in storages:
                    for limiter, limit in (("on", "1000000/second"), ("off", "")):
                        port = free_port()
                        env = {**setups[storage], "DOWNLOAD_RATE_LIMIT": limit}
                        with server([talkative, "serve", "--port", str(port)], env, port, workdir / "ours.log",
                                    "/healthz") as pid:
                            results.setdefault(f"{storage} {limiter}", []).append(measure(
                                pid, port, paths[storage], len(audio), seconds=args.seconds,
                                concurrency=args.concurrency))
    finally:
        asyncio.run(drop_database(dbname))
        shutil.rmtree(workdir, ignore_errors=True)

    best = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()}
    print(f"download of a {len(audio) / 1024:.0f} KiB MP3, one uvicorn process, {args.concurrency} keep-alive "
          f"connections, {args.seconds:.0f} s x {args.rounds} interleaved rounds (medians), {os.cpu_count()} CPUs")
    labels = {"bare bytes": "bare Starlette Response (memory)", "bare file": "bare Starlette FileResponse",
              "local on": "ours, local storage, limiter on", "local off": "ours, local storage, limiter off",
              "s3 on": "ours, S3 (SeaweedFS), limiter on", "s3 off": "ours, S3 (SeaweedFS), limiter off"}
    print(f"{'server':<36}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'MB/s':>8}{'server CPU ms/req':>19}")
    for name, label in labels.items():
        if name in best:
            r = best[name]
            print(f"{label:<36}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}"
                  f"{r['rps'] * len(audio) / 1e6:>8.0f}{r['cpu_ms']:>19.3f}")
    for storage in storages:
        on, off = best[f"{storage} on"], best[f"{storage} off"]
        print(f"limiter ({storage}): {on['p50'] - off['p50']:+.2f} ms p50, {on['p99'] - off['p99']:+.2f} ms p99, "
              f"{on['cpu_ms'] - off['cpu_ms']:+.3f} ms server CPU per request, "
              f"{(off['rps'] / on['rps'] - 1) * 100:+.1f}% time per request")


if __name__ == "__main__":
    main()
