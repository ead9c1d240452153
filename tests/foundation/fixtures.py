"""Database and API fixtures, usable by any test package (register `tests.foundation.fixtures` as a plugin).

PostgreSQL (127.0.0.1:5432, user postgres, trust auth; `TEST_POSTGRES_URL` overrides) gets one fresh
database per test session, migrated to head, dropped at the end. Each test is isolated: API tests
truncate every table afterwards; `db_session` runs in a transaction that is rolled back.

- `backend`: "postgres" (default) or "sqlite"; parametrize with `both_backends` to run a test on each.
- `settings`: Settings for the backend (sqlite = true embedded mode in a tmp data dir, auto-migrated).
- `container`: a started Container on the test's event loop (no HTTP).
- `app` / `client` / `api`: the Starlette app, a TestClient with the lifespan running, and an `Api` helper
  (`api.gql(query, variables, token=)`, `api.register()`, `api.login()`).
- `pg_database` (URL, session), `pg_url` (same URL, tables emptied after the test), `pg_engine`,
  `db_session`: for service-level tests on PostgreSQL.
- `signing_key_file`: an EC P-256 PEM for non-embedded settings.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from argon2 import PasswordHasher
from joserfc.jwk import ECKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.testclient import TestClient

from db import migrate
from db.models import Base
from db.session import make_engine
from services import accounts
from talkative.app import create_app
from talkative.container import Container
from talkative.settings import Settings

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PASSWORD = "correct horse battery staple"
TEST_SECRET = "test-secret-" + "x" * 32
both_backends = pytest.mark.parametrize("backend", ["postgres", "sqlite"], indirect=True)
_UNSET_URLS = {"database_url": None, "storage_url": None, "queue_url": None, "pubsub_url": None, "mail_url": None,
               "oidc_issuer": None, "oidc_audience": None, "signing_key_file": None}


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with its production cost takes ~120 ms a hash on this machine; tests use a cheap profile."""
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def _pg_url(database: str) -> str:
    base = ADMIN_URL.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}"


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def truncate_all(url: str) -> None:
    """Empty every table (PostgreSQL)."""
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database for this test session."""
    name = f"talkative_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {ADMIN_URL} is needed for these tests: {exc}")
    url = _pg_url(name)
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """The session database's URL; every table is emptied after the test."""
    yield pg_database
    asyncio.run(truncate_all(pg_database))


@pytest.fixture(scope="session")
def signing_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "signing.pem"
    path.write_bytes(ECKey.generate_key("P-256", private=True).as_pem(private=True))
    return path


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "postgres"))


def make_settings(backend: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for tests, ignoring the environment's URLs and any `.env`."""
    values: dict[str, Any] = {**_UNSET_URLS, "data_dir": data_dir, "public_url": "http://testserver"}
    if backend == "postgres":
        values.update(secret_key=TEST_SECRET)
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    if backend == "sqlite":
        yield make_settings("sqlite", tmp_path / "data")
        return
    url = request.getfixturevalue("pg_url")
    key = request.getfixturevalue("signing_key_file")
    yield make_settings("postgres", tmp_path / "data", database_url=url, signing_key_file=key)


@pytest.fixture
async def container(settings: Settings) -> AsyncIterator[Container]:
    """A started Container on the test's event loop (for service and worker tests without HTTP)."""
    started = Container(settings)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
def app(settings: Settings) -> Any:
    return create_app(settings)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@dataclass
class Account:
    id: str
    email: str
    access_token: str
    refresh_token: str


REGISTER = """
mutation($email: String!, $password: String!, $name: String!) {
  register(email: $email, password: $password, displayName: $name) {
    __typename
    ... on AuthPayload { accessToken refreshToken expiresIn user { id email } }
    ... on Error { code message field }
  }
}"""
LOGIN = """
mutation($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    __typename
    ... on AuthPayload { accessToken refreshToken user { id email } }
    ... on Error { code message retryAfterSeconds }
  }
}"""
ME = "{ me { __typename ... on User { id email displayName roles } ... on Error { code message } } }"


class Api:
    """GraphQL over HTTP through a TestClient."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def post(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None,
             headers: dict[str, str] | None = None) -> Any:
        all_headers = {"Authorization": f"Bearer {token}"} if token else {}
        all_headers.update(headers or {})
        return self.client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=all_headers)

    def gql(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None) -> Any:
        response = self.post(query, variables, token=token)
        assert response.status_code == 200, response.text
        return response.json()

    def data(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None) -> Any:
        body = self.gql(query, variables, token=token)
        assert not body.get("errors"), body
        return body["data"]

    def register(self, email: str | None = None, password: str = PASSWORD, name: str = "Tester") -> Account:
        email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        result = self.data(REGISTER, {"email": email, "password": password, "name": name})["register"]
        assert result["__typename"] == "AuthPayload", result
        return Account(result["user"]["id"], email, result["accessToken"], result["refreshToken"])

    def login(self, email: str, password: str = PASSWORD) -> Any:
        return self.data(LOGIN, {"email": email, "password": password})["login"]

    def me(self, token: str | None) -> Any:
        return self.data(ME, token=token)["me"]


@pytest.fixture
def api(client: TestClient) -> Api:
    return Api(client)


@pytest.fixture(scope="session")
async def pg_engine(pg_database: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(pg_database)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db_session(pg_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session whose commits become savepoints inside one transaction that is rolled back afterwards."""
    async with pg_engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()
