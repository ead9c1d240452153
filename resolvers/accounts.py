"""Accounts area: `me`, `user`, `users` (admin), and register/login/refreshToken/logout.

Thin: parse input, call one service, map the result. A DomainError raised here becomes the `Error`
member of the field's result union.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from db.repositories import users as user_repo
from graph.context import Info
from graph.pagination import Connection, check_first, decode_cursor, encode_cursor
from graph.permissions import IsAdmin
from graph.types.accounts import (
    AuthPayload,
    AuthResult,
    LogoutPayload,
    LogoutResult,
    MeResult,
    User,
    UserResult,
    roles_of,
)
from services import accounts
from services.errors import DomainError, ErrorCode


def _parse_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise DomainError(ErrorCode.NOT_FOUND, "user not found", field="id") from exc


async def _visible_user(info: Info, user_id: uuid.UUID) -> User:
    row = await info.context.loaders.user.load(user_id)
    if row is None or not row.is_active:
        raise DomainError(ErrorCode.NOT_FOUND, "user not found")
    return User.from_model(row)


@strawberry.type
class Query:
    @strawberry.field(description="The caller's own account, with the roles its token carries.")
    async def me(self, info: Info) -> MeResult:
        principal = info.context.require_principal()
        try:
            user = await _visible_user(info, principal.user_id)
        except DomainError as exc:  # a token for an account that is gone or disabled
            raise DomainError(ErrorCode.UNAUTHENTICATED, "this account no longer exists") from exc
        # The token's roles are what this caller may do now (a provider may change them at any time).
        user.roles = roles_of(principal.roles)
        return user

    @strawberry.field(description="An account by id: your own, or any for admins. Others are NOT_FOUND.")
    async def user(self, info: Info, id: strawberry.ID) -> UserResult:
        principal = info.context.require_principal()
        user_id = _parse_id(id)
        if not principal.can_access(user_id):
            raise DomainError(ErrorCode.NOT_FOUND, "user not found")  # never reveal that it exists
        return await _visible_user(info, user_id)

    @strawberry.field(permission_classes=[IsAdmin], description="All accounts, oldest first (admins only).")
    async def users(self, info: Info, first: int = 20, after: str | None = None) -> Connection[User]:
        check_first(first, info.context.settings.max_page_size)
        key = decode_cursor(after, datetime, uuid.UUID) if after else None
        async with info.context.session() as session:
            rows, has_next = await user_repo.page(session, first=first, after=key)
        return Connection[User].build(
            rows, has_next=has_next, cursor=lambda r: encode_cursor(r.created_at, r.id), node=User.from_model
        )


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create an account and sign in.")
    async def register(self, info: Info, email: str, password: str, display_name: str) -> AuthResult:
        ctx = info.context
        async with ctx.session() as session:
            result = await accounts.register(
                session, tokens=ctx.container.tokens, email=email, password=password, display_name=display_name,
                refresh_ttl=ctx.settings.refresh_token_ttl_seconds,
            )
        return AuthPayload.from_session(result)

    @strawberry.mutation(description="Sign in with email and password. Throttled per account and address.")
    async def login(self, info: Info, email: str, password: str) -> AuthResult:
        ctx = info.context
        async with ctx.session() as session:
            result = await accounts.login(
                session, tokens=ctx.container.tokens, limiter=ctx.container.rate_limiter,
                limits=accounts.LoginLimits(per_account=ctx.settings.login_rate_limit,
                                            per_address=ctx.settings.login_address_rate_limit),
                email=email, password=password, client_address=ctx.client_address,
                refresh_ttl=ctx.settings.refresh_token_ttl_seconds,
            )
        return AuthPayload.from_session(result)

    @strawberry.mutation(description="Exchange a refresh token (once) for new tokens. Reuse ends the session.")
    async def refresh_token(self, info: Info, refresh_token: str) -> AuthResult:
        ctx = info.context
        async with ctx.session() as session:
            result = await accounts.refresh(
                session, tokens=ctx.container.tokens, refresh_token=refresh_token,
                refresh_ttl=ctx.settings.refresh_token_ttl_seconds,
            )
        return AuthPayload.from_session(result)

    @strawberry.mutation(description="End the session the refresh token belongs to.")
    async def logout(self, info: Info, refresh_token: str) -> LogoutResult:
        async with info.context.session() as session:
            await accounts.logout(session, refresh_token=refresh_token)
        return LogoutPayload(ok=True)
