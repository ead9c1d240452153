"""The OpenAI SDK client shared by the OpenAI-compatible providers, and error translation at the edge."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from narration.errors import EngineError
from narration.options import EngineConfig

if TYPE_CHECKING:
    from openai import AsyncOpenAI

MAX_RETRIES = 2


def make_client(config: EngineConfig) -> AsyncOpenAI:
    """An async client for config's base URL (OpenAI, Azure's v1 endpoint, vLLM, Ollama, LocalAI...)."""
    import openai

    try:
        return openai.AsyncOpenAI(
            api_key=config.openai_api_key,  # None: the SDK falls back to OPENAI_API_KEY
            base_url=config.openai_base_url,
            timeout=config.openai_timeout_seconds,
            max_retries=MAX_RETRIES,
        )
    except openai.OpenAIError as exc:
        raise EngineError("ENGINE_FAILED", f"the OpenAI provider is not configured: {exc}") from exc


def translate(exc: Exception, what: str) -> EngineError:
    """An SDK or transport failure as an EngineError whose message names the cause but no secrets."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        detail = f"HTTP {exc.status_code}"
        message = getattr(exc, "message", "") or ""
        if message:
            detail += f": {message[:300]}"
    elif isinstance(exc, openai.APITimeoutError):
        detail = "timed out"
    elif isinstance(exc, openai.APIConnectionError):
        detail = "could not connect"
    else:
        detail = type(exc).__name__
    return EngineError("ENGINE_FAILED", f"{what} failed ({detail})")


class OpenAIProvider:
    """Base of the OpenAI-compatible providers: one lazily made client per provider."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._client: Any = None

    def load(self) -> None:
        self.client()

    def client(self) -> Any:  # Any: request payloads are built as plain dicts, not the SDK's TypedDicts
        if self._client is None:
            self._client = make_client(self.config)
        return self._client
