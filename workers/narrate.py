"""Narrate worker: RabbitMQ (or in-process) messages → the engine → stored audio → READY/FAILED."""

from __future__ import annotations

import logging

from adapters.interfaces import Delivery, Handler
from services import processing
from services.errors import ErrorCode
from services.messages import NarrateJob
from workers.messages import dead_letter, parse

log = logging.getLogger(__name__)


def _job(delivery: Delivery) -> NarrateJob:
    return parse(delivery, NarrateJob)


def handler(deps: processing.Deps) -> Handler:
    """Consume `narrations`: one engine run per message, acked after the result is committed."""

    async def handle(delivery: Delivery) -> None:
        job = _job(delivery)
        log.info("narrate %s run %s attempt %s", job.narration_id, job.run, delivery.attempt)
        await processing.process(deps, job)

    return handle


def dead_letter_handler(deps: processing.Deps) -> Handler:
    """Consume `narrations.dlq`: the job gave up, so the narration is FAILED with the reason."""

    async def handle(delivery: Delivery) -> None:
        if (letter := dead_letter(delivery, NarrateJob, "it kept failing")) is None:
            return
        job, reason = letter
        log.warning("narration %s dead-lettered: %s", job.narration_id, reason)
        await processing.fail(deps, job, code=ErrorCode.ENGINE_FAILED,
                              message=f"The narration could not be completed: {reason[:500]}")

    return handle
