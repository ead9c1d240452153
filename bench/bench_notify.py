"""1,000 notifications through the notify worker: RabbitMQ → workers.notify → PostgreSQL → SMTP on loopback.

    .venv/bin/python bench/bench_notify.py [--emails 1000] [--runs 3] [--prefetch 1,8]

Real parts: the RabbitMQ and PostgreSQL on this machine (a fresh database, dropped afterwards) and an
aiosmtpd server in its own process that requires STARTTLS and AUTH LOGIN, exactly like the tests' server
(test CA made here); it counts messages and distinct client connections instead of writing a Maildir, so
the number is the worker's, not the disk's. Each run inserts N finished narrations, publishes their notify
messages to a fresh queue, then starts the worker (a fresh AmqpQueue consumer with workers.notify.handler
and a fresh SmtpMailer) and times it until the SMTP server has accepted all N. Medians over the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ADMIN_PG = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


# -- the SMTP server (its own process) -----------------------------------------------------------------


def serve_smtp(port: int, cert: str, key: str, user: str, password: str, messages: Any, connections: Any,
               ready: Any, stop: Any) -> None:
    import logging
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    logging.getLogger("mail.log").setLevel(logging.ERROR)  # one deprecation notice per connection otherwise
    seen: set[int] = set()

    class Counting:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if id(session) not in seen:
                seen.add(id(session))
                with connections.get_lock():
                    connections.value += 1
            with messages.get_lock():
                messages.value += 1
            return "250 Message accepted for delivery"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (user, password)
        return AuthResult(success=ok, handled=False)

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    controller = Controller(Counting(), hostname="127.0.0.1", port=port, server_hostname="localhost",
                            tls_context=tls, require_starttls=True, auth_require_tls=True,
                            authenticator=authenticate, auth_required=True)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


# -- database ----------------------------------------------------------------------------------------------


async def create_database() -> tuple[str, str]:
    import asyncpg

    from db import migrate
    from db.session import make_engine

    name = f"talkative_bench_notify_{secrets.token_hex(4)}"
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


async def insert_narrations(sessions: Any, n: int) -> list[Any]:
    """N READY narrations spread over N/10 users; returns their notify jobs."""
    from db.models import Narration, NarrationStatus, User
    from services.messages import NotifyJob

    users = [User(id=uuid.uuid4(), email=f"reader-{uuid.uuid4().hex[:12]}@example.com", display_name=f"Reader {i}")
             for i in range(max(1, n // 10))]
    jobs = []
    async with sessions() as session:
        session.add_all(users)
        await session.flush()
        for i in range(n):
            owner = users[i % len(users)]
            row = Narration(id=uuid.uuid4(), owner_id=owner.id, status=NarrationStatus.READY, options={}, run=1,
                            attempts=1, event_sequence=3, timings={}, audio_format="mp3",
                            text=f"Photo {i}: a tabby cat asleep on a red blanket beside a window.",
                            audio_key=f"audio/{owner.id}/{i}.mp3", duration_seconds=5.0)
            session.add(row)
            jobs.append(NotifyJob(narration_id=row.id, status="READY", run=1))
        await session.commit()
    return jobs


# -- one run -------------------------------------------------------------------------------------------------


async def one_run(container: Any, mail_url: str, n: int, prefetch: int, messages: Any,
                  connections: Any) -> dict[str, float]:
    from adapters.mail_smtp import SmtpMailer
    from adapters.queue_amqp import AmqpQueue
    from services.notifications import NotifyDeps
    from workers import notify

    jobs = await insert_narrations(container.sessions, n)
    name = f"bench-notify-{uuid.uuid4().hex[:10]}"
    publisher = AmqpQueue(AMQP_URL)
    started = time.perf_counter()
    for job in jobs:
        await publisher.publish(name, job.to_body(), message_id=job.message_id)
    publish_rate = n / (time.perf_counter() - started)
    await publisher.close()

    mailer = SmtpMailer(mail_url)
    deps = NotifyDeps(sessions=container.sessions, mailer=mailer, download_signer=container.download_signer,
                      unsubscribe_signer=container.unsubscribe_signer, public_url="https://talkative.example",
                      mail_from="Talkative Photo <hello@talkative.example>")
    worker = AmqpQueue(AMQP_URL)
    before_messages, before_connections = messages.value, connections.value
    started, cpu = time.perf_counter(), time.process_time()
    await worker.consume(name, notify.handler(deps), prefetch=prefetch, max_attempts=3, backoff_seconds=1.0)
    async with asyncio.timeout(600):
        while messages.value - before_messages < n:
            await asyncio.sleep(0.005)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await worker.close()
    await mailer.close()
    await _delete_queues(name)
    sent = messages.value - before_messages
    if sent != n:
        raise RuntimeError(f"expected {n} emails, the server got {sent}")
    return {"eps": n / elapsed, "seconds": elapsed, "publish_rate": publish_rate, "cpu_ms": cpu * 1000 / n,
            "client_connections": mailer.connections_opened,
            "server_connections": connections.value - before_connections}


async def _delete_queues(name: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for queue in (name, f"{name}.dlq"):
            await channel.queue_delete(queue)


async def run_all(args: argparse.Namespace, mail_url: str, key_file: Path, data_dir: Path, messages: Any,
                  connections: Any) -> dict[int, list[dict[str, float]]]:
    from pydantic import SecretStr

    from talkative.container import Container
    from talkative.settings import Settings

    database_url, name = await create_database()
    try:
        settings = Settings(_env_file=None, database_url=database_url, queue_url=AMQP_URL, mail_url=mail_url,  # type: ignore[call-arg]
                            secret_key=SecretStr(secrets.token_hex(24)), signing_key_file=key_file, data_dir=data_dir,
                            storage_url=None, pubsub_url=None, oidc_issuer=None, log_json=False)
        container = Container(settings)
        await container.start()
        try:
            await one_run(container, mail_url, 50, 1, messages, connections)  # warm-up: imports, pools, TLS
            results: dict[int, list[dict[str, float]]] = {p: [] for p in args.prefetch}
            for _ in range(args.runs):  # interleaved, so a noisy neighbour hurts both settings alike
                for prefetch in args.prefetch:
                    results[prefetch].append(await one_run(container, mail_url, args.emails, prefetch, messages,
                                                           connections))
            return results
        finally:
            await container.stop()
    finally:
        await drop_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prefetch", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8],
                        help="worker prefetch values to compare, e.g. 1,8")
    args = parser.parse_args()

    from joserfc.jwk import ECKey

    from tests.support.servers import free_port, make_test_certificates

    workdir = Path(tempfile.mkdtemp(prefix="bench_notify_"))
    ca, cert, key = make_test_certificates(workdir / "tls")
    key_file = workdir / "signing.pem"
    key_file.write_bytes(ECKey.generate_key("P-256", private=True).as_pem(private=True))
    user, password = "mailer", secrets.token_hex(8)
    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    messages, connections, ready, stop = ctx.Value("i", 0), ctx.Value("i", 0), ctx.Event(), ctx.Event()
    server = ctx.Process(target=serve_smtp, args=(port, str(cert), str(key), user, password, messages, connections,
                                                  ready, stop), daemon=True)
    server.start()
    if not ready.wait(30):
        raise RuntimeError("the SMTP server did not start")
    mail_url = f"smtp://{user}:{password}@127.0.0.1:{port}?starttls=true&cafile={quote(str(ca))}"
    try:
        results = asyncio.run(run_all(args, mail_url, key_file, workdir / "data", messages, connections))
    finally:
        stop.set()
        server.join(10)

    print(f"notify worker: {args.emails} emails per run, RabbitMQ → PostgreSQL dedupe row → aiosmtpd "
          f"(STARTTLS + AUTH, own process) on loopback, {args.runs} interleaved runs, {os.cpu_count()} CPUs")
    print(f"{'prefetch':>8}{'emails/s (median)':>20}{'runs':>24}{'worker CPU ms/email':>22}"
          f"{'SMTP conns (client/server)':>29}{'publish msg/s':>16}")
    for prefetch, runs in results.items():
        eps = [r["eps"] for r in runs]
        conns = "/".join(f"{int(statistics.median(r[k] for r in runs))}"
                         for k in ("client_connections", "server_connections"))
        print(f"{prefetch:>8}{statistics.median(eps):>20.0f}{', '.join(f'{e:.0f}' for e in eps):>24}"
              f"{statistics.median(r['cpu_ms'] for r in runs):>22.1f}{conns:>29}"
              f"{statistics.median(r['publish_rate'] for r in runs):>16.0f}")
    print("SMTP conns: connections the worker's mailer opened / distinct connections the server saw, per run; "
          "worker CPU: this process's CPU time while draining (the server is another process)")


if __name__ == "__main__":
    main()
