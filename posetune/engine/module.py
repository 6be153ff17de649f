"""The LightningModule that trains any posetune KeypointModel.

Training: ``model(images) -> outputs``, ``loss(outputs, targets)``. Validation also decodes the
outputs, maps the keypoints from the crop back to image coordinates (inverse of each sample's
warp matrix) and, at the end of the epoch, evaluates them against the validation labels with
posetune.evaluation (PCK, COCO AP when the labels allow it, EPE).
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from posetune.config.schema import Config
from posetune.data.datamodule import mix_seed
from posetune.data.records import KeypointDataset
from posetune.engine import freeze as fz
from posetune.engine.optim import build_optimizer, build_scheduler
from posetune.errors import TrainingError
from posetune.models.base import KeypointModel


def images_to_image_coords(keypoints: torch.Tensor, warps: torch.Tensor) -> np.ndarray:
    """Map (B, K, 2) input-frame keypoints to image coordinates with the inverse of each
    sample's (B, 2, 3) image->input warp."""
    kp = keypoints.detach().double().cpu().numpy()
    w = warps.detach().double().cpu().numpy()
    out = np.empty_like(kp)
    for i in range(len(kp)):
        a = w[i, :, :2]
        t = w[i, :, 2]
        out[i] = (kp[i] - t) @ np.linalg.inv(a).T
    return out


