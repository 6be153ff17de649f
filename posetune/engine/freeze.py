"""Layer freezing, frozen BatchNorm and gradual unfreezing.

Patterns (``train.freeze``, ``train.unfreeze.groups``) name either a stage from
``KeypointModel.stages()`` (e.g. ``backbone.stem``, ``backbone.stages.0``, ``head``) or a
parameter-name prefix / glob (``backbone.layer1``, ``*.bn*``). Frozen parameters get
``requires_grad=False``: they have no gradient, so neither the optimiser step nor weight
decay touches them and they stay bit-identical.
"""

from __future__ import annotations

import fnmatch
from typing import Iterable

from torch import nn

from posetune.errors import ConfigError

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def stage_names(model: nn.Module) -> list[str]:
    stages = getattr(model, "stages", None)
    try:
        return [name for name, _ in stages()] if callable(stages) else []
    except NotImplementedError:
        return []


def resolve_pattern(model: nn.Module, pattern: str, key: str = "train.freeze") -> list[str]:
    """Parameter names selected by ``pattern`` (a stage name, a name prefix or a glob)."""
    params = dict(model.named_parameters())
    stages = dict(model.stages()) if stage_names(model) else {}
    if pattern in stages:
        ids = {id(p) for p in stages[pattern].parameters()}
        return [n for n, p in params.items() if id(p) in ids]
    if any(ch in pattern for ch in "*?["):
        names = [n for n in params if fnmatch.fnmatchcase(n, pattern)]
    else:
        names = [n for n in params if n == pattern or n.startswith(pattern + ".")]
    if not names:
        known = ", ".join(stages) if stages else "(model has no named stages)"
        raise ConfigError(f"pattern '{pattern}' matches no parameter of the model", where=f"config key {key}",
                          hint=f"use a stage name ({known}), a parameter-name prefix, or a glob like 'backbone.*'")
    return names


def set_trainable(model: nn.Module, patterns: Iterable[str], trainable: bool, key: str = "train.freeze") -> list[str]:
    """Set ``requires_grad`` of every parameter matched by ``patterns``; returns their names."""
    params = dict(model.named_parameters())
    changed: list[str] = []
    for pattern in patterns:
        for name in resolve_pattern(model, pattern, key):
            params[name].requires_grad_(trainable)
            changed.append(name)
    return changed


def frozen_bn_modules(model: nn.Module, freeze_all_bn: bool) -> list[nn.Module]:
    """BatchNorm layers to keep in eval mode: all of them with ``freeze_bn``, otherwise the
    ones whose parameters are all frozen (their running statistics must not drift either)."""
    out = []
    for m in model.modules():
        if isinstance(m, _BN_TYPES):
            ps = list(m.parameters(recurse=False))
            if freeze_all_bn or (ps and not any(p.requires_grad for p in ps)):
                out.append(m)
    return out


def apply_bn_eval(model: nn.Module, freeze_all_bn: bool) -> None:
    """Call after ``model.train()``: frozen BatchNorm layers go back to eval mode."""
    for m in frozen_bn_modules(model, freeze_all_bn):
        m.eval()


def unfreeze_schedule(model: nn.Module, frozen_patterns: list[str], groups: list[str], every: int,
                      epoch: int) -> list[str]:
    """Patterns to make trainable by ``epoch`` under gradual unfreezing.

    ``groups`` (default: the frozen patterns from the output end backwards) are unfrozen one
    more every ``every`` epochs: at epoch ``every`` the first group, at ``2*every`` the second...
    """
    if every <= 0:
        return []
    order = list(groups) if groups else list(reversed(frozen_patterns))
    n = min(len(order), epoch // every)
    return order[:n]
