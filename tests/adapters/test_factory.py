"""Building adapters from settings values: the embedded default, real URLs, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.cache import MemoryCache, RedisCache
from adapters.factory import make_cache, make_mailer, make_pubsub, make_queue, make_rate_limiter, make_storage
from adapters.mail_outbox import OutboxMailer
from adapters.mail_smtp import SmtpMailer
from adapters.pubsub_memory import MemoryPubSub
from adapters.pubsub_redis import RedisPubSub
from adapters.queue_amqp import AmqpQueue
from adapters.queue_memory import MemoryQueue
from adapters.ratelimit import LimitsRateLimiter
from adapters.storage_local import LocalStorage
from adapters.storage_s3 import S3Storage


def test_storage(tmp_path: Path) -> None:
    default = make_storage(None, data_dir=tmp_path)
    assert isinstance(default, LocalStorage) and default.root == tmp_path / "objects"
    folder = make_storage("file:///srv/talkative/objects", data_dir=tmp_path)
    assert isinstance(folder, LocalStorage) and folder.root == Path("/srv/talkative/objects")
    s3 = make_storage(
        "s3://media?endpoint=http%3A%2F%2Fs3.local%3A8333&region=eu-west-1&path_style=true",
        data_dir=tmp_path, photo_retention_days=7, audio_retention_days=30,
    )
    assert isinstance(s3, S3Storage) and s3.bucket == "media"
    assert [r["Expiration"]["Days"] for r in s3.lifecycle_rules()] == [7, 30]


@pytest.mark.parametrize("url", [
    "ftp://bucket", "media", "s3://", "s3://bucket/prefix", "s3://bucket?colour=blue",
    "s3://bucket?path_style=sometimes", "file://host/path",
])
def test_storage_rejects_bad_urls(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="STORAGE_URL"):
        make_storage(url, data_dir=tmp_path)


async def test_queue_pubsub_cache_limiter() -> None:
    assert isinstance(make_queue(None), MemoryQueue)
    assert isinstance(make_queue("amqp://guest:guest@127.0.0.1:5672/"), AmqpQueue)
    assert isinstance(make_pubsub(None), MemoryPubSub)
    assert isinstance(make_pubsub("redis://127.0.0.1:6379/0"), RedisPubSub)
    assert isinstance(make_cache(None), MemoryCache)
    assert isinstance(make_cache("redis://127.0.0.1:6379/0"), RedisCache)
    assert isinstance(make_rate_limiter(None), LimitsRateLimiter)
    limiter = make_rate_limiter("redis://127.0.0.1:6379/0")
    assert isinstance(limiter, LimitsRateLimiter)
    await limiter.close()
    for bad, setting, factory in [
        ("redis://x", "QUEUE_URL", make_queue), ("amqp://", "QUEUE_URL", make_queue),
        ("amqp://x", "PUBSUB_URL", make_pubsub), ("localhost:6379", "PUBSUB_URL", make_pubsub),
        ("memcached://x", "PUBSUB_URL", make_cache), ("http://x", "PUBSUB_URL", make_rate_limiter),
    ]:
        with pytest.raises(ValueError, match=setting):
            factory(bad)


def test_mailer(tmp_path: Path) -> None:
    outbox = make_mailer(None, outbox_dir=tmp_path / "outbox")
    assert isinstance(outbox, OutboxMailer) and outbox.folder == tmp_path / "outbox"
    assert isinstance(make_mailer("file:///var/mail/out", outbox_dir=tmp_path), OutboxMailer)
    assert isinstance(make_mailer("smtps://u:p@mail.example.com", outbox_dir=tmp_path), SmtpMailer)
    with pytest.raises(ValueError, match="MAIL_URL"):
        make_mailer("smtp://mail.example.com?tls=yes", outbox_dir=tmp_path)
    with pytest.raises(ValueError, match="MAIL_URL"):
        make_mailer("mail.example.com", outbox_dir=tmp_path)
