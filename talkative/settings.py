"""One settings object for the whole service, read from the environment (and an optional `.env`).

Every outside part is a URL; unset means the embedded single-machine default.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "dev-insecure-change-me"  # noqa: S105 - the embedded-mode placeholder, refused elsewhere


class Settings(BaseSettings):
    """Service configuration; see the README's configuration table."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_prefix="")

    # Where embedded mode keeps its SQLite file, objects, queue and mail outbox.
    data_dir: Path = Path("var")
    public_url: str = "http://127.0.0.1:8000"

    database_url: str | None = None
    storage_url: str | None = None  # s3://BUCKET (AWS_* env vars configure boto3) or file:///path
    queue_url: str | None = None  # amqp://...
    queue_prefix: str = ""  # namespaces queue names, so several environments can share one broker
    pubsub_url: str | None = None  # redis://...
    mail_url: str | None = None  # smtp://user:pass@host:port?starttls=true
    mail_from: str = "Talkative Photo <no-reply@talkative.local>"

    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "PS256", "EdDSA"])

    signing_key_file: Path | None = None  # PEM private key(s); the first signs, all verify
    token_issuer: str | None = None  # `iss` of our access tokens; defaults to PUBLIC_URL
    token_audience: str = "talkative-api"  # noqa: S105 - an audience name, not a secret
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)  # HMAC for download links, unsubscribe tokens
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600

    # Narration engine
    vision_provider: Literal["local", "openai"] = "local"
    speech_provider: Literal["piper", "openai"] = "piper"
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_vision_model: str = "gpt-4o-mini"
    openai_speech_model: str = "gpt-4o-mini-tts"
    local_models_dir: Path | None = None
    engine_threads: int = 2
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000

    # Storage lifecycle (days; 0 disables the rule)
    photo_retention_days: int = 0
    audio_retention_days: int = 0

    # Limits
    login_rate_limit: str = "10/minute"  # login attempts per account
    login_address_rate_limit: str = "50/minute"  # login attempts per client address
    upload_rate_limit: str = "30/minute"
    download_rate_limit: str = "120/minute"
    # Downloads answer 307 to a short-lived presigned storage URL instead of streaming through the API.
    download_redirect: bool = False
    graphql_max_depth: int = 12
    graphql_max_tokens: int = 2000
    graphql_max_cost: int = 20_000  # fields, multiplied by `first` on list fields
    graphql_max_aliases: int = 30
    max_page_size: int = 100

    # Workers
    worker_prefetch: int = 1
    max_attempts: int = 3
    retry_backoff_seconds: float = 2.0

    log_level: str = "INFO"
    log_json: bool = True

    # Server
    auto_migrate: bool | None = None  # unset: on in embedded mode only
    database_pool_size: int = 10
    startup_timeout_seconds: float = 5.0
    forwarded_allow_ips: str | None = None  # trust X-Forwarded-For from these proxies (uvicorn's option)

    @property
    def embedded(self) -> bool:
        """True when no outside server is configured at all."""
        return not any((self.database_url, self.storage_url, self.queue_url, self.pubsub_url, self.mail_url))

    @property
    def effective_token_issuer(self) -> str:
        return self.token_issuer or self.public_url.rstrip("/")

    @property
    def should_auto_migrate(self) -> bool:
        return self.embedded if self.auto_migrate is None else self.auto_migrate

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'talkative.db').resolve()}"

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if not self.embedded and self.secret_key.get_secret_value() == PLACEHOLDER_SECRET:
            raise ValueError("SECRET_KEY must be set to a real secret when outside servers are configured")
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached)."""
    return Settings()
