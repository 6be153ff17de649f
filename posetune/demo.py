"""``posetune demo``: the whole product on built-in data, offline, in a few minutes on a CPU.

1. make a labelled dataset (procedural people, COCO-17 keypoints) and split it;
2. take a real pretrained network — MediaPipe BlazePose, imported from the mediapipe wheel —
   mapped to the dataset's keypoints, and evaluate it (before);
3. fine-tune it with `posetune train` machinery;
4. evaluate the fine-tuned checkpoint (after) and write the before-vs-after report;
5. predict on a few images and draw them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from posetune.cli.console import out


def _step(n: int, text: str) -> None:
    out.print(f"\n[bold cyan]{n}.[/] [bold]{text}[/]")


def demo_config(data_dir: Path, run_dir: Path, model: str, epochs: int, batch_size: int, workers: int):
    from posetune.cli.train_cmd import model_overrides
    from posetune.config import load_config
    from posetune.config.presets import PRESET_DIR

    preset = PRESET_DIR / ("body/mediapipe_pose.yaml" if model.startswith("mediapipe") else "body/coco17_resnet18.yaml")
    ov = [f"data.train={data_dir / 'train.json'}", f"data.val={data_dir / 'val.json'}", f"out={run_dir}",
          f"train.epochs={epochs}", f"data.batch_size={batch_size}", f"data.workers={workers}", "name=demo",
          "train.early_stop.enabled=false", "train.checkpoint.monitor=val_PCK@0.05", "train.checkpoint.mode=max",
          "data.augment.half_body_prob=0.0", "data.augment.occlusion_prob=0.1", "data.augment.rotate=25"]
    if model.startswith("mediapipe"):
        ov += ["train.optimizer.lr=1e-4", "train.optimizer.backbone_lr_mult=0.3", "train.scheduler.warmup=0",
               "loss.type=l1"]
    else:
        ov += model_overrides(model) + ["model.backbone.pretrained=false", "train.optimizer.lr=1e-3"]
    return load_config(preset, ov)


def run_demo(out_dir: str | Path = "runs/demo", *, n_images: int = 96, epochs: int = 8, model: str = "mediapipe-pose",
             batch_size: int = 16, workers: int = 0, seed: int = 0) -> dict[str, Any]:
    import torch

    from posetune.data.formats import read_dataset
    from posetune.data.formats.coco import write_coco
    from posetune.data.split import split_dataset
    from posetune.data.synthetic import make_synthetic_dataset
    from posetune.engine.evaluate import evaluate_model
    from posetune.engine.fit import train
    from posetune.evaluation.report import write_report
    from posetune.io_utils import write_json_atomic
    from posetune.models.checkpoints import load_model
    from posetune.models.zoo import load_any_model

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    torch.manual_seed(seed)

    _step(1, f"Making a labelled dataset: {n_images} procedural people with COCO-17 keypoints")
    labels = make_synthetic_dataset(data_dir, n_images=n_images, spec="coco17", seed=seed)
    full = read_dataset(labels)
    parts = split_dataset(full, val=0.2, seed=seed)
    for name, part in parts.items():
        write_coco(part, data_dir / f"{name}.json")
    val = read_dataset(data_dir / "val.json")
    out.print(f"   {full.num_images} images → train {parts['train'].num_images}, val {val.num_images}  ({labels})")

    _step(2, f"Evaluating the pretrained {model} before fine-tuning")
    before_model = load_any_model(model, spec=val.spec) if model.startswith("mediapipe") else None
    if before_model is None:
        from posetune.models.build import build_model

        before_model = build_model(demo_config(data_dir, out_dir / "train", model, epochs, batch_size,
                                               workers).model, val.spec)
    before, before_pred = evaluate_model(before_model, val, device="cpu")
    out.print(f"   PCK@0.05 {before['PCK@0.05']:.3f}, AP {before['AP']:.3f}, mean error {before['EPE']:.1f} px")

    _step(3, f"Fine-tuning for {epochs} epochs (posetune train)")
    cfg = demo_config(data_dir, out_dir / "train", model, epochs, batch_size, workers)
    result = train(cfg, model=before_model if model.startswith("mediapipe") else None)

    _step(4, "Evaluating the fine-tuned checkpoint and writing the before-vs-after report")
    ckpt = result.best_checkpoint or result.last_checkpoint
    after_model = load_model(ckpt)
    after, after_pred = evaluate_model(after_model, val, device="cpu")
    files = write_report(out_dir / "report", {f"{model} (pretrained)": before, "fine-tuned": after},
                         {f"{model} (pretrained)": before_pred, "fine-tuned": after_pred}, val,
                         title="posetune demo: before vs after fine-tuning")

    _step(5, "Predicting on a few images")
    pred_dir = out_dir / "predictions"
    drawn = predict_examples(after_model, val, pred_dir, n=4)

    summary = {"before": {k: before.get(k) for k in ("AP", "PCK@0.05", "PCK@0.1", "EPE")},
               "after": {k: after.get(k) for k in ("AP", "PCK@0.05", "PCK@0.1", "EPE")},
               "checkpoint": str(ckpt), "report": str(files["html"]), "run_dir": str(result.run_dir),
               "predictions": [str(p) for p in drawn], "wall_time_s": time.perf_counter() - t0}
    write_json_atomic(out_dir / "demo_summary.json", summary)
    _print_summary(summary, model)
    return summary


def predict_examples(model: Any, data: Any, out_dir: Path, n: int = 4) -> list[Path]:
    """Draw the model's predictions on the first ``n`` images (whole-image boxes from labels)."""
    from posetune.data.images import load_image, save_image
    from posetune.engine.evaluate import predict_dataset
    from posetune.inference.visualize import draw_instances

    subset = data.subset(list(range(min(n, data.num_images))))
    pred = predict_dataset(model, subset, device="cpu")
    paths = []
    for rec in pred.images:
        image = load_image(data.image_path(rec))
        paths.append(save_image(out_dir / (Path(rec.file_name).stem + "_pred.jpg"),
                                draw_instances(image, rec.instances, data.spec)))
    return paths


def _print_summary(s: dict[str, Any], model: str) -> None:
    from rich.table import Table

    table = Table(title="posetune demo: validation set, before vs after fine-tuning")
    table.add_column("metric")
    table.add_column(f"{model} (pretrained)", justify="right")
    table.add_column("fine-tuned", justify="right")
    for k in ("AP", "PCK@0.05", "PCK@0.1", "EPE"):
        b, a = s["before"][k], s["after"][k]
        better = (a < b) if k == "EPE" else (a > b)
        table.add_row(k + (" (px, lower is better)" if k == "EPE" else ""), f"{b:.3f}",
                      f"[{'green' if better else 'red'}]{a:.3f}[/]")
    out.print(table)
    out.print(f"fine-tuned checkpoint: {s['checkpoint']}")
    out.print(f"training run (metrics.csv, curves.png, TensorBoard): {s['run_dir']}")
    out.print(f"before-vs-after report: {s['report']}")
    out.print(f"drawn predictions: {Path(s['predictions'][0]).parent if s['predictions'] else '-'}")
    out.print(f"total time: {s['wall_time_s']:.0f} s")
