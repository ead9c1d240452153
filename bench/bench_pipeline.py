"""Pipeline overhead: upload → READY through the API, RabbitMQ and one worker, against the engine alone.

    .venv/bin/python bench/bench_pipeline.py [--runs 7] [--size 4000x3000]

Starts a real stack (fresh PostgreSQL database, SeaweedFS, a private RabbitMQ vhost, Redis, `talkative serve`
and one `talkative worker --queues narrations`), then alternates, on the same 12 MP JPEG:

- engine: `Engine.narrate` in this process (same configuration and options as the worker);
- engine + progress events (diagnosis): the same, with a progress callback that does what the worker's does
  (one event per 0.25 s or stage boundary, numbered in PostgreSQL, published on Redis);
- pipeline: `uploadPhoto` (GraphQL multipart) → `narrationProgress` subscription over graphql-transport-ws →
  the READY event arrives; timed from the start of the upload to the READY message, which is what a client
  sees. The websocket is opened (and authenticated) before the clock starts, as an app keeps its socket open.

One untimed warm-up of each first; the order rotates every run. Prints the medians, the overhead (pipeline
minus engine) in ms and %, the verdict against the target (overhead <= the larger of 10% of the engine and
200 ms), and where the pipeline's time goes (upload, pick-up, the engine inside the worker stage by stage,
after the engine).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _stack import PROGRESS, GraphQLSocket, Stack, machine, median

from db.models import NarrationStatus
from narration import Engine, NarrationOptions
from narration.pipeline import ProgressCallback
from services import progress
from services.narrations import engine_options
from talkative import wiring
from talkative.container import Container

TIMINGS = "query($id: ID!) { narration(id: $id) { ... on Narration { status timings { stage seconds } } } }"


@dataclass
class PipelineRun:
    narration_id: str
    total: float  # upload start → READY received
    upload: float  # upload start → mutation answered (QUEUED)
    to_processing: float  # mutation answered → first PROCESSING event
    engine: float  # the worker's own stage timings, summed
    stages: dict[str, float]  # the worker's stage timings
    status: str


def make_photo(size: tuple[int, int]) -> bytes:
    from PIL import Image

    from tests.narration import photos

    return photos.encode(photos.sample("chelsea").resize(size, Image.Resampling.BICUBIC), "JPEG", quality=92)


async def run_engine(engine: Engine, photo: bytes, options: NarrationOptions,
                     on_progress: ProgressCallback | None = None) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    result = await engine.narrate(photo, options, on_progress)
    return time.perf_counter() - start, result.timings


async def run_pipeline(stack: Stack, token: str, photo: bytes) -> PipelineRun:
    socket = await GraphQLSocket.connect(stack.ws_url, token)
    try:
        start = time.perf_counter()
        narration_id = await stack.upload(photo, token)
        uploaded = time.perf_counter()
        await socket.subscribe("1", PROGRESS, {"id": narration_id})
        processing = None
        while True:
            message = await asyncio.wait_for(socket.next_message(), 120)
            if message["type"] != "next":
                raise RuntimeError(f"subscription ended without READY: {message}")
            event = message["payload"]["data"]["narrationProgress"]
            if event["status"] == "PROCESSING" and processing is None:
                processing = time.perf_counter()
            if event["status"] in ("READY", "FAILED"):
                done = time.perf_counter()
                status = event["status"]
                break
    finally:
        await socket.close()
    data = await stack.gql(TIMINGS, {"id": narration_id}, token=token)
    stages = {t["stage"]: t["seconds"] for t in data["narration"]["timings"]}
    return PipelineRun(narration_id=narration_id, total=done - start, upload=uploaded - start,
                       to_processing=(processing or done) - uploaded, engine=sum(stages.values()), stages=stages,
                       status=status)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def worker_style_progress(container: Container, narration_id: uuid.UUID, owner_id: uuid.UUID) -> ProgressCallback:
    """A progress callback doing what the worker's does (services.processing): coalesce to one event per 0.25 s
    within a stage, number each event in the database, publish it on Redis. Used on an already finished
    narration, so nobody acts on the events."""
    last = 0.0

    async def report(stage: str, percent: int, message: str) -> None:
        nonlocal last
        now = time.monotonic()
        if percent not in (0, 100) and now - last < 0.25:
            return
        last = now
        async with container.sessions() as session, session.begin():
            sequence = await progress.next_sequence(session, narration_id)
        await progress.publish(container.pubsub, progress.ProgressEvent(
            narration_id=narration_id, owner_id=owner_id, sequence=sequence, status=NarrationStatus.PROCESSING,
            stage=stage, percent=percent, message=message,
        ))

    return report


def spread(values: list[float]) -> str:
    return f"(min {ms(min(values))}, max {ms(max(values))}, stdev {ms(statistics.pstdev(values))})"


async def main(runs: int, size: tuple[int, int]) -> int:
    photo = make_photo(size)
    print(f"photo: {size[0]}x{size[1]} JPEG, {len(photo) / 1024:.0f} KiB; {runs} runs each, interleaved; "
          f"{machine()}", flush=True)
    async with Stack.open(api=True, workers=1) as stack:
        settings = stack.settings()
        engine = wiring.engine(settings)  # the worker's configuration (Engine.shared(engine_config(settings)))
        await engine.warm_up()
        options = engine_options({})  # what the worker uses for an upload without options
        user_id, token = await stack.register()
        container = Container(settings)  # this process's own database and Redis clients, for the reporting run
        await container.start()
        try:
            # Warm-up: the first upload, job and engine call pay for lazy imports and connections.
            await run_engine(engine, photo, options)
            warm = await run_pipeline(stack, token, photo)
            report = worker_style_progress(container, uuid.UUID(warm.narration_id), uuid.UUID(user_id))
            await run_engine(engine, photo, options, report)

            engine_runs: list[tuple[float, dict[str, float]]] = []
            reporting_runs: list[tuple[float, dict[str, float]]] = []
            pipeline_runs: list[PipelineRun] = []
            kinds = ("engine", "reporting", "pipeline")
            for i in range(runs):
                for kind in kinds[i % 3:] + kinds[:i % 3]:  # rotate the order
                    if kind == "engine":
                        engine_runs.append(await run_engine(engine, photo, options))
                    elif kind == "reporting":
                        reporting_runs.append(await run_engine(engine, photo, options, report))
                    else:
                        pipeline_runs.append(await run_pipeline(stack, token, photo))
                print(f"  run {i + 1}: engine {ms(engine_runs[-1][0])}, engine + progress events "
                      f"{ms(reporting_runs[-1][0])}, pipeline {ms(pipeline_runs[-1].total)} "
                      f"({pipeline_runs[-1].status})", flush=True)
        finally:
            await container.stop()

    failed = [r for r in pipeline_runs if r.status != "READY"]
    engine_times = [t for t, _ in engine_runs]
    reporting_times = [t for t, _ in reporting_runs]
    totals = [r.total for r in pipeline_runs]
    engine_median, pipeline_median = median(engine_times), median(totals)
    overhead = pipeline_median - engine_median
    allowed = max(0.10 * engine_median, 0.200)
    print()
    print(f"engine alone (in-process)            median {ms(engine_median):>8}   {spread(engine_times)}")
    print(f"upload -> READY (API, queue, worker) median {ms(pipeline_median):>8}   {spread(totals)}")
    print(f"overhead {overhead * 1000:+.0f} ms ({overhead / engine_median * 100:+.1f}%); target <= {ms(allowed)} "
          f"(the larger of 10% and 200 ms): {'PASS' if overhead <= allowed else 'FAIL'}")
    print()
    print("where the pipeline's time goes (medians): "
          f"upload mutation {ms(median([r.upload for r in pipeline_runs]))}; "
          f"answered -> first PROCESSING event {ms(median([r.to_processing for r in pipeline_runs]))}; "
          f"worker engine stages {ms(median([r.engine for r in pipeline_runs]))}; "
          f"after the engine (audio to S3, READY, event) "
          f"{ms(median([r.total - r.upload - r.to_processing - r.engine for r in pipeline_runs]))}")
    print(f"engine + worker-style progress events (DB + Redis) in-process: median {ms(median(reporting_times))} "
          f"{spread(reporting_times)}, i.e. {(median(reporting_times) - engine_median) * 1000:+.0f} ms for "
          "reporting progress")
    names = list(engine_runs[0][1])
    print("engine stages, alone / with progress events / inside the worker (medians): " + "; ".join(
        f"{name} {ms(median([s[name] for _, s in engine_runs]))} / "
        f"{ms(median([s[name] for _, s in reporting_runs]))} / "
        f"{ms(median([r.stages.get(name, 0.0) for r in pipeline_runs]))}" for name in names))
    print(f"after: {machine()}")
    if failed:
        print(f"WARNING: {len(failed)} pipeline run(s) ended {failed[0].status}")
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--size", default="4000x3000", help="photo size WxH (default 12 MP)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    sys.exit(asyncio.run(main(args.runs, (width, height))))
