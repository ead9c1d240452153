"""Start-up checks: one line naming the setting for a wrong URL or an unreachable server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from talkative.app import create_app
from talkative.container import Container, StartupError
from tests.foundation.fixtures import LOGIN, Api, make_settings


async def start_error(**overrides: Any) -> str:
    settings = make_settings("postgres", overrides.pop("data_dir"), startup_timeout_seconds=2, **overrides)
    container = Container(settings)
    with pytest.raises(StartupError) as err:
        await container.start()
    line = str(err.value)
    assert "\n" not in line and not container.started
    return line


async def test_database_url_problems(tmp_path: Path, signing_key_file: Path) -> None:
    line = await start_error(data_dir=tmp_path, database_url="mysql://x@localhost/db")
    assert line.startswith("DATABASE_URL: unsupported scheme 'mysql'")
    line = await start_error(data_dir=tmp_path, database_url="postgresql://postgres@127.0.0.1:1/nothing")
    assert line.startswith("DATABASE_URL: cannot connect to 127.0.0.1:1/nothing (")
    line = await start_error(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/empty.db")
    assert line.startswith("DATABASE_URL: database schema is at nothing") and "talkative migrate" in line


async def test_signing_key_problems(tmp_path: Path, pg_database: str) -> None:
    line = await start_error(data_dir=tmp_path, database_url=pg_database)
    assert line == "SIGNING_KEY_FILE: must name a PEM private key when outside servers are configured"
    line = await start_error(data_dir=tmp_path, database_url=pg_database, signing_key_file=tmp_path / "none.pem")
    assert line.startswith("SIGNING_KEY_FILE: cannot read")


async def test_adapter_url_problems(tmp_path: Path, pg_database: str, signing_key_file: Path) -> None:
    base = {"data_dir": tmp_path, "database_url": pg_database, "signing_key_file": signing_key_file}
    assert (await start_error(**base, queue_url="http://rabbit")).startswith("QUEUE_URL: unsupported scheme")
    line = await start_error(**base, queue_url="amqp://guest:guest@127.0.0.1:1/")
    assert line.startswith("QUEUE_URL: cannot reach the queue (")
    line = await start_error(**base, pubsub_url="redis://127.0.0.1:1/0")
    assert line.startswith("PUBSUB_URL: cannot reach Redis (")
    assert (await start_error(**base, storage_url="ftp://x")).startswith("STORAGE_URL: unsupported scheme")
    assert (await start_error(**base, oidc_issuer="http://127.0.0.1:1")) == (
        "OIDC_AUDIENCE: must be set when OIDC_ISSUER is")
    line = await start_error(**base, oidc_issuer="http://127.0.0.1:1", oidc_audience="api")
    assert line.startswith("OIDC_ISSUER: cannot fetch http://127.0.0.1:1/.well-known/openid-configuration (")


def test_real_mode_with_redis_and_rabbitmq(
    tmp_path: Path, pg_url: str, signing_key_file: Path, redis_url: str, amqp_url: str
) -> None:
    """Real queue and Redis: readiness checks both, and login throttling uses Redis."""
    settings = make_settings("postgres", tmp_path, database_url=pg_url, signing_key_file=signing_key_file,
                             queue_url=amqp_url, pubsub_url=redis_url, login_rate_limit="2/minute")
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        ready = client.get("/readyz").json()
        assert ready == {"status": "ready", "checks": {"database": "ok", "queue": "ok", "redis": "ok"}}
        account = api.register()
        wrong = {"email": account.email, "password": "wrong password!"}
        assert [api.data(LOGIN, wrong)["login"]["code"] for _ in range(3)] == [
            "INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "RATE_LIMITED"]
    # A second API process shares the count through Redis.
    with TestClient(create_app(settings)) as client:
        assert Api(client).data(LOGIN, wrong)["login"]["code"] == "RATE_LIMITED"
