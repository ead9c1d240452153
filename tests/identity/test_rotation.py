"""Key rotation and outages against a private provider instance (restarted on the same port and issuer)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.errors import DomainError, ErrorCode
from services.identity import OidcVerifier
from tests.identity.conftest import RecordingClient
from tests.support.oidc import OidcProvider, generate_key, require_provider


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    """Its own process, so restarting it cannot disturb tests using the shared `oidc_provider`."""
    require_provider()
    own = OidcProvider(keys=[generate_key("old")]).start()
    try:
        yield own
    finally:
        own.stop()


async def test_rotated_key_is_picked_up_by_refetching(provider: OidcProvider, http: RecordingClient) -> None:
    verifier = OidcVerifier(provider.issuer, provider.audience, http=http, refetch_cooldown_seconds=0)
    old_token = provider.token()
    await verifier.verify(old_token)

    provider.restart(keys=[generate_key("new"), provider.signing_key])  # new key signs, old one still published
    new_token = provider.token()
    identity = await verifier.verify(new_token)

    assert identity.subject == "partner-client"
    assert (await verifier.verify(old_token)).subject == "partner-client"
    assert http.count("/jwks") == 2
    assert http.count("/.well-known/openid-configuration") == 1


async def test_cached_keys_outlive_a_provider_outage(provider: OidcProvider, http: RecordingClient) -> None:
    verifier = OidcVerifier(provider.issuer, provider.audience, http=http, refetch_cooldown_seconds=0)
    token = provider.token()
    await verifier.verify(token)
    provider.stop()

    assert (await verifier.verify(token)).subject == "partner-client"
    # an unknown kid needs the provider, which is down
    with pytest.raises(DomainError) as caught:
        await verifier.verify(provider.mint(key=generate_key("unseen")))
    assert caught.value.code == ErrorCode.UNAVAILABLE
    # a stale cache keeps working while refreshes fail
    verifier.jwks_ttl_seconds = 0
    assert (await verifier.verify(token)).subject == "partner-client"
