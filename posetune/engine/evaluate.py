"""Run a model over a labelled dataset (top-down, on its boxes) and evaluate the predictions.

Used by ``posetune eval``, ``posetune compare`` and the demo. The crops are the deterministic
validation crops of training (posetune.data.datamodule.TopDownDataset), so the numbers are the
ones training reports.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader

from posetune.data.records import KeypointDataset
from posetune.devices import resolve_device
from posetune.engine.module import images_to_image_coords, predictions_dataset
from posetune.models.base import KeypointModel


@torch.no_grad()
def predict_dataset(model: KeypointModel, data: KeypointDataset, *, batch_size: int = 16, flip_test: bool = False,
                    device: str | None = "cpu", workers: int = 0, bbox_padding: float = 1.25,
                    progress: bool = False, description: str = "predicting") -> KeypointDataset:
    """Predictions for every non-crowd instance of ``data`` that has a box (or labelled
    keypoints to make one), as a KeypointDataset aligned with ``data`` (same images; each
    prediction carries its ground-truth instance id)."""
    from posetune.data.datamodule import TopDownDataset
    from posetune.data.transforms import TopDownTransform

    dev = resolve_device(device)
    model = model.to(dev).eval()
    transform = TopDownTransform(None, model.codec.input_size, spec=data.spec, use_udp=model.codec.use_udp,
                                 train=False, bbox_padding=bbox_padding)
    ds = TopDownDataset(data, model.codec, transform, evaluation=True)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)
    records: list[dict[str, Any]] = []
    batches: Iterable = loader
    if progress:
        from rich.progress import track

        batches = track(loader, description=description, transient=True)
    for batch in batches:
        images = batch["image"].to(dev)
        kp, scores = model.predict(images, flip_test=flip_test)
        kp_img = images_to_image_coords(kp, batch["meta"]["warp"])
        sc = scores.float().cpu().numpy()
        for i in range(len(kp_img)):
            records.append({"image_index": int(batch["meta"]["image_index"][i]),
                            "instance_index": int(batch["meta"]["instance_index"][i]),
                            "keypoints": kp_img[i], "scores": sc[i]})
    return predictions_dataset(data, records)


def evaluate_model(model: KeypointModel, data: KeypointDataset, *, batch_size: int = 16, flip_test: bool = False,
                   device: str | None = "cpu", workers: int = 0, bbox_padding: float = 1.25,
                   metrics: tuple[str, ...] | None = None, pck_thresholds: tuple[float, ...] = (0.05, 0.1),
                   pck_norm: str = "bbox", rmse_pcutoff: float = 0.6, progress: bool = False,
                   ) -> tuple[dict[str, Any], KeypointDataset]:
    """(metrics dict with the stable keys of posetune.evaluation.summary.evaluate, predictions)."""
    from posetune.evaluation.summary import evaluate

    pred = predict_dataset(model, data, batch_size=batch_size, flip_test=flip_test, device=device, workers=workers,
                           bbox_padding=bbox_padding, progress=progress)
    if metrics is None:
        metrics = default_metrics(data)
    result = evaluate(data, pred, metrics=metrics, pck_thresholds=pck_thresholds, pck_norm=pck_norm,
                      rmse_pcutoff=rmse_pcutoff)
    return result, pred


def default_metrics(data: KeypointDataset) -> tuple[str, ...]:
    """COCO AP needs boxes/areas; NME a normaliser: evaluate what the labels support."""
    metrics = ["pck", "auc", "epe", "rmse", "nme"]
    if any(inst.bbox is not None for _, inst in data.iter_instances()):
        metrics.insert(0, "coco")
    return tuple(metrics)


def mean_keypoint_error(gt: KeypointDataset, pred: KeypointDataset) -> float:
    """Mean pixel error over labelled keypoints, pairing predictions by instance id (for tests
    and quick checks; the evaluation module has the full metrics)."""
    pred_by_id = {inst.id: inst for _, inst in pred.iter_instances()}
    errs = []
    for _, inst in gt.iter_instances():
        p = pred_by_id.get(inst.id)
        if p is None:
            continue
        m = inst.labelled
        errs.append(np.linalg.norm(p.keypoints[m, :2] - inst.keypoints[m, :2], axis=1))
    return float(np.concatenate(errs).mean()) if errs else float("nan")
