"""The `talkative` command: serve, worker, narrate, migrate, export-schema."""

from __future__ import annotations

import typer

from talkative.narrate_cmd import narrate

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Talkative Photo: photos in, spoken narrations out.")
app.command()(narrate)
