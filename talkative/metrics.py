"""Prometheus metrics, registered once per process in the default registry (served at `/metrics`)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

HTTP_REQUESTS = Counter(
    "talkative_http_requests_total", "HTTP requests and websocket sessions handled.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "talkative_http_request_duration_seconds", "Time to answer an HTTP request.", ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Fixed labels only: a raw path (with tokens and ids in it) would grow the series without bound.
KNOWN_ROUTES = ("/graphql", "/healthz", "/readyz", "/metrics", "/.well-known/jwks.json", "/download", "/unsubscribe",
                "/uploads")


def route_label(path: str) -> str:
    for route in KNOWN_ROUTES:
        if path == route or path.startswith(route + "/"):
            return route
    return "other"


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
