"""Database: migrations match the models on both backends, UTC datetimes, service-level token races."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from adapters.factory import make_rate_limiter
from db import migrate
from db.models import Base, User
from db.session import make_engine, make_sessionmaker
from services import accounts
from services.errors import DomainError, ErrorCode
from services.tokens import TokenService, load_signing_keys
from tests.foundation.fixtures import PASSWORD, both_backends


def _diff(connection) -> list:  # type: ignore[no-untyped-def]
    return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)


async def test_postgres_migration_matches_models(pg_engine: AsyncEngine) -> None:
    async with pg_engine.connect() as connection:
        assert await connection.run_sync(_diff) == []
    assert await migrate.current_revision(pg_engine) == migrate.head_revision()


async def test_sqlite_migration_matches_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    try:
        await migrate.upgrade(engine)
        await migrate.upgrade(engine)  # idempotent
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()


@pytest.fixture
def tokens(signing_key_file: Path) -> TokenService:
    return TokenService(load_signing_keys(signing_key_file), issuer="https://t", audience="a")


async def test_datetimes_come_back_aware_utc(db_session: AsyncSession, tokens: TokenService) -> None:
    session = await accounts.register(db_session, tokens=tokens, email="tz@example.com", password=PASSWORD,
                                      display_name="T", refresh_ttl=60)
    db_session.expunge_all()
    user = await db_session.get(User, session.user.id)
    assert user is not None and user.created_at.tzinfo is UTC
    assert abs((datetime.now(UTC) - user.created_at).total_seconds()) < 60


async def test_sqlite_datetimes_and_refresh(tmp_path: Path, tokens: TokenService) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    try:
        await migrate.upgrade(engine)
        async with make_sessionmaker(engine)() as session:
            started = await accounts.register(session, tokens=tokens, email="s@example.com", password=PASSWORD,
                                              display_name="S", refresh_ttl=60)
        async with make_sessionmaker(engine)() as session:
            rotated = await accounts.refresh(session, tokens=tokens, refresh_token=started.refresh_token,
                                             refresh_ttl=60)
        assert rotated.user.created_at.tzinfo is UTC
    finally:
        await engine.dispose()


async def test_expired_refresh_token(db_session: AsyncSession, tokens: TokenService) -> None:
    started = await accounts.register(db_session, tokens=tokens, email="exp@example.com", password=PASSWORD,
                                      display_name="E", refresh_ttl=-1)
    with pytest.raises(DomainError) as err:
        await accounts.refresh(db_session, tokens=tokens, refresh_token=started.refresh_token, refresh_ttl=60)
    assert err.value.code == ErrorCode.TOKEN_EXPIRED


async def test_concurrent_refresh_with_one_token_lets_exactly_one_win(pg_url: str, tokens: TokenService) -> None:
    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as session:
            started = await accounts.register(session, tokens=tokens, email="race@example.com", password=PASSWORD,
                                              display_name="R", refresh_ttl=60)

        async def attempt() -> str:
            async with sessions() as session:
                try:
                    await accounts.refresh(session, tokens=tokens, refresh_token=started.refresh_token, refresh_ttl=60)
                except DomainError as exc:
                    return exc.code.value
                return "OK"

        results = sorted(await asyncio.gather(*(attempt() for _ in range(4))))
        assert results == ["OK", "TOKEN_REUSED", "TOKEN_REUSED", "TOKEN_REUSED"]
    finally:
        await engine.dispose()


async def test_login_service_with_memory_limiter(db_session: AsyncSession, tokens: TokenService) -> None:
    limiter = make_rate_limiter(None)
    limits = accounts.LoginLimits(per_account="3/minute", per_address="100/minute")
    await accounts.register(db_session, tokens=tokens, email="l@example.com", password=PASSWORD,
                            display_name="L", refresh_ttl=60)
    for _ in range(3):
        with pytest.raises(DomainError) as err:
            await accounts.login(db_session, tokens=tokens, limiter=limiter, limits=limits, email="l@example.com",
                                 password="nope nope", client_address="10.0.0.1", refresh_ttl=60)
        assert err.value.code == ErrorCode.INVALID_CREDENTIALS
    with pytest.raises(DomainError) as err:
        await accounts.login(db_session, tokens=tokens, limiter=limiter, limits=limits, email="l@example.com",
                             password=PASSWORD, client_address="10.0.0.1", refresh_ttl=60)
    assert err.value.code == ErrorCode.RATE_LIMITED and err.value.retry_after


async def test_real_argon2_profile(db_session: AsyncSession, tokens: TokenService, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from argon2 import PasswordHasher

    monkeypatch.setattr(accounts, "_hasher", PasswordHasher())
    session = await accounts.register(db_session, tokens=tokens, email="a2@example.com", password=PASSWORD,
                                      display_name="A", refresh_ttl=60)
    assert session.user.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # type: ignore[union-attr]
    assert await accounts.verify_password(session.user.password_hash, PASSWORD)
    assert not await accounts.verify_password(session.user.password_hash, "wrong")
    assert not await accounts.verify_password(None, PASSWORD)


@both_backends
async def test_container_fixture(container) -> None:  # type: ignore[no-untyped-def]
    assert await container.readiness() == {"database": "ok"}
    async with container.sessions() as session:
        created = await accounts.register(session, tokens=container.tokens, email="c@example.com", password=PASSWORD,
                                          display_name="C", refresh_ttl=60)
    assert (await container.authenticator.authenticate(created.access_token)).user_id == created.user.id
