"""The Starlette application: `/graphql` (HTTP and graphql-transport-ws), JWKS, health, metrics, and the
plain HTTP endpoints of `resolvers.http_downloads` (downloads, unsubscribe, local uploads)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.schema import SchemaLimits, build_schema
from graph.view import GraphQLView
from resolvers import http_downloads
from talkative.container import Container
from talkative.logging import request_id_var
from talkative.metrics import HTTP_LATENCY, HTTP_REQUESTS, metrics_endpoint, route_label
from talkative.settings import Settings, get_settings
from talkative.wiring import prepare_api

access_log = logging.getLogger("talkative.access")
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestContextMiddleware:
    """Gives each request an id (the client's `X-Request-ID` if sane), echoes it, logs and measures the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        offered = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = offered if _CLIENT_REQUEST_ID.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        reset = request_id_var.set(request_id)
        status = 101 if scope["type"] == "websocket" else 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_label(scope["path"])
            method = scope.get("method", "WS")
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            if scope["type"] == "http":
                HTTP_LATENCY.labels(route).observe(elapsed)
            access_log.info(
                "%s %s %s", method, scope["path"], status,
                extra={"method": method, "path": scope["path"], "status": status,
                       "duration_ms": round(elapsed * 1000, 2)},
            )
            request_id_var.reset(reset)


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuses request bodies over a cap with 413 before they are parsed (uploads are streamed, not trusted)."""

    # The multipart envelope around the photo gets 1 MiB of slack over the photo cap.
    SLACK = 1024 * 1024

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    @property
    def max_bytes(self) -> int:
        return self.settings.max_upload_bytes + self.SLACK

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = (f'{{"errors":[{{"message":"request body larger than {self.max_bytes} bytes",'
                f'"extensions":{{"code":"FILE_TOO_LARGE"}}}}]}}').encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    checks = await request.app.state.container.readiness()
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks},
                        status_code=200 if ready else 503)


async def jwks(request: Request) -> Response:
    # Short caching: verifiers pick up a rotated key within minutes, and refetch on an unknown kid anyway.
    return JSONResponse(request.app.state.container.tokens.jwks(), headers={"Cache-Control": "public, max-age=300"})


def schema_limits(settings: Settings) -> SchemaLimits:
    return SchemaLimits(max_tokens=settings.graphql_max_tokens, max_depth=settings.graphql_max_depth,
                        max_aliases=settings.graphql_max_aliases, max_cost=settings.graphql_max_cost,
                        max_page_size=settings.max_page_size)


def create_app(
    settings: Settings | None = None, *, container: Container | None = None, extra_routes: tuple[BaseRoute, ...] = (),
    stop_container: bool = False,
) -> Starlette:
    """The ASGI app. Its lifespan starts and stops the container, unless the caller already started it
    (then it is stopped on shutdown only with `stop_container`)."""
    settings = settings or (container.settings if container else get_settings())
    container = container or Container(settings)
    if not container.started:
        prepare_api(container)
    view = GraphQLView(build_schema(schema_limits(settings)), container, graphiql=settings.embedded)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        owned = not container.started
        if owned:
            await container.start()
        try:
            yield {}
        finally:
            if owned or stop_container:
                await container.stop()

    routes: list[BaseRoute] = [
        Route("/graphql", view, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", view),
        Route("/.well-known/jwks.json", jwks),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        *http_downloads.routes,
        *extra_routes,
    ]
    middleware = [Middleware(RequestContextMiddleware), Middleware(BodyLimitMiddleware, settings=settings)]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.container = container
    return app
