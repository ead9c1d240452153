"""Live progress at scale: N concurrent `narrationProgress` subscribers on ONE API process, each getting events.

    .venv/bin/python bench/bench_subscriptions.py [--subscribers 5000] [--users 5] [--clients 1] [--shape spread]
                                                  [--rate 1000] [--no-compression] [--api-gc off]

Starts a real stack (fresh PostgreSQL database, SeaweedFS, private RabbitMQ vhost, Redis) and one API process
(`talkative serve`: uvicorn, websockets). N narrations are inserted for a few users; client processes (the
`websockets` library, graphql-transport-ws, token in `connection_init`) open one socket per subscriber and
subscribe to `narrationProgress`, waiting for the first message (the current state from the database).
After an idle hold, three rounds go out through `services.progress.publish` on Redis, one event per
narration each (sequence numbers above the database's, so subscribers accept them): PROCESSING at --rate
events/s, PROCESSING as a burst (as fast as the publisher can), READY at --rate (which ends every
subscription). Each event carries its send time (CLOCK_MONOTONIC, shared by every process on the machine) in
`message`; latency is publish call -> message parsed by the client.

Shapes: `spread` = one narration per subscriber (a Redis channel each, the normal case); `hot` = every
subscriber watches the same narration (one publish fans out to all).

Prints: time and API CPU to open all subscriptions, the API's RSS growth per subscriber (VmRSS with a few
warm-up subscribers open vs. all open), the API's CPU while every subscriber is idle (each re-reads its row
after 10 s of silence), the API's full garbage collections (timed by a sitecustomize hook in the API process)
per phase, and p50/p99/max delivery latency per round (target p99 <= 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _stack import (
    PROGRESS,
    REDIS_URL,
    ROOT,
    GraphQLSocket,
    Stack,
    cpu_seconds,
    machine,
    percentile,
    raise_fd_limit,
    rss_kib,
)

from adapters.factory import make_pubsub

# (sequence, status, paced): each round gives every subscriber one event; paced rounds publish at --rate
# events/s, the others as fast as the publisher can (a burst).
ROUNDS = ((1, "PROCESSING", True), (2, "PROCESSING", False), (3, "READY", True))
GC_HOOK = """\
import gc, os, time

_log, _start = os.environ.get("BENCH_GC_LOG"), [0.0]


def _timed(phase, info):
    if info.get("generation") != 2 or not _log:
        return
    if phase == "start":
        _start[0] = time.monotonic()
    else:
        with open(_log, "a") as out:
            out.write(f"{_start[0]:.6f} {time.monotonic() - _start[0]:.6f}\\n")


