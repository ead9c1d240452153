"""Pub/sub: Redis multiplexed on one connection, and the in-process fan-out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.interfaces import PubSub
from adapters.pubsub_memory import MemoryPubSub
from adapters.pubsub_redis import RedisPubSub


@pytest.fixture(params=["redis", "memory"])
async def pubsub(request: pytest.FixtureRequest, redis_url: str, unique: str) -> AsyncIterator[PubSub]:
    ps: PubSub = (
        RedisPubSub(redis_url, client_name=f"tp-test-{unique}", max_queue=8)
        if request.param == "redis" else MemoryPubSub(max_queue=8)
    )
    yield ps
    await ps.close()


async def next_message(messages: AsyncIterator[dict[str, Any]], timeout: float = 5) -> dict[str, Any]:
    return await asyncio.wait_for(anext(messages), timeout)


async def test_fan_out_to_many_subscribers(pubsub: PubSub, unique: str) -> None:
    """500 readers on one hot channel and 200 on their own channels, all subscribed concurrently."""
    hot = f"narration:{unique}:hot"
    own = [f"narration:{unique}:{i}" for i in range(200)]
    async with contextlib.AsyncExitStack() as stack:
        subscriptions = [pubsub.subscribe(hot) for _ in range(500)] + [pubsub.subscribe(c) for c in own]
        streams = await asyncio.gather(*(stack.enter_async_context(s) for s in subscriptions))
        await pubsub.publish(hot, {"sequence": 1})
        await asyncio.gather(*(pubsub.publish(c, {"channel": c}) for c in own))
        received = await asyncio.gather(*(next_message(s) for s in streams))
    assert received[:500] == [{"sequence": 1}] * 500
    assert received[500:] == [{"channel": c} for c in own]


async def test_one_subscription_sees_several_channels_in_order(pubsub: PubSub, unique: str) -> None:
    a, b = f"owner:{unique}:a", f"owner:{unique}:b"
    async with pubsub.subscribe(a, b) as messages:
        for i in range(3):
            await pubsub.publish(a if i % 2 else b, {"i": i})
        assert [await next_message(messages) for _ in range(3)] == [{"i": 0}, {"i": 1}, {"i": 2}]


async def test_unsubscribe_cleans_up(pubsub: PubSub, unique: str, redis_url: str) -> None:
    channel = f"narration:{unique}"
    async with pubsub.subscribe(channel), pubsub.subscribe(channel) as second:
        assert pubsub.channels == [channel]  # type: ignore[attr-defined]
        await pubsub.publish(channel, {"n": 1})
        assert await next_message(second) == {"n": 1}
    assert pubsub.channels == []  # type: ignore[attr-defined]
    if isinstance(pubsub, RedisPubSub):
        probe = aioredis.Redis.from_url(redis_url)
        for _ in range(100):  # UNSUBSCRIBE is sent; give Redis a moment to apply it
            [(_, count)] = await probe.pubsub_numsub(channel)
            if count == 0:
                break
            await asyncio.sleep(0.02)
        assert count == 0
        await probe.aclose()


async def test_subscribe_unsubscribe_churn_stays_consistent(pubsub: PubSub, unique: str, redis_url: str) -> None:
    """Readers joining and leaving one channel concurrently (SUBSCRIBE/UNSUBSCRIBE batched and cancelled)."""
    channel = f"narration:{unique}"

    async def visit(i: int) -> None:
        async with pubsub.subscribe(channel, f"{channel}:{i % 3}"):
            await asyncio.sleep((i % 7) / 1000)

    await asyncio.gather(*(visit(i) for i in range(300)))
    assert pubsub.channels == []  # type: ignore[attr-defined]
    async with pubsub.subscribe(channel) as messages:
        await pubsub.publish(channel, {"after": "churn"})
        assert await next_message(messages) == {"after": "churn"}
    if isinstance(pubsub, RedisPubSub):
        probe = aioredis.Redis.from_url(redis_url)
        names = [channel] + [f"{channel}:{i}" for i in range(3)]
        for _ in range(100):
            counts = [n for _, n in await probe.pubsub_numsub(*names)]
            if not any(counts):
                break
            await asyncio.sleep(0.02)
        assert counts == [0, 0, 0, 0]
        await probe.aclose()


async def test_iterator_survives_a_timed_out_wait(pubsub: PubSub, unique: str) -> None:
    """Readers wait with a timeout and then re-read the database; the iterator must still work after."""
    channel = f"narration:{unique}"
    async with pubsub.subscribe(channel) as messages:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(messages), 0.05)
        await pubsub.publish(channel, {"n": 2})
        assert await next_message(messages) == {"n": 2}


async def test_slow_reader_drops_oldest(pubsub: PubSub, unique: str) -> None:
    channel = f"narration:{unique}"
    async with pubsub.subscribe(channel) as slow, pubsub.subscribe(channel) as fast:
        for i in range(20):
            await pubsub.publish(channel, {"i": i})
            assert await next_message(fast) == {"i": i}
        kept = [await next_message(slow) for _ in range(8)]
    assert kept == [{"i": i} for i in range(12, 20)]


async def test_close_ends_subscriptions(redis_url: str, unique: str) -> None:
    for ps in (RedisPubSub(redis_url), MemoryPubSub()):
        async with ps.subscribe(f"narration:{unique}") as messages:
            await ps.close()
            assert [m async for m in messages] == []


async def test_redis_uses_one_connection_for_all_subscribers(redis_url: str, unique: str) -> None:
    name = f"tp-test-{unique}"
    ps = RedisPubSub(redis_url, client_name=name)
    probe = aioredis.Redis.from_url(redis_url, decode_responses=True)
    async with contextlib.AsyncExitStack() as stack:
        for i in range(300):
            await stack.enter_async_context(ps.subscribe(f"narration:{unique}:{i}"))
        clients = [c for c in await probe.client_list() if c.get("name") == name]
        subscribed = [c for c in clients if int(c["sub"]) > 0]
        assert len(subscribed) == 1 and int(subscribed[0]["sub"]) == 300
        assert ps.subscriber_count == 300
    await ps.close()
    await probe.aclose()


async def test_redis_reconnects_and_resubscribes(redis_url: str, unique: str) -> None:
    name = f"tp-test-{unique}"
    ps = RedisPubSub(redis_url, client_name=name)
    probe = aioredis.Redis.from_url(redis_url, decode_responses=True)
    channel = f"narration:{unique}"
    async with ps.subscribe(channel) as messages:
        for c in await probe.client_list():
            if c.get("name") == name and int(c["sub"]) > 0:
                await probe.execute_command("CLIENT", "KILL", "ID", c["id"])
        # Publish until the reader has reconnected and resubscribed (messages meanwhile are lost).
        for i in range(200):
            await probe.publish(channel, f'{{"i": {i}}}')
            with contextlib.suppress(TimeoutError):
                got = await next_message(messages, timeout=0.05)
                break
        else:
            pytest.fail("no message after the connection was killed")
        assert "i" in got
        assert ps.reconnects >= 1
    await ps.close()
    await probe.aclose()
