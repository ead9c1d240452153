"""The composition root's one object: settings, database, tokens, authenticator and every adapter.

`await container.start()` builds and checks everything; a wrong URL or an unreachable server raises
`StartupError`, whose `str()` is one line naming the setting (`DATABASE_URL: cannot connect to ...`).
`await container.stop()` closes everything in reverse order. Workers and the API share it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from adapters.factory import make_cache, make_mailer, make_pubsub, make_queue, make_rate_limiter, make_storage
from adapters.interfaces import Cache, JobQueue, Mailer, ObjectStorage, PubSub, RateLimiter
from adapters.queue_prefixed import PrefixedQueue
from db import migrate
from db.session import make_engine, make_sessionmaker, normalize_url
from services.auth import Authenticator
from services.identity import OidcVerifier
from services.outbox import OutboxRelay
from services.signing import LinkSigner
from services.tokens import TokenService, ensure_embedded_key, load_signing_keys
from talkative.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
Hook = Callable[["Container"], Awaitable[None]]


class StartupError(Exception):
    """A configuration or connectivity problem, phrased as one line that starts with the setting's name."""

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting
        self.reason = " ".join(reason.split())[:300]
        super().__init__(f"{setting}: {self.reason}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc).strip() or type(exc).__name__


def _from_factory(setting: str, exc: ValueError) -> StartupError:
    message = str(exc)
    return StartupError(setting, message.removeprefix(f"{setting}: "))


def _where(url: str) -> str:
    """host:port/database of a URL, without credentials, for error messages."""
    try:
        parsed = make_url(url)
    except Exception:  # only for a message
        return "the configured server"
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or "an in-memory database"
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


class Container:
    """Everything a process needs, built from Settings. Attributes exist once `start()` has returned."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    tokens: TokenService
    authenticator: Authenticator
    oidc: OidcVerifier | None
    http: httpx.AsyncClient
    storage: ObjectStorage
    queue: JobQueue
    pubsub: PubSub
    mailer: Mailer
    cache: Cache
    limiter: RateLimiter
    download_signer: LinkSigner
    unsubscribe_signer: LinkSigner
    upload_signer: LinkSigner
    relay: OutboxRelay  # set by talkative.wiring.attach_relay's start hook

    def __init__(self, settings: Settings, *, serves_api: bool = True) -> None:
        self.settings = settings
        # Workers verify no tokens: they start without SIGNING_KEY_FILE and the identity provider.
        self.serves_api = serves_api
        self.started = False
        self.on_start: list[Hook] = []  # run after the core is up (e.g. the in-process worker)
        self.on_stop: list[Hook] = []  # run first on stop
        self._closers: list[tuple[str, Callable[[], Awaitable[Any]]]] = []

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.sessions

    @property
    def rate_limiter(self) -> RateLimiter:
        return self.limiter

    async def _within(self, setting: str, what: str, work: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.settings.startup_timeout_seconds):
                return await work
        except StartupError:
            raise
        except Exception as exc:  # any failure here is a configuration problem
            raise StartupError(setting, f"{what} ({_describe(exc)})") from exc

    async def start(self) -> None:
        """Build and check every part; raise StartupError (and release what was opened) on the first problem."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        self.started = True
        for hook in self.on_start:
            await hook(self)

    async def _start(self) -> None:
        s = self.settings
        if s.embedded or s.database_url is None:
            s.data_dir.mkdir(parents=True, exist_ok=True)
        await self._start_database()
        self.http = httpx.AsyncClient(timeout=10, follow_redirects=False)
        self._closers.append(("http client", self.http.aclose))
        if self.serves_api:
            self._start_tokens()
            self.oidc = await self._start_oidc()
            self.authenticator = Authenticator(tokens=self.tokens, sessionmaker=self.sessions, oidc=self.oidc)
        await self._start_adapters()
        secret = s.secret_key.get_secret_value()
        self.download_signer = LinkSigner(secret, "download")
        self.unsubscribe_signer = LinkSigner(secret, "unsubscribe")
        self.upload_signer = LinkSigner(secret, "upload")

    async def _start_database(self) -> None:
        s = self.settings
        url = s.effective_database_url
        try:
            parsed = normalize_url(url)
        except ValueError as exc:
            raise StartupError("DATABASE_URL", str(exc)) from exc
        self.engine = make_engine(parsed, pool_size=s.database_pool_size)
        self._closers.append(("database", self.engine.dispose))
        self.sessions = make_sessionmaker(self.engine)

        async def ping() -> None:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        await self._within("DATABASE_URL", f"cannot connect to {_where(url)}", ping())
        if s.should_auto_migrate:
            await self._within("DATABASE_URL", "migration failed", migrate.upgrade(self.engine))
            return
        current = await self._within("DATABASE_URL", "cannot read the schema version",
                                     migrate.current_revision(self.engine))
        if current != migrate.head_revision():
            raise StartupError("DATABASE_URL", f"database schema is at {current or 'nothing'}, this version needs "
                                               f"{migrate.head_revision()}; run `talkative migrate`")

    def _start_tokens(self) -> None:
        s = self.settings
        if s.signing_key_file is not None:
            path = s.signing_key_file
        elif s.embedded:
            path = ensure_embedded_key(s.data_dir)
        else:
            raise StartupError("SIGNING_KEY_FILE", "must name a PEM private key when outside servers are configured")
        try:
            keys = load_signing_keys(path)
        except ValueError as exc:
            raise StartupError("SIGNING_KEY_FILE", str(exc)) from exc
        self.tokens = TokenService(keys, issuer=s.effective_token_issuer, audience=s.token_audience,
                                   ttl_seconds=s.access_token_ttl_seconds)

    async def _start_oidc(self) -> OidcVerifier | None:
        s = self.settings
        if not s.oidc_issuer:
            return None
        if not s.oidc_audience:
            raise StartupError("OIDC_AUDIENCE", "must be set when OIDC_ISSUER is")
        try:
            verifier = OidcVerifier(s.oidc_issuer, s.oidc_audience, s.oidc_algorithms, http=self.http)
        except ValueError as exc:
            raise StartupError("OIDC_ISSUER", str(exc)) from exc
        discovery = s.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"

        async def fetch() -> None:
            response = await self.http.get(discovery)
            response.raise_for_status()

        await self._within("OIDC_ISSUER", f"cannot fetch {discovery}", fetch())
        self._closers.append(("oidc verifier", verifier.aclose))
        return verifier

    async def _start_adapters(self) -> None:
        s = self.settings
        try:
            self.storage = make_storage(s.storage_url, data_dir=s.data_dir, photo_retention_days=s.photo_retention_days,
                                        audio_retention_days=s.audio_retention_days)
            self._closers.append(("storage", self.storage.close))
        except ValueError as exc:
            raise _from_factory("STORAGE_URL", exc) from exc
        await self._within("STORAGE_URL", "storage is not ready", self.storage.ensure_ready())
        try:
            self.queue = make_queue(s.queue_url)
            if s.queue_prefix:
                self.queue = PrefixedQueue(self.queue, s.queue_prefix)
            self._closers.append(("queue", self.queue.close))
        except ValueError as exc:
            raise _from_factory("QUEUE_URL", exc) from exc
        await self._within("QUEUE_URL", "cannot reach the queue", self.queue.ping())
        try:
            self.pubsub = make_pubsub(s.pubsub_url)
            self._closers.append(("pubsub", self.pubsub.close))
            self.cache = make_cache(s.pubsub_url)
            if (close_cache := getattr(self.cache, "close", None)) is not None:
                self._closers.append(("cache", close_cache))
            self.limiter = make_rate_limiter(s.pubsub_url)
        except ValueError as exc:
            raise _from_factory("PUBSUB_URL", exc) from exc
        await self._within("PUBSUB_URL", "cannot reach Redis", self.pubsub.ping())
        try:
            self.mailer = make_mailer(s.mail_url, outbox_dir=s.data_dir / "outbox")
            self._closers.append(("mailer", self.mailer.close))
        except ValueError as exc:
            raise _from_factory("MAIL_URL", exc) from exc

    async def readiness(self) -> dict[str, str]:
        """Each dependency's state ("ok" or a short reason): the database always, queue and Redis when configured."""
        checks: dict[str, Callable[[], Awaitable[Any]]] = {"database": self._ping_database}
        if self.settings.queue_url:
            checks["queue"] = self.queue.ping
        if self.settings.pubsub_url:
            checks["redis"] = self.pubsub.ping

        async def run(check: Callable[[], Awaitable[Any]]) -> str:
            try:
                async with asyncio.timeout(2):
                    await check()
            except Exception as exc:  # reported, not raised
                return f"error: {_describe(exc)}"[:200]
            return "ok"

        results = await asyncio.gather(*(run(c) for c in checks.values()))
        return dict(zip(checks, results, strict=True))

    async def _ping_database(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def stop(self) -> None:
        """Close everything that was opened, newest first; failures are logged, not raised."""
        if self.started:
            for hook in reversed(self.on_stop):
                try:
                    await hook(self)
                except Exception:
                    log.exception("shutdown hook failed")
        while self._closers:
            name, close = self._closers.pop()
            try:
                await close()
            except Exception:
                log.exception("closing %s failed", name)
        self.started = False

    async def __aenter__(self) -> Container:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
