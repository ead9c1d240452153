"""The `talkative` command as a user runs it: a fresh machine, a bad URL, migrate, export-schema."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from graph.schema import schema_sdl
from talkative.settings import Settings
from tests.foundation.live import free_port

TALKATIVE = str(Path(sys.executable).with_name("talkative"))


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any of our settings, so the command sees a fresh machine."""
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names and not k.startswith("AWS_")}
    env.update(extra)
    return env


def test_serve_on_a_fresh_machine(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([TALKATIVE, "serve", "--port", str(port)], cwd=tmp_path, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "talkative serve did not answer within 60 s"
                time.sleep(0.2)
        assert health.json() == {"status": "ok"}
        reply = httpx.post(f"http://127.0.0.1:{port}/graphql", timeout=10, json={"query": (
            'mutation { register(email: "first@example.com", password: "a long password", displayName: "F") '
            "{ __typename } }")})
        assert reply.json() == {"data": {"register": {"__typename": "AuthPayload"}}}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells how it ended.
    assert proc.returncode in (0, -signal.SIGTERM), stderr
    assert "Application shutdown complete." in stderr
    assert (tmp_path / "var" / "talkative.db").exists() and (tmp_path / "var" / "signing-key.pem").exists()
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    access = [x for x in lines if x["logger"] == "talkative.access"]
    assert access and all(len(x["request_id"]) == 32 for x in access)


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://postgres@127.0.0.1:1/nothing", "talkative: DATABASE_URL: cannot connect to 127.0.0.1:1/nothing"),
    ("mysql://localhost/x", "talkative: DATABASE_URL: unsupported scheme 'mysql'"),
])
def test_serve_with_a_bad_database_url(tmp_path: Path, url: str, expected: str) -> None:
    env = clean_env(DATABASE_URL=url, SECRET_KEY="a-real-secret-for-this-test-0123456789")
    done = subprocess.run([TALKATIVE, "serve", "--port", str(free_port())], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.startswith(expected), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr + done.stdout


def test_placeholder_secret_is_refused(tmp_path: Path) -> None:
    env = clean_env(DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres")
    done = subprocess.run([TALKATIVE, "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "talkative: SECRET_KEY must be set to a real secret when outside servers are configured"]


def test_migrate_and_export_schema(tmp_path: Path) -> None:
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path}/m.db", SECRET_KEY="a-real-secret-for-this-test-0123456789")
    migrated = subprocess.run([TALKATIVE, "migrate"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.strip().startswith("database at revision ")
    exported = subprocess.run([TALKATIVE, "export-schema", "--output", str(tmp_path / "s.graphql")],
                              env=clean_env(), capture_output=True, text=True, timeout=60)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "s.graphql").read_text() == schema_sdl()
