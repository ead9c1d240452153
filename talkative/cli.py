"""The `talkative` command: serve, worker, narrate, migrate, export-schema."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic import ValidationError

from talkative.narrate_cmd import narrate
from talkative.worker_cmd import worker

if TYPE_CHECKING:
    from talkative.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Talkative Photo: photos in, spoken narrations out.")
app.command()(narrate)
app.command()(worker)


def fail(line: str, code: int = 1) -> NoReturn:
    """Print one line to stderr and exit: configuration problems are not tracebacks."""
    print(f"talkative: {line}", file=sys.stderr)
    raise typer.Exit(code)


def load_settings() -> Settings:
    from talkative.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        name = "_".join(str(p) for p in first.get("loc", ())).upper()
        fail(f"{name}: {message}" if name else message, 2)


def tune_gc() -> None:
    """Keep full garbage collections rare and cheap in a long-lived server.

    Objects alive after start-up (modules, models, the schema) are moved out of the collector's view, and
    the thresholds are raised: with thousands of websocket subscribers a full collection otherwise pauses
    the event loop for over a second several times a minute.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Run the API (GraphQL, downloads, health) under uvicorn. Without settings: embedded mode on SQLite."""
    import uvicorn

    from talkative.app import create_app
    from talkative.container import Container, StartupError
    from talkative.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)

    container = Container(settings)
    config = uvicorn.Config(
        # Stopped by the lifespan: uvicorn re-raises SIGTERM once it has shut down, ending the process.
        create_app(settings, container=container, stop_container=True), host=host, port=port, log_config=None,
        access_log=False, lifespan="on", proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips, ws="websockets-sansio",
    )

    async def run() -> str | None:
        try:
            await container.start()  # before uvicorn, so a bad setting is one line and not a lifespan traceback
        except StartupError as exc:
            return str(exc)
        tune_gc()
        try:
            await uvicorn.Server(config).serve()
        finally:
            await container.stop()
        return None

    # uvicorn's own loop choice (uvloop when installed), as `uvicorn.run` would make.
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        error = runner.run(run())
    if error:
        fail(error)


@app.command()
def migrate() -> None:
    """Apply database migrations (DATABASE_URL, or the embedded SQLite file)."""
    from db import migrate as db_migrate
    from db.session import make_engine, normalize_url

    settings = load_settings()
    url = settings.effective_database_url
    try:
        normalize_url(url)
    except ValueError as exc:
        fail(f"DATABASE_URL: {exc}")
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> str:
        engine = make_engine(url)
        try:
            await db_migrate.upgrade(engine)
            return str(await db_migrate.current_revision(engine))
        finally:
            await engine.dispose()

    try:
        revision = asyncio.run(run())
    except Exception as exc:  # reported as the one line
        fail(f"DATABASE_URL: migration failed ({' '.join(str(exc).split())[:300] or type(exc).__name__})")
    typer.echo(f"database at revision {revision}")


@app.command("export-schema")
def export_schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Print the GraphQL schema (SDL); commit it as schema.graphql."""
    from graph.schema import schema_sdl

    sdl = schema_sdl()
    if output is None:
        typer.echo(sdl, nl=False)
    else:
        output.write_text(sdl)
