"""Throughput: N photos queued at once, drained by W `talkative worker --queues narrations` processes.

    .venv/bin/python bench/bench_throughput.py [--photos 200] [--workers 2] [--engine-photos 40]

Starts a real stack (fresh PostgreSQL database, SeaweedFS, a private RabbitMQ vhost, Redis). The photos are a
mix of five ~1-2 MP JPEGs (cat, portrait, coffee, a document, a shop sign), cleaned by the engine's
`prepare_image` as an upload would be.

1. Engine alone: sequential `Engine.narrate` in this process (the workers' configuration and options) on the
   first `--engine-photos` of the same photos (the same mix), half before and half after the drain so that
   drift (other load on the machine) shows -> photos per minute.
2. Pipeline: W workers are started and warmed up; then every photo is stored in S3 and all N narrations and
   their outbox messages are committed in ONE transaction (queued at once), the outbox is relayed to RabbitMQ,
   and the clock runs from the commit to the last `finished_at`. -> photos per minute.

Prints both rates, the ratio, the pick-up and completion latencies, the workers' own engine time per photo
(against the engine alone: CPU contention shows there) and the workers' CPU use. On a 2-core machine expect
the pipeline at most about the engine's single-process rate: the engine already uses both cores.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _stack import Stack, cpu_seconds, machine, median, percentile
from sqlalchemy import func, select

from db.models import Narration, NarrationStatus, Photo, User, utcnow
from narration import Engine, PreparedImage, prepare_image
from services import narrations
from services.narrations import engine_options
from services.outbox import OutboxRelay
from talkative import wiring
from talkative.container import Container


def make_photos() -> list[tuple[str, PreparedImage]]:
    """Five distinct photos, cleaned as an upload would be."""
    from PIL import Image

    from tests.narration import photos

    resample = Image.Resampling.BICUBIC
    raw = {
        "cat": photos.sample("chelsea").resize((1800, 1200), resample),
        "portrait": photos.sample("astronaut").resize((1200, 1200), resample),
        "coffee": photos.sample("coffee").resize((1800, 1200), resample),
        "document": photos.document(),
        "sign": photos.sign(),
    }
    return [(name, prepare_image(photos.encode(image, "JPEG", quality=90))) for name, image in raw.items()]


async def narrate_each(engine: Engine, photos: list[bytes]) -> list[float]:
    """Sequential Engine.narrate on `photos` (the workers' options); the seconds each took."""
    options = engine_options({})
    times = []
    for data in photos:
        start = time.perf_counter()
        await engine.narrate(data, options)
        times.append(time.perf_counter() - start)
    return times


def rate(times: list[float]) -> float:
    return len(times) / sum(times) * 60


async def queue_all(container: Container, photos: list[PreparedImage]) -> datetime:
    """Store every photo, then commit all narrations and their queue messages in one transaction; relay them.
    Returns the commit time."""
    owner = User(id=uuid.uuid4(), email=f"bench-{uuid.uuid4().hex[:10]}@example.com", display_name="Bench",
                 password_hash=None, roles=["user"], is_active=True)
    async with container.sessions() as session:
        session.add(owner)
        await session.commit()
    photo_ids = [uuid.uuid4() for _ in photos]
    keys = [narrations.photo_key(owner.id, pid, "jpg") for pid in photo_ids]
    gate = asyncio.Semaphore(8)

    async def put(key: str, data: bytes) -> int:
        async with gate:
            return (await container.storage.put(key, data, content_type="image/jpeg")).size

    sizes = await asyncio.gather(*(put(k, p.data) for k, p in zip(keys, photos, strict=True)))
    async with container.sessions() as session:
        for pid, key, photo, size in zip(photo_ids, keys, photos, sizes, strict=True):
            session.add(Photo(id=pid, owner_id=owner.id, object_key=key, content_type=photo.content_type,
                              source_format=photo.format, width=photo.width, height=photo.height, byte_size=size,
                              sha256=hashlib.sha256(photo.data).hexdigest()))
        await session.flush()
        for pid in photo_ids:
            await narrations.create_narration(session, owner_id=owner.id, photo_id=pid,
                                              options=narrations.validate_options(None))
        await session.commit()
    committed = utcnow()
    await OutboxRelay(container.sessions, container.queue).flush()
    return committed


async def wait_drained(container: Container, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    terminal = [NarrationStatus.READY, NarrationStatus.FAILED]
    done = -1
    while time.monotonic() < deadline:
        async with container.sessions() as session:
            done = await session.scalar(select(func.count()).where(Narration.status.in_(terminal))) or 0
        if done >= count:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"only {done}/{count} narrations finished within {timeout:.0f} s")


async def main(args: argparse.Namespace) -> int:
    distinct = make_photos()
    batch = [distinct[i % len(distinct)][1] for i in range(args.photos)]
    engine_batch = [p.data for p in batch[: args.engine_photos]]
    mix = ", ".join(f"{name} {p.width}x{p.height} {len(p.data) // 1024} KiB" for name, p in distinct)
    print(f"photos: {args.photos} queued at once ({mix}, cycled); {args.workers} worker(s) "
          f"(ENGINE_THREADS {args.worker_engine_threads or 'default'}); engine alone on the first "
          f"{len(engine_batch)}, half before and half after the drain; {machine()}", flush=True)
    async with Stack.open(api=False, workers=0) as stack:
        settings = stack.settings()
        engine = wiring.engine(settings)  # the workers' configuration: Engine.shared(engine_config(settings))
        await engine.warm_up()
        await narrate_each(engine, engine_batch[:1])  # untimed: first-call costs
        half = len(engine_batch) // 2
        engine_before = await narrate_each(engine, engine_batch[:half])
        print(f"engine alone, before the drain: {rate(engine_before):.1f} photos/min", flush=True)

        threads = args.worker_engine_threads
        workers = await stack.start_workers(args.workers, env={"ENGINE_THREADS": str(threads)} if threads else None)
        container = Container(settings)
        await container.start()
        try:
            cpu_before = [cpu_seconds(w.pid) for w in workers]
            committed = await queue_all(container, batch)
            t0 = time.monotonic()
            await wait_drained(container, args.photos,
                               timeout=max(180.0, args.photos * 60 / rate(engine_before) * 3))
            wall = time.monotonic() - t0
            cpu_used = [cpu_seconds(w.pid) - c for w, c in zip(workers, cpu_before, strict=True)]
            async with container.sessions() as session:
                rows = (await session.execute(
                    select(Narration.status, Narration.started_at, Narration.finished_at, Narration.timings)
                )).all()
        finally:
            await container.stop()
        # The other half of the engine's sample after the drain (the workers idle), so drift shows.
        engine_after = await narrate_each(engine, engine_batch[half:])
        print(f"engine alone, after the drain: {rate(engine_after):.1f} photos/min", flush=True)

    engine_times = engine_before + engine_after
    engine_ppm = rate(engine_times)
    ready = [r for r in rows if r.status == NarrationStatus.READY]
    failed = len(rows) - len(ready)
    drain = (max(r.finished_at for r in rows) - committed).total_seconds()
    ppm = len(rows) / drain * 60
    pickup = [(r.started_at - committed).total_seconds() for r in rows if r.started_at]
    finish = [(r.finished_at - committed).total_seconds() for r in rows]
    worker_engine = [sum(r.timings.values()) for r in ready if r.timings]
    print(f"pipeline: {len(rows)} photos drained by {args.workers} worker(s) in {drain:.1f} s "
          f"(commit -> last READY; {wall:.1f} s by polling) = {ppm:.1f} photos/min; {failed} FAILED")
    print(f"engine alone: {engine_ppm:.1f} photos/min over {len(engine_times)} photos "
          f"(median {median(engine_times) * 1000:.0f} ms a photo)")
    print(f"pipeline / engine alone: {ppm / engine_ppm:.2f}x ({ppm:.1f} vs {engine_ppm:.1f} photos/min)")
    print(f"first job picked up {min(pickup) * 1000:.0f} ms after the commit; time to READY p50 "
          f"{percentile(finish, 0.5):.1f} s, p99 {percentile(finish, 0.99):.1f} s")
    print(f"engine time per photo inside the workers: median {median(worker_engine) * 1000:.0f} ms "
          f"(engine alone {median(engine_times) * 1000:.0f} ms): the workers share the cores")
    print("worker CPU during the drain: " + ", ".join(
        f"{w.name} {c:.0f} s ({c / wall * 100:.0f}% of a core)" for w, c in zip(workers, cpu_used, strict=True)))
    print(f"after: {machine()}")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engine-photos", type=int, default=40, help="photos the engine alone narrates")
    parser.add_argument("--worker-engine-threads", type=int, default=0,
                        help="ENGINE_THREADS for the workers only (default: the setting's default)")
    sys.exit(asyncio.run(main(parser.parse_args())))
