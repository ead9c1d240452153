"""Turning a delivery into its message type; a malformed body is never worth retrying."""

from __future__ import annotations

import logging
from typing import Any, Protocol, TypeVar

from adapters.interfaces import Delivery, PermanentJobError

log = logging.getLogger(__name__)
JobT = TypeVar("JobT", covariant=True)


class _Parses(Protocol[JobT]):
    def from_body(self, body: dict[str, Any]) -> JobT: ...


def parse(delivery: Delivery, job_type: _Parses[JobT]) -> JobT:
    """The job in a delivery; PermanentJobError (straight to the dead-letter queue) when malformed."""
    try:
        return job_type.from_body(delivery.body)
    except (KeyError, ValueError, TypeError) as exc:
        raise PermanentJobError(f"malformed message: {delivery.body!r}") from exc


def dead_letter(delivery: Delivery, job_type: _Parses[JobT], default_reason: str) -> tuple[JobT, str] | None:
    """The job and why it was given up on; None (logged and dropped) for a malformed dead letter."""
    try:
        job = parse(delivery, job_type)
    except PermanentJobError:
        log.error("dropping malformed dead letter %r", delivery.body)
        return None
    return job, str(delivery.headers.get("x-error") or default_reason)
