"""``posetune eval`` and ``posetune compare``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from posetune.cli.console import out


def _read_data(data: Path, fmt: str, image_root: Optional[Path], spec: Optional[str]):
    from posetune.data.formats import read_dataset

    return read_dataset(data, fmt, image_root=image_root, spec=spec)


def _metrics_table(results: dict, title: str):
    from rich.table import Table

    from posetune.evaluation.report import metric_rows

    names = list(results)
    table = Table(title=title)
    table.add_column("metric")
    for n in names:
        table.add_column(n, justify="right")
    if len(names) == 2:
        table.add_column("difference", justify="right")
    for r in metric_rows(results):
        cells = [f"{r[n]:.4f}" for n in names]
        if len(names) == 2:
            style = "" if r["better"] is None else ("green" if r["better"] else "red")
            cells.append(f"[{style}]{r['difference']:+.4f}[/]" if style else f"{r['difference']:+.4f}")
        table.add_row(r["metric"], *cells)
    return table


def register(app: typer.Typer) -> None:
    """Add eval / compare to the root app."""

    @app.command("eval")
    def eval_(
        checkpoint: str = typer.Argument(..., help="A .ckpt from `posetune train` or a built-in model (mediapipe-pose)."),
        data: Path = typer.Option(..., "--data", help="Labelled images (any supported label format)."),
        fmt: str = typer.Option("auto", "--from", help="Label format (default: detect)."),
        image_root: Optional[Path] = typer.Option(None, "--image-root"),
        flip_test: bool = typer.Option(False, "--flip-test", help="Average with the horizontally flipped image."),
        batch_size: int = typer.Option(16, "--batch-size"),
        device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
        pck_norm: str = typer.Option("bbox", "--norm", help="PCK normaliser: bbox, torso or head."),
        as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON (stable keys)."),
        save_predictions: Optional[Path] = typer.Option(None, "--save-predictions",
                                                        help="Write the predictions as COCO results json."),
        allow_unsafe_load: bool = typer.Option(False, "--allow-unsafe-load"),
    ) -> None:
        """Run a model on a labelled set and print COCO AP, PCK, AUC, EPE, RMSE, NME (per keypoint with --json)."""
        from posetune.engine.evaluate import evaluate_model
        from posetune.models.zoo import load_any_model

        ds = _read_data(data, fmt, image_root, None)
        model = load_any_model(checkpoint, spec=ds.spec, allow_unsafe=allow_unsafe_load)
        result, pred = evaluate_model(model, ds, batch_size=batch_size, flip_test=flip_test, device=device,
                                      pck_norm=pck_norm, progress=not as_json)
        if save_predictions is not None:
            from posetune.evaluation.coco import coco_results
            from posetune.io_utils import write_json_atomic

            pred.ensure_ids()
            per_image = [im.instances for im in pred.images]
            rows = coco_results(per_image, [im.id for im in pred.images],
                                [[inst.score or 0.0 for inst in insts] for insts in per_image])
            write_json_atomic(save_predictions, rows)
        if as_json:
            typer.echo(json.dumps(result, indent=2, default=float))
            return
        out.print(_metrics_table({Path(checkpoint).name: result}, f"{checkpoint} on {data}"))

    @app.command("compare")
    def compare(
        model_a: str = typer.Argument(..., help="The original model: built-in name or checkpoint."),
        model_b: str = typer.Argument(..., help="The fine-tuned model: checkpoint."),
        data: Path = typer.Option(..., "--data", help="Labelled validation images."),
        out_dir: Path = typer.Option(Path("report"), "--out", help="Report folder."),
        fmt: str = typer.Option("auto", "--from"),
        image_root: Optional[Path] = typer.Option(None, "--image-root"),
        flip_test: bool = typer.Option(False, "--flip-test"),
        batch_size: int = typer.Option(16, "--batch-size"),
        device: str = typer.Option("auto", "--device"),
        n_images: int = typer.Option(6, "--n-images", help="Images in the drawn grid."),
    ) -> None:
        """Before vs after: metrics side by side with their difference, per-keypoint bars, drawn grid."""
        from posetune.engine.evaluate import evaluate_model
        from posetune.evaluation.report import write_report
        from posetune.models.zoo import load_any_model

        ds = _read_data(data, fmt, image_root, None)
        names = [Path(model_a).stem if Path(model_a).is_file() else model_a,
                 Path(model_b).stem if Path(model_b).is_file() else model_b]
        if names[0] == names[1]:
            names = [f"A: {names[0]}", f"B: {names[1]}"]
        results, preds = {}, {}
        for name, src in zip(names, (model_a, model_b)):
            model = load_any_model(src, spec=ds.spec)
            results[name], preds[name] = evaluate_model(model, ds, batch_size=batch_size, flip_test=flip_test,
                                                        device=device, progress=True)
        files = write_report(out_dir, results, preds, ds, title=f"{names[0]} vs {names[1]}")
        out.print(_metrics_table(results, f"{names[0]} vs {names[1]} on {data}"))
        out.print(f"report: {files['html']}  ({files['markdown']})")
