"""posetune: fine-tune pose (keypoint) and video action models on small custom datasets.

The Python API mirrors the CLI (names load lazily, so ``import posetune`` stays fast)::

    import posetune
    cfg = posetune.load_config("configs/body/coco17_resnet18.yaml", ["data.train=labels.json"])
    run = posetune.train(cfg)
    ds = posetune.read_dataset("labels.json")
    metrics, preds = posetune.evaluate_model(posetune.load_model(run.best_checkpoint), ds)
    people = posetune.Predictor.from_checkpoint(run.best_checkpoint).predict("photo.jpg")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_config": "posetune.config",
    "Config": "posetune.config",
    "read_dataset": "posetune.data.formats",
    "write_dataset": "posetune.data.formats",
    "KeypointDataset": "posetune.data.records",
    "KeypointSpec": "posetune.data.spec",
    "get_spec": "posetune.data.spec",
    "check_dataset": "posetune.data.check",
    "split_dataset": "posetune.data.split",
    "build_model": "posetune.models.build",
    "load_model": "posetune.models.checkpoints",
    "load_any_model": "posetune.models.zoo",
    "train": "posetune.engine.fit",
    "evaluate_model": "posetune.engine.evaluate",
    "evaluate": "posetune.evaluation.summary",
    "Predictor": "posetune.inference.predictor",
    "PosetuneError": "posetune.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'posetune' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
