"""A real model overfits 8 real images: the model, codec, data pipeline and loss fit together.

ResNet-18 (random init) + SimpleBaseline deconv head + MSRA heatmap codec, trained on 8 labelled
DeepLabCut open-field frames (mouse, 4 keypoints) cropped by posetune's TopDownDataset. The
loss must fall at least 10x and PCK@0.05 (bbox-normalised, in image pixels) reach 0.9.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from posetune.config.schema import LossConfig, ModelConfig
from posetune.data.datamodule import TopDownDataset
from posetune.data.formats import read_dataset
from posetune.data.transforms import TopDownTransform
from posetune.engine.losses import build_loss
from posetune.models.build import build_model

MAX_STEPS = 150


def pck_image_frame(model, batch: list[dict], images: torch.Tensor, threshold: float = 0.05) -> float:
    """Share of labelled keypoints predicted within ``threshold`` x max(box w, h) in the image."""
    model.eval()
    kp, _ = model.predict(images)
    hits = []
    for i, sample in enumerate(batch):
        warp = np.vstack([sample["meta"]["warp"].numpy(), [0.0, 0.0, 1.0]])
        back = np.linalg.inv(warp)[:2]
        pred = np.c_[kp[i].numpy().astype(np.float64), np.ones(kp.shape[1])] @ back.T
        gt = sample["meta"]["keypoints"].numpy()
        box = sample["meta"]["bbox"].numpy()
        err = np.linalg.norm(pred - gt[:, :2], axis=1) / max(box[2], box[3])
        hits.append(err[gt[:, 2] > 0] < threshold)
    return float(np.concatenate(hits).mean())


def test_resnet18_deconv_overfits_eight_dlc_frames(shared_data, torch_single_thread) -> None:
    start = time.perf_counter()
    torch.manual_seed(0)
    data = read_dataset(shared_data / "dlc_openfield" / "openfield-Pranav-2018-10-30")
    data = data.subset(list(range(8)))
    cfg = ModelConfig.model_validate({
        "backbone": {"name": "resnet18"},
        "head": {"type": "deconv", "deconv_channels": 64},
        "codec": {"type": "msra", "input_size": [64, 64], "sigma": 2.0},
    })
    model = build_model(cfg, data.spec)
    loss_fn = build_loss(LossConfig(), model.codec, data.spec)
    transform = TopDownTransform(None, model.input_size, spec=data.spec, train=False)
    dataset = TopDownDataset(data, model.codec, transform)
    assert len(dataset) == 8
    batch = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([b["image"] for b in batch])
    targets = {k: torch.stack([b["targets"][k] for b in batch]) for k in batch[0]["targets"]}

    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    losses: list[float] = []
    pck = 0.0
    for step in range(MAX_STEPS):
        model.train()
        loss, _ = loss_fn(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step >= 20 and step % 5 == 0 and losses[0] / losses[-1] >= 10:
            pck = pck_image_frame(model, batch, images)
            if pck >= 0.9:
                break
    elapsed = time.perf_counter() - start
    print(f"overfit: {len(losses)} steps, loss {losses[0]:.3g} -> {losses[-1]:.3g}, PCK@0.05 {pck:.3f}, {elapsed:.1f} s")
    assert losses[0] / losses[-1] >= 10, f"loss fell only {losses[0] / losses[-1]:.1f}x"
    assert pck >= 0.9, f"PCK@0.05 {pck:.3f} after {len(losses)} steps"
