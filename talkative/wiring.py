"""Wiring: the engine from settings, worker dependencies from the container, and the outbox relay."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from services import notifications, processing
from services.outbox import OutboxRelay
from workers import runner

if TYPE_CHECKING:
    from narration import Engine, EngineConfig
    from talkative.container import Container
    from talkative.settings import Settings

log = logging.getLogger(__name__)


def engine_config(settings: Settings) -> EngineConfig:
    """The narration engine's configuration, taken from the service settings."""
    from narration import EngineConfig

    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return EngineConfig(
        vision_provider=settings.vision_provider, speech_provider=settings.speech_provider,
        openai_base_url=settings.openai_base_url, openai_api_key=key,
        openai_vision_model=settings.openai_vision_model, openai_speech_model=settings.openai_speech_model,
        local_models_dir=settings.local_models_dir, threads=settings.engine_threads,
        max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels,
    )


def engine(settings: Settings) -> Engine:
    from narration import Engine

    return Engine.shared(engine_config(settings))


def narrate_deps(c: Container) -> processing.Deps:
    return processing.Deps(sessions=c.sessions, storage=c.storage, pubsub=c.pubsub, engine=engine(c.settings),
                           relay=c.relay, max_attempts=c.settings.max_attempts)


def notify_deps(c: Container) -> notifications.NotifyDeps:
    return notifications.NotifyDeps(
        sessions=c.sessions, mailer=c.mailer, download_signer=c.download_signer,
        unsubscribe_signer=c.unsubscribe_signer, public_url=c.settings.public_url, mail_from=c.settings.mail_from,
    )


def attach_relay(c: Container) -> None:
    """Every process that commits outbox rows also relays them (after each commit and on a sweep)."""

    async def start(c: Container) -> None:
        c.relay = OutboxRelay(c.sessions, c.queue)
        c.relay.start()
        c.relay.kick()  # anything left unpublished by a crash goes out now

    async def stop(c: Container) -> None:
        await c.relay.stop()

    # on_stop hooks run last-first: the relay stops after the consumers that may still commit rows.
    c.on_start.insert(0, start)
    c.on_stop.insert(0, stop)


def attach_workers(c: Container, queues: list[str], *, warm_up: bool = True) -> None:
    """Consume `queues` in this process once the container has started; stop consuming first on shutdown."""
    items: list[runner.Consumer] = []

    async def start(c: Container) -> None:
        if runner.NARRATIONS_QUEUE in queues and warm_up:
            await engine(c.settings).warm_up()  # the first job should not pay for model loading
        items.extend(runner.consumers(
            queues, narrate_deps=narrate_deps(c) if runner.NARRATIONS_QUEUE in queues else None,
            notify_deps=notify_deps(c) if runner.NOTIFICATIONS_QUEUE in queues else None,
        ))
        s = c.settings
        await runner.start(c.queue, items, prefetch=s.worker_prefetch, max_attempts=s.max_attempts,
                           backoff_seconds=s.retry_backoff_seconds)

    async def stop(c: Container) -> None:
        # Closing the queue lets in-flight jobs finish (or hands them back unacked) before the DB closes.
        await c.queue.close()

    c.on_start.append(start)
    c.on_stop.append(stop)


def prepare_api(c: Container) -> None:
    """Hooks an API process needs: the outbox relay, and in embedded mode (in-process queue) the workers too."""
    if getattr(c, "_api_prepared", False):
        return
    c._api_prepared = True  # type: ignore[attr-defined]
    attach_relay(c)
    if c.settings.queue_url is None:
        # Nobody outside this process can reach an in-process queue, so this process consumes it.
        attach_workers(c, list(runner.QUEUES))


async def burst_drain(c: Container, queues: list[str]) -> int:
    """Publish pending outbox rows, then handle everything queued now (burst mode)."""
    await c.relay.flush()
    items = runner.consumers(
        queues, narrate_deps=narrate_deps(c) if runner.NARRATIONS_QUEUE in queues else None,
        notify_deps=notify_deps(c) if runner.NOTIFICATIONS_QUEUE in queues else None,
    )
    s = c.settings
    return await runner.drain(c.queue, items, max_attempts=s.max_attempts, backoff_seconds=s.retry_backoff_seconds)
