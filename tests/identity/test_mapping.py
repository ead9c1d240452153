"""Claim shapes of other providers (Keycloak, Auth0, Entra ID, Okta), minted with the real provider's key."""

from __future__ import annotations

import pytest

from services.identity import OidcVerifier
from tests.support.oidc import OidcProvider

KEYCLOAK_USER = {
    "sub": "0b6f0a2e-5d1c-4d3a-9a7e-2f1f3c4d5e6f",
    "typ": "Bearer",
    "azp": "talkative-web",
    "scope": "openid email profile",
    "email": "ada@example.com",
    "email_verified": True,
    "name": "Ada Lovelace",
    "preferred_username": "ada",
}


@pytest.mark.parametrize(
    ("claims", "roles"),
    [
        ({}, {"user"}),
        ({"realm_access": {"roles": ["talkative-admin", "default-roles-acme"]}}, {"user", "admin"}),
        # a bare realm role belongs to the whole realm, not to us
        ({"realm_access": {"roles": ["admin", "partner"]}}, {"user"}),
        ({"resource_access": {"https://api.talkative.test": {"roles": ["admin"]}}}, {"user", "admin"}),
        ({"resource_access": {"some-other-app": {"roles": ["admin"]}}}, {"user"}),
        ({"scope": "openid talkative:admin"}, {"user", "admin"}),
    ],
)
async def test_keycloak_user_roles(
    oidc_provider: OidcProvider, verifier: OidcVerifier, claims: dict[str, object], roles: set[str]
) -> None:
    identity = await verifier.verify(oidc_provider.mint({**KEYCLOAK_USER, **claims}))

    assert identity.roles == roles
    assert identity.client_credentials is False
    assert identity.subject == KEYCLOAK_USER["sub"]
    assert (identity.email, identity.name) == ("ada@example.com", "Ada Lovelace")
    assert identity.client_id == "talkative-web"


async def test_unverified_email_is_dropped(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    identity = await verifier.verify(oidc_provider.mint({**KEYCLOAK_USER, "email_verified": False}))

    assert identity.email is None


async def test_name_falls_back_to_the_username(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    claims = {k: v for k, v in KEYCLOAK_USER.items() if k != "name"}

    assert (await verifier.verify(oidc_provider.mint(claims))).name == "ada"


@pytest.mark.parametrize(
    "claims",
    [
        # Keycloak service account
        {"sub": "9f1e", "azp": "acme", "client_id": "acme", "preferred_username": "service-account-acme"},
        {"sub": "acme@clients", "azp": "acme", "gty": "client-credentials"},  # Auth0
        {"sub": "5e3c", "azp": "acme", "idtyp": "app", "roles": ["x"]},  # Entra ID
        {"sub": "0oa1acme", "cid": "0oa1acme", "scp": ["talkative:read"]},  # Okta
    ],
)
async def test_machine_tokens_of_other_providers(
    oidc_provider: OidcProvider, verifier: OidcVerifier, claims: dict[str, object]
) -> None:
    identity = await verifier.verify(oidc_provider.mint(claims))

    assert identity.client_credentials is True
    assert identity.roles == {"partner"}
    assert identity.name is None


async def test_scp_list_and_configured_partner_scope(oidc_provider: OidcProvider, verifier: OidcVerifier) -> None:
    identity = await verifier.verify(oidc_provider.mint({"scp": ["talkative:partner", "talkative:read"]}))

    assert identity.scopes == {"talkative:partner", "talkative:read"}
    assert identity.roles == {"user", "partner"}


async def test_custom_role_map_and_role_client(oidc_provider: OidcProvider, make_verifier) -> None:
    verifier = make_verifier(role_map={"photo-admins": "admin"}, role_client="talkative-api")
    token = oidc_provider.mint(
        {
            "realm_access": {"roles": ["photo-admins"]},
            "resource_access": {"talkative-api": {"roles": ["partner"]}},
        }
    )

    assert (await verifier.verify(token)).roles == {"user", "admin", "partner"}
