"""The per-request GraphQL context: who is calling, the app's services, DataLoaders, a request id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.websockets import WebSocket

from graph.loaders import Loaders
from services.errors import DomainError, ErrorCode
from services.principal import Principal

if TYPE_CHECKING:  # a type-only import: the composition root is never imported at run time from here
    from talkative.container import Container
    from talkative.settings import Settings


@dataclass
class Context:
    """Built once per HTTP request (and once per websocket connection) by `graph.view.GraphQLView`.

    `principal` is None for anonymous callers; `auth_error` then says why a presented token was refused,
    so a field that needs a caller can answer TOKEN_EXPIRED rather than UNAUTHENTICATED.
    """

    container: Container
    request: Request | WebSocket
    request_id: str
    client_address: str
    loaders: Loaders
    principal: Principal | None = None
    auth_error: DomainError | None = None
    connection_params: dict[str, Any] | None = field(default=None, repr=False)  # set by strawberry on WS

    @property
    def settings(self) -> Settings:
        return self.container.settings

    def session(self) -> AsyncSession:
        """A new session (use as `async with ctx.session() as session:`); the caller commits."""
        return self.container.sessionmaker()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session committed when the block succeeds and rolled back when it raises."""
        async with self.container.sessionmaker() as session, session.begin():
            yield session

    def require_principal(self) -> Principal:
        """The caller, or DomainError (why the token was refused, or UNAUTHENTICATED)."""
        if self.principal is None:
            raise self.auth_error or DomainError(ErrorCode.UNAUTHENTICATED, "sign in first")
        return self.principal

    def require_role(self, *roles: str) -> Principal:
        principal = self.require_principal()
        if not principal.roles.intersection(roles):
            raise DomainError(ErrorCode.FORBIDDEN, f"requires role {' or '.join(roles)}")
        return principal


Info = strawberry.Info[Context, None]
