"""Accounts: register, login, refresh, logout, and users created on first sight from an OIDC provider.

Each function is one unit of work over the session it is given and commits it (a reused refresh token
must stay revoked even though the call fails).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.interfaces import RateLimiter
from db.models import RefreshTokenFamily, User
from db.repositories import tokens as token_repo
from db.repositories import users as user_repo
from services.errors import DomainError, ErrorCode
from services.principal import ROLE_USER
from services.tokens import TokenService, hash_refresh_token, new_refresh_token

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD, MAX_PASSWORD = 8, 256
_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
# Verified against when the email is unknown, so a miss takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password-" + uuid.uuid4().hex)


@dataclass(frozen=True, slots=True)
class Session:
    """A successful login: an access token, a refresh token and the user (detached, loaded)."""

    access_token: str
    expires_in: int
    refresh_token: str
    user: User


@dataclass(frozen=True, slots=True)
class LoginLimits:
    per_account: str
    per_address: str


def _now() -> datetime:
    return datetime.now(UTC)


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > 320 or not _EMAIL.match(value):
        raise DomainError(ErrorCode.VALIDATION, "email is not a valid address", field="email")
    return value


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow (tens of ms): keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return await asyncio.to_thread(_hasher.verify, password_hash or _DUMMY_HASH, password) and (
            password_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def _start_session(
    session: AsyncSession, *, tokens: TokenService, user: User, refresh_ttl: int
) -> Session:
    now = _now()
    family = token_repo.add_family(session, user_id=user.id, now=now)
    await session.flush()  # no ORM relationship orders the inserts, so the family goes first explicitly
    refresh, refresh_hash = new_refresh_token()
    token_repo.add_token(session, family_id=family.id, token_hash=refresh_hash, now=now,
                         expires_at=now + timedelta(seconds=refresh_ttl))
    await session.commit()
    access = tokens.issue_access_token(user_id=user.id, roles=user.roles, session_id=family.id)
    return Session(access_token=access.token, expires_in=access.expires_in, refresh_token=refresh, user=user)


async def register(
    session: AsyncSession, *, tokens: TokenService, email: str, password: str, display_name: str,
    refresh_ttl: int,
) -> Session:
    """Create a local account with role `user` and log it in. EMAIL_TAKEN when the address is in use."""
    address = normalize_email(email)
    name = display_name.strip()
    if not 1 <= len(name) <= 100:
        raise DomainError(ErrorCode.VALIDATION, "displayName must be 1 to 100 characters", field="displayName")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise DomainError(
            ErrorCode.VALIDATION, f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters", field="password"
        )
    if await user_repo.by_email(session, address) is not None:
        raise DomainError(ErrorCode.EMAIL_TAKEN, "an account with this email already exists", field="email")
    user = User(id=uuid.uuid4(), email=address, display_name=name, password_hash=await hash_password(password),
                roles=[ROLE_USER], is_active=True)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        await session.rollback()
        raise DomainError(ErrorCode.EMAIL_TAKEN, "an account with this email already exists", field="email") from exc
    return await _start_session(session, tokens=tokens, user=user, refresh_ttl=refresh_ttl)


async def login(
    session: AsyncSession, *, tokens: TokenService, limiter: RateLimiter, limits: LoginLimits, email: str,
    password: str, client_address: str, refresh_ttl: int,
) -> Session:
    """Check the password and start a session. Attempts are throttled per account and per client address."""
    address = email.strip().lower()
    # Count before checking, so a throttled caller learns nothing about the password.
    retry_after = max(
        await limiter.hit(limits.per_account, "login", "account", address),
        await limiter.hit(limits.per_address, "login", "address", client_address),
    )
    if retry_after:
        raise DomainError(ErrorCode.RATE_LIMITED, f"too many login attempts; retry in {retry_after} s",
                          retry_after=retry_after)
    user = await user_repo.by_email(session, address)
    ok = await verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        raise DomainError(ErrorCode.INVALID_CREDENTIALS, "email or password is wrong")
    # A successful login clears the account's failures (the per-address count stands).
    await limiter.reset(limits.per_account, "login", "account", address)
    if user.password_hash and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
    return await _start_session(session, tokens=tokens, user=user, refresh_ttl=refresh_ttl)


async def refresh(session: AsyncSession, *, tokens: TokenService, refresh_token: str, refresh_ttl: int) -> Session:
    """Rotate a refresh token. A token presented twice revokes its whole family (TOKEN_REUSED)."""
    now = _now()
    token_hash = hash_refresh_token(refresh_token)
    if not await token_repo.mark_used(session, token_hash, now):
        known = await token_repo.by_hash(session, token_hash)
        if known is None:
            raise DomainError(ErrorCode.TOKEN_INVALID, "unknown refresh token")
        await token_repo.revoke_family(session, known.family_id, reason="reuse", now=now)
        await session.commit()
        raise DomainError(ErrorCode.TOKEN_REUSED, "refresh token already used; the session has been revoked")
    row = await token_repo.by_hash(session, token_hash)
    assert row is not None
    family = await session.get(RefreshTokenFamily, row.family_id)
    user = await user_repo.get(session, family.user_id) if family else None
    if family is None or user is None or family.revoked_at is not None or not user.is_active:
        reused = family is not None and family.revoked_reason == "reuse"
        await session.rollback()
        raise DomainError(ErrorCode.TOKEN_REUSED if reused else ErrorCode.TOKEN_INVALID, "session has ended")
    if row.expires_at <= now:
        await session.rollback()
        raise DomainError(ErrorCode.TOKEN_EXPIRED, "refresh token expired; log in again")
    new_token, new_hash = new_refresh_token()
    token_repo.add_token(session, family_id=family.id, token_hash=new_hash, now=now,
                         expires_at=now + timedelta(seconds=refresh_ttl))
    await session.commit()
    access = tokens.issue_access_token(user_id=user.id, roles=user.roles, session_id=family.id)
    return Session(access_token=access.token, expires_in=access.expires_in, refresh_token=new_token, user=user)


async def logout(session: AsyncSession, *, refresh_token: str) -> None:
    """End the session (token family) the refresh token belongs to. Idempotent for known tokens."""
    row = await token_repo.by_hash(session, hash_refresh_token(refresh_token))
    if row is None:
        raise DomainError(ErrorCode.TOKEN_INVALID, "unknown refresh token")
    await token_repo.revoke_family(session, row.family_id, reason="logout", now=_now())
    await session.commit()


async def get_user(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    user = await user_repo.get(session, user_id)
    if user is None or not user.is_active:
        raise DomainError(ErrorCode.NOT_FOUND, "user not found")
    return user


async def ensure_oidc_user(
    session: AsyncSession, *, issuer: str, subject: str, email: str | None, name: str | None,
    roles: Iterable[str],
) -> User:
    """The user for an external identity, created on first sight by (issuer, subject)."""
    user = await user_repo.by_oidc(session, issuer, subject)
    if user is not None:
        return user
    address = None
    if email:
        try:
            candidate = normalize_email(email)
        except DomainError:
            candidate = None
        # The email column is our login name; a provider's claim never takes over a local account's address.
        if candidate and await user_repo.by_email(session, candidate) is None:
            address = candidate
    user = User(id=uuid.uuid4(), email=address, display_name=(name or email or subject)[:100],
                password_hash=None, roles=sorted(set(roles)) or [ROLE_USER], oidc_issuer=issuer,
                oidc_subject=subject, is_active=True)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:  # first sight on two requests at once, or the email was just taken
        await session.rollback()
        existing = await user_repo.by_oidc(session, issuer, subject)
        if existing is not None:
            return existing
        user.email = None
        session.add(user)
        await session.commit()
    return user