gc.callbacks.append(_timed)
"""
GC_OFF = "import gc\ngc.disable()\n"
WARM_UP = 20  # subscribers open before the memory baseline (first-use allocations are not per subscriber)


# -- client process ----------------------------------------------------------------------------------------


async def client_main(spec_path: Path) -> None:
    """Open the sockets in the spec, report READY, record event latencies, print RESULT when done."""
    raise_fd_limit()
    spec = json.loads(spec_path.read_text())
    url, tokens, items = spec["url"], spec["tokens"], spec["items"]
    gate = asyncio.Semaphore(spec["concurrency"])
    latencies: dict[int, list[float]] = {seq: [] for seq, _, _ in ROUNDS}
    counts = dict.fromkeys(latencies, 0)
    errors: list[str] = []
    subscribed = 0
    all_subscribed = asyncio.Event()
    completed = 0
    settled = 0  # subscribed or failed

    def settle() -> None:
        nonlocal settled
        settled += 1
        if settled == len(items):
            all_subscribed.set()

    async def subscriber(narration_id: str, token_index: int) -> None:
        nonlocal subscribed, completed
        try:
            async with gate:
                socket = await GraphQLSocket.connect(url, tokens[token_index], compression=spec["compression"])
                await socket.subscribe("1", PROGRESS, {"id": narration_id})
                first = await asyncio.wait_for(socket.next_message(), 60)
                if first.get("type") != "next":
                    raise RuntimeError(f"first message {first}")
        except Exception as exc:
            errors.append(f"subscribe: {type(exc).__name__}: {exc}"[:300])
            settle()
            return
        subscribed += 1
        settle()
        try:
            while True:
                message = await socket.next_message()
                now = time.monotonic()
                if message["type"] == "complete":
                    completed += 1
                    break
                if message["type"] != "next":
                    errors.append(f"message: {message}"[:300])
                    break
                event = message["payload"]["data"]["narrationProgress"]
                seq = int(event["sequence"])
                if seq in latencies:
                    latencies[seq].append(now - float(event["message"]))
                    counts[seq] += 1
                    if counts[seq] == subscribed and all_subscribed.is_set():
                        print(f"GOT {seq}", flush=True)
        except Exception as exc:
            errors.append(f"receive: {type(exc).__name__}: {exc}"[:300])
        finally:
            with contextlib.suppress(Exception):
                await socket.close()

    started = time.monotonic()
    tasks = [asyncio.create_task(subscriber(n, t)) for n, t in items]
    await all_subscribed.wait()
    # This client's own collector must not pause it while it timestamps deliveries.
    gc.collect()
    gc.freeze()
    gc.disable()
    print(f"READY {subscribed} {len(items) - subscribed} {time.monotonic() - started:.3f}", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks), spec["deadline"])
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    result = {"subscribed": subscribed, "completed": completed, "latencies": {str(k): v for k, v in latencies.items()},
              "errors": errors[:20], "error_count": len(errors)}
    print("RESULT " + json.dumps(result), flush=True)


# -- coordinator ---------------------------------------------------------------------------------------------


async def insert_narrations(database_url: str, owners: list[str], count: int) -> list[tuple[str, int]]:
    """`count` QUEUED narrations (no photo, nothing queued), round-robin over owners: (id, owner index)."""
    from sqlalchemy import insert

    from db.models import Narration, NarrationStatus
    from db.session import make_engine

    engine = make_engine(database_url)
    rows = [{"id": uuid.uuid4(), "owner_id": uuid.UUID(owners[i % len(owners)]), "photo_id": None, "options": {},
             "status": NarrationStatus.QUEUED, "event_sequence": 0, "attempts": 0, "run": 1, "timings": {}}
            for i in range(count)]
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(Narration), rows)
    finally:
        await engine.dispose()
    return [(str(r["id"]), i % len(owners)) for i, r in enumerate(rows)]


async def publish_round(pubsub: Any, targets: list[tuple[str, str]], sequence: int, status: str,
                        rate: float | None, concurrency: int = 16) -> float:
    """One event per (narration id, owner id) through services.progress.publish, at `rate` events/s (None: as
    fast as possible); each event carries its own send time. Returns the seconds publishing took."""
    from db.models import NarrationStatus
    from services import progress

    gate = asyncio.Semaphore(concurrency)
    start = time.monotonic()

    async def one(i: int, narration_id: str, owner_id: str) -> None:
        if rate:
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        async with gate:
            await progress.publish(pubsub, progress.ProgressEvent(
                narration_id=uuid.UUID(narration_id), owner_id=uuid.UUID(owner_id), sequence=sequence,
                status=NarrationStatus(status), stage="describe" if status == "PROCESSING" else None,
                percent=50 if status == "PROCESSING" else 100, message=f"{time.monotonic():.6f}",
            ))

    await asyncio.gather(*(one(i, n, o) for i, (n, o) in enumerate(targets)))
    return time.monotonic() - start


async def read_line(process: asyncio.subprocess.Process, prefix: str, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {prefix} line from client {process.pid}")
        raw = await asyncio.wait_for(process.stdout.readline(), left)
        if not raw:
            raise RuntimeError(f"client {process.pid} exited (rc {process.returncode}) before {prefix}")
        line = raw.decode().strip()
        if line.startswith(prefix):
            return line


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def label(sequence: int, status: str, paced: bool) -> str:
    return f"round {sequence} ({status}, {'paced' if paced else 'burst'})"


async def main(args: argparse.Namespace) -> int:
    fd_limit = raise_fd_limit()
    n = args.subscribers
    need = n // max(1, args.clients) + 200
    if fd_limit < need:
        print(f"WARNING: open-files limit {fd_limit} is below the {need} a client process needs")
    print(f"{n} subscribers; open-files limit {fd_limit}; {machine()}", flush=True)
    # A sitecustomize for the API process: logs its full (generation 2) garbage collections, or (diagnosis)
    # turns the collector off.
    hooks = Path(tempfile.mkdtemp(prefix="bench-subs-hooks-"))
    gc_log = hooks / "gc.log"
    (hooks / "sitecustomize.py").write_text(GC_OFF if args.api_gc == "off" else GC_HOOK)
    extra_env = {"PYTHONPATH": f"{hooks}{os.pathsep}{ROOT}", "BENCH_GC_LOG": str(gc_log)}
    try:
        async with Stack.open(api=True, workers=0, log_level=args.log_level, extra_env=extra_env) as stack:
            results, subscribed, failed, phases = await measure(args, stack)
        pauses = [tuple(map(float, line.split()[:2])) for line in gc_log.read_text().splitlines()] \
            if gc_log.exists() else []
    finally:
        shutil.rmtree(hooks, ignore_errors=True)
    if args.api_gc == "off":
        print("API garbage collector: off (diagnosis run)")
    else:
        for name, (begin, end) in phases.items():
            inside = [d for t, d in pauses if begin <= t <= end]
            print(f"API full GC pauses during {name}: {len(inside)}, longest {ms(max(inside, default=0))}, "
                  f"total {ms(sum(inside))}")

    ok = failed == 0
    for sequence, status, paced in ROUNDS:
        values = [v for r in results for v in r["latencies"][str(sequence)]]
        if not values:
            print(f"{label(sequence, status, paced)}: no events delivered")
            ok = False
            continue
        p99 = percentile(values, 0.99)
        ok &= p99 <= 1.0 and len(values) == subscribed
        print(f"{label(sequence, status, paced)}: delivered {len(values)}/{subscribed}; latency p50 "
              f"{ms(percentile(values, 0.5))}, p99 {ms(p99)}, max {ms(max(values))} "
              f"(target p99 <= 1000 ms: {'PASS' if p99 <= 1.0 else 'FAIL'})")
    completed = sum(r["completed"] for r in results)
    errors = sum(r["error_count"] for r in results)
    print(f"subscriptions completed after READY: {completed}/{subscribed}; client errors: {errors}; after: {machine()}")
    for r in results:
        for line in r["errors"][:5]:
            print(f"  error: {line}")
    return 0 if ok else 1


async def measure(
    args: argparse.Namespace, stack: Stack,
) -> tuple[list[dict[str, Any]], int, int, dict[str, tuple[float, float]]]:
    assert stack.api is not None
    n = args.subscribers
    api_pid = stack.api.pid
    users = [await stack.register() for _ in range(args.users)]
    owners = [u for u, _ in users]
    tokens = [t for _, t in users]
    distinct = n if args.shape == "spread" else 1
    narrations = await insert_narrations(stack.database_url, owners, distinct + WARM_UP)
    warm, watched = narrations[:WARM_UP], narrations[WARM_UP:]
    if args.shape == "hot":
        watched = watched * n

    # Warm-up subscribers, kept open, so the baseline already includes first-use allocations.
    warm_sockets = []
    for narration_id, owner in warm:
        socket = await GraphQLSocket.connect(stack.ws_url, tokens[owner], compression=args.compression)
        await socket.subscribe("1", PROGRESS, {"id": narration_id})
        await socket.next_message()
        warm_sockets.append(socket)
    await asyncio.sleep(1)
    rss_before = rss_kib(api_pid)

    folder = Path(tempfile.mkdtemp(prefix="bench-subs-", dir=stack.folder))
    phases: dict[str, tuple[float, float]] = {}
    clients: list[asyncio.subprocess.Process] = []
    deadline = args.hold + 240
    cpu_ramp, ramp_start = cpu_seconds(api_pid), time.monotonic()
    for c in range(args.clients):
        spec = folder / f"client{c}.json"
        spec.write_text(json.dumps({"url": stack.ws_url, "tokens": tokens, "items": watched[c::args.clients],
                                    "concurrency": args.connect_concurrency, "compression": args.compression,
                                    "deadline": deadline}))
        clients.append(await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", str(spec), stdout=asyncio.subprocess.PIPE, limit=1 << 27))
    try:
        ready = [await read_line(p, "READY", 900) for p in clients]
        ramp = time.monotonic() - ramp_start
        cpu_ramp = cpu_seconds(api_pid) - cpu_ramp
        phases["the ramp"] = (ramp_start, time.monotonic())
        subscribed = sum(int(line.split()[1]) for line in ready)
        failed = sum(int(line.split()[2]) for line in ready)
        rss_open = rss_kib(api_pid)
        print(f"subscribers: {subscribed} open of {n} ({failed} failed) in {ramp:.1f} s ({subscribed / ramp:.0f}/s; "
              f"API CPU {cpu_ramp * 1000 / max(1, subscribed):.1f} ms per subscription) on one API process; "
              f"shape {args.shape}, {args.users} users, {args.clients} client process(es), "
              f"permessage-deflate {'on' if args.compression else 'off'}", flush=True)

        # Idle: nothing is published, but each subscription re-reads its row after 10 s without events.
        cpu0, t0 = cpu_seconds(api_pid), time.monotonic()
        await asyncio.sleep(args.hold)
        phases["the idle hold"] = (t0, time.monotonic())
        idle_cpu = (cpu_seconds(api_pid) - cpu0) / (time.monotonic() - t0)
        rss_after = rss_kib(api_pid)
        grown = max(rss_open, rss_after) - rss_before
        print(f"API RSS: {rss_before / 1024:.0f} MiB with {WARM_UP} warm-up subscribers -> "
              f"{max(rss_open, rss_after) / 1024:.0f} MiB with {subscribed + WARM_UP}: "
              f"{grown / max(1, subscribed):.1f} KiB per subscriber", flush=True)
        print(f"API CPU while all {subscribed} are idle ({args.hold:.0f} s): {idle_cpu * 100:.0f}% of one core",
              flush=True)

        targets = [(nid, owners[o]) for nid, o in narrations[WARM_UP:]]
        pubsub = make_pubsub(REDIS_URL)
        await asyncio.gather(*(pubsub.ping() for _ in range(16)))  # the pool is connected before the clock starts
        try:
            for sequence, status, paced in ROUNDS:
                cpu0, r0 = cpu_seconds(api_pid), time.monotonic()
                seconds = await publish_round(pubsub, targets, sequence, status, args.rate if paced else None)
                for p in clients:
                    with contextlib.suppress(TimeoutError):
                        await read_line(p, "GOT", 60)
                phases[label(sequence, status, paced)] = (r0, time.monotonic())
                print(f"{label(sequence, status, paced)}: {len(targets)} event(s) published in {seconds:.2f} s; "
                      f"API CPU {cpu_seconds(api_pid) - cpu0:.1f} s", flush=True)
        finally:
            await pubsub.close()
        results = [json.loads((await read_line(p, "RESULT", deadline + 60)).split(" ", 1)[1]) for p in clients]
    finally:
        for p in clients:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                await p.wait()
        for socket in warm_sockets:
            with contextlib.suppress(Exception):
                await socket.close()
    return results, subscribed, failed, phases


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--users", type=int, default=5, help="owners the narrations are spread over")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--shape", choices=("spread", "hot"), default="spread")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s in the paced rounds")
    parser.add_argument("--hold", type=float, default=12.0, help="idle seconds before publishing (> 10 s resync)")
    parser.add_argument("--connect-concurrency", type=int, default=64, help="handshakes in flight per client")
    parser.add_argument("--no-compression", dest="compression", action="store_false",
                        help="do not offer permessage-deflate (browsers do)")
    parser.add_argument("--api-gc", choices=("default", "off"), default="default",
                        help="off: start the API with its garbage collector disabled (diagnosis)")
    parser.add_argument("--log-level", default="WARNING", help="the API's LOG_LEVEL")
    parser.add_argument("--client", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        try:
            from uvloop import new_event_loop as loop_factory
        except ImportError:
            loop_factory = None  # type: ignore[assignment]
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(client_main(args.client))
    else:
        sys.exit(asyncio.run(main(args)))
