"""`talkative worker` refuses bad invocations with one line, no traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.narrations.stack import TALKATIVE


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["--queues", "narrations,emails"], {"QUEUE_URL": "amqp://guest:guest@127.0.0.1:5672/",
                                         "SECRET_KEY": "s3cr3t-for-tests"}, "--queues: unknown queue"),
    (["--queues", "narrations"], {}, "QUEUE_URL: a separate worker needs a shared queue"),
    (["--queues", "narrations"], {"QUEUE_URL": "amqp://guest:guest@127.0.0.1:1/", "SECRET_KEY": "s3cr3t-for-tests",
                                  "STARTUP_TIMEOUT_SECONDS": "2", "AUTO_MIGRATE": "true"}, "QUEUE_URL: cannot reach"),
], ids=["unknown-queue", "embedded", "unreachable"])
def test_worker_errors_are_one_line(tmp_path: Path, args: list[str], env: dict[str, str], expected: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    proc = subprocess.run([TALKATIVE, "worker", *args], env={**clean, "DATA_DIR": str(tmp_path), **env},
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("talkative:")]
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
