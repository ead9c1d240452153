"""Narration progress events: numbered in the database, fanned out over pub/sub.

Pub/sub may drop messages, so readers start from the database state and use `sequence` to order and
dedupe; a reader that hears nothing for a while re-reads the row.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.interfaces import PubSub
from db.models import Narration, NarrationStatus

TERMINAL = frozenset({NarrationStatus.READY, NarrationStatus.FAILED})


def narration_channel(narration_id: uuid.UUID) -> str:
    return f"narration:{narration_id}"


def owner_channel(owner_id: uuid.UUID) -> str:
    return f"narrations-of:{owner_id}"


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    narration_id: uuid.UUID
    owner_id: uuid.UUID
    sequence: int
    status: NarrationStatus
    stage: str | None
    percent: int
    message: str

    def to_message(self) -> dict[str, Any]:
        data = asdict(self)
        data["narration_id"] = str(self.narration_id)
        data["owner_id"] = str(self.owner_id)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> ProgressEvent:
        return cls(
            narration_id=uuid.UUID(data["narration_id"]),
            owner_id=uuid.UUID(data["owner_id"]),
            sequence=int(data["sequence"]),
            status=NarrationStatus(data["status"]),
            stage=data.get("stage"),
            percent=int(data.get("percent", 0)),
            message=str(data.get("message", "")),
        )

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def snapshot(row: Narration) -> ProgressEvent:
    """The current state of a narration as an event (what a new subscriber sees first)."""
    percent = 100 if row.status in TERMINAL else 0
    message = (row.error_message or "") if row.status == NarrationStatus.FAILED else row.status.value.lower()
    return ProgressEvent(
        narration_id=row.id, owner_id=row.owner_id, sequence=row.event_sequence, status=row.status,
        stage=None, percent=percent, message=message,
    )


async def next_sequence(session: AsyncSession, narration_id: uuid.UUID) -> int:
    """Atomically take the next event number for a narration (part of the caller's transaction)."""
    result = await session.execute(
        update(Narration)
        .where(Narration.id == narration_id)
        .values(event_sequence=Narration.event_sequence + 1)
        .returning(Narration.event_sequence)
    )
    return int(result.scalar_one())


async def publish(pubsub: PubSub, event: ProgressEvent) -> None:
    """Send one event to the narration's channel and its owner's channel."""
    message = event.to_message()
    await pubsub.publish(narration_channel(event.narration_id), message)
    await pubsub.publish(owner_channel(event.owner_id), message)


async def follow(
    *, sessions: async_sessionmaker[AsyncSession], pubsub: PubSub, narration_id: uuid.UUID,
    resync_seconds: float = 45.0,
) -> AsyncIterator[ProgressEvent]:
    """Current state first, then live events in sequence order; ends after READY or FAILED.

    Subscribes before reading the row so nothing between the read and the subscription is missed. A
    follower that hears nothing for about `resync_seconds` re-reads the row; the wait is jittered so
    thousands of idle subscribers do not query the database in step.
    """
    async with pubsub.subscribe(narration_channel(narration_id)) as messages:
        state = await _load(sessions, narration_id)
        if state is None:
            return
        yield state
        last = state.sequence
        if state.terminal:
            return
        iterator = aiter(messages)
        while True:
            try:
                wait = resync_seconds * random.uniform(0.75, 1.25)
                raw = await asyncio.wait_for(anext(iterator), timeout=wait)
                event = ProgressEvent.from_message(raw)
            except TimeoutError:
                # A dropped terminal event must not leave the client waiting forever.
                fresh = await _load(sessions, narration_id)
                if fresh is None:
                    return
                event = fresh
            except StopAsyncIteration:
                return
            if event.sequence <= last:
                continue
            last = event.sequence
            yield event
            if event.terminal:
                return


async def follow_owner(*, pubsub: PubSub, owner_id: uuid.UUID) -> AsyncIterator[ProgressEvent]:
    """Every event of every narration the owner has, as it happens."""
    async with pubsub.subscribe(owner_channel(owner_id)) as messages:
        async for raw in messages:
            with contextlib.suppress(KeyError, ValueError):
                yield ProgressEvent.from_message(raw)


async def _load(sessions: async_sessionmaker[AsyncSession], narration_id: uuid.UUID) -> ProgressEvent | None:
    async with sessions() as session:
        row = await session.scalar(select(Narration).where(Narration.id == narration_id))
        return snapshot(row) if row is not None else None
