"""Lightning callbacks posetune adds to every run.

* :class:`MetricsCSV` writes ``metrics.csv`` (one row per epoch: train loss, val loss, val
  metrics, lr, images/s) atomically after every epoch; on resume it keeps the earlier rows.
* :class:`OverfitWarning` says so when val loss rises for N epochs while train loss falls.
* :class:`KeepKCheckpoint` keeps the k best epoch checkpoints beside best.ckpt / last.ckpt.
* :class:`AtomicCheckpointIO` saves checkpoints to a temp file and renames it into place.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from posetune.io_utils import atomic_path, write_text_atomic

log = logging.getLogger("posetune")

FIRST_COLUMNS = ["epoch", "step", "train_loss", "val_loss", "lr", "images_per_s"]


def _scalar(v: Any) -> float | None:
    if isinstance(v, torch.Tensor):
        v = v.detach().float().cpu()
        return float(v) if v.numel() == 1 else None
    if isinstance(v, (int, float)):
        return float(v)
    return None


class MetricsCSV(L.Callback):
    """One row per epoch in ``metrics.csv`` with every epoch-level metric that was logged."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self._t0 = 0.0
        self._samples = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_train_start, not on_fit_start: Lightning restores the loop state of a resumed
        # checkpoint between the two, so only here is current_epoch the epoch training starts at
        start_epoch = trainer.current_epoch
        self.rows = [r for r in read_metrics_csv(self.path) if int(r["epoch"]) < start_epoch] if self.path.exists() else []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()
        self._samples = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._samples += int(batch["image"].shape[0])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        dt = time.perf_counter() - self._t0
        m = {k: _scalar(v) for k, v in trainer.callback_metrics.items()}
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        row["train_loss"] = m.get("train_loss_epoch", m.get("train_loss"))
        row["val_loss"] = m.get("val_loss")
        opt = trainer.optimizers[0] if trainer.optimizers else None
        row["lr"] = opt.param_groups[-1]["lr"] if opt is not None else None
        row["images_per_s"] = self._samples * max(1, trainer.world_size) / dt if dt > 0 and self._samples else None
        for k, v in sorted(m.items()):
            if k.startswith("val_") and k != "val_loss" and v is not None:
                row[k] = v
            elif k.startswith("train_") and not k.endswith("_step") and k not in ("train_loss", "train_loss_epoch") \
                    and v is not None:
                row[k.removesuffix("_epoch")] = v
        self.rows.append(row)
        if trainer.is_global_zero:
            self.write()
            extra = {k: row[k] for k in ("lr", "images_per_s") if row.get(k) is not None}
            for logger in trainer.loggers:  # TensorBoard gets the per-epoch LR and throughput too
                logger.log_metrics(extra, step=trainer.global_step)

    def write(self) -> None:
        columns = list(FIRST_COLUMNS)
        for r in self.rows:
            columns.extend(k for k in r if k not in columns)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
        write_text_atomic(self.path, buf.getvalue())


def read_metrics_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a metrics.csv with numbers parsed (empty cells -> None)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.append({k: (float(v) if v not in ("", None) else None) if k not in ("epoch", "step")
                         else int(float(v)) for k, v in r.items()})
    return rows


class OverfitWarning(L.Callback):
    """Warn when val loss has risen for ``patience`` epochs in a row while train loss fell."""

    def __init__(self, patience: int = 3):
        self.patience = patience
        self.history: list[tuple[float, float]] = []
        self.warned_at: int | None = None
        self.message: str | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        m = trainer.callback_metrics
        tr, va = _scalar(m.get("train_loss_epoch")), _scalar(m.get("val_loss"))
        if tr is None or va is None:
            return
        self.history.append((tr, va))
        h = self.history[-(self.patience + 1):]
        if len(h) < self.patience + 1 or self.warned_at is not None:
            return
        val_up = all(b[1] > a[1] for a, b in zip(h, h[1:]))
        train_down = all(b[0] < a[0] for a, b in zip(h, h[1:]))
        if val_up and train_down:
            self.warned_at = trainer.current_epoch
            self.message = (
                f"possible overfitting: val loss rose for {self.patience} epochs while train loss fell "
                f"(epoch {trainer.current_epoch}). Remedies: stronger augmentation (data.augment.strength), "
                "more labelled data, a smaller model or freezing the backbone (train.freeze), a lower LR, "
                "more weight decay, or early stopping (train.early_stop.enabled=true)"
            )
            log.warning(self.message)
            if trainer.is_global_zero:
                from posetune.cli.console import err

                err.print(f"[yellow]warning:[/] {self.message}")


class StopAfterEpochs(L.Callback):
    """Stop a run after ``n`` epochs (used to simulate an interruption and for quick probes)."""

    def __init__(self, n: int):
        self.n = n

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.n:
            trainer.should_stop = True


class KeepKCheckpoint(ModelCheckpoint):
    """The keep-k epoch checkpoints (``train.checkpoint.keep_k``), beside the ``best``/``last``
    ModelCheckpoint that monitors the same metric: Lightning keys a callback's saved state by
    monitor and mode only, so two plain ModelCheckpoints on one metric cannot both be saved
    ("Found more than one stateful callback of type ModelCheckpoint"). The filename and k make
    this one's key unique."""

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, mode=self.mode, filename=self.filename,
                                        save_top_k=self.save_top_k)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temp file next to the target and renamed into place, so
    a crash mid-save never leaves a truncated ``last.ckpt`` / ``best.ckpt``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        with atomic_path(path, suffix=".tmp") as tmp:
            torch.save(checkpoint, tmp)


def is_oom(exc: BaseException) -> bool:
    """True for CUDA and CPU out-of-memory errors."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "can't allocate memory" in text or "cannot allocate memory" in text
        or isinstance(exc, MemoryError))


def finite_or_none(v: Any) -> float | None:
    v = _scalar(v)
    return v if v is not None and math.isfinite(v) else None
