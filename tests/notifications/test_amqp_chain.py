"""notify message on RabbitMQ → workers.notify handler → PostgreSQL dedupe row → aiosmtpd (STARTTLS + AUTH).

Each test consumes its own queue (a unique name), so other tests' consumers never take its messages.
Narration rows are written straight to the database: what is under test is the notification path.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aio_pika
import pytest
import pytest_asyncio

from adapters.interfaces import Delivery, Handler
from adapters.jobs import RetryPolicy
from adapters.mail_smtp import SmtpMailer
from adapters.queue_amqp import AmqpQueue, retry_queue_name
from db.models import EmailDelivery, Narration, NarrationStatus, User
from services.messages import NotifyJob
from services.notifications import NotifyDeps
from talkative.container import Container
from talkative.wiring import notify_deps
from tests.foundation.fixtures import make_settings
from tests.notifications.mail import check_headers, links, one, parts, received, wait_for_mail
from tests.support.servers import SmtpServer
from workers import notify

pytestmark = pytest.mark.asyncio(loop_scope="session")

MAIL_FROM = "Talkative Photo <hello@talkative.test>"
BACKOFF = 0.2


@dataclass
class Chain:
    container: Container
    deps: NotifyDeps
    queue: AmqpQueue
    name: str
    smtp: SmtpServer
    handled: list[Delivery] = field(default_factory=list)
    dead: list[Delivery] = field(default_factory=list)
    errors: list[BaseException | None] = field(default_factory=list)  # per handled delivery

    def _observe(self, handler: Handler, seen: list[Delivery]) -> Handler:
        async def run(delivery: Delivery) -> None:
            error: BaseException | None = None
            try:
                await handler(delivery)
            except BaseException as exc:
                error = exc
                raise
            finally:
                if seen is self.handled:
                    self.errors.append(error)
                seen.append(delivery)

        return run

    async def consume(self, *, max_attempts: int = 3, prefetch: int = 1) -> None:
        await self.queue.consume(self.name, self._observe(notify.handler(self.deps), self.handled),
                                 prefetch=prefetch, max_attempts=max_attempts, backoff_seconds=BACKOFF)

    async def consume_dead_letters(self) -> None:
        await self.queue.consume(f"{self.name}.dlq", self._observe(notify.dead_letter_handler(self.deps), self.dead))

    async def publish(self, job: NotifyJob) -> None:
        await self.queue.publish(self.name, job.to_body(), message_id=job.message_id)

    async def narration(self, status: str = "READY", *, name: str = "Ada", error: str | None = None) -> NotifyJob:
        """A user and a finished narration of theirs in the database; the notify job for it."""
        async with self.deps.sessions() as session:
            user = User(id=uuid.uuid4(), email=f"user-{uuid.uuid4().hex[:10]}@example.com", display_name=name)
            session.add(user)
            await session.flush()
            row = Narration(
                id=uuid.uuid4(), owner_id=user.id, status=NarrationStatus(status), options={}, run=1, attempts=1,
                event_sequence=3, timings={},
                text="A tabby cat sleeps on a red blanket." if status == "READY" else None,
                audio_key=f"audio/{user.id}/x.mp3" if status == "READY" else None, audio_format="mp3",
                duration_seconds=4.2 if status == "READY" else None,
                error_code="ENGINE_FAILED" if error else None, error_message=error,
            )
            session.add(row)
            await session.commit()
        return NotifyJob(narration_id=row.id, status=status, run=1)

    async def email_of(self, job: NotifyJob) -> str:
        async with self.deps.sessions() as session:
            row = await session.get(Narration, job.narration_id)
            assert row is not None
            user = await session.get(User, row.owner_id)
            assert user is not None and user.email
            return user.email

    async def delivery(self, job: NotifyJob) -> EmailDelivery | None:
        async with self.deps.sessions() as session:
            return await session.get(EmailDelivery, job.message_id)


async def until(condition: Callable[[], Any], timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not await _value(condition()):
            await asyncio.sleep(0.02)


async def _value(result: Any) -> Any:
    return await result if asyncio.iscoroutine(result) else result


@pytest_asyncio.fixture(loop_scope="session")
async def chain(
    pg_url: str, signing_key_file: Path, amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, unique: str
) -> AsyncIterator[Chain]:
    settings = make_settings("postgres", tmp_path / "data", database_url=pg_url, signing_key_file=signing_key_file,
                             queue_url=amqp_url, mail_url=smtp_server.url(), mail_from=MAIL_FROM)
    container = Container(settings)
    await container.start()
    name = f"test-notify-{unique}"
    try:
        yield Chain(container, notify_deps(container), cast(AmqpQueue, container.queue), name, smtp_server)
    finally:
        await container.stop()
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            delays = RetryPolicy(5, BACKOFF).delays()
            for queue in (name, f"{name}.dlq", *(retry_queue_name(name, d) for d in delays)):
                await channel.queue_delete(queue)


async def test_duplicate_delivery_sends_one_email(chain: Chain) -> None:
    await chain.consume(prefetch=4)  # both copies may be handled at once: the row lock decides
    job = await chain.narration()
    await chain.publish(job)
    await chain.publish(job)  # the same message again, as after a redelivery
    await until(lambda: len(chain.handled) == 2)
    await chain.publish(job)
    await until(lambda: len(chain.handled) == 3)
    assert chain.errors == [None, None, None]  # each copy was acked as done, none retried
    to = await chain.email_of(job)
    message = one(received(chain.smtp, to))
    check_headers(message, to=to, subject="Your narration is ready", mail_from=MAIL_FROM)
    row = await chain.delivery(job)
    assert row is not None and (row.status, row.attempts) == ("SENT", 1)
    await asyncio.sleep(3 * BACKOFF)
    assert len(chain.handled) == 3
    assert await chain.queue.depth(f"{chain.name}.dlq") == 0


async def test_temporary_smtp_failure_is_retried_then_sent_once(chain: Chain) -> None:
    chain.smtp.fail("MAIL", "451 4.3.0 Mail server temporarily busy")
    await chain.consume()
    job = await chain.narration()
    await chain.publish(job)
    to = await chain.email_of(job)
    one(await wait_for_mail(chain.smtp, to))
    await until(lambda: len(chain.handled) == 2)
    assert [d.attempt for d in chain.handled] == [1, 2]  # the second came back from the retry queue
    row = await chain.delivery(job)
    assert row is not None and (row.status, row.attempts, row.error) == ("SENT", 2, None)
    await asyncio.sleep(3 * BACKOFF)
    assert len(received(chain.smtp, to)) == 1 and len(chain.handled) == 2
    assert await chain.queue.depth(f"{chain.name}.dlq") == 0


@pytest.mark.parametrize(("stage", "reply"), [("RCPT", "550 5.1.1 No such user here"),
                                              ("DATA", "554 5.6.0 Message rejected")])
async def test_permanent_smtp_failure_goes_to_the_dead_letter_queue(chain: Chain, stage: str, reply: str) -> None:
    chain.smtp.fail(stage, reply)
    await chain.consume()
    job = await chain.narration()
    await chain.publish(job)
    await until(lambda: chain.queue.depth(f"{chain.name}.dlq"), timeout=10)
    assert len(chain.handled) == 1  # not retried
    row = await chain.delivery(job)
    assert row is not None and (row.status, row.attempts) == ("FAILED", 1)
    assert row.error and reply.split()[0] in row.error and reply.split()[-1] in row.error
    assert received(chain.smtp, await chain.email_of(job)) == []

    # The dead-letter consumer takes it and keeps the recorded reason.
    await chain.consume_dead_letters()
    await until(lambda: len(chain.dead) == 1)
    assert "PermanentJobError" in str(chain.dead[0].headers["x-error"])
    again = await chain.delivery(job)
    assert again is not None and (again.status, again.error) == ("FAILED", row.error)
    assert await chain.queue.depth(f"{chain.name}.dlq") == 0


async def test_retries_exhausted_are_recorded_by_the_dead_letter_handler(chain: Chain) -> None:
    chain.smtp.fail("MAIL", "451 4.7.1 Greylisted, try again", times=2)
    await chain.consume(max_attempts=2)
    await chain.consume_dead_letters()
    job = await chain.narration()
    await chain.publish(job)
    await until(lambda: len(chain.dead) == 1)
    assert [d.attempt for d in chain.handled] == [1, 2]
    row = await chain.delivery(job)
    assert row is not None and (row.status, row.attempts) == ("FAILED", 2)
    assert row.error and row.error.startswith("TemporaryMailError") and "451 4.7.1 Greylisted" in row.error
    assert received(chain.smtp, await chain.email_of(job)) == []


async def test_failed_narration_email(chain: Chain) -> None:
    await chain.consume()
    job = await chain.narration("FAILED", name="Grace", error="The photo could not be read.")
    await chain.publish(job)
    to = await chain.email_of(job)
    message = one(await wait_for_mail(chain.smtp, to))
    unsubscribe = check_headers(message, to=to, subject="We could not narrate your photo", mail_from=MAIL_FROM)
    assert f"notify.{job.narration_id}.FAILED.1@" in message["Message-ID"]
    plain, markup = parts(message)
    for body in (plain, markup):
        assert "Hello Grace," in body
        assert "The photo could not be read." in body
        assert "/download/" not in body  # nothing to download
    assert links(plain) == links(markup) == [unsubscribe]


async def test_a_burst_reuses_one_smtp_connection(chain: Chain) -> None:
    await chain.consume(prefetch=4)
    jobs = [await chain.narration(name=f"Reader {i}") for i in range(8)]
    for job in jobs:
        await chain.publish(job)
    await until(lambda: len(chain.handled) == len(jobs))
    assert len(received(chain.smtp)) == len(jobs)
    mailer = chain.deps.mailer
    assert isinstance(mailer, SmtpMailer) and mailer.connections_opened == 1
    assert len(set(chain.smtp.peers)) == 1  # every message came over the same client socket


async def test_malformed_and_orphaned_messages(chain: Chain) -> None:
    await chain.consume()
    await chain.queue.publish(chain.name, {"hello": "world"}, message_id="junk")
    gone = NotifyJob(narration_id=uuid.uuid4(), status="READY")  # a narration deleted before we got to it
    await chain.publish(gone)
    await until(lambda: len(chain.handled) == 2)
    await until(lambda: chain.queue.depth(f"{chain.name}.dlq"))
    assert [d.attempt for d in chain.handled] == [1, 1]  # neither was retried
    assert await chain.queue.depth(f"{chain.name}.dlq") == 1  # only the malformed one
    assert await chain.delivery(gone) is None
    assert received(chain.smtp) == []
    await chain.consume_dead_letters()  # the dead-letter handler drops what it cannot parse
    await until(lambda: len(chain.dead) == 1)
    assert await chain.queue.depth(f"{chain.name}.dlq") == 0
