"""``posetune demo``: label -> train -> evaluate -> predict on built-in data."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the demo command to the root app."""

    @app.command("demo")
    def demo(
        out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="Where the data, run and report go."),
        images: int = typer.Option(96, "--images", help="Number of synthetic labelled images."),
        epochs: int = typer.Option(8, "--epochs"),
        model: str = typer.Option("mediapipe-pose", "--model",
                                  help="mediapipe-pose (real pretrained BlazePose) or a timm backbone (from scratch)."),
        batch_size: int = typer.Option(16, "--batch-size"),
        workers: int = typer.Option(0, "--workers"),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Fine-tune a real pretrained pose network on built-in data and show the gain (a few minutes, CPU)."""
        from posetune.demo import run_demo

        run_demo(out_dir, n_images=images, epochs=epochs, model=model, batch_size=batch_size, workers=workers,
                 seed=seed)
