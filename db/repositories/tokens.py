"""Refresh-token families and tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import RefreshToken, RefreshTokenFamily


def add_family(session: AsyncSession, *, user_id: uuid.UUID, now: datetime) -> RefreshTokenFamily:
    family = RefreshTokenFamily(id=uuid.uuid4(), user_id=user_id, created_at=now)
    session.add(family)
    return family


def add_token(
    session: AsyncSession, *, family_id: uuid.UUID, token_hash: str, now: datetime, expires_at: datetime
) -> None:
    session.add(RefreshToken(id=uuid.uuid4(), family_id=family_id, token_hash=token_hash, issued_at=now,
                             expires_at=expires_at))


async def by_hash(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    return await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))


async def mark_used(session: AsyncSession, token_hash: str, now: datetime) -> bool:
    """Atomically mark an unused token used; False when it is unknown or was already used.

    A conditional UPDATE rather than read-then-write: of two concurrent refreshes with one token,
    exactly one wins and the other is seen as reuse.
    """
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, *, reason: str, now: datetime) -> None:
    await session.execute(
        update(RefreshTokenFamily)
        .where(RefreshTokenFamily.id == family_id, RefreshTokenFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
