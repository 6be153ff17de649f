"""Data pipeline throughput vs. training-step rate (CPU).

Measures samples/s of the full top-down pipeline (JPEG decode -> augmentation -> MSRA heatmap
encoding -> collate) at 256x192 with 0, 1 and 2 DataLoader workers, and the training-step
rate (forward + backward + AdamW step on pre-made tensors, batch 8) of two timm backbones with
a 1x1 conv head. The pipeline should outrun the cheapest model by >= 3x with 2 workers, so
that data loading never limits training.

Images: the real COCO images of ../shared/data/mmpose_coco when present (their instances
repeated to make an epoch), else synthetic 640x480 JPEGs written to a temp dir.

    .venv/bin/python benchmarks/data_pipeline.py [--samples 240] [--steps 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from posetune.codecs.build import build_codec
from posetune.config.schema import AugmentConfig, CodecConfig, DataConfig
from posetune.data.datamodule import KeypointDataModule
from posetune.data.records import KeypointDataset

INPUT = (192, 256)  # (w, h)
BATCH = 8
TYPICAL_AUGMENT = AugmentConfig(flip_prob=0.5, scale=(0.75, 1.25), shift=0.16, rotate=30, rotate_prob=0.6, shear=5,
                                half_body_prob=0.3, color_jitter_prob=0.5, blur_prob=0.1, noise_prob=0.1,
                                occlusion_prob=0.3)


def _coco_data() -> KeypointDataset | None:
    from posetune.data.formats import read_dataset

    labels = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mmpose_coco" / "coco" / "test_coco.json"
    return read_dataset(labels) if labels.exists() else None


def _synthetic_data(tmp: Path) -> KeypointDataset:
    import cv2

    from posetune.data.synthetic import synthetic_dataset

    ds, images = synthetic_dataset(8, "coco17", size=(640, 480), seed=0, people_per_image=2)
    for rec, img in zip(ds.images, images):
        rec.file_name = rec.file_name.replace(".png", ".jpg")
        path = tmp / rec.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    ds.root = tmp
    return ds


def _repeat(ds: KeypointDataset, n_samples: int) -> KeypointDataset:
    per_round = max(1, ds.num_instances)
    rounds = max(1, -(-n_samples // per_round))
    return ds.with_images([im for _ in range(rounds) for im in ds.images])


def pipeline_rate(data: KeypointDataset, workers: int, epochs: int = 2) -> float:
    """Samples/s of the training DataLoader (worker start-up and the first batch excluded)."""
    codec = build_codec(CodecConfig(type="msra", input_size=INPUT))
    cfg = DataConfig(batch_size=BATCH, workers=workers, val_fraction=0.0, min_keypoints=1, augment=TYPICAL_AUGMENT)
    dm = KeypointDataModule.from_datasets(data, codec=codec, cfg=cfg, seed=0)
    loader = dm.train_dataloader()
    n, t0 = 0, None
    for epoch in range(epochs):
        dm.set_epoch(epoch)
        for batch in loader:
            if t0 is None:
                t0 = time.perf_counter()
                continue
            n += batch["image"].shape[0]
    rate = n / (time.perf_counter() - t0)
    del loader
    return rate


def train_step_rate(backbone: str, num_keypoints: int = 17, steps: int = 4) -> float:
    """Samples/s of forward + backward + AdamW step, batch 8 at 256x192, on pre-made tensors."""
    import timm
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = timm.create_model(backbone, features_only=True, pretrained=False)
            self.head = nn.Conv2d(self.backbone.feature_info.channels()[-1], num_keypoints, 1)

        def forward(self, x):
            return self.head(self.backbone(x)[-1])

    torch.manual_seed(0)
    net = Net().train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.randn(BATCH, 3, INPUT[1], INPUT[0])
    with torch.no_grad():
        target = torch.rand_like(net(x))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(net(x), target)
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=240, help="samples per epoch (instances repeated)")
    ap.add_argument("--steps", type=int, default=4, help="timed training steps per model")
    ap.add_argument("--models", default="resnet18,hrnet_w32")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        data = _coco_data()
        source = "COCO val2017 images (shared/data/mmpose_coco)"
        if data is None:
            data, source = _synthetic_data(Path(tmp)), "synthetic 640x480 JPEGs"
        data = _repeat(data, args.samples)
        rates = {w: pipeline_rate(data, w) for w in (0, 1, 2)}
    steps = {m: train_step_rate(m, steps=args.steps) for m in args.models.split(",")}

    print(f"posetune data pipeline benchmark — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f}")
    print(f"pipeline: {source}, {data.num_instances} samples/epoch, input 256x192, MSRA heatmaps 64x48, "
          f"batch {BATCH}, all augmentations on (typical settings)")
    print()
    print(f"| {'what':<50} | {'samples/s':>9} |")
    print(f"|{'-' * 52}|{'-' * 11}|")
    for w, r in rates.items():
        print(f"| {f'data pipeline, {w} worker(s)':<50} | {r:>9.1f} |")
    for m, r in steps.items():
        print(f"| {f'train step {m} + 1x1 head (fwd+bwd+AdamW)':<50} | {r:>9.1f} |")
    base = steps.get("resnet18") or next(iter(steps.values()))
    print()
    print(f"ratio pipeline (2 workers) / {'resnet18' if 'resnet18' in steps else next(iter(steps))} step rate: "
          f"{rates[2] / base:.1f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
