"""`talkative worker`: consume the narrations and/or notifications queues until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

log = logging.getLogger("talkative.worker")


def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated: narrations, notifications.")] =
        "narrations,notifications",
    burst: Annotated[bool, typer.Option(help="Handle what is queued now, then exit.")] = False,
    prefetch: Annotated[int | None, typer.Option(help="Jobs in flight per queue (default WORKER_PREFETCH).")] = None,
) -> None:
    """Run queue consumers. SIGTERM stops taking jobs, lets the ones in hand finish, then exits."""
    from talkative.cli import fail, load_settings
    from talkative.container import Container, StartupError
    from talkative.logging import configure_logging
    from talkative.wiring import attach_relay, attach_workers, burst_drain
    from workers.runner import QUEUES

    settings = load_settings()
    if prefetch is not None:
        settings.worker_prefetch = max(1, prefetch)
    configure_logging(settings.log_level, json=settings.log_json)
    names = [q.strip() for q in queues.split(",") if q.strip()]
    if unknown := sorted(set(names) - set(QUEUES)):
        fail(f"--queues: unknown queue {', '.join(unknown)}; choose from {', '.join(QUEUES)}", 2)
    if settings.queue_url is None and not burst:
        fail("QUEUE_URL: a separate worker needs a shared queue; in embedded mode `talkative serve` runs the "
             "workers itself", 2)

    async def run() -> str | None:
        container = Container(settings, serves_api=False)
        attach_relay(container)
        if not burst:
            attach_workers(container, names)
        try:
            await container.start()
        except StartupError as exc:
            return str(exc)
        try:
            if burst:
                handled = await burst_drain(container, names)
                log.info("burst mode: %s job(s) handled", handled)
                return None
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            log.info("worker consuming %s", ", ".join(names))
            await stop.wait()
            log.info("stopping: finishing the jobs in hand")
        finally:
            await container.stop()
        return None

    error = asyncio.run(run())
    if error:
        fail(error)
