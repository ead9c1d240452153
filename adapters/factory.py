"""Build each adapter from its setting: a URL selects the real implementation, None the embedded one.

Invalid URLs raise ValueError naming the setting, so a bad deployment fails at start-up with a clear line.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from adapters.cache import MemoryCache, RedisCache
from adapters.interfaces import Cache, JobQueue, Mailer, ObjectStorage, PubSub, RateLimiter
from adapters.mail_outbox import OutboxMailer
from adapters.mail_smtp import SmtpConfig, SmtpMailer
from adapters.pubsub_memory import MemoryPubSub
from adapters.pubsub_redis import RedisPubSub
from adapters.queue_amqp import AmqpQueue
from adapters.queue_memory import MemoryQueue
from adapters.ratelimit import LimitsRateLimiter
from adapters.storage_local import LocalStorage
from adapters.storage_s3 import S3Storage

_REDIS_SCHEMES = {"redis", "rediss", "unix"}
_S3_OPTIONS = {"endpoint", "public_endpoint", "region", "path_style"}


def _scheme(url: str, setting: str, expected: str) -> str:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ValueError(f"{setting}: {url!r} is not a URL (expected {expected})")
    return scheme


def _bool(value: str, setting: str, name: str) -> bool:
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{setting}: option {name}={value!r} must be true or false")


def make_storage(
    url: str | None, *, data_dir: Path, photo_retention_days: int = 0, audio_retention_days: int = 0
) -> ObjectStorage:
    """STORAGE_URL: `s3://BUCKET[?endpoint=URL&public_endpoint=URL&region=R&path_style=true]`,
    `file:///path`, or None for `data_dir/objects`. Unset S3 options fall back to boto3's AWS_* variables.
    """
    expected = "s3://BUCKET or file:///path"
    if url is None or url == "":
        return LocalStorage(Path(data_dir) / "objects")
    scheme = _scheme(url, "STORAGE_URL", expected)
    parts = urlsplit(url)
    if scheme == "file":
        if parts.netloc not in {"", "localhost"} or not parts.path:
            raise ValueError(f"STORAGE_URL: file URLs need an absolute path (file:///path), got {url!r}")
        return LocalStorage(Path(unquote(parts.path)))
    if scheme != "s3":
        raise ValueError(f"STORAGE_URL: unsupported scheme {scheme!r} (expected {expected})")
    bucket = parts.netloc
    if not bucket or "@" in bucket or parts.path not in {"", "/"}:
        raise ValueError(f"STORAGE_URL: expected s3://BUCKET with no path or credentials, got {url!r}")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(options) - _S3_OPTIONS
    if unknown:
        raise ValueError(f"STORAGE_URL: unknown option(s) {', '.join(sorted(unknown))}")
    return S3Storage(
        bucket,
        endpoint_url=options.get("endpoint"),
        public_endpoint_url=options.get("public_endpoint"),
        region=options.get("region"),
        path_style=_bool(options["path_style"], "STORAGE_URL", "path_style") if "path_style" in options else None,
        photo_retention_days=photo_retention_days,
        audio_retention_days=audio_retention_days,
    )


def make_queue(url: str | None, *, close_timeout: float = 30.0) -> JobQueue:
    """QUEUE_URL: `amqp://user:pass@host:5672/vhost` or `amqps://...`; None for the in-process queue."""
    if url is None or url == "":
        return MemoryQueue(close_timeout=close_timeout)
    scheme = _scheme(url, "QUEUE_URL", "amqp://user:pass@host:5672/")
    if scheme not in {"amqp", "amqps"}:
        raise ValueError(f"QUEUE_URL: unsupported scheme {scheme!r} (expected amqp:// or amqps://)")
    if not urlsplit(url).hostname:
        raise ValueError("QUEUE_URL: missing host")
    return AmqpQueue(url, close_timeout=close_timeout)


def _redis_url(url: str, setting: str) -> str:
    scheme = _scheme(url, setting, "redis://host:6379/0")
    if scheme not in _REDIS_SCHEMES:
        raise ValueError(f"{setting}: unsupported scheme {scheme!r} (expected redis://, rediss:// or unix://)")
    return url


def make_pubsub(url: str | None, *, max_queue: int = 256) -> PubSub:
    """PUBSUB_URL: `redis://host:6379/0`; None for in-process fan-out."""
    if url is None or url == "":
        return MemoryPubSub(max_queue=max_queue)
    return RedisPubSub(_redis_url(url, "PUBSUB_URL"), max_queue=max_queue)


def make_mailer(url: str | None, *, outbox_dir: Path) -> Mailer:
    """MAIL_URL: `smtp://...`/`smtps://...` (see adapters.mail_smtp), `file:///dir`, or None for `outbox_dir`."""
    if url is None or url == "":
        return OutboxMailer(Path(outbox_dir))
    scheme = _scheme(url, "MAIL_URL", "smtp://user:pass@host:port or smtps://...")
    if scheme == "file":
        path = urlsplit(url).path
        if not path:
            raise ValueError(f"MAIL_URL: file URLs need an absolute path (file:///dir), got {url!r}")
        return OutboxMailer(Path(unquote(path)))
    return SmtpMailer(SmtpConfig.from_url(url))


def make_cache(url: str | None, *, setting: str = "PUBSUB_URL", prefix: str = "cache:") -> Cache:
    """A Redis URL (by default the pub/sub Redis), or None for an in-process cache."""
    if url is None or url == "":
        return MemoryCache()
    return RedisCache(_redis_url(url, setting), prefix=prefix)


def make_rate_limiter(url: str | None, *, setting: str = "PUBSUB_URL", prefix: str = "ratelimit") -> RateLimiter:
    """A Redis URL (shared by every API process), or None for per-process memory."""
    if url is None or url == "":
        return LimitsRateLimiter.memory()
    return LimitsRateLimiter.redis(_redis_url(url, setting), prefix=prefix)
