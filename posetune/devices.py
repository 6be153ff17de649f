"""Choosing the torch device from a user's ``--device`` value."""

from __future__ import annotations

import torch

from posetune.errors import ConfigError, InferenceError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``'auto'``/None -> CUDA when available, else CPU; a CUDA request without a GPU is an
    InferenceError naming ``--device``."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InferenceError("CUDA was requested but no CUDA GPU is available", where="--device",
                             hint="use --device cpu (or auto)")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device '{device}'", where="--device", hint="use cpu, cuda or auto") from None
