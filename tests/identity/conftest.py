"""Verifiers wired to the real provider, with an HTTP client that records what they fetch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from services.identity import OidcVerifier
from tests.support.oidc import OidcProvider


class RecordingClient(httpx.AsyncClient):
    """An httpx client that keeps the path of every request it sends."""

    def __init__(self, **kwargs: Any) -> None:
        self.paths: list[str] = []
        super().__init__(event_hooks={"request": [self._record]}, timeout=5, **kwargs)

    async def _record(self, request: httpx.Request) -> None:
        self.paths.append(request.url.path)

    def count(self, suffix: str) -> int:
        return sum(p.endswith(suffix) for p in self.paths)


@pytest.fixture
async def http() -> AsyncIterator[RecordingClient]:
    async with RecordingClient() as client:
        yield client


@pytest.fixture
def make_verifier(oidc_provider: OidcProvider, http: RecordingClient) -> Callable[..., OidcVerifier]:
    def make(**kwargs: Any) -> OidcVerifier:
        kwargs.setdefault("issuer", oidc_provider.issuer)
        kwargs.setdefault("audience", oidc_provider.audience)
        return OidcVerifier(http=http, **kwargs)

    return make


@pytest.fixture
def verifier(make_verifier: Callable[..., OidcVerifier]) -> OidcVerifier:
    return make_verifier()
