"""Cache and rate limiter, each against real Redis and in memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.cache import MemoryCache, RedisCache
from adapters.ratelimit import LimitsRateLimiter, parse_limit


@pytest.fixture(params=["redis", "memory"])
async def cache(request: pytest.FixtureRequest, redis_url: str, unique: str) -> AsyncIterator[RedisCache | MemoryCache]:
    c = RedisCache(redis_url, prefix=f"test-cache:{unique}:") if request.param == "redis" else MemoryCache()
    yield c
    await c.close()


@pytest.fixture(params=["redis", "memory"])
async def limiter(request: pytest.FixtureRequest, redis_url: str, unique: str) -> AsyncIterator[LimitsRateLimiter]:
    if request.param == "redis":
        rl = LimitsRateLimiter.redis(redis_url, prefix=f"test-rl-{unique}")
    else:
        rl = LimitsRateLimiter.memory()
    yield rl
    await rl.close()


async def test_cache_round_trip_and_delete(cache: RedisCache | MemoryCache) -> None:
    value = {"narration": "n1", "size": 3, "tags": ["a", "b"], "ok": True}
    assert await cache.get("k") is None
    await cache.set("k", value, ttl=60)
    assert await cache.get("k") == value
    await cache.set("k2", [1, 2], ttl=60)
    await cache.delete("k", "k2", "never")
    assert await cache.get("k") is None and await cache.get("k2") is None


async def test_cache_entries_expire(cache: RedisCache | MemoryCache) -> None:
    await cache.set("short", "v", ttl=1)
    await cache.set("long", "v", ttl=60)
    await asyncio.sleep(1.1)
    assert await cache.get("short") is None
    assert await cache.get("long") == "v"


async def test_memory_cache_is_bounded_and_copies() -> None:
    cache = MemoryCache(max_entries=2)
    value = {"a": [1]}
    await cache.set("x", value, ttl=60)
    value["a"].append(2)
    assert await cache.get("x") == {"a": [1]}
    await cache.set("y", 1, ttl=60)
    await cache.set("z", 1, ttl=60)
    assert await cache.get("x") is None


async def test_rate_limit_denies_then_recovers(limiter: LimitsRateLimiter, unique: str) -> None:
    assert [await limiter.hit("2/second", "user", unique) for _ in range(2)] == [0, 0]
    assert await limiter.hit("2/second", "user", unique) == 1  # Retry-After, whole seconds
    assert await limiter.hit("2/second", "ip", unique) == 0  # other keys are independent
    await asyncio.sleep(1.05)
    assert await limiter.hit("2/second", "user", unique) == 0
    await limiter.ping()


async def test_rate_limit_reset(limiter: LimitsRateLimiter, unique: str) -> None:
    await limiter.hit("1/minute", unique)
    assert await limiter.hit("1/minute", unique) > 1
    await limiter.reset("1/minute", unique)
    assert await limiter.hit("1/minute", unique) == 0


def test_invalid_limit_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="invalid rate limit 'lots'"):
        parse_limit("lots")
