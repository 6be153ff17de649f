"""``train(cfg)``: one fine-tuning run from a validated Config to a run directory.

runs/NAME/
  config.yaml          the resolved config
  checkpoints/best.ckpt, last.ckpt (+ keep-k epoch checkpoints)
  metrics.csv          one row per epoch
  tb/                  TensorBoard logs
  summary.json         best epoch, best metrics, wall time, images/s
  curves.png           loss and metric curves
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch

from posetune.config import Config, dump_yaml
from posetune.errors import CheckpointError, ConfigError, TrainingError
from posetune.io_utils import write_json_atomic, write_text_atomic

log = logging.getLogger("posetune")


@dataclass
class RunResult:
    run_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    oom_events: list[dict[str, Any]] = field(default_factory=list)
    #: False in the other processes of a multi-process (DDP) run
    is_global_zero: bool = True


def run_dir_for(cfg: Config) -> Path:
    """The run directory: ``out``, or the resumed checkpoint's run, or ``runs/<name>`` (made
    unique with -1, -2... when it already holds a finished run)."""
    if cfg.out:
        return Path(cfg.out)
    if cfg.train.resume:
        ckpt = Path(cfg.train.resume)
        if ckpt.parent.name == "checkpoints":
            return ckpt.parent.parent
    base = Path("runs") / cfg.name
    path, i = base, 1
    while (path / "checkpoints").exists():
        path = base.with_name(f"{base.name}-{i}")
        i += 1
    return path


def precision_for(cfg: Config) -> str:
    if not cfg.train.amp:
        return "32-true"
    on_gpu = cfg.train.accelerator in ("gpu", "cuda") or (cfg.train.accelerator == "auto" and torch.cuda.is_available())
    return "16-mixed" if on_gpu else "bf16-mixed"


def build_components(cfg: Config, datamodule: Any = None, model: Any = None):
    """The datamodule (labels read), the model (for the data's KeypointSpec) and the loss."""
    from posetune.data.datamodule import KeypointDataModule
    from posetune.engine.losses import build_loss
    from posetune.models.build import build_model

    dm = datamodule if datamodule is not None else KeypointDataModule.from_config(cfg.data, seed=cfg.seed)
    spec = dm.spec
    if model is None:
        model = build_model(cfg.model, spec)
        if cfg.model.load_from:
            from posetune.models.checkpoints import load_weights

            report = load_weights(model, cfg.model.load_from, strict=cfg.model.load_strict,
                                  allow_unsafe=cfg.model.allow_unsafe_load)
            log.info("load_from %s: %s", cfg.model.load_from, report.summary() if hasattr(report, "summary") else report)
    dm.set_codec(model.codec)
    loss = build_loss(cfg.loss, model.codec, spec)
    return dm, model, loss


def quiet_lightning() -> None:
    """Lightning's banner lines (GPU available..., tips) are noise in a CLI; warnings stay."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero",
                 "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)


def make_trainer(cfg: Config, run_dir: Path, callbacks: Sequence[L.Callback], progress: bool = True,
                 logger: bool = True, batches_per_epoch: int | None = None) -> L.Trainer:
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger

    from posetune.engine.callbacks import AtomicCheckpointIO, KeepKCheckpoint

    t = cfg.train
    ckpt_dir = run_dir / "checkpoints"
    cbs: list[L.Callback] = list(callbacks)
    validating = t.validate_every > 0
    monitor = t.checkpoint.monitor if validating or not t.checkpoint.monitor.startswith("val") else "train_loss_epoch"
    cbs.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=t.checkpoint.mode,
                               save_top_k=1, save_last=t.checkpoint.save_last, enable_version_counter=False,
                               auto_insert_metric_name=False))
    if t.checkpoint.keep_k > 1:
        cbs.append(KeepKCheckpoint(dirpath=ckpt_dir, filename="epoch{epoch:03d}", monitor=monitor,
                                   mode=t.checkpoint.mode, save_top_k=t.checkpoint.keep_k,
                                   auto_insert_metric_name=False, enable_version_counter=False))
    if t.early_stop.enabled:
        cbs.append(EarlyStopping(monitor=t.early_stop.monitor, mode=t.early_stop.mode, patience=t.early_stop.patience,
                                 min_delta=t.early_stop.min_delta, strict=True, check_finite=True))
    if progress and t.progress:
        cbs.append(RichProgressBar(leave=True))
    accelerator = {"cuda": "gpu"}.get(t.accelerator, t.accelerator)
    strategy = t.strategy
    if strategy in ("ddp", "ddp_spawn"):
        if t.unfreeze.every > 0:
            raise ConfigError("gradual unfreezing cannot be combined with DDP: DDP only synchronises parameters "
                              "that were trainable when it started", where="config key train.unfreeze.every",
                              hint="unfreeze in a single-device run, or train with all layers trainable")
        if cfg.model.type == "mediapipe":
            # the imported graphs' auxiliary outputs (heatmaps, mask, world landmarks) get no loss
            strategy = f"{strategy}_find_unused_parameters_true"
    loggers: Any = [TensorBoardLogger(save_dir=str(run_dir), name="tb", version="")] if logger else False
    kwargs: dict[str, Any] = dict(
        default_root_dir=str(run_dir),
        max_epochs=t.epochs,
        max_steps=t.max_steps,
        accelerator=accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=strategy,
        precision=precision_for(cfg),
        accumulate_grad_batches=t.accumulate,
        gradient_clip_val=t.clip_grad,
        gradient_clip_algorithm="norm",
        deterministic=True if t.deterministic else None,
        callbacks=cbs,
        logger=loggers,
        log_every_n_steps=max(1, min(t.log_every, batches_per_epoch or t.log_every)),
        check_val_every_n_epoch=max(1, t.validate_every),
        limit_val_batches=(t.limit_val_batches if validating else 0) if t.limit_val_batches is not None else
        (None if validating else 0),
        limit_train_batches=t.limit_train_batches,
        num_sanity_val_steps=0,
        enable_progress_bar=bool(progress and t.progress),
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
    )
    return L.Trainer(**kwargs)


def _check_resume(cfg: Config) -> str | None:
    if not cfg.train.resume:
        return None
    p = Path(cfg.train.resume)
    if not p.is_file():
        raise CheckpointError("checkpoint to resume from not found", where=p,
                              hint="pass the run's checkpoints/last.ckpt to --resume / train.resume")
    return str(p)


def train(cfg: Config, *, datamodule: Any = None, model: Any = None, extra_callbacks: Sequence[L.Callback] = (),
          progress: bool = True, quiet: bool = False) -> RunResult:
    """Fine-tune a model as configured; returns where everything went and the summary."""
    # train.deterministic switches torch's process-wide flag on (here and in Lightning): put it
    # back afterwards so that a run does not change what the caller's code does next
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        return _train(cfg, datamodule=datamodule, model=model, extra_callbacks=extra_callbacks, progress=progress,
                      quiet=quiet)
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def _train(cfg: Config, *, datamodule: Any, model: Any, extra_callbacks: Sequence[L.Callback], progress: bool,
           quiet: bool) -> RunResult:
    from posetune.engine.callbacks import MetricsCSV, OverfitWarning, is_oom
    from posetune.engine.module import PoseModule

    if cfg.train.validate_every == 0 and cfg.train.early_stop.enabled and cfg.train.early_stop.monitor.startswith("val"):
        raise ConfigError("early stopping monitors a validation metric but validation is off",
                          where="config key train.early_stop.monitor",
                          hint="set train.validate_every=1 or monitor train_loss_epoch")
    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    resume = _check_resume(cfg)
    run_dir = run_dir_for(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", dump_yaml(cfg.to_dict()))

    dm, model, loss = build_components(cfg, datamodule, model)
    dm.setup("fit")
    val_data = getattr(dm, "val_data", None)
    if cfg.train.validate_every > 0 and (val_data is None or getattr(dm, "val_set", None) is None
                                         or len(dm.val_set) == 0):
        raise TrainingError("the validation set is empty", where="config key data.val",
                            hint="give data.val, raise data.val_fraction, or set train.validate_every=0")

    module = PoseModule(model, loss, cfg, val_data=val_data)
    metrics_cb = MetricsCSV(run_dir / "metrics.csv")
    overfit_cb = OverfitWarning(cfg.train.overfit_patience)
    oom_events: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    current = cfg
    while True:
        batches = -(-len(dm.train_set) // current.data.batch_size)
        trainer = make_trainer(current, run_dir, [metrics_cb, overfit_cb, *extra_callbacks], progress=progress,
                               batches_per_epoch=batches)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*does not have many workers.*")
                warnings.filterwarnings("ignore", message=".*LeafSpec.*")
                # DDP: the validation metrics are computed on the predictions gathered from every
                # process (identical on all ranks); lr and images/s are logged by rank 0 only
                warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")
                if resume:  # continuing a run: its checkpoint folder is expected to hold checkpoints
                    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
                trainer.fit(module, datamodule=dm, ckpt_path=resume)
            break
        except BaseException as e:  # noqa: BLE001 - OOM guard, everything else re-raised
            if not (current.train.oom_guard and is_oom(e)) or current.data.batch_size <= 1:
                raise
            new_bs = current.data.batch_size // 2
            new_acc = current.train.accumulate * 2
            event = {"epoch": trainer.current_epoch, "step": trainer.global_step, "old_batch_size":
                     current.data.batch_size, "new_batch_size": new_bs, "accumulate": new_acc, "error": str(e)[:200]}
            oom_events.append(event)
            log.warning("out of memory at epoch %s step %s: batch size %s -> %s, accumulate -> %s (same effective "
                        "batch); continuing", event["epoch"], event["step"], current.data.batch_size, new_bs, new_acc)
            if not quiet:
                from posetune.cli.console import err

                err.print(f"[yellow]out of memory:[/] batch size {current.data.batch_size} → {new_bs}, "
                          f"accumulate {current.train.accumulate} → {new_acc}; continuing")
            current = current.model_copy(deep=True)
            current.data.batch_size = new_bs
            current.train.accumulate = new_acc
            dm.batch_size = new_bs
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            last = run_dir / "checkpoints" / "last.ckpt"
            resume = str(last) if last.exists() else None
            if resume is None:
                module = PoseModule(model, loss, current, val_data=val_data)
            else:
                module.cfg = current
    wall = time.perf_counter() - t0
    if current is not cfg:
        write_text_atomic(run_dir / "config.yaml", dump_yaml(current.to_dict()))
    result = finish_run(run_dir, trainer, metrics_cb.rows, wall, current, oom_events, overfit_cb.message)
    if not quiet and trainer.is_global_zero:
        print_summary(result)
    return result


def _best_row(rows: list[dict[str, Any]], monitor: str, mode: str) -> dict[str, Any] | None:
    cands = [r for r in rows if r.get(monitor) is not None]
    if not cands:
        return rows[-1] if rows else None
    return (min if mode == "min" else max)(cands, key=lambda r: r[monitor])


def finish_run(run_dir: Path, trainer: L.Trainer, rows: list[dict[str, Any]], wall: float, cfg: Config,
               oom_events: list[dict[str, Any]], overfit_message: str | None) -> RunResult:
    ckpt_dir = run_dir / "checkpoints"
    best = ckpt_dir / "best.ckpt"
    last = ckpt_dir / "last.ckpt"
    monitor = cfg.train.checkpoint.monitor
    best_row = _best_row(rows, monitor, cfg.train.checkpoint.mode)
    ips = [r["images_per_s"] for r in rows if r.get("images_per_s")]
    summary = {
        "run_dir": str(run_dir),
        "epochs_run": len(rows),
        "stopped_early": bool(cfg.train.early_stop.enabled and rows and len(rows) < cfg.train.epochs
                              and trainer.should_stop),
        "monitor": monitor,
        "best_epoch": best_row["epoch"] if best_row else None,
        "best_metrics": {k: v for k, v in (best_row or {}).items() if k not in ("epoch", "step")},
        "final_metrics": {k: v for k, v in (rows[-1] if rows else {}).items() if k not in ("epoch", "step")},
        "wall_time_s": wall,
        "images_per_s": sum(ips) / len(ips) if ips else None,
        "best_checkpoint": str(best) if best.exists() else None,
        "last_checkpoint": str(last) if last.exists() else None,
        "oom_events": oom_events,
        "overfit_warning": overfit_message,
    }
    if trainer.is_global_zero:
        write_json_atomic(run_dir / "summary.json", summary)
        if rows:
            from posetune.engine.plots import plot_curves

            plot_curves(rows, run_dir / "curves.png")
    return RunResult(run_dir=run_dir, best_checkpoint=best if best.exists() else None,
                     last_checkpoint=last if last.exists() else None, summary=summary, rows=rows,
                     oom_events=oom_events, is_global_zero=trainer.is_global_zero)


def print_summary(result: RunResult) -> None:
    from rich.table import Table

    from posetune.cli.console import out

    s = result.summary
    table = Table(title=f"run {result.run_dir}", show_header=True)
    table.add_column("metric")
    table.add_column(f"best (epoch {s['best_epoch']})", justify="right")
    table.add_column("final", justify="right")
    keys = [k for k in s["final_metrics"] if s["final_metrics"].get(k) is not None]
    for k in keys:
        b, f = s["best_metrics"].get(k), s["final_metrics"].get(k)
        table.add_row(k, f"{b:.4g}" if isinstance(b, float) else str(b), f"{f:.4g}" if isinstance(f, float) else str(f))
    out.print(table)
    out.print(f"wall time {s['wall_time_s']:.1f} s, {s['images_per_s'] or 0:.1f} images/s, "
              f"best checkpoint: {s['best_checkpoint']}")
