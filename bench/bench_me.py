"""Authenticated `me` over HTTP on one uvicorn process, beside a bare strawberry app in the same run.

    .venv/bin/python bench/bench_me.py [--seconds 10] [--concurrency 32] [--sqlite]

Ours: `talkative serve` (auth, request ids, JSON access logs, metrics, error policy, document limits,
DataLoaders). Bare: the same query text on a plain `strawberry.asgi.GraphQL` app with no auth and no
extensions, loading the same user row from the same database with the same SQLAlchemy engine settings.
Both run as their own uvicorn process, one after the other; the load is a small keep-alive HTTP/1.1
client (N connections on loopback) so the generator costs little CPU beside the server.
Target: our p50 latency and throughput within 25% of the bare app. A third row adds strawberry's parse and
validation caches (which ours uses) to the bare app, so the cost of auth, logging and metrics shows too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import strawberry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
QUERY = "{ me { __typename ... on User { id email displayName } ... on Error { code message } } }"
ADMIN_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


# -- the bare app (imported by uvicorn in its own process) --------------------------------------------


@strawberry.type(name="User")
class BareUser:
    id: strawberry.ID
    email: str | None
    display_name: str


@strawberry.type(name="Error")
class BareError:
    code: str
    message: str


BareMeResult = Annotated[BareUser | BareError, strawberry.union("MeResult")]


def bare_app() -> Any:
    """A plain strawberry app resolving `me` to a fixed user (BENCH_USER_ID) from BENCH_DATABASE_URL."""
    from strawberry.asgi import GraphQL

    from db.models import User as UserRow
    from db.session import make_engine, make_sessionmaker

    sessions = make_sessionmaker(make_engine(os.environ["BENCH_DATABASE_URL"]))
    user_id = uuid.UUID(os.environ["BENCH_USER_ID"])

    @strawberry.type
    class Query:
        @strawberry.field
        async def me(self) -> BareMeResult:
            async with sessions() as session:
                row = await session.get(UserRow, user_id)
            if row is None:
                return BareError(code="NOT_FOUND", message="no user")
            return BareUser(id=strawberry.ID(str(row.id)), email=row.email, display_name=row.display_name)

    extensions: list[Any] = []
    if os.environ.get("BENCH_CACHES"):  # the same parse/validation caches ours uses, to isolate the rest
        from strawberry.extensions import ParserCache, ValidationCache

        extensions = [lambda: ParserCache(maxsize=256), lambda: ValidationCache(maxsize=256)]
    return GraphQL(strawberry.Schema(query=Query, extensions=extensions), graphql_ide=None)


# -- load generator -----------------------------------------------------------------------------------


async def _client(port: int, request: bytes, until: float, latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200") or b'"User"' not in body:
                errors.append(body[:200].decode(errors="replace"))
    finally:
        writer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux): robust to other load on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(pid: int, port: int, token: str | None, *, seconds: float, concurrency: int) -> dict[str, float]:
    cpu = cpu_seconds(pid)
    result = asyncio.run(load(port, token, seconds=seconds, concurrency=concurrency))
    # Includes the 1.5 s warm-up's requests: count them in by scaling with the measured rate.
    result["cpu_ms"] = (cpu_seconds(pid) - cpu) * 1000 / (result["n"] * (seconds + 1.5) / seconds)
    return result


async def load(port: int, token: str | None, *, seconds: float, concurrency: int) -> dict[str, float]:
    body = json.dumps({"query": QUERY}).encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = (f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"{auth}Content-Length: {len(body)}\r\n\r\n").encode() + body
    warm: list[float] = []
    await asyncio.gather(*(_client(port, request, time.perf_counter() + 1.5, warm, []) for _ in range(concurrency)))
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, request, started + seconds, latencies, errors)
                           for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} bad responses, e.g. {errors[0]}")
    q = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / elapsed, "p50": q[49] * 1000, "p99": q[98] * 1000, "n": len(latencies)}


# -- servers ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(cmd: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[int]:
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited: {log.read_text()[-2000:]}")
            try:
                httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": "{ __typename }"}, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def prepare_database(use_sqlite: bool, workdir: Path) -> tuple[str, str | None]:
    """(database URL, database to drop afterwards): a fresh PostgreSQL database when one is reachable."""
    if not use_sqlite:
        import asyncpg

        name = f"talkative_bench_{secrets.token_hex(4)}"

        async def create() -> None:
            connection = await asyncpg.connect(ADMIN_PG)
            await connection.execute(f'CREATE DATABASE "{name}"')
            await connection.close()

        try:
            asyncio.run(create())
            return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", name
        except OSError:
            print("PostgreSQL not reachable on 127.0.0.1:5432; using SQLite")
    return f"sqlite+aiosqlite:///{workdir / 'bench.db'}", None


def drop_database(name: str) -> None:
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(ADMIN_PG)
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()

    asyncio.run(drop())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4, help="alternate the apps this many times; medians reported")
    parser.add_argument("--sqlite", action="store_true", help="use SQLite even when PostgreSQL is reachable")
    args = parser.parse_args()

    from joserfc.jwk import ECKey

    workdir = Path(tempfile.mkdtemp(prefix="bench_me_"))
    database_url, dropme = prepare_database(args.sqlite, workdir)
    key = workdir / "signing.pem"
    key.write_bytes(ECKey.generate_key("P-256", private=True).as_pem(private=True))
    names = {n.upper() for n in ("database_url", "storage_url", "queue_url", "pubsub_url", "mail_url", "oidc_issuer")}
    base_env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    ours_env = {**base_env, "DATABASE_URL": database_url, "SECRET_KEY": secrets.token_hex(24),
                "SIGNING_KEY_FILE": str(key), "DATA_DIR": str(workdir / "data"), "AUTO_MIGRATE": "true"}
    talkative = str(Path(sys.executable).with_name("talkative"))
    results: dict[str, list[dict[str, float]]] = {"ours": [], "bare": [], "cached": []}
    try:
        port = free_port()
        with server([talkative, "serve", "--port", str(port)], ours_env, port, workdir / "ours.log"):
            reply = httpx.post(f"http://127.0.0.1:{port}/graphql", timeout=30, json={"query": (
                'mutation { register(email: "bench@example.com", password: "bench password", displayName: "Bench")'
                " { ... on AuthPayload { accessToken user { id } } } }")}).json()
        token = reply["data"]["register"]["accessToken"]
        user_id = reply["data"]["register"]["user"]["id"]
        bare_env = {**base_env, "BENCH_DATABASE_URL": database_url, "BENCH_USER_ID": user_id,
                    "PYTHONPATH": str(ROOT)}
        for _ in range(args.rounds):
            port = free_port()
            with server([talkative, "serve", "--port", str(port)], ours_env, port, workdir / "ours.log") as pid:
                results["ours"].append(measure(pid, port, token, seconds=args.seconds, concurrency=args.concurrency))
            for name, extra in (("bare", {}), ("cached", {"BENCH_CACHES": "1"})):
                port = free_port()
                bare_cmd = [sys.executable, "-m", "uvicorn", "bench.bench_me:bare_app", "--factory", "--port",
                            str(port), "--no-access-log", "--log-level", "warning"]
                with server(bare_cmd, {**bare_env, **extra}, port, workdir / "bare.log") as pid:
                    results[name].append(measure(pid, port, None, seconds=args.seconds,
                                                 concurrency=args.concurrency))
    finally:
        if dropme:
            drop_database(dropme)
        shutil.rmtree(workdir, ignore_errors=True)

    # Medians over interleaved rounds: on a shared machine one round can be slowed by someone else's work.
    best = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()}
    backend = "PostgreSQL" if dropme else "SQLite"
    print(f"me over HTTP, one uvicorn process, {args.concurrency} keep-alive connections, "
          f"{args.seconds:.0f} s x {args.rounds} interleaved rounds (medians), {backend}, {os.cpu_count()} CPUs")
    rows = (("bare", "bare strawberry"), ("cached", "bare + parse/valid. caches"), ("ours", "talkative (auth, full)"))
    print(f"{'app':<30}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'server CPU ms/req':>20}")
    for name, label in rows:
        r = best[name]
        print(f"{label:<30}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['cpu_ms']:>20.3f}")
    for name, label in (("bare", "bare strawberry (the target's baseline)"), ("cached", "bare + the same caches")):
        overhead_rps = (best[name]["rps"] / best["ours"]["rps"] - 1) * 100
        overhead_p50 = (best["ours"]["p50"] / best[name]["p50"] - 1) * 100
        overhead_cpu = (best["ours"]["cpu_ms"] / best[name]["cpu_ms"] - 1) * 100
        verdict = "OK" if max(overhead_rps, overhead_p50) <= 25 else "over 25%"
        print(f"overhead vs {label}: {overhead_rps:+.1f}% time per request, {overhead_p50:+.1f}% p50, "
              f"{overhead_cpu:+.1f}% server CPU per request: {verdict}")


if __name__ == "__main__":
    main()
