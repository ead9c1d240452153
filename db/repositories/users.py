"""User queries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import User


async def get(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_many(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
    """Users by id in one query (for DataLoaders); missing ids are absent from the result."""
    wanted = set(ids)
    if len(wanted) == 1:  # the common batch of one: a primary-key get is cheaper than an IN query
        row = await session.get(User, next(iter(wanted)))
        return {row.id: row} if row is not None else {}
    rows = await session.scalars(select(User).where(User.id.in_(wanted)))
    return {row.id: row for row in rows}


async def by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.lower()))


async def by_oidc(session: AsyncSession, issuer: str, subject: str) -> User | None:
    return await session.scalar(select(User).where(User.oidc_issuer == issuer, User.oidc_subject == subject))


async def page(
    session: AsyncSession, *, first: int, after: tuple[datetime, uuid.UUID] | None
) -> tuple[list[User], bool]:
    """Users oldest first, keyset-paginated on (created_at, id); returns the rows and whether more follow."""
    query = select(User)
    if after is not None:
        created, ident = after
        query = query.where(or_(User.created_at > created, and_(User.created_at == created, User.id > ident)))
    rows = list((await session.scalars(query.order_by(User.created_at, User.id).limit(first + 1))).all())
    return rows[:first], len(rows) > first
