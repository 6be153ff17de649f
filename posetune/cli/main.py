"""The ``posetune`` command. Each command group lives in its own module under posetune.cli."""

from __future__ import annotations

import sys

import click
import typer

from posetune import __version__
from posetune.cli import (
    analyze_cmd,
    config_cmd,
    data_cmd,
    demo_cmd,
    eval_cmd,
    metrics_cmd,
    predict_cmd,
    train_cmd,
    weights_cmd,
)
from posetune.cli.console import err
from posetune.errors import PosetuneError

app = typer.Typer(
    name="posetune",
    help="Fine-tune pose (keypoint) and video action models on your own small dataset.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"posetune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of errors."),
) -> None:
    """posetune: label → train → evaluate → predict."""


app.add_typer(data_cmd.app, name="data")
app.add_typer(config_cmd.app, name="config")
app.add_typer(weights_cmd.app, name="weights")
app.add_typer(metrics_cmd.app, name="metrics")
app.add_typer(analyze_cmd.app, name="analyze")
train_cmd.register(app)
eval_cmd.register(app)
predict_cmd.register(app)
demo_cmd.register(app)


def user_message(e: PosetuneError) -> str:
    """The one-line message of a user error. Errors re-raised by a DataLoader worker carry the
    worker's traceback in their text: keep only the original message (its last line)."""
    text = str(e)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        _, sep, msg = last.partition(f"{type(e).__name__}: ")
        text = msg if sep else last
    return text.splitlines()[0] if text else type(e).__name__


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one line on stderr and exit status 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        rc = app(args=args, prog_name="posetune", standalone_mode=False)
    except PosetuneError as e:
        if debug:
            raise
        from rich.markup import escape

        err.print(f"[bold red]error:[/] {escape(user_message(e))}", markup=True, highlight=False)
        sys.exit(2)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