class PoseModule(L.LightningModule):
    """LightningModule for top-down keypoint training."""

    def __init__(self, model: KeypointModel, loss: nn.Module, cfg: Config,
                 val_data: KeypointDataset | None = None):
        super().__init__()
        self.model = model
        self.loss_fn = loss
        self.cfg = cfg
        self.val_data = val_data
        self._val_records: list[dict[str, Any]] = []
        self._frozen: list[str] = []
        self.automatic_optimization = True

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        tcfg = self.cfg.train
        if tcfg.freeze and not self._frozen:
            fz.set_trainable(self.model, tcfg.freeze, False, key="train.freeze")
            self._frozen = list(tcfg.freeze)

    def train(self, mode: bool = True) -> "PoseModule":
        super().train(mode)
        if mode:
            fz.apply_bn_eval(self.model, self.cfg.train.freeze_bn)
        return self

    def forward(self, images: torch.Tensor) -> Any:
        return self.model(images)

    # ------------------------------------------------------------------ training
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Per-batch seeding: dropout & co. depend only on (seed, epoch, batch), so a resumed run
        # repeats the original exactly. (Seeding once per epoch is not enough: Lightning creates
        # the epoch's DataLoader iterator, which draws a seed from torch's global RNG, after
        # on_train_epoch_start in a continuing run but before it in a resumed one, and not at
        # all with persistent workers.)
        torch.manual_seed(mix_seed(self.cfg.seed, self.current_epoch, batch_idx))

    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(self.current_epoch)
        ucfg = self.cfg.train.unfreeze
        if ucfg.every > 0 and self._frozen:
            todo = fz.unfreeze_schedule(self.model, self._frozen, ucfg.groups, ucfg.every, self.current_epoch)
            if todo:
                fz.set_trainable(self.model, todo, True, key="train.unfreeze.groups")
        # Lightning 2.x never calls .train() during fit (validation restores each module's own
        # mode), so set the modes here: everything trains except frozen BatchNorm layers (all of
        # them with freeze_bn, else those of frozen stages), whose running statistics must not move.
        self.train()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        outputs = self.model(batch["image"])
        loss, parts = self.loss_fn(outputs, batch["targets"])
        if not torch.isfinite(loss):
            raise TrainingError(
                f"loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step} (batch {batch_idx})",
                where="training",
                hint="lower train.optimizer.lr, turn AMP off (train.amp=false) or set train.clip_grad=5.0",
            )
        bs = batch["image"].shape[0]
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs, sync_dist=True)
        for k, v in parts.items():
            self.log(f"train_{k}", float(v), on_step=False, on_epoch=True, batch_size=bs, sync_dist=True)
        return loss

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val_records = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        outputs = self.model(batch["image"])
        loss, _ = self.loss_fn(outputs, batch["targets"])
        bs = batch["image"].shape[0]
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, batch_size=bs, sync_dist=True)
        kp, scores = self.model.codec.decode(outputs)
        kp_img = images_to_image_coords(kp, batch["meta"]["warp"])
        sc = scores.detach().float().cpu().numpy()
        img_idx = batch["meta"]["image_index"].cpu().numpy()
        inst_idx = batch["meta"]["instance_index"].cpu().numpy()
        for i in range(bs):
            self._val_records.append({"image_index": int(img_idx[i]), "instance_index": int(inst_idx[i]),
                                      "keypoints": kp_img[i], "scores": sc[i]})

    def on_validation_epoch_end(self) -> None:
        records = self._val_records
        if self.trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, records)
            records = [r for part in gathered for r in part]
        if self.val_data is None or not records or self.trainer.sanity_checking:
            return
        metrics = validation_metrics(self.val_data, records, self.cfg)
        for k, v in metrics.items():
            if v is not None and isinstance(v, (int, float)) and math.isfinite(v):
                self.log(f"val_{k}", float(v), prog_bar=k in ("PCK@0.05", "AP"), sync_dist=False)

    # ------------------------------------------------------------------ optimisers
    def configure_optimizers(self) -> dict[str, Any]:
        tcfg = self.cfg.train
        optimizer = build_optimizer(self.model, tcfg.optimizer)
        total = self.trainer.estimated_stepping_batches
        epochs = max(1, self.trainer.max_epochs or tcfg.epochs)
        steps_per_epoch = max(1, math.ceil(total / epochs)) if math.isfinite(total) else 1
        scheduler = build_scheduler(optimizer, tcfg.scheduler, steps_per_epoch, epochs, tcfg.optimizer.lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ checkpoints
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Resuming: Lightning creates the training DataLoader iterator (DataLoader workers start
        # prefetching at once) before it sets the sampler's epoch, so the first resumed epoch
        # would replay epoch 0's order and augmentations. Set the epoch being resumed now.
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
        epoch = progress.get("processed")
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if epoch is not None and dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(int(epoch))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from posetune.engine.metadata import checkpoint_metadata

        checkpoint["posetune"] = checkpoint_metadata(self.model, self.cfg)


def predictions_dataset(val_data: KeypointDataset, records: list[dict[str, Any]]) -> KeypointDataset:
    """Validation predictions as a KeypointDataset aligned with ``val_data`` (same images;
    each prediction carries its ground-truth instance id for exact pairing)."""
    from posetune.data.records import ImageRecord, Instance

    images = [ImageRecord(file_name=im.file_name, width=im.width, height=im.height, id=im.id, group=im.group)
              for im in val_data.images]
    seen: set[tuple[int, int]] = set()
    for r in records:
        key = (r["image_index"], r["instance_index"])
        if key in seen:  # DistributedSampler pads with repeated samples
            continue
        seen.add(key)
        gt = val_data.images[r["image_index"]].instances[r["instance_index"]]
        scores = np.asarray(r["scores"], dtype=np.float64)
        kp = np.concatenate([r["keypoints"], scores[:, None]], axis=1)
        valid = scores > 0.2
        inst_score = float(scores[valid].mean()) if valid.any() else float(scores.mean())
        images[r["image_index"]].instances.append(
            Instance(keypoints=kp, bbox=gt.bbox, id=gt.id, score=inst_score, keypoint_scores=scores,
                     category=gt.category))
    return val_data.with_images(images)


def validation_metrics(val_data: KeypointDataset, records: list[dict[str, Any]], cfg: Config) -> dict[str, Any]:
    """PCK / EPE / COCO AP of validation predictions (posetune.evaluation)."""
    from posetune.evaluation.summary import evaluate

    pred = predictions_dataset(val_data, records)
    metrics = ["pck", "epe"]
    if any(inst.bbox is not None for _, inst in val_data.iter_instances()):
        metrics.append("coco")
    result = evaluate(val_data, pred, metrics=tuple(metrics), pck_thresholds=tuple(cfg.eval.pck_thresholds),
                      pck_norm=cfg.eval.pck_norm)
    return {k: v for k, v in result.items() if k != "per_keypoint"}
