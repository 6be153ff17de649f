"""Tiny, fast training setups shared by the engine tests (tests/test_engine_*.py).

Not a test module: ``import engine_setup`` from a test (pytest puts ``tests/`` on sys.path).

* :func:`write_data` writes a synthetic top-view mouse dataset (4 keypoints, 64x64 images) to
  disk: 8 training and 4 validation images, each with one labelled animal.
* :func:`make_cfg` is the config of a small run over that data: the plain-CNN backbone with a
  regression head at 32x32 input (fast on one CPU thread), batch 4 (2 steps per epoch),
  workers 0, no progress bar; any ``key.path=value`` override on top.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import torch

from posetune.config import Config, load_config

#: columns of metrics.csv that depend on wall-clock time
TIMING_COLUMNS = ("images_per_s",)


def write_data(root: Path, n_train: int = 8, n_val: int = 4) -> tuple[Path, Path]:
    """(train json, val json) of a synthetic mouse4 dataset written under ``root``."""
    from posetune.data.synthetic import make_synthetic_dataset

    train = make_synthetic_dataset(root / "train", n_images=n_train, spec="mouse4", size=(64, 64), seed=1)
    val = make_synthetic_dataset(root / "val", n_images=n_val, spec="mouse4", size=(64, 64), seed=2)
    return train, val


def cnn_overrides(input_size: int = 32) -> list[str]:
    return ["model.head.type=cnn", "model.head.hidden_dim=16", "model.codec.type=regression",
            f"model.codec.input_size=[{input_size},{input_size}]"]


def resnet_overrides(input_size: int = 64) -> list[str]:
    return ["model.backbone.name=resnet18", "model.head.type=deconv", "model.head.deconv_layers=1",
            "model.head.deconv_channels=16", "model.codec.type=msra",
            f"model.codec.input_size=[{input_size},{input_size}]"]


def make_cfg(out: Path, data: tuple[Path, Path], *overrides: str, model: Sequence[str] | None = None) -> Config:
    """A validated Config for a tiny CPU run writing to ``out``."""
    base = [
        f"out={out}", f"data.train={data[0]}", f"data.val={data[1]}",
        "data.batch_size=4", "data.workers=0", "data.cache_images=true",
        "train.epochs=2", "train.progress=false", "train.accelerator=cpu", "train.log_every=1",
    ]
    return load_config(None, base + list(cnn_overrides() if model is None else model) + list(overrides))


def read_csv(path: Path) -> list[dict[str, Any]]:
    from posetune.engine.callbacks import read_metrics_csv

    return read_metrics_csv(path)


def comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """metrics.csv rows without the wall-clock columns."""
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def assert_rows_close(a: list[dict[str, Any]], b: list[dict[str, Any]], rel: float = 1e-6) -> None:
    a, b = comparable(a), comparable(b)
    assert len(a) == len(b), f"{len(a)} rows vs {len(b)}"
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys(), (sorted(ra), sorted(rb))
        for k in ra:
            va, vb = ra[k], rb[k]
            if va is None or vb is None:
                assert va is vb, (k, va, vb)
            else:
                assert abs(va - vb) <= rel * max(1.0, abs(va), abs(vb)), f"epoch {ra['epoch']} {k}: {va} != {vb}"


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter and buffer."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f))
