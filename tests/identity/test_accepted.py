"""Real client-credentials tokens from the running provider are accepted and mapped to our roles."""

from __future__ import annotations

import asyncio

from services.identity import OidcVerifier, peek_issuer
from tests.identity.conftest import RecordingClient
from tests.support.oidc import ADMIN, OTHER_AUDIENCE, PARTNER, PLAIN, OidcProvider


async def test_partner_token_is_a_partner(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    token = await oidc_provider.atoken(PARTNER.client_id, scope="talkative:partner talkative:read")

    identity = await verifier.verify(token)

    assert identity.issuer == oidc_provider.issuer
    assert identity.subject == PARTNER.client_id
    assert identity.client_id == PARTNER.client_id
    assert identity.client_credentials is True
    assert identity.roles == {"partner"}
    assert identity.scopes == {"talkative:partner", "talkative:read"}
    assert identity.email is None and identity.name is None


async def test_admin_roles_come_from_keycloak_style_claims(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    identity = await verifier.verify(oidc_provider.token(ADMIN.client_id))

    assert identity.roles == {"admin", "partner"}
    assert identity.client_credentials is True


async def test_machine_client_without_roles_is_still_a_partner(
    oidc_provider: OidcProvider, verifier: OidcVerifier
) -> None:
    identity = await verifier.verify(await oidc_provider.atoken(PLAIN.client_id))

    assert identity.roles == {"partner"}
    assert identity.scopes == frozenset()


async def test_audience_list_containing_ours_is_accepted(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    token = oidc_provider.mint({"aud": [OTHER_AUDIENCE, oidc_provider.audience]})

    assert (await verifier.verify(token)).subject == "crafted-user"


async def test_discovery_and_jwks_are_fetched_once_for_many_tokens(
    oidc_provider: OidcProvider, make_verifier, http: RecordingClient
) -> None:
    verifier = make_verifier()
    tokens = [await oidc_provider.atoken(c.client_id) for c in (PARTNER, ADMIN, PLAIN)]

    # concurrent first use shares one fetch
    await asyncio.gather(*(verifier.verify(t) for t in tokens * 4))
    for token in tokens * 5:
        await verifier.verify(token)

    assert http.count("/.well-known/openid-configuration") == 1
    assert http.count("/jwks") == 1


async def test_jwks_is_refetched_after_its_ttl(
    oidc_provider: OidcProvider, make_verifier, http: RecordingClient
) -> None:
    verifier = make_verifier(jwks_ttl_seconds=0, refetch_cooldown_seconds=0)
    token = oidc_provider.token()

    for _ in range(3):
        await verifier.verify(token)

    assert http.count("/.well-known/openid-configuration") == 1
    assert http.count("/jwks") == 3


async def test_peek_issuer_routes_without_verifying(oidc_provider: OidcProvider) -> None:
    assert peek_issuer(oidc_provider.token()) == oidc_provider.issuer
    assert peek_issuer("not-a-jwt") is None
    assert peek_issuer("a.b.c") is None
