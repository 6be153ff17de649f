"""What posetune stores in every checkpoint besides the weights: enough to rebuild the model
(architecture, KeypointSpec, codec), the resolved config and the package versions."""

from __future__ import annotations

import platform
from typing import Any

from torch import nn

FORMAT_VERSION = 1


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("posetune", "torch", "torchvision", "timm", "lightning", "numpy", "opencv-python-headless"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def checkpoint_metadata(model: nn.Module, cfg: Any | None = None) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "model": model.describe(),
        "spec": model.spec.to_dict(),
        "config": cfg.to_dict() if cfg is not None else None,
        "versions": package_versions(),
    }
