"""``posetune config ...``: show the fully resolved configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posetune.cli.console import out

app = typer.Typer(help="Inspect configurations.", no_args_is_help=True)


@app.command("show")
def show(
    config: Optional[Path] = typer.Argument(None, help="YAML config (with _base_ inheritance); omit for defaults."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Overrides as key.path=value, e.g. train.epochs=20."),
) -> None:
    """Print the fully resolved config (bases merged, overrides applied, defaults filled)."""
    from posetune.config import dump_yaml, load_config

    cfg = load_config(config, overrides or [])
    out.print(dump_yaml(cfg.to_dict()), end="", markup=False)


@app.command("presets")
def presets() -> None:
    """List the config presets shipped with posetune."""
    from posetune.config.presets import list_presets

    for name, path in list_presets():
        out.print(f"{name}\t{path}", markup=False)
