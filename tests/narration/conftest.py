"""Session-wide engines: models load once for the whole narration test run."""

from __future__ import annotations

import pytest_asyncio

from narration import Engine, EngineConfig
from narration.vision.local import LocalVisionProvider


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def local_engine() -> Engine:
    """The default offline engine (local vision + Piper), every model loaded."""
    engine = Engine.shared(EngineConfig(threads=2))
    await engine.warm_up()
    return engine


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def local_vision(local_engine: Engine) -> LocalVisionProvider:
    assert isinstance(local_engine.vision, LocalVisionProvider)
    return local_engine.vision
