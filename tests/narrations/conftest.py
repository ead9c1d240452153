"""A live API with real PostgreSQL, RabbitMQ, Redis and SeaweedFS for this package's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.narrations.stack import Stack, Worker, run_stack
from tests.support.servers import SeaweedFS


@pytest.fixture(scope="module")
def stack(pg_database: str, seaweedfs: SeaweedFS, signing_key_file: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from run_stack(pg_database=pg_database, seaweedfs=seaweedfs, signing_key_file=signing_key_file,
                         data_dir=tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def worker(stack: Stack) -> Worker:
    """One `talkative worker` process for the module (models load once)."""
    return stack.start_worker()
