"""The strawberry ASGI view: builds the per-request Context and authenticates HTTP and websocket callers."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from graph.context import Context
from graph.loaders import Loaders
from services.auth import bearer_token
from services.errors import DomainError

if TYPE_CHECKING:
    from strawberry.schema import BaseSchema

    from talkative.container import Container

WS_TOKEN_KEYS = ("Authorization", "authorization", "authToken", "token")


def request_id_of(request: Request | WebSocket) -> str:
    """The id the request middleware put in the scope (a fresh one if the view runs without it)."""
    state = request.scope.setdefault("state", {})
    if "request_id" not in state:
        state["request_id"] = uuid.uuid4().hex
    return str(state["request_id"])


class GraphQLView(GraphQL[Context, None]):
    """`/graphql` over HTTP and graphql-transport-ws. A websocket must authenticate in `connection_init`
    (payload `{"Authorization": "Bearer <token>"}`); a missing or bad token closes it with 4403."""

    def __init__(self, schema: BaseSchema, container: Container, *, graphiql: bool) -> None:
        super().__init__(
            schema, graphql_ide="graphiql" if graphiql else None, allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            multipart_uploads_enabled=True,  # `uploadPhoto` (GraphQL multipart request spec)
        )
        self.container = container

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        websocket = isinstance(request, WebSocket)
        ctx = Context(
            container=self.container, request=request, request_id=request_id_of(request),
            client_address=request.client.host if request.client else "unknown",
            loaders=Loaders(self.container.sessionmaker, cache=not websocket),
        )
        if not websocket:
            try:
                ctx.principal = await self.container.authenticator.authenticate_header(
                    request.headers.get("authorization")
                )
            except DomainError as exc:  # answered per field, so public fields still work
                ctx.auth_error = exc
        return ctx

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        params: dict[str, Any] = context.connection_params or {}
        raw = next((params[k] for k in WS_TOKEN_KEYS if isinstance(params.get(k), str)), None)
        if raw is None:
            raise ConnectionRejectionError()
        try:
            token = bearer_token(raw) if " " in raw.strip() else raw.strip()
            if not token:
                raise ConnectionRejectionError()
            context.principal = await self.container.authenticator.authenticate(token)
        except DomainError as exc:
            raise ConnectionRejectionError() from exc
        return UNSET
