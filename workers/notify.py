"""Notify worker: one email per finished narration, sent once, retried on temporary SMTP failures."""

from __future__ import annotations

import logging

from sqlalchemy import update

from adapters.interfaces import Delivery, Handler
from db.models import EmailDelivery
from services import notifications
from services.messages import NotifyJob
from workers.messages import dead_letter, parse

log = logging.getLogger(__name__)


def _job(delivery: Delivery) -> NotifyJob:
    return parse(delivery, NotifyJob)


def handler(deps: notifications.NotifyDeps) -> Handler:
    async def handle(delivery: Delivery) -> None:
        job = _job(delivery)
        status = await notifications.send_notification(deps, job)
        log.info("notify %s: %s", job.message_id, status)

    return handle


def dead_letter_handler(deps: notifications.NotifyDeps) -> Handler:
    """Record that an email was given up on (retries exhausted or refused by the server)."""

    async def handle(delivery: Delivery) -> None:
        if (letter := dead_letter(delivery, NotifyJob, "gave up")) is None:
            return
        job, reason = letter
        async with deps.sessions() as session:
            await session.execute(
                update(EmailDelivery)
                .where(EmailDelivery.dedupe_key == job.message_id, EmailDelivery.status == "PENDING")
                .values(status="FAILED", error=reason[:1000])
            )
            await session.commit()
        log.warning("email %s dead-lettered: %s", job.message_id, reason)

    return handle
