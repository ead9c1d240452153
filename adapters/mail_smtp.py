"""SMTP mail through aiosmtplib, configured by one URL, reusing one connection across a burst.

    smtp://user:pass@host:587?starttls=true     STARTTLS (required)
    smtp://host:25                              STARTTLS when the server offers it
    smtp://host:25?starttls=false               plain text (local relays, tests)
    smtps://user:pass@host:465                  implicit TLS
Query options: starttls=true|false|auto, verify=true|false, cafile=PATH, timeout=SECONDS, helo=NAME.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from adapters.interfaces import PermanentMailError, TemporaryMailError

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(name: str, value: str, *, allow_auto: bool = False) -> bool | None:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    if allow_auto and lowered == "auto":
        return None
    raise ValueError(f"MAIL_URL: option {name}={value!r} must be true or false")


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False  # implicit TLS (smtps)
    start_tls: bool | None = None  # None: upgrade when the server offers STARTTLS
    verify: bool = True
    cafile: str | None = None
    timeout: float = 30.0
    helo: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        """Parse a MAIL_URL; raise ValueError naming the setting on anything unexpected."""
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"}:
            raise ValueError(f"MAIL_URL: scheme must be smtp:// or smtps://, got {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError("MAIL_URL: missing host")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"MAIL_URL: invalid port ({exc})") from exc
        options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(options) - {"starttls", "verify", "cafile", "timeout", "helo"}
        if unknown:
            raise ValueError(f"MAIL_URL: unknown option(s) {', '.join(sorted(unknown))}")
        use_tls = parts.scheme == "smtps"
        start_tls = _flag("starttls", options["starttls"], allow_auto=True) if "starttls" in options else None
        if use_tls and start_tls:
            raise ValueError("MAIL_URL: smtps:// already uses TLS; drop starttls=true")
        try:
            timeout = float(options.get("timeout", 30.0))
        except ValueError as exc:
            raise ValueError(f"MAIL_URL: timeout must be a number of seconds, got {options['timeout']!r}") from exc
        default_port = 465 if use_tls else (587 if start_tls else 25)
        return cls(
            host=parts.hostname,
            port=port or default_port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=use_tls,
            start_tls=False if use_tls else start_tls,
            verify=_flag("verify", options["verify"]) is not False if "verify" in options else True,
            cafile=options.get("cafile") or None,
            timeout=timeout,
            helo=options.get("helo") or None,
        )

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.cafile)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def classify(exc: BaseException) -> TemporaryMailError | PermanentMailError:
    """4xx replies and connection trouble are temporary; 5xx replies and unsupported features permanent."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        if any(400 <= c < 500 for c in codes):
            return TemporaryMailError(f"recipients deferred: {exc.recipients}")
        return PermanentMailError(f"recipients refused: {exc.recipients}")
    if isinstance(exc, aiosmtplib.SMTPResponseException) and not isinstance(exc, aiosmtplib.SMTPConnectError):
        error_class = PermanentMailError if exc.code >= 500 else TemporaryMailError
        return error_class(f"{exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentMailError(str(exc))
    return TemporaryMailError(f"{type(exc).__name__}: {exc}")


class SmtpMailer:
    """Sends over one kept-open connection (reconnecting when the server dropped it), one message at a time.

    A connection idle longer than `idle_seconds` is replaced rather than trusted: servers drop idle
    clients and a send on a half-closed socket wastes a round trip.
    """

    def __init__(self, url: str | SmtpConfig, *, idle_seconds: float = 30.0) -> None:
        self.config = url if isinstance(url, SmtpConfig) else SmtpConfig.from_url(url)
        self._idle_seconds = idle_seconds
        self._client: aiosmtplib.SMTP | None = None
        self._last_used = 0.0
        self._lock = asyncio.Lock()  # SMTP is one conversation at a time
        self.connections_opened = 0

    def _new_client(self) -> aiosmtplib.SMTP:
        cfg = self.config
        return aiosmtplib.SMTP(
            hostname=cfg.host, port=cfg.port, username=cfg.username, password=cfg.password,
            use_tls=cfg.use_tls, start_tls=cfg.start_tls, validate_certs=cfg.verify,
            tls_context=cfg.tls_context() if (cfg.use_tls or cfg.start_tls is not False) else None,
            timeout=cfg.timeout, local_hostname=cfg.helo,
        )

    async def _open(self) -> aiosmtplib.SMTP:
        await self._drop()
        client = self._new_client()
        await client.connect()  # EHLO, STARTTLS and login as configured
        self.connections_opened += 1
        self._client = client
        return client

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit(timeout=2)
            client.close()

    async def send(self, message: EmailMessage) -> None:
        async with self._lock:
            try:
                await self._send(message)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                await self._drop()  # after an error the conversation state is unknown
                raise classify(exc) from exc

    async def _send(self, message: EmailMessage) -> None:
        client = self._client
        fresh = time.monotonic() - self._last_used < self._idle_seconds
        reused = client is not None and client.is_connected and fresh
        if client is None or not reused:
            client = await self._open()
        try:
            errors, _ = await client.send_message(message)
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
            if not reused:
                raise
            # The server closed the kept-open connection since the last send: one fresh try.
            client = await self._open()
            errors, _ = await client.send_message(message)
        self._last_used = time.monotonic()
        if errors:
            log.warning("some recipients were refused: %s", errors)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()
