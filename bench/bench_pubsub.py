"""Pub/sub fan-out benchmark: N concurrent subscribers in one process, each receiving one event.

    python bench/bench_pubsub.py [--subscribers 5000] [--url redis://127.0.0.1:6379/0] [--memory]

Prints p50/p99 delivery latency (publish call → subscriber wakes up), the Redis connections used and the
Python memory per subscriber (tracemalloc), for two shapes: one channel per subscriber (narrationProgress)
and every subscriber on one hot channel.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import tracemalloc
import uuid
from typing import Any

import redis.asyncio as aioredis

from adapters.interfaces import PubSub
from adapters.pubsub_memory import MemoryPubSub
from adapters.pubsub_redis import RedisPubSub


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(pubsub: PubSub, channels: list[str], publish_channels: list[str]) -> dict[str, Any]:
    latencies: list[float] = []
    ready = asyncio.Event()
    entered = 0

    async def subscriber(channel: str) -> None:
        nonlocal entered
        async with pubsub.subscribe(channel) as messages:
            entered += 1
            if entered == len(channels):
                ready.set()
            message = await anext(messages)
            latencies.append(time.perf_counter() - message["sent"])

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    started = time.perf_counter()
    tasks = [asyncio.create_task(subscriber(c)) for c in channels]
    await asyncio.wait_for(ready.wait(), 120)
    subscribe_seconds = time.perf_counter() - started
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    per_subscriber = sum(s.size_diff for s in after.compare_to(before, "filename")) / len(channels)
    for channel in publish_channels:
        await pubsub.publish(channel, {"sent": time.perf_counter(), "status": "READY"})
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return {
        "subscribers": len(channels),
        "subscribe_all_s": round(subscribe_seconds, 3),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "bytes_per_subscriber": round(per_subscriber),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--memory", action="store_true", help="use the in-process pub/sub instead of Redis")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    name = f"bench-pubsub-{tag}"
    for shape in ("channel-per-subscriber", "one-hot-channel"):
        pubsub: PubSub = MemoryPubSub() if args.memory else RedisPubSub(args.url, client_name=name)
        if shape == "channel-per-subscriber":
            channels = [f"bench:{tag}:{i}" for i in range(args.subscribers)]
            publish = channels
        else:
            channels = [f"bench:{tag}:hot"] * args.subscribers
            publish = channels[:1]
        result = await run(pubsub, channels, publish)
        if not args.memory:
            probe = aioredis.Redis.from_url(args.url, decode_responses=True)
            clients = [c for c in await probe.client_list() if c.get("name") == name]
            result["redis_connections"] = len(clients)
            await probe.aclose()
        await pubsub.close()
        print(shape, " ".join(f"{k}={v}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
