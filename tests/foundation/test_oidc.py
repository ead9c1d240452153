"""External identity provider through the API: a real `oidc-provider` issues client-credentials tokens."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from joserfc.jwk import RSAKey
from sqlalchemy import select
from starlette.testclient import TestClient

from db.models import User
from db.session import make_engine
from services.tokens import SigningKey
from talkative.app import create_app
from talkative.settings import Settings
from tests.foundation.fixtures import Api
from tests.foundation.tokens_util import alg_none, hs256_with_public_key, tampered
from tests.support.oidc import ADMIN, PARTNER, PLAIN, OidcProvider

ME = "{ me { __typename ... on User { id email displayName roles } ... on Error { code message } } }"
USERS = "{ users(first: 5) { edges { node { id } } } }"


@pytest.fixture
def oidc_api(settings: Settings, oidc_provider: OidcProvider) -> Iterator[Api]:
    configured = settings.model_copy(update={"oidc_issuer": oidc_provider.issuer,
                                             "oidc_audience": oidc_provider.audience})
    with TestClient(create_app(configured)) as client:
        yield Api(client)


def users_by_subject(database_url: str) -> dict[str, User]:
    async def load() -> dict[str, User]:
        engine = make_engine(database_url)
        try:
            async with engine.connect() as connection:
                rows = (await connection.execute(select(User).where(User.oidc_subject.is_not(None)))).all()
        finally:
            await engine.dispose()
        return {row.oidc_subject: row for row in rows}

    return asyncio.run(load())


def test_client_credentials_token_is_accepted_and_mapped_once(
    oidc_api: Api, oidc_provider: OidcProvider, settings: Settings
) -> None:
    token = oidc_provider.token(PARTNER.client_id)
    me = oidc_api.me(token)
    assert me["__typename"] == "User", me
    assert me["roles"] == ["PARTNER"] and me["email"] is None
    # The same identity again (a new token, even another process's cache) maps to the same user.
    assert oidc_api.me(oidc_provider.token(PARTNER.client_id))["id"] == me["id"]
    assert oidc_api.me(oidc_provider.token(PLAIN.client_id))["id"] != me["id"]
    stored = users_by_subject(settings.effective_database_url)
    assert stored[PARTNER.client_id].oidc_issuer == oidc_provider.issuer
    assert str(stored[PARTNER.client_id].id) == me["id"] and stored[PARTNER.client_id].password_hash is None


def test_provider_roles_map_to_ours(oidc_api: Api, oidc_provider: OidcProvider) -> None:
    admin = oidc_provider.token(ADMIN.client_id)
    assert set(oidc_api.me(admin)["roles"]) == {"ADMIN", "PARTNER"}
    assert "errors" not in oidc_api.gql(USERS, token=admin)
    partner = oidc_provider.token(PARTNER.client_id)
    assert oidc_api.gql(USERS, token=partner)["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_our_own_tokens_still_work_beside_the_provider(oidc_api: Api) -> None:
    account = oidc_api.register()
    assert oidc_api.me(account.access_token)["id"] == account.id


def test_bad_provider_tokens_get_typed_errors(oidc_api: Api, oidc_provider: OidcProvider) -> None:
    real = oidc_provider.token(PARTNER.client_id)
    now = int(time.time())
    stranger = RSAKey.generate_key(2048, private=True)
    cases = {
        "tampered signature": (tampered(real), "TOKEN_INVALID"),
        "expired": (oidc_provider.mint({"exp": now - 120, "iat": now - 600}), "TOKEN_EXPIRED"),
        "wrong audience": (oidc_provider.mint({"aud": "https://other.example"}), "TOKEN_INVALID"),
        "wrong issuer": (oidc_provider.mint({"iss": "https://evil.example"}), "TOKEN_INVALID"),
        "alg none": (alg_none(real), "TOKEN_INVALID"),
        "HS256 signed with the public key": (
            _hs256(real, oidc_provider.signing_key), "TOKEN_INVALID"),
        "unknown signer": (oidc_provider.mint(key=stranger, header={"kid": "nope"}), "TOKEN_INVALID"),
        "not yet valid": (oidc_provider.mint({"nbf": now + 3600}), "TOKEN_INVALID"),
    }
    for name, (token, code) in cases.items():
        me = oidc_api.me(token)
        assert (me["__typename"], me["code"]) == ("Error", code), f"{name}: {me}"
    assert oidc_api.me(oidc_provider.mint({"sub": f"crafted-{uuid.uuid4().hex}"}))["__typename"] == "User"


def _hs256(token: str, key: RSAKey) -> str:
    return hs256_with_public_key(token, SigningKey(kid=key.kid or "", alg="RS256", key=key, private=True))


def test_websocket_accepts_provider_tokens(oidc_api: Api, oidc_provider: OidcProvider) -> None:
    with oidc_api.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init",
                      "payload": {"Authorization": f"Bearer {oidc_provider.token(PARTNER.client_id)}"}})
        assert ws.receive_json()["type"] == "connection_ack"
