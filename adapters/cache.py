"""A small TTL cache for JSON values: Redis for real deployments, a dict for embedded mode."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any

import redis.asyncio as aioredis


class RedisCache:
    """JSON values under `prefix` in Redis, each with its own TTL."""

    def __init__(self, url: str, *, prefix: str = "cache:", max_connections: int = 16) -> None:
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=10, client_name="talkative-cache"
        )
        self._redis = aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
        self.prefix = prefix

    async def get(self, key: str) -> Any | None:
        raw = await self._redis.get(self.prefix + key)
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: Any, *, ttl: int) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        await self._redis.set(self.prefix + key, json.dumps(value, separators=(",", ":")), ex=ttl)

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._redis.delete(*(self.prefix + k for k in keys))

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


class MemoryCache:
    """In-process TTL cache, bounded: the least recently used entry goes first when full.

    Values are stored as JSON text so callers never share (and mutate) the cached object.
    """

    def __init__(self, *, max_entries: int = 10_000) -> None:
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self.max_entries = max_entries

    async def get(self, key: str) -> Any | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        expires, raw = entry
        if expires <= time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return json.loads(raw)

    async def set(self, key: str, value: Any, *, ttl: int) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self._data[key] = (time.monotonic() + ttl, json.dumps(value))
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()
