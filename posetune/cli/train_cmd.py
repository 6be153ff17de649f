"""``posetune train``, ``posetune lr-find`` and ``posetune tune``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from posetune.cli.console import out


def model_overrides(model: str) -> list[str]:
    """Config overrides for ``--model NAME``: a MediaPipe network or a timm backbone.

    HRNet backbones get the HRNet 1x1 heatmap head on their stride-4 branch; other backbones
    the SimpleBaseline deconvolution head.
    """
    name = model.strip()
    key = name.lower().replace("_", "-")
    mediapipe = {"mediapipe-pose": "pose_full", "blazepose": "pose_full", "mediapipe-pose-full": "pose_full",
                 "mediapipe-hand": "hand_full", "mediapipe-hand-full": "hand_full", "mediapipe-hand-lite": "hand_lite",
                 "mediapipe-face": "face"}
    if key in mediapipe:
        return ["model.type=mediapipe", f"model.mediapipe.variant={mediapipe[key]}", "model.codec.type=mediapipe"]
    ov = ["model.type=topdown", f"model.backbone.name={name}"]
    if name.startswith("hrnet"):
        ov.append("model.head.type=heatmap")
    return ov


def data_overrides(data: Path) -> list[str]:
    """``--data``: a label file/folder, or a folder holding train.json and val.json (from
    ``posetune data split``)."""
    if data.is_dir() and (data / "train.json").exists():
        ov = [f"data.train={data / 'train.json'}"]
        if (data / "val.json").exists():
            ov.append(f"data.val={data / 'val.json'}")
        if (data / "test.json").exists():
            ov.append(f"data.test={data / 'test.json'}")
        return ov
    return [f"data.train={data}"]


def collect_overrides(data: Optional[Path], model: Optional[str], epochs: Optional[int], batch_size: Optional[int],
                      lr: Optional[float], workers: Optional[int], devices: Optional[str], amp: Optional[bool],
                      accumulate: Optional[int], resume: Optional[Path], out_dir: Optional[Path],
                      validate: Optional[bool], seed: Optional[int], name: Optional[str], num_nodes: Optional[int],
                      strategy: Optional[str]) -> list[str]:
    ov: list[str] = []
    if data is not None:
        ov += data_overrides(data)
    if model is not None:
        ov += model_overrides(model)
    simple = {"train.epochs": epochs, "data.batch_size": batch_size, "train.optimizer.lr": lr,
              "data.workers": workers, "train.accumulate": accumulate, "seed": seed, "name": name,
              "train.num_nodes": num_nodes, "train.strategy": strategy}
    ov += [f"{k}={v}" for k, v in simple.items() if v is not None]
    if devices is not None:
        ov.append(f"train.devices={devices}")
    if amp is not None:
        ov.append(f"train.amp={str(amp).lower()}")
    if resume is not None:
        ov.append(f"train.resume={resume}")
    if out_dir is not None:
        ov.append(f"out={out_dir}")
    if validate is not None and not validate:
        ov.append("train.validate_every=0")
    return ov


def _load(config: Optional[Path], overrides: list[str]):
    from posetune.config import load_config
    from posetune.config.presets import resolve_config_path

    if config is not None and re.match(r"[A-Za-z_][\w.-]*=", str(config)) and not config.exists():
        # no config file, only flags and overrides: the first override landed in CONFIG
        config, overrides = None, [str(config), *overrides]
    path = resolve_config_path(config) if config is not None else None
    return load_config(path, overrides)




def register(app: typer.Typer) -> None:
    """Add train / lr-find / tune to the root app."""

    @app.command("train")
    def train(
        config: Optional[Path] = typer.Argument(None, help="YAML config or shipped preset name (see `posetune config presets`)."),
        overrides: Optional[list[str]] = typer.Argument(None, help="Overrides as key.path=value."),
        data: Optional[Path] = typer.Option(None, "--data", help="Labels (any format) or a folder with train.json/val.json."),
        model: Optional[str] = typer.Option(None, "--model", help="timm backbone (resnet18, hrnet_w32, ...) or mediapipe-pose."),
        epochs: Optional[int] = typer.Option(None, "--epochs"),
        batch_size: Optional[int] = typer.Option(None, "--batch-size"),
        lr: Optional[float] = typer.Option(None, "--lr"),
        workers: Optional[int] = typer.Option(None, "--workers"),
        devices: Optional[str] = typer.Option(None, "--devices", "--gpus", help="Number of devices, or 'auto'."),
        num_nodes: Optional[int] = typer.Option(None, "--num-nodes"),
        strategy: Optional[str] = typer.Option(None, "--strategy", help="auto, ddp, ddp_spawn, ..."),
        amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="Mixed precision (fp16 on CUDA, bf16 on CPU)."),
        accumulate: Optional[int] = typer.Option(None, "--accumulate", help="Gradient accumulation steps."),
        resume: Optional[Path] = typer.Option(None, "--resume", help="Continue exactly from a checkpoint (last.ckpt)."),
        out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/NAME)."),
        validate: Optional[bool] = typer.Option(None, "--validate/--no-validate", help="Validate every epoch."),
        seed: Optional[int] = typer.Option(None, "--seed"),
        name: Optional[str] = typer.Option(None, "--name"),
    ) -> None:
        """Fine-tune a keypoint model. Writes runs/NAME/ with checkpoints, metrics.csv, curves.png."""
        from posetune.engine.fit import train as run_train

        ov = collect_overrides(data, model, epochs, batch_size, lr, workers, devices, amp, accumulate, resume,
                               out_dir, validate, seed, name, num_nodes, strategy) + list(overrides or [])
        cfg = _load(config, ov)
        result = run_train(cfg)
        if result.is_global_zero:
            out.print(f"run directory: {result.run_dir}")

    @app.command("lr-find")
    def lr_find(
        config: Optional[Path] = typer.Argument(None, help="YAML config or preset name."),
        overrides: Optional[list[str]] = typer.Argument(None, help="Overrides as key.path=value."),
        data: Optional[Path] = typer.Option(None, "--data"),
        model: Optional[str] = typer.Option(None, "--model"),
        min_lr: float = typer.Option(1e-5, "--min-lr"),
        max_lr: float = typer.Option(1e-1, "--max-lr"),
        steps: int = typer.Option(100, "--steps", help="Number of LR values tried."),
        out_dir: Path = typer.Option(Path("runs/lr_find"), "--out"),
    ) -> None:
        """LR range test: trains briefly with an exponentially growing LR, plots loss vs LR, suggests one."""
        from posetune.engine.lr_find import find_lr

        cfg = _load(config, collect_overrides(data, model, *[None] * 14) + list(overrides or []))
        res = find_lr(cfg, min_lr=min_lr, max_lr=max_lr, num_steps=steps, out_dir=out_dir)
        out.print(f"suggested learning rate: [bold]{res['suggestion']:.3g}[/]  (plot: {res['plot']})")
        out.print(f"use it with: train.optimizer.lr={res['suggestion']:.3g}")

    @app.command("tune")
    def tune(
        config: Path = typer.Argument(..., help="YAML config with a tune.search_space section."),
        overrides: Optional[list[str]] = typer.Argument(None, help="Overrides as key.path=value."),
        trials: Optional[int] = typer.Option(None, "--trials", help="Number of trials (tune.n_trials)."),
        out_dir: Path = typer.Option(Path("runs/tune"), "--out"),
    ) -> None:
        """Hyper-parameter search with Optuna (pruning, results table, best config written out)."""
        from posetune.engine.tune import run_study

        ov = list(overrides or [])
        if trials is not None:
            ov.append(f"tune.n_trials={trials}")
        cfg = _load(config, ov)
        res = run_study(cfg, out_dir=out_dir)
        out.print(f"best value {res['best_value']:.4g} with {res['best_params']}")
        out.print(f"best config: {res['best_config']}   all trials: {res['trials_csv']}")
