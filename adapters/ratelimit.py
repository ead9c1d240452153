"""Moving-window rate limits through the `limits` library: Redis storage, or memory in embedded mode."""

from __future__ import annotations

import math
import time
from functools import lru_cache
from typing import Any

import redis.asyncio as aioredis
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter


@lru_cache(maxsize=256)
def parse_limit(limit: str) -> RateLimitItem:
    """"10/minute", "2 per second", "100/hour;1000/day" (first item) → a RateLimitItem."""
    try:
        return parse(limit)
    except ValueError as exc:
        raise ValueError(f"invalid rate limit {limit!r}: {exc}") from exc


class LimitsRateLimiter:
    """RateLimiter over any `limits` async storage. `hit` returns 0 or the whole seconds to wait."""

    def __init__(self, storage: Storage, *, pool: aioredis.ConnectionPool | None = None) -> None:
        self.storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._pool = pool

    @classmethod
    def redis(cls, url: str, *, prefix: str = "ratelimit", max_connections: int = 16) -> LimitsRateLimiter:
        """`url` is a plain redis:// or rediss:// URL; redis-py is the client (as for pub/sub)."""
        # Our own pool, so close() can release its connections (limits has no close of its own).
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=10, client_name="talkative-ratelimit"
        )
        # limits documents `connection_pool` but types its options as scalars.
        options: dict[str, Any] = {"connection_pool": pool}
        storage = RedisStorage(f"async+{url}", implementation="redispy", key_prefix=prefix, **options)
        return cls(storage, pool=pool)

    @classmethod
    def memory(cls) -> LimitsRateLimiter:
        return cls(MemoryStorage())

    async def hit(self, limit: str, *keys: str) -> int:
        item = parse_limit(limit)
        if await self._limiter.hit(item, *keys):
            return 0
        stats = await self._limiter.get_window_stats(item, *keys)
        # The oldest hit leaves the window at reset_time; round up so a client that waits is let in.
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def reset(self, limit: str, *keys: str) -> None:
        await self._limiter.clear(parse_limit(limit), *keys)

    async def ping(self) -> None:
        if not await self.storage.check():
            raise ConnectionError("rate limit storage is unreachable")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
