"""Accounts over GraphQL/HTTP: register, login, me, refresh rotation and reuse, logout, throttling, isolation."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import update

from db.models import User
from db.session import make_engine
from tests.foundation.fixtures import LOGIN, PASSWORD, REGISTER, Api, both_backends

REFRESH = """
mutation($t: String!) {
  refreshToken(refreshToken: $t) {
    __typename
    ... on AuthPayload { accessToken refreshToken user { id } }
    ... on Error { code message }
  }
}"""
LOGOUT = """mutation($t: String!) {
  logout(refreshToken: $t) { __typename ... on LogoutPayload { ok } ... on Error { code } }
}"""
USER = "query($id: ID!) { user(id: $id) { __typename ... on User { id email } ... on Error { code message } } }"
USERS = """query($first: Int!, $after: String) {
  users(first: $first, after: $after) { edges { cursor node { id email } } pageInfo { hasNextPage endCursor } }
}"""


@both_backends
def test_register_login_me(api: Api) -> None:
    account = api.register(name="Ada")
    me = api.me(account.access_token)
    assert me == {"__typename": "User", "id": account.id, "email": account.email, "displayName": "Ada",
                  "roles": ["USER"]}
    logged_in = api.login(account.email.upper())  # emails are case-insensitive
    assert logged_in["__typename"] == "AuthPayload"
    assert api.me(logged_in["accessToken"])["id"] == account.id


@both_backends
def test_register_errors_are_typed(api: Api) -> None:
    account = api.register()
    taken = api.data(REGISTER, {"email": account.email, "password": PASSWORD, "name": "x"})["register"]
    assert taken == {"__typename": "Error", "code": "EMAIL_TAKEN", "message": taken["message"], "field": "email"}
    short = api.data(REGISTER, {"email": "new@example.com", "password": "short", "name": "x"})["register"]
    assert (short["code"], short["field"]) == ("VALIDATION", "password")
    bad_email = api.data(REGISTER, {"email": "not-an-email", "password": PASSWORD, "name": "x"})["register"]
    assert (bad_email["code"], bad_email["field"]) == ("VALIDATION", "email")


def test_wrong_password_and_unknown_email_look_the_same(api: Api) -> None:
    account = api.register()
    wrong = api.data(LOGIN, {"email": account.email, "password": "wrong password!"})["login"]
    unknown = api.data(LOGIN, {"email": "nobody@example.com", "password": "wrong password!"})["login"]
    assert wrong["code"] == unknown["code"] == "INVALID_CREDENTIALS"
    assert wrong["message"] == unknown["message"]


def test_me_without_token_is_unauthenticated(api: Api) -> None:
    assert api.me(None) == {"__typename": "Error", "code": "UNAUTHENTICATED", "message": "sign in first"}
    # A field without an Error member answers with a top-level error carrying the code.
    body = api.gql(USERS, {"first": 1})
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@both_backends
def test_refresh_rotates_and_reuse_revokes_the_family(api: Api) -> None:
    account = api.register()
    first = api.data(REFRESH, {"t": account.refresh_token})["refreshToken"]
    assert first["__typename"] == "AuthPayload" and first["refreshToken"] != account.refresh_token
    assert api.me(first["accessToken"])["id"] == account.id
    second = api.data(REFRESH, {"t": first["refreshToken"]})["refreshToken"]
    assert second["__typename"] == "AuthPayload"

    # The first token again: reuse. The whole family is revoked, including the newest token.
    reused = api.data(REFRESH, {"t": account.refresh_token})["refreshToken"]
    assert reused["code"] == "TOKEN_REUSED"
    after = api.data(REFRESH, {"t": second["refreshToken"]})["refreshToken"]
    assert after["code"] == "TOKEN_REUSED"
    # Another login (another family) is unaffected.
    other = api.login(account.email)
    assert api.data(REFRESH, {"t": other["refreshToken"]})["refreshToken"]["__typename"] == "AuthPayload"


def test_unknown_refresh_token(api: Api) -> None:
    assert api.data(REFRESH, {"t": "rt_nonsense"})["refreshToken"]["code"] == "TOKEN_INVALID"


@both_backends
def test_logout_ends_the_session(api: Api) -> None:
    account = api.register()
    assert api.data(LOGOUT, {"t": account.refresh_token})["logout"] == {"__typename": "LogoutPayload", "ok": True}
    assert api.data(REFRESH, {"t": account.refresh_token})["refreshToken"]["code"] == "TOKEN_INVALID"
    assert api.data(LOGOUT, {"t": "rt_unknown"})["logout"]["code"] == "TOKEN_INVALID"


def test_login_is_throttled_per_account(api: Api) -> None:
    account = api.register()
    codes = [api.data(LOGIN, {"email": account.email, "password": "wrong password!"})["login"]["code"]
             for _ in range(10)]
    assert set(codes) == {"INVALID_CREDENTIALS"}
    limited = api.data(LOGIN, {"email": account.email, "password": PASSWORD})["login"]
    assert limited["code"] == "RATE_LIMITED"
    assert 0 < limited["retryAfterSeconds"] <= 60
    # Another account from the same address still gets in.
    other = api.register()
    assert api.login(other.email)["__typename"] == "AuthPayload"


def test_login_is_throttled_per_address(api: Api) -> None:
    # 50 attempts a minute from one address, whichever accounts they name.
    results = [api.data(LOGIN, {"email": f"probe{i}@example.com", "password": "x" * 8})["login"]["code"]
               for i in range(51)]
    assert results[:50] == ["INVALID_CREDENTIALS"] * 50
    assert results[50] == "RATE_LIMITED"


@both_backends
def test_a_user_never_reads_another_users_data(api: Api) -> None:
    alice, bob = api.register(), api.register()
    assert api.me(bob.access_token)["id"] == bob.id
    own = api.data(USER, {"id": bob.id}, token=bob.access_token)["user"]
    assert own["email"] == bob.email
    other = api.data(USER, {"id": alice.id}, token=bob.access_token)["user"]
    assert other == {"__typename": "Error", "code": "NOT_FOUND", "message": "user not found"}
    missing = api.data(USER, {"id": str(uuid.uuid4())}, token=bob.access_token)["user"]
    assert missing["message"] == other["message"]  # existence is not revealed
    listing = api.gql(USERS, {"first": 10}, token=bob.access_token)
    assert listing["data"] is None
    assert listing["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert alice.email not in str(listing)


def _make_admin(database_url: str, user_id: str) -> None:
    async def run() -> None:
        engine = make_engine(database_url)
        async with engine.begin() as connection:
            await connection.execute(update(User).where(User.id == uuid.UUID(user_id)).values(roles=["user", "admin"]))
        await engine.dispose()

    asyncio.run(run())


def test_admin_lists_users_page_by_page(api: Api, settings) -> None:  # type: ignore[no-untyped-def]
    accounts = [api.register() for _ in range(5)]
    _make_admin(settings.effective_database_url, accounts[0].id)
    admin = api.login(accounts[0].email)  # roles are read at login
    assert api.me(admin["accessToken"])["roles"] == ["USER", "ADMIN"]
    seen: list[str] = []
    after = None
    while True:
        page = api.data(USERS, {"first": 2, "after": after}, token=admin["accessToken"])["users"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [a.id for a in accounts]
    # Reading another user's account is allowed for admins.
    assert api.data(USER, {"id": accounts[1].id}, token=admin["accessToken"])["user"]["email"] == accounts[1].email
    too_big = api.gql(USERS, {"first": 101}, token=admin["accessToken"])
    assert too_big["errors"][0]["extensions"]["code"] == "VALIDATION"
    bad_cursor = api.gql(USERS, {"first": 1, "after": "garbage"}, token=admin["accessToken"])
    assert bad_cursor["errors"][0]["extensions"]["code"] == "VALIDATION"
