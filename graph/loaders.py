"""Per-request DataLoaders. Add one cached property per entity; each batch opens its own short session."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader

from db.models import User
from db.repositories import users as user_repo


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
