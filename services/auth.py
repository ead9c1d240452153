"""Bearer token → Principal: our own JWTs, or tokens of the external OpenID Connect provider."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import accounts
from services.errors import DomainError, ErrorCode
from services.identity import OidcIdentity
from services.principal import Principal
from services.tokens import TokenService


class IdentityVerifier(Protocol):
    """What we need from `services.identity.OidcVerifier`."""

    issuer: str

    async def verify(self, token: str) -> OidcIdentity: ...


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header; None when absent, TOKEN_INVALID when malformed."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise DomainError(ErrorCode.TOKEN_INVALID, "Authorization must be 'Bearer <token>'")
    return token


class Authenticator:
    """Routes a token by its (unverified) `kid`/`iss`: ours are verified locally, others go to the provider.

    OIDC users are mapped to a users row by (issuer, subject), created on first sight; the mapping is
    cached in memory so a provider token costs one signature check per request, not a query.
    """

    def __init__(
        self, *, tokens: TokenService, sessionmaker: async_sessionmaker[AsyncSession],
        oidc: IdentityVerifier | None = None, cache_size: int = 10_000,
    ) -> None:
        self.tokens = tokens
        self.oidc = oidc
        self._sessionmaker = sessionmaker
        self._users: OrderedDict[tuple[str, str], uuid.UUID] = OrderedDict()
        self._cache_size = cache_size

    async def authenticate(self, token: str) -> Principal:
        """Verify `token`; raise DomainError TOKEN_INVALID or TOKEN_EXPIRED (UNAVAILABLE if the provider is down)."""
        if self.oidc is None or self.tokens.is_ours(token):
            claims = self.tokens.verify_access_token(token)
            return Principal(user_id=claims.user_id, roles=claims.roles, source="local")
        identity = await self.oidc.verify(token)
        return Principal(user_id=await self._user_for(identity), roles=identity.roles, source="oidc")

    async def authenticate_header(self, authorization: str | None) -> Principal | None:
        token = bearer_token(authorization)
        return None if token is None else await self.authenticate(token)

    async def _user_for(self, identity: OidcIdentity) -> uuid.UUID:
        key = (identity.issuer, identity.subject)
        user_id = self._users.get(key)
        if user_id is None:
            async with self._sessionmaker() as session:
                user = await accounts.ensure_oidc_user(
                    session, issuer=identity.issuer, subject=identity.subject, email=identity.email,
                    name=identity.name, roles=identity.roles,
                )
                user_id = user.id
            self._users[key] = user_id
            if len(self._users) > self._cache_size:
                self._users.popitem(last=False)
        return user_id
