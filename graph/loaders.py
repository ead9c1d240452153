"""Per-request DataLoaders. Add one cached property per entity; each batch opens its own short session."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader

from db.models import Photo, User
from db.repositories import users as user_repo

RowT = TypeVar("RowT")


class Loaders:
    """Batches and caches lookups within one request. On a websocket the cache is off, because one
    context lives as long as the connection and rows change meanwhile; batching still applies."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, cache: bool = True) -> None:
        self._sessionmaker = sessionmaker
        self._cache = cache

    @cached_property
    def user(self) -> DataLoader[uuid.UUID, User | None]:
        async def load(ids: Sequence[uuid.UUID]) -> list[User | None]:
            async with self._sessionmaker() as session:
                found = await user_repo.get_many(session, ids)
            return [found.get(i) for i in ids]

        return DataLoader(load_fn=load, cache=self._cache)

    @cached_property
    def photo(self) -> DataLoader[uuid.UUID, Photo | None]:
        return self._by_id(Photo)

    def _by_id(self, model: type[RowT]) -> DataLoader[uuid.UUID, RowT | None]:
        """A loader of rows by primary key `id` for any model (one IN query per batch)."""
        column: Any = model.id  # type: ignore[attr-defined]

        async def load(ids: Sequence[uuid.UUID]) -> list[RowT | None]:
            async with self._sessionmaker() as session:
                rows = (await session.scalars(select(model).where(column.in_(set(ids))))).all()
            found = {row.id: row for row in rows}  # type: ignore[attr-defined]
            return [found.get(i) for i in ids]

        return DataLoader(load_fn=load, cache=self._cache)
