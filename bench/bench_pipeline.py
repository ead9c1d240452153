"""Pipeline overhead: upload → READY through the API, RabbitMQ and one worker, against the engine alone.

    .venv/bin/python bench/bench_pipeline.py [--runs 7] [--size 4000x3000]

Starts a real stack (fresh PostgreSQL database, SeaweedFS, a private RabbitMQ vhost, Redis, `talkative serve`
and one `talkative worker --queues narrations`), then alternates, on the same 12 MP JPEG:

- engine: `Engine.narrate` in this process (same configuration and options as the worker);
- pipeline: `uploadPhoto` (GraphQL multipart) → `narrationProgress` subscription over graphql-transport-ws →
  the READY event arrives; timed from the start of the upload to the READY message, which is what a client
  sees. The websocket is opened (and authenticated) before the clock starts, as an app keeps its socket open.

One untimed warm-up of each first. Prints the medians, the overhead in ms and %, a breakdown of where the
pipeline's time goes, and the verdict against the target: overhead <= max(10% of the engine, 200 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _stack import PROGRESS, GraphQLSocket, Stack, machine, median

from narration import Engine, NarrationOptions
from services.processing import engine_options
from talkative import wiring

TIMINGS = "query($id: ID!) { narration(id: $id) { ... on Narration { status timings { stage seconds } } } }"


@dataclass
class PipelineRun:
    total: float  # upload start → READY received
    upload: float  # upload start → mutation answered (QUEUED)
    to_processing: float  # mutation answered → first PROCESSING event
    engine: float  # the worker's own stage timings, summed
    status: str


def make_photo(size: tuple[int, int]) -> bytes:
    from PIL import Image

    from tests.narration import photos

    return photos.encode(photos.sample("chelsea").resize(size, Image.Resampling.BICUBIC), "JPEG", quality=92)


async def run_engine(engine: Engine, photo: bytes, options: NarrationOptions) -> float:
    start = time.perf_counter()
    await engine.narrate(photo, options)
    return time.perf_counter() - start


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
    worker_engine = sum(t["seconds"] for t in data["narration"]["timings"])
    return PipelineRun(total=done - start, upload=uploaded - start,
                       to_processing=(processing or done) - uploaded, engine=worker_engine, status=status)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


async def main(runs: int, size: tuple[int, int]) -> int:
    photo = make_photo(size)
    print(f"photo: {size[0]}x{size[1]} JPEG, {len(photo) / 1024:.0f} KiB; {runs} runs each, interleaved; "
          f"{machine()}", flush=True)
    async with Stack.open(api=True, workers=1) as stack:
        settings = stack.settings()
        engine = wiring.engine(settings)  # the worker's configuration (Engine.shared(engine_config(settings)))
        await engine.warm_up()
        options = engine_options({})  # what the worker uses for an upload without options
        _, token = await stack.register()

        # Warm-up: the first upload, job and engine call pay for lazy imports and connections.
        await run_engine(engine, photo, options)
        await run_pipeline(stack, token, photo)

        engine_times: list[float] = []
        pipeline_runs: list[PipelineRun] = []
        for i in range(runs):
            order = ("engine", "pipeline") if i % 2 == 0 else ("pipeline", "engine")
            for kind in order:
                if kind == "engine":
                    engine_times.append(await run_engine(engine, photo, options))
                else:
                    pipeline_runs.append(await run_pipeline(stack, token, photo))
            print(f"  run {i + 1}: engine {ms(engine_times[-1])}, pipeline {ms(pipeline_runs[-1].total)} "
                  f"({pipeline_runs[-1].status})", flush=True)

    failed = [r for r in pipeline_runs if r.status != "READY"]
    engine_median = median(engine_times)
    pipeline_median = median([r.total for r in pipeline_runs])
    overhead = pipeline_median - engine_median
    allowed = max(0.10 * engine_median, 0.200)
    print()
    print(f"engine alone (in-process)      median {ms(engine_median):>9}   "
          f"(min {ms(min(engine_times))}, max {ms(max(engine_times))}, stdev {ms(statistics.pstdev(engine_times))})")
    totals = [r.total for r in pipeline_runs]
    print(f"upload -> READY (API+queue+worker) median {ms(pipeline_median):>9}   "
          f"(min {ms(min(totals))}, max {ms(max(totals))}, stdev {ms(statistics.pstdev(totals))})")
    print(f"overhead                       {overhead * 1000:+.0f} ms  ({overhead / engine_median * 100:+.1f}%)   "
          f"target <= {ms(allowed)} (max of 10% and 200 ms): {'PASS' if overhead <= allowed else 'FAIL'}")
    print("pipeline breakdown (medians): "
          f"upload mutation {ms(median([r.upload for r in pipeline_runs]))}, "
          f"answered -> first PROCESSING event {ms(median([r.to_processing for r in pipeline_runs]))}, "
          f"worker engine stages {ms(median([r.engine for r in pipeline_runs]))}, "
          f"rest (events, audio store, READY) "
          f"{ms(median([r.total - r.upload - r.to_processing - r.engine for r in pipeline_runs]))}")
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
