"""Command-line interface (typer). Thin: parse, call the API, print."""
