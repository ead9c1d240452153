"""The GraphQL layer: rejected tokens as typed errors, limits, masked errors, GraphiQL, schema drift."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from joserfc.jwk import ECKey
from starlette.testclient import TestClient

from db.repositories import users as user_repo
from graph.schema import schema_sdl
from services.tokens import SigningKey, TokenService, load_signing_keys
from talkative.app import create_app
from talkative.settings import Settings
from tests.foundation.fixtures import Api, both_backends
from tests.foundation.tokens_util import bad_tokens

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def app_tokens(settings: Settings) -> TokenService:
    """A TokenService with the app's own key, issuer and audience (the embedded key is read from data_dir)."""
    path = settings.signing_key_file or settings.data_dir / "signing-key.pem"
    return TokenService(load_signing_keys(path), issuer=settings.effective_token_issuer,
                        audience=settings.token_audience)


def make_app_client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


@both_backends
def test_our_bad_tokens_get_typed_errors(api: Api, settings: Settings) -> None:
    account = api.register()
    stranger = ECKey.generate_key("P-256", private=True)
    cases = bad_tokens(app_tokens(settings), uuid.UUID(account.id),
                       SigningKey(stranger.thumbprint(), "ES256", stranger, True))
    for name, (token, code) in cases.items():
        me = api.me(token)
        assert (me["__typename"], me["code"]) == ("Error", code), name
    # A well-formed token of ours is accepted.
    assert api.me(app_tokens(settings).issue_access_token(user_id=uuid.UUID(account.id), roles=["user"]).token)[
        "id"] == account.id


def test_malformed_authorization_header(api: Api) -> None:
    body = api.post("{ me { ... on Error { code } } }", headers={"Authorization": "Basic abc"}).json()
    assert body["data"]["me"]["code"] == "TOKEN_INVALID"


def test_depth_limit(settings: Settings) -> None:
    shallow = make_app_client(settings.model_copy(update={"graphql_max_depth": 3}))
    query = "{ users(first: 1) { edges { node { id } } } }"  # depth 3 (top-level fields are depth 0)
    with shallow as client:
        assert "depth" not in client.post("/graphql", json={"query": query}).text
    deep = make_app_client(settings.model_copy(update={"graphql_max_depth": 2}))
    with deep as client:
        body = client.post("/graphql", json={"query": query}).json()
    assert body["errors"][0]["message"] == "'anonymous' exceeds maximum operation depth of 2"
    assert body.get("data") is None


def test_token_limit(api: Api, settings: Settings) -> None:
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(settings.graphql_max_tokens)) + " }"
    body = api.gql(query)
    assert "token" in body["errors"][0]["message"].lower()


def test_cost_limit(api: Api) -> None:
    fields = "id email displayName roles createdAt"
    page = (f"(first: 100) {{ edges {{ cursor node {{ {fields} }} }} nodes {{ {fields} }} "
            "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } }")
    one = api.gql("{ users" + page + " }")  # 1,901 by our count: fine
    assert "QUERY_TOO_COMPLEX" not in str(one)
    many = "{ " + " ".join(f"u{i}: users{page}" for i in range(12)) + " }"  # 22,812 > 20,000
    body = api.gql(many)
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert body.get("data") is None


def test_alias_limit(api: Api, settings: Settings) -> None:
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(settings.graphql_max_aliases + 1)) + " }"
    body = api.gql(query)
    assert "aliases" in body["errors"][0]["message"]


def test_unexpected_errors_are_masked_and_logged_with_the_request_id(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    account = api.register()

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database exploded: secret detail")

    monkeypatch.setattr(user_repo, "get_many", broken)
    with caplog.at_level(logging.ERROR, logger="talkative.graphql"):
        response = api.post("{ me { ... on User { id } } }", token=account.access_token,
                            headers={"X-Request-ID": "req-12345"})
    assert response.headers["x-request-id"] == "req-12345"
    body = response.json()
    [error] = body["errors"]
    assert error["message"] == "Internal error (request id req-12345)"
    assert error["extensions"] == {"code": "INTERNAL", "requestId": "req-12345"}
    assert "secret detail" not in response.text and "Traceback" not in response.text
    [record] = [r for r in caplog.records if r.name == "talkative.graphql"]
    assert record.request_id == "req-12345"  # type: ignore[attr-defined]
    assert record.exc_info and "secret detail" in str(record.exc_info[1])


def test_request_ids_are_generated(api: Api) -> None:
    first = api.post("{ __typename }").headers["x-request-id"]
    second = api.post("{ __typename }", headers={"X-Request-ID": "bad id with spaces"}).headers["x-request-id"]
    assert len(first) == 32 and len(second) == 32 and first != second


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_graphiql_in_embedded_mode(api: Api) -> None:
    page = api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


def test_no_graphiql_with_real_servers(api: Api) -> None:
    page = api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code != 200 or "graphiql" not in page.text.lower()


def test_schema_file_matches_the_code() -> None:
    assert SCHEMA_FILE.exists(), "run `talkative export-schema --output schema.graphql`"
    assert SCHEMA_FILE.read_text() == schema_sdl(), (
        "schema.graphql is out of date: run `talkative export-schema --output schema.graphql`"
    )
