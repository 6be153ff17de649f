"""Optimisers (AdamW/Adam/SGD) with parameter groups, and warmup + decay schedules.

Parameter groups: one per model stage (``KeypointModel.stages()``) and per decay class.
* ``backbone_lr_mult`` scales the LR of every stage except the head;
* ``layer_lr_decay`` (discriminative LRs) gives stage i of n the LR ``lr * decay**(n-1-i)``;
* ``no_decay_norm_bias`` puts biases and normalisation weights (1-D tensors) in a group with
  weight decay 0.

The schedule is a per-iteration ``LambdaLR``: a linear warmup (in iterations or epochs) times a
per-epoch decay (step, multistep, cosine, constant). Its state is the step count, so a resumed
run continues exactly where it stopped.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from posetune.config.schema import OptimizerConfig, SchedulerConfig


def param_groups(model: nn.Module, cfg: OptimizerConfig) -> list[dict]:
    """Parameter groups with per-group ``lr`` and ``weight_decay`` (all parameters, frozen too,
    so that gradual unfreezing needs no new optimiser)."""
    try:
        stages = list(model.stages())
    except (AttributeError, NotImplementedError):
        stages = [("model", model)]
    seen: set[int] = set()
    groups: list[dict] = []
    n = len(stages)
    for i, (name, module) in enumerate(stages):
        is_head = i == n - 1 and n > 1
        lr = cfg.lr
        if not is_head:
            lr *= cfg.backbone_lr_mult
        if cfg.layer_lr_decay is not None:
            lr *= cfg.layer_lr_decay ** (n - 1 - i)
        decay, no_decay = [], []
        for p in module.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            (no_decay if cfg.no_decay_norm_bias and p.ndim <= 1 else decay).append(p)
        for params, wd, suffix in ((decay, cfg.weight_decay, ""), (no_decay, 0.0, ".no_decay")):
            if params:
                groups.append({"params": params, "lr": lr, "weight_decay": wd, "name": name + suffix})
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:  # parameters outside every stage still train, at the base LR
        groups.append({"params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "name": "other"})
    return groups


def build_optimizer(model: nn.Module, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.type == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.type == "adam":
        # Adam's weight decay is L2 added to the gradient (as in torch.optim.Adam)
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


def lr_factor_fn(cfg: SchedulerConfig, steps_per_epoch: int, epochs: int, base_lr: float) -> Callable[[int], float]:
    """Multiplier of the base LR at optimiser step ``step`` (0-based)."""
    spe = max(1, int(steps_per_epoch))
    warmup_steps = int(round(cfg.warmup * (spe if cfg.warmup_unit == "epochs" else 1)))
    min_factor = cfg.min_lr / base_lr if base_lr > 0 else 0.0
    milestones = sorted(cfg.milestones)

    def factor(step: int) -> float:
        epoch = step // spe
        if cfg.type == "constant":
            f = 1.0
        elif cfg.type == "step":
            f = cfg.gamma ** (epoch // cfg.step_size)
        elif cfg.type == "multistep":
            f = cfg.gamma ** sum(1 for m in milestones if epoch >= m)
        else:  # cosine over the whole run, per iteration
            t = min(1.0, step / max(1, epochs * spe))
            f = min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t))
        if cfg.type in ("step", "multistep") and min_factor > 0:
            f = max(f, min_factor)
        if step < warmup_steps:
            start = cfg.warmup_start_factor
            f *= start + (1 - start) * step / warmup_steps
        return f

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, steps_per_epoch: int,
                    epochs: int, base_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(cfg, steps_per_epoch, epochs, base_lr))
