"""Operations endpoints: health, readiness, metrics, JWKS; JSON logs with request ids."""

from __future__ import annotations

import io
import json
import logging

from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import create_async_engine

from talkative.logging import RequestIdFilter, configure_logging, request_id_var
from tests.foundation.fixtures import Api, both_backends


@both_backends
def test_health_and_readiness(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


def test_readiness_reports_a_dead_database(api: Api) -> None:
    container = api.client.app.state.container  # type: ignore[attr-defined]
    live = container.engine
    container.engine = create_async_engine(live.url.set(port=1))  # nothing listens on port 1
    try:
        ready = api.client.get("/readyz")
    finally:
        api.client.portal.call(container.engine.dispose)  # type: ignore[union-attr]
        container.engine = live
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable" and body["checks"]["database"].startswith("error:")
    assert api.client.get("/healthz").status_code == 200  # alive all the same


def test_metrics(api: Api) -> None:
    api.client.get("/healthz")
    api.post("{ __typename }")
    text = api.client.get("/metrics").text
    assert 'talkative_http_requests_total{method="POST",route="/graphql",status="200"}' in text
    assert "talkative_http_request_duration_seconds_bucket" in text


@both_backends
def test_jwks_verifies_our_tokens(api: Api) -> None:
    account = api.register()
    response = api.client.get("/.well-known/jwks.json")
    assert response.headers["cache-control"].startswith("public")
    keys = KeySet.import_key_set(response.json())
    token = jwt.decode(account.access_token, keys)
    assert token.claims["sub"] == account.id
    assert all("d" not in k for k in response.json()["keys"])


def test_json_log_lines_carry_the_request_id() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=True)
    root = logging.getLogger()
    handler = root.handlers[0]
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        token = request_id_var.set("abc123")
        logging.getLogger("talkative.test").info("hello %s", "world", extra={"status": 200})
        request_id_var.reset(token)
        logging.getLogger("talkative.test").warning("outside")
    finally:
        root.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "hello world" and first["request_id"] == "abc123" and first["status"] == 200
    assert first["level"] == "INFO" and first["logger"] == "talkative.test" and "time" in first
    assert second["request_id"] == "-"
    assert RequestIdFilter().filter(logging.LogRecord("x", 20, "", 0, "m", None, None))
