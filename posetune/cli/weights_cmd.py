"""`posetune weights ...` commands: fetch pretrained weights into the cache, list the cache.

``posetune weights fetch mediapipe [--version 0.10.21] [--wheel PATH] [--force]`` downloads the
``mediapipe`` wheel with pip (it is never installed) or reads a local wheel, and extracts its
``.tflite`` models into ``$POSETUNE_CACHE/mediapipe/<version>/`` with a SHA-256 manifest.
``posetune weights list`` shows what is cached and whether each file still matches its manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posetune.cli.console import err, out
from posetune.errors import ConfigError

app = typer.Typer(help="Fetch pretrained weights into the cache and list them.", no_args_is_help=True)

#: weight sources ``fetch`` knows
SOURCES = ("mediapipe",)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _table(rows: list, title: str):
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name", overflow="fold")
    table.add_column("version", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("sha256", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("path", overflow="fold", ratio=1)
    styles = {"ok": "green", "unchecked": "yellow"}
    for m in rows:
        style = styles.get(m.status, "bold red")
        table.add_row(m.name, m.version, _size(m.size), m.sha256[:10], f"[{style}]{m.status}[/]", str(m.path))
    return table


@app.command("fetch")
def fetch(
    source: str = typer.Argument(..., help="What to fetch: mediapipe."),
    version: Optional[str] = typer.Option(None, "--version", "-v",
                                          help="mediapipe release (default 0.10.21, or the --wheel's version)."),
    wheel: Optional[Path] = typer.Option(None, "--wheel", help="Use this local mediapipe wheel (offline)."),
    force: bool = typer.Option(False, "--force", help="Fetch again even if the cache is valid."),
) -> None:
    """Fetch pretrained weights into the cache ($POSETUNE_CACHE, default ~/.cache/posetune)."""
    from posetune.models.mediapipe.fetch import fetch_mediapipe, list_cached, read_manifest

    if source.lower() not in SOURCES:
        raise ConfigError(f"unknown weights source '{source}'", where="posetune weights fetch",
                          hint=f"use one of: {', '.join(SOURCES)}")
    paths = fetch_mediapipe(version=version, wheel=wheel, force=force,
                            log=lambda msg: err.print(f"[dim]{msg}[/]", markup=True, highlight=False))
    folder = next(iter(paths.values())).parent  # <cache>/mediapipe/<version>
    root = folder.parent.parent
    manifest = read_manifest(folder.name, root)
    rows = [m for m in list_cached(root, check=True) if m.version == folder.name and m.name in paths]
    out.print(_table(rows, f"MediaPipe {folder.name} (from {manifest.get('source', '?')})"))
    out.print(f"{len(paths)} models verified in {folder}")


@app.command("list")
def list_weights(
    check: bool = typer.Option(True, "--check/--no-check", help="Verify each file's SHA-256 (else sizes only)."),
) -> None:
    """List the cached weights with their size, SHA-256 and status."""
    from posetune.models.hub import cache_root
    from posetune.models.mediapipe.fetch import list_cached

    rows = list_cached(check=check)
    if not rows:
        out.print(f"no weights cached in {cache_root()} — run `posetune weights fetch mediapipe`")
        return
    out.print(_table(rows, f"cached weights in {cache_root()}"))
    bad = [m for m in rows if m.status in ("missing", "corrupt")]
    if bad:
        err.print(f"[bold red]{len(bad)} damaged file(s)[/]: run `posetune weights fetch mediapipe "
                  f"--version {bad[0].version} --force`", markup=True, highlight=False)
