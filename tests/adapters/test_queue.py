"""Job queues: RabbitMQ (real broker) and the in-process queue, with the same tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
import pytest

from adapters.interfaces import Delivery, JobQueue, PermanentJobError
from adapters.jobs import RetryPolicy
from adapters.queue_amqp import AmqpQueue, retry_queue_name
from adapters.queue_memory import MemoryQueue

BACKOFF = 0.05
ATTEMPTS = 3


@dataclass
class Setup:
    kind: str
    name: str
    url: str

    def make(self, **kwargs: float) -> JobQueue:
        if self.kind == "amqp":
            return AmqpQueue(self.url, **kwargs)  # type: ignore[arg-type]
        return MemoryQueue(**kwargs)


async def delete_queues(url: str, queue: str) -> None:
    connection = await aio_pika.connect(url)
    delays = RetryPolicy(ATTEMPTS, BACKOFF).delays() + RetryPolicy().delays()  # ours and drain's default
    names = [queue, f"{queue}.dlq", f"{queue}.dlq.dlq"] + [retry_queue_name(queue, d) for d in delays]
    async with connection:
        for name in names:
            channel = await connection.channel()
            await channel.queue_delete(name)


@pytest.fixture(params=["amqp", "memory"])
async def setup(request: pytest.FixtureRequest, amqp_url: str, unique: str) -> AsyncIterator[Setup]:
    s = Setup(request.param, f"test-jobs-{unique}", amqp_url)
    yield s
    if s.kind == "amqp":
        await delete_queues(amqp_url, s.name)


@pytest.fixture
async def queue(setup: Setup) -> AsyncIterator[JobQueue]:
    q = setup.make(close_timeout=5)
    yield q
    await q.close()


class Recorder:
    """A handler that records deliveries and fails as told."""

    def __init__(self, fail_times: int = 0, error: Exception | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self.fail_times = fail_times
        self.error = error or RuntimeError("boom")
        self.done = asyncio.Event()

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        if len(self.deliveries) <= self.fail_times:
            raise self.error
        self.done.set()


async def dead_letters(queue: JobQueue, name: str) -> list[Delivery]:
    recorder = Recorder()
    await queue.drain(f"{name}.dlq", recorder, max_attempts=1)
    return recorder.deliveries


async def test_publish_consume_ack(setup: Setup, queue: JobQueue) -> None:
    recorder = Recorder()
    await queue.consume(setup.name, recorder, prefetch=2, max_attempts=ATTEMPTS, backoff_seconds=BACKOFF)
    await queue.publish(setup.name, {"narration_id": "n1"}, message_id="m1")
    await asyncio.wait_for(recorder.done.wait(), 10)
    [delivery] = recorder.deliveries
    assert (delivery.body, delivery.message_id, delivery.attempt, delivery.redelivered) == (
        {"narration_id": "n1"}, "m1", 1, False)
    await queue.close()
    if setup.kind == "amqp":  # an unacked message would be back in the queue after close
        fresh = setup.make()
        assert await fresh.depth(setup.name) == 0
        await fresh.close()


async def test_retry_then_success(setup: Setup, queue: JobQueue) -> None:
    recorder = Recorder(fail_times=1)
    await queue.consume(setup.name, recorder, max_attempts=ATTEMPTS, backoff_seconds=BACKOFF)
    await queue.publish(setup.name, {"n": 1}, message_id="m-retry")
    await asyncio.wait_for(recorder.done.wait(), 10)
    assert [d.attempt for d in recorder.deliveries] == [1, 2]
    assert recorder.deliveries[1].headers["x-last-error"] == "boom"
    assert await dead_letters(queue, setup.name) == []


async def test_exhausted_retries_go_to_dlq_with_reason(setup: Setup, queue: JobQueue) -> None:
    await queue.publish(setup.name, {"n": 2}, message_id="m-dead")
    recorder = Recorder(fail_times=99)
    assert await queue.drain(setup.name, recorder, max_attempts=ATTEMPTS, backoff_seconds=BACKOFF) == 3
    assert [d.attempt for d in recorder.deliveries] == [1, 2, 3]
    [dead] = await dead_letters(queue, setup.name)
    assert (dead.body, dead.message_id) == ({"n": 2}, "m-dead")
    assert dead.headers["x-error"] == "RuntimeError: boom"
    assert dead.headers["x-attempts"] == 3
    assert dead.headers["x-original-queue"] == setup.name
    assert await queue.depth(setup.name) == 0


async def test_permanent_error_goes_straight_to_dlq(setup: Setup, queue: JobQueue) -> None:
    await queue.publish(setup.name, {"n": 3}, message_id="m-perm")
    recorder = Recorder(fail_times=99, error=PermanentJobError("photo is not an image"))
    assert await queue.drain(setup.name, recorder, max_attempts=ATTEMPTS, backoff_seconds=BACKOFF) == 1
    [dead] = await dead_letters(queue, setup.name)
    assert dead.headers["x-error-type"] == "PermanentJobError"
    assert "photo is not an image" in dead.headers["x-error"]


async def test_drain_handles_everything_queued(setup: Setup, queue: JobQueue) -> None:
    for i in range(5):
        await queue.publish(setup.name, {"i": i}, message_id=f"m{i}")
    assert await queue.depth(setup.name) == 5
    recorder = Recorder()
    assert await queue.drain(setup.name, recorder) == 5
    assert sorted(d.body["i"] for d in recorder.deliveries) == list(range(5))
    assert await queue.depth(setup.name) == 0
    assert await queue.drain(setup.name, recorder) == 0


async def test_close_waits_for_running_handler(setup: Setup) -> None:
    queue = setup.make(close_timeout=5)
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(delivery: Delivery) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.set()

    await queue.consume(setup.name, slow)
    await queue.publish(setup.name, {"n": 4}, message_id="m-slow")
    await asyncio.wait_for(started.wait(), 10)
    await queue.close()
    assert finished.is_set()
    if setup.kind == "amqp":
        fresh = setup.make()
        assert await fresh.depth(setup.name) == 0
        await fresh.close()


async def test_job_of_a_dead_worker_is_redelivered(setup: Setup) -> None:
    worker = setup.make(close_timeout=0.2)
    started = asyncio.Event()

    async def hang(delivery: Delivery) -> None:
        started.set()
        await asyncio.Event().wait()

    await worker.consume(setup.name, hang)
    await worker.publish(setup.name, {"n": 5}, message_id="m-crash")
    await asyncio.wait_for(started.wait(), 10)
    if isinstance(worker, AmqpQueue):
        # What a killed process looks like to the broker: the connection goes away without an ack.
        assert worker._connection is not None
        await worker._connection.close()
        survivor = setup.make()
    else:
        await worker.close()  # the handler overruns close_timeout and is cancelled
        survivor = worker
    recorder = Recorder()
    assert await survivor.drain(setup.name, recorder) == 1
    [delivery] = recorder.deliveries
    assert (delivery.message_id, delivery.redelivered) == ("m-crash", True)
    await survivor.close()
    if survivor is not worker:
        await worker.close()
