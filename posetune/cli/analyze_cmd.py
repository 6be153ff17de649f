"""`posetune analyze ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="analyze commands.", no_args_is_help=True)
