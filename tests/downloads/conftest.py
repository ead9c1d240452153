"""One API for the whole package: real PostgreSQL, S3 (SeaweedFS) and Redis; narrate and notify workers
in-process (QUEUE_URL unset). One READY narration is shared by the read-only tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.downloads.flow import Gql, Stack, User, running_stack
from tests.foundation.fixtures import make_settings
from tests.support.servers import S3Server, SeaweedFS


@pytest.fixture(scope="package")
def s3(seaweedfs: SeaweedFS) -> Iterator[S3Server]:
    """A bucket of the session's SeaweedFS for this package, with the keys in the environment."""
    server = S3Server.fresh(seaweedfs, "dl")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", server.access_key)
        mp.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
        yield server
    server.remove_bucket()


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def stack(
    s3: S3Server, pg_database: str, redis_url: str, signing_key_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    settings = make_settings(
        "postgres", tmp_path_factory.mktemp("downloads"), database_url=pg_database,
        signing_key_file=signing_key_file, storage_url=s3.storage_url, pubsub_url=redis_url,
        # Generous by default; tests that exercise the limiter lower them on the running settings.
        download_rate_limit="10000/minute", upload_rate_limit="10000/minute",
    )
    async with running_stack(settings, pg_database=pg_database) as running:
        yield running


@pytest.fixture(scope="package")
def gql(stack: Stack) -> Gql:
    return Gql(stack)


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def owner(gql: Gql) -> User:
    return await gql.register("Ada Lovelace")


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def ready(gql: Gql, owner: User) -> Any:
    """A READY narration of `owner` (mp3), shared by tests that do not change it."""
    return await gql.narrate(owner, seed=1)
