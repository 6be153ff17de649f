"""Optimiser parameter groups, LR schedules and freezing helpers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from posetune.config.schema import OptimizerConfig, SchedulerConfig
from posetune.engine import freeze as fz
from posetune.engine.optim import build_optimizer, build_scheduler, lr_factor_fn, param_groups
from posetune.errors import ConfigError


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3))
        self.head = nn.Conv2d(4, 2, 1)

    def stages(self):
        return [("backbone.stem", nn.ModuleList([self.backbone[0], self.backbone[1]])),
                ("backbone.body", self.backbone[2]), ("head", self.head)]

    def forward(self, x):
        return self.head(self.backbone(x))


def group_by_name(groups):
    return {g["name"]: g for g in groups}


def test_param_groups_lr_mult_decay_and_no_decay():
    m = Tiny()
    g = group_by_name(param_groups(m, OptimizerConfig(lr=1.0, weight_decay=0.1, backbone_lr_mult=0.1,
                                                      layer_lr_decay=0.5)))
    assert g["head"]["lr"] == 1.0
    assert g["backbone.body"]["lr"] == pytest.approx(0.1 * 0.5)
    assert g["backbone.stem"]["lr"] == pytest.approx(0.1 * 0.25)
    # biases and BN weights go without weight decay
    assert g["backbone.stem.no_decay"]["weight_decay"] == 0.0
    assert all(p.ndim <= 1 for p in g["backbone.stem.no_decay"]["params"])
    assert g["backbone.stem"]["weight_decay"] == 0.1
    n = sum(len(x["params"]) for x in g.values())
    assert n == len(list(m.parameters()))


@pytest.mark.parametrize("kind", ["adamw", "adam", "sgd"])
def test_optimizers_build_and_step(kind):
    m = Tiny()
    opt = build_optimizer(m, OptimizerConfig(type=kind, lr=0.01, nesterov=kind == "sgd"))
    loss = m(torch.randn(2, 3, 8, 8)).pow(2).mean()
    loss.backward()
    before = m.head.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, m.head.weight)


def test_warmup_then_step_decay():
    f = lr_factor_fn(SchedulerConfig(type="step", step_size=2, gamma=0.1, warmup=4, warmup_unit="iters",
                                     warmup_start_factor=0.25), steps_per_epoch=10, epochs=6, base_lr=1.0)
    assert f(0) == pytest.approx(0.25)
    assert f(2) == pytest.approx(0.25 + 0.75 * 0.5)
    assert f(4) == 1.0 and f(19) == 1.0
    assert f(20) == pytest.approx(0.1) and f(40) == pytest.approx(0.01)


def test_multistep_and_warmup_epochs():
    f = lr_factor_fn(SchedulerConfig(type="multistep", milestones=[3, 5], gamma=0.5, warmup=1, warmup_unit="epochs"),
                     steps_per_epoch=4, epochs=8, base_lr=1.0)
    assert f(0) == pytest.approx(0.001)
    assert f(4) == 1.0
    assert f(12) == 0.5 and f(20) == 0.25


def test_cosine_ends_at_min_lr():
    f = lr_factor_fn(SchedulerConfig(type="cosine", min_lr=0.01), steps_per_epoch=5, epochs=4, base_lr=0.1)
    assert f(0) == 1.0
    assert f(10) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(20) == pytest.approx(0.1)


def test_scheduler_state_resumes():
    m = Tiny()
    opt = build_optimizer(m, OptimizerConfig(lr=1.0))
    cfg = SchedulerConfig(type="cosine", warmup=3)
    s = build_scheduler(opt, cfg, steps_per_epoch=5, epochs=4, base_lr=1.0)
    for _ in range(7):
        opt.step()
        s.step()
    state_opt, state_s = opt.state_dict(), s.state_dict()
    lr7 = [g["lr"] for g in opt.param_groups]
    m2 = Tiny()
    opt2 = build_optimizer(m2, OptimizerConfig(lr=1.0))
    s2 = build_scheduler(opt2, cfg, steps_per_epoch=5, epochs=4, base_lr=1.0)
    opt2.load_state_dict(state_opt)
    s2.load_state_dict(state_s)
    assert [g["lr"] for g in opt2.param_groups] == lr7
    opt.step(); s.step(); opt2.step(); s2.step()
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    assert math.isclose(opt.param_groups[-1]["lr"], lr_factor_fn(cfg, 5, 4, 1.0)(8))


def test_freeze_by_stage_prefix_and_glob():
    m = Tiny()
    names = fz.set_trainable(m, ["backbone.stem"], False)
    assert set(names) == {"backbone.0.weight", "backbone.0.bias", "backbone.1.weight", "backbone.1.bias"}
    assert fz.set_trainable(m, ["head"], False) == ["head.weight", "head.bias"]
    assert set(fz.set_trainable(m, ["*.bias"], True)) == {"backbone.0.bias", "backbone.1.bias", "backbone.2.bias",
                                                          "head.bias"}
    with pytest.raises(ConfigError) as e:
        fz.set_trainable(m, ["backbone.layer9"], False)
    assert "train.freeze" in str(e.value) and "backbone.stem" in str(e.value)


def test_frozen_bn_goes_to_eval():
    m = Tiny()
    fz.set_trainable(m, ["backbone.stem"], False)
    m.train()
    fz.apply_bn_eval(m, freeze_all_bn=False)
    assert not m.backbone[1].training
    m2 = Tiny()
    m2.train()
    fz.apply_bn_eval(m2, freeze_all_bn=False)
    assert m2.backbone[1].training
    fz.apply_bn_eval(m2, freeze_all_bn=True)
    assert not m2.backbone[1].training


def test_unfreeze_schedule():
    m = Tiny()
    frozen = ["backbone.stem", "backbone.body"]
    assert fz.unfreeze_schedule(m, frozen, [], every=2, epoch=1) == []
    assert fz.unfreeze_schedule(m, frozen, [], every=2, epoch=2) == ["backbone.body"]
    assert fz.unfreeze_schedule(m, frozen, [], every=2, epoch=9) == ["backbone.body", "backbone.stem"]
    assert fz.unfreeze_schedule(m, frozen, ["backbone.stem"], every=1, epoch=5) == ["backbone.stem"]
