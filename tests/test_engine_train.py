"""Each training control of posetune.engine acts inside a real (tiny) Lightning run.

The runs use a synthetic mouse dataset (8 train / 4 val images) and the plain-CNN regression
model at 32x32 input (see tests/engine_setup.py); callbacks passed through ``extra_callbacks``
observe what the trainer does (weights, gradients, learning rates) without changing it.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from engine_setup import make_cfg, state, write_data
from posetune.engine.fit import train

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    return write_data(tmp_path_factory.mktemp("engine_data"))


class Snapshots(L.Callback):
    """Model state at the start of training and after every epoch."""

    def __init__(self) -> None:
        self.start: dict[str, torch.Tensor] = {}
        self.epochs: list[dict[str, torch.Tensor]] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = state(pl_module.model)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs.append(state(pl_module.model))

    @property
    def end(self) -> dict[str, torch.Tensor]:
        return self.epochs[-1]


def run(tmp_path: Path, data, *overrides: str, name: str = "run", callbacks=(), model=None):
    cfg = make_cfg(tmp_path / name, data, *overrides, model=model)
    snaps = Snapshots()
    result = train(cfg, extra_callbacks=[snaps, *callbacks], progress=False, quiet=True)
    return result, snaps


def flat(sd: dict[str, torch.Tensor], keys=None) -> torch.Tensor:
    keys = [k for k in sd if sd[k].is_floating_point()] if keys is None else keys
    return torch.cat([sd[k].reshape(-1).double() for k in keys])


# ----------------------------------------------------------------------------- accumulation
def test_gradient_accumulation_equals_big_batch(tmp_path, data):
    """batch 4 x accumulate 2 makes the same SGD step as batch 8 (BN frozen: per-sample losses are
    independent of the batch), while one step on batch 4 alone differs."""
    common = ["train.epochs=1", "train.validate_every=0", "train.freeze_bn=true", "train.optimizer.type=sgd",
              "train.optimizer.momentum=0", "train.optimizer.weight_decay=0", "train.optimizer.lr=0.5",
              "train.scheduler.type=constant"]
    _, big = run(tmp_path, data, *common, "data.batch_size=8", name="big")
    _, acc = run(tmp_path, data, *common, "data.batch_size=4", "train.accumulate=2", name="acc")
    _, one = run(tmp_path, data, *common, "data.batch_size=4", "train.max_steps=1", name="one")
    keys = [k for k, v in big.start.items() if v.is_floating_point() and "running" not in k]
    w0 = flat(big.start, keys)
    assert torch.equal(w0, flat(acc.start, keys)) and torch.equal(w0, flat(one.start, keys))  # same init
    d_big, d_acc, d_one = (flat(s.end, keys) - w0 for s in (big, acc, one))
    assert d_big.norm() > 1e-4
    assert (d_acc - d_big).norm() <= 1e-4 * d_big.norm()
    assert (d_one - d_big).norm() > 0.05 * d_big.norm()


# ----------------------------------------------------------------------------- clipping
class GradNorms(L.Callback):
    """Global gradient norm before clipping (on_before_optimizer_step runs before Lightning
    clips, see lightning.pytorch.plugins.precision.Precision._after_closure) and after it (an
    optimizer step post-hook: the gradients the step used)."""

    def __init__(self) -> None:
        self.before: list[float] = []
        self.after: list[float] = []

    @staticmethod
    def norm(optimizer) -> float:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))

    def on_train_start(self, trainer, pl_module) -> None:
        trainer.optimizers[0].register_step_post_hook(lambda opt, args, kwargs: self.after.append(self.norm(opt)))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.before.append(self.norm(optimizer))


def test_clip_grad_bounds_the_norm_the_optimizer_sees(tmp_path, data):
    norms = GradNorms()
    run(tmp_path, data, "train.clip_grad=0.005", "train.epochs=1", callbacks=[norms])
    assert len(norms.after) == len(norms.before) == 2
    assert all(b > 0.005 for b in norms.before), norms.before  # the gradients needed clipping
    assert all(a <= 0.005 * (1 + 1e-4) for a in norms.after), norms.after
    assert all(a == pytest.approx(0.005, rel=1e-3) for a in norms.after)

    unclipped = GradNorms()
    run(tmp_path, data, "train.epochs=1", name="noclip", callbacks=[unclipped])
    assert unclipped.after == pytest.approx(unclipped.before) and unclipped.after[0] > 0.005


# ----------------------------------------------------------------------------- freezing
def test_freeze_keeps_frozen_weights_bit_identical(tmp_path, data):
    _, s = run(tmp_path, data, "train.freeze=[backbone.block1, backbone.block2]")
    frozen = [k for k in s.start if k.startswith(("backbone.blocks.0.", "backbone.blocks.1."))]
    trained = [k for k in s.start if k.startswith(("backbone.blocks.3.", "head.")) and "num_batches" not in k]
    assert frozen and trained
    for k in frozen:  # weights and the BN running statistics of frozen stages
        assert torch.equal(s.start[k], s.end[k]), k
    assert all(not torch.equal(s.start[k], s.end[k]) for k in trained)


def test_freeze_bn_keeps_running_stats(tmp_path, data):
    _, s = run(tmp_path, data, "train.freeze_bn=true")
    stats = [k for k in s.start if "running_" in k or "num_batches_tracked" in k]
    assert len(stats) == 3 * 8  # 8 BN layers in the plain CNN
    for k in stats:
        assert torch.equal(s.start[k], s.end[k]), k
    bn_weights = [k for k in s.start if k.startswith("backbone.blocks.3.1.")
                  and k.endswith(("weight", "bias"))]
    assert all(not torch.equal(s.start[k], s.end[k]) for k in bn_weights)  # BN affine still trains

    _, s2 = run(tmp_path, data, name="bn_free")  # control: without freeze_bn the statistics move
    assert not torch.equal(s2.start["backbone.blocks.0.1.running_mean"], s2.end["backbone.blocks.0.1.running_mean"])


def test_gradual_unfreezing_starts_each_stage_at_its_epoch(tmp_path, data):
    _, s = run(tmp_path, data, "train.epochs=3", "train.validate_every=0", "train.unfreeze.every=1",
               "train.freeze=[backbone.block3, backbone.block4]")
    b4 = "backbone.blocks.3.0.weight"  # unfrozen first (last frozen group), at epoch 1
    b3 = "backbone.blocks.2.0.weight"  # at epoch 2
    head = "head.fc.weight"
    seq = [s.start, *s.epochs]  # state before training, after epoch 0, 1, 2

    def moved(k, e):  # did weight k change during epoch e?
        return not torch.equal(seq[e][k], seq[e + 1][k])

    assert [moved(head, e) for e in range(3)] == [True, True, True]
    assert [moved(b4, e) for e in range(3)] == [False, True, True]
    assert [moved(b3, e) for e in range(3)] == [False, False, True]
    # the BN layers of an unfrozen stage train again (running statistics update)
    bn4 = "backbone.blocks.3.1.running_mean"
    assert [moved(bn4, e) for e in range(3)] == [False, True, True]


# ----------------------------------------------------------------------------- early stopping
class CraftedMetric(L.Callback):
    """Logs ``val_crafted`` = a fixed sequence, one value per validation epoch."""

    def __init__(self, values):
        self.values = list(values)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        pl_module.log("val_crafted", float(self.values[trainer.current_epoch]))


def test_early_stopping_stops_at_the_right_epoch(tmp_path, data):
    # best at epoch 2 (3.0); epochs 3 and 4 do not improve -> patience 2 is used up after epoch 4
    crafted = CraftedMetric([5.0, 4.0, 3.0, 3.5, 3.2, 2.0, 1.0, 0.5, 0.4, 0.3])
    result, _ = run(tmp_path, data, "train.epochs=10", "train.limit_train_batches=1", "train.early_stop.enabled=true",
                    "train.early_stop.monitor=val_crafted", "train.early_stop.patience=2", callbacks=[crafted])
    assert [r["epoch"] for r in result.rows] == [0, 1, 2, 3, 4]
    assert [r["val_crafted"] for r in result.rows] == pytest.approx([5.0, 4.0, 3.0, 3.5, 3.2])
    assert result.summary["stopped_early"] is True and result.summary["epochs_run"] == 5


# ----------------------------------------------------------------------------- schedules
class StepLRs(L.Callback):
    """The head's learning rate used by every optimizer step."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.lrs.append(optimizer.param_groups[-1]["lr"])


SCHEDULES = {
    # 2 steps per epoch, 3 epochs, base lr 0.01
    "warmup3_step": (["train.scheduler.type=step", "train.scheduler.step_size=1", "train.scheduler.gamma=0.5",
                      "train.scheduler.warmup=3", "train.scheduler.warmup_start_factor=0.1"],
                     [0.1, 0.4, 0.5 * 0.7, 0.5, 0.25, 0.25], [0.35, 0.25, 0.125]),
    "warmup1epoch_multistep": (["train.scheduler.type=multistep", "train.scheduler.milestones=[2]",
                                "train.scheduler.gamma=0.1", "train.scheduler.warmup=1",
                                "train.scheduler.warmup_unit=epochs", "train.scheduler.warmup_start_factor=0.2"],
                               [0.2, 0.6, 1.0, 1.0, 0.1, 0.1], [1.0, 0.1, 0.1]),
    "cosine": (["train.scheduler.type=cosine"],
               [0.5 * (1 + math.cos(math.pi * s / 6)) for s in range(6)],
               [0.5 * (1 + math.cos(math.pi * s / 6)) for s in (2, 4, 6)]),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedules_drive_the_lr(tmp_path, data, name):
    overrides, per_step, per_epoch = SCHEDULES[name]
    lrs = StepLRs()
    result, _ = run(tmp_path, data, "train.epochs=3", "train.validate_every=0", "train.optimizer.lr=0.01",
                    *overrides, callbacks=[lrs])
    assert lrs.lrs == pytest.approx([0.01 * f for f in per_step], rel=1e-9, abs=1e-15)
    # metrics.csv: the lr after each epoch's last step
    assert [r["lr"] for r in result.rows] == pytest.approx([0.01 * f for f in per_epoch], rel=1e-9, abs=1e-15)


# ----------------------------------------------------------------------------- optimisers
class OptimizerProbe(L.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        opt = trainer.optimizers[0]
        self.type = type(opt)
        self.groups = {g["name"]: (g["lr"], g["weight_decay"], len(g["params"])) for g in opt.param_groups}
        self.stage_sizes = {name: len(list(m.parameters())) for name, m in pl_module.model.stages()}


@pytest.mark.parametrize("kind,cls", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam),
                                      ("sgd", torch.optim.SGD)])
def test_optimizers_train(tmp_path, data, kind, cls):
    probe = OptimizerProbe()
    result, s = run(tmp_path, data, f"train.optimizer.type={kind}", "train.epochs=1", callbacks=[probe])
    assert probe.type is cls
    assert math.isfinite(result.rows[0]["train_loss"])
    assert not torch.equal(s.start["head.fc.weight"], s.end["head.fc.weight"])


def test_backbone_lr_mult_and_layer_decay_in_a_real_run(tmp_path, data):
    probe = OptimizerProbe()
    run(tmp_path, data, "train.optimizer.lr=0.01", "train.optimizer.backbone_lr_mult=0.1",
        "train.optimizer.layer_lr_decay=0.5", "train.optimizer.weight_decay=0.05", "train.scheduler.type=constant",
        "train.epochs=1", "train.validate_every=0", callbacks=[probe])
    stages = ["backbone.block1", "backbone.block2", "backbone.block3", "backbone.block4", "head"]
    assert list(probe.stage_sizes) == stages
    expected = {"head": 0.01, **{f"backbone.block{i + 1}": 0.01 * 0.1 * 0.5 ** (4 - i) for i in range(4)}}
    for name, lr in expected.items():
        assert probe.groups[name][0] == pytest.approx(lr)
        assert probe.groups[name + ".no_decay"][0] == pytest.approx(lr)
        assert probe.groups[name][1] == 0.05 and probe.groups[name + ".no_decay"][1] == 0.0
        assert probe.groups[name][2] + probe.groups[name + ".no_decay"][2] == probe.stage_sizes[name]


# ----------------------------------------------------------------------------- AMP
class AutocastProbe(L.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.precision = trainer.precision
        self.dtypes: list[torch.dtype] = []
        pl_module.model.backbone.register_forward_hook(lambda m, i, o: self.dtypes.append(o[-1].dtype))


def test_amp_on_cpu_is_bf16_autocast(tmp_path, data):
    probe = AutocastProbe()
    result, _ = run(tmp_path, data, "train.amp=true", "train.epochs=1", callbacks=[probe])
    assert probe.precision == "bf16-mixed"
    assert probe.dtypes and all(d == torch.bfloat16 for d in probe.dtypes)  # convolutions ran in bf16
    assert math.isfinite(result.rows[0]["train_loss"]) and math.isfinite(result.rows[0]["val_loss"])


# ----------------------------------------------------------------------------- NaN
class BatchLog(L.Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int]] = []  # (epoch, optimizer steps done, batch index)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append((trainer.current_epoch, trainer.global_step, batch_idx))


def test_diverging_run_stops_with_a_training_error(tmp_path, data):
    """A real divergence: SGD (momentum 0.9) at lr 1e6 overflows to NaN within a few steps."""
    from posetune.errors import TrainingError

    log = BatchLog()
    with pytest.raises(TrainingError) as e:
        run(tmp_path, data, "train.optimizer.type=sgd", "train.optimizer.lr=1e6", "train.scheduler.type=constant",
            "train.epochs=5", "train.validate_every=0", callbacks=[log])
    epoch, step, batch = log.seen[-1]  # the batch whose loss was not finite
    assert len(log.seen) < 10  # it stopped there
    msg = str(e.value)
    assert "loss is nan" in msg or "loss is inf" in msg
    assert f"at epoch {epoch}, step {step} (batch {batch})" in msg
    assert "train.optimizer.lr" in msg and "train.amp=false" in msg


# ----------------------------------------------------------------------------- load_from
class StartProbe(L.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.weights = state(pl_module.model)
        self.optimizer_state = dict(trainer.optimizers[0].state)
        self.step, self.epoch = trainer.global_step, trainer.current_epoch


def test_load_from_starts_from_the_weights_without_optimizer_state(tmp_path, data):
    first, _ = run(tmp_path, data, name="first")
    ckpt = torch.load(first.last_checkpoint, map_location="cpu", weights_only=False)
    assert ckpt["optimizer_states"][0]["state"]  # the file does hold optimiser state...
    probe = StartProbe()
    second, _ = run(tmp_path, data, f"model.load_from={first.last_checkpoint}", name="second", callbacks=[probe])
    saved = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    assert saved.keys() == probe.weights.keys()
    assert all(torch.equal(saved[k], probe.weights[k]) for k in saved)
    assert probe.optimizer_state == {} and probe.step == 0 and probe.epoch == 0  # ...that is not used
    assert [r["epoch"] for r in second.rows] == [0, 1]


# ----------------------------------------------------------------------------- run directory
def test_run_directory_contents(tmp_path, data):
    import json

    from engine_setup import csv_header

    result, snaps = run(tmp_path, data, "train.epochs=3", "train.checkpoint.keep_k=2")
    d = result.run_dir
    for f in ("config.yaml", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "metrics.csv", "summary.json",
              "curves.png"):
        assert (d / f).is_file(), f
    assert (d / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((d / "tb").rglob("events.out.tfevents.*"))
    header = csv_header(d / "metrics.csv")
    for col in ("epoch", "train_loss", "val_loss", "lr", "val_PCK@0.05", "val_EPE", "val_AP"):
        assert col in header
    rows = result.rows
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    summary = json.loads((d / "summary.json").read_text())
    val = [r["val_loss"] for r in rows]
    best_epoch = val.index(min(val))
    assert summary["best_epoch"] == best_epoch and summary["best_metrics"]["val_loss"] == pytest.approx(min(val))
    assert summary["wall_time_s"] > 0 and summary["images_per_s"] > 0
    # best.ckpt is the best epoch's model; keep_k=2 keeps the two best epochs
    best = torch.load(d / "checkpoints/best.ckpt", map_location="cpu", weights_only=False)
    assert best["epoch"] == best_epoch
    assert all(torch.equal(best["state_dict"]["model." + k], v) for k, v in snaps.epochs[best_epoch].items())
    kept = sorted(p.name for p in (d / "checkpoints").glob("epoch*.ckpt"))
    two_best = sorted(range(3), key=lambda e: val[e])[:2]
    assert kept == sorted(f"epoch{e:03d}.ckpt" for e in two_best)
    # the resolved config and the package versions travel in every checkpoint
    for name in ("best.ckpt", "last.ckpt", *kept):
        meta = torch.load(d / "checkpoints" / name, map_location="cpu", weights_only=False)["posetune"]
        assert meta["config"]["train"]["checkpoint"]["keep_k"] == 2 and meta["config"]["out"] == str(d)
        assert {"torch", "lightning", "python"} <= set(meta["versions"])
    assert summary["overfit_warning"] is None and summary["oom_events"] == []


# ----------------------------------------------------------------------------- OOM guard
class InjectOOM(L.Callback):
    """Fault injection: raise a real ``torch.OutOfMemoryError`` once, at the first batch of
    epoch 1 larger than ``above`` (memory cannot be exhausted safely in a test). Records the
    size of every batch and the number of batches behind every optimizer step."""

    def __init__(self, above: int = 2):
        self.above = above
        self.fired = False
        self.batches: list[tuple[int, int]] = []  # (epoch, batch size)
        self.per_step: list[int] = []
        self._since_step = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        n = int(batch["image"].shape[0])
        if not self.fired and trainer.current_epoch == 1 and n > self.above:
            self.fired = True
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected by the test)")
        self.batches.append((trainer.current_epoch, n))
        self._since_step += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.per_step.append(self._since_step)
        self._since_step = 0


def test_oom_guard_halves_the_batch_and_keeps_the_effective_batch(tmp_path, data):
    import json

    oom = InjectOOM()
    result, _ = run(tmp_path, data, "train.epochs=3", callbacks=[oom])
    assert oom.fired
    events = json.loads((result.run_dir / "summary.json").read_text())["oom_events"]
    assert len(events) == 1 and events == result.oom_events
    assert events[0]["old_batch_size"] == 4 and events[0]["new_batch_size"] == 2 and events[0]["accumulate"] == 2
    assert events[0]["epoch"] == 1 and "out of memory" in events[0]["error"]
    assert [r["epoch"] for r in result.rows] == [0, 1, 2]  # epoch 1 re-run from last.ckpt, then epoch 2
    before = [n for e, n in oom.batches if e == 0]
    after = [n for e, n in oom.batches if e >= 1]
    assert before == [4, 4] and after == [2] * 8
    assert oom.per_step == [1, 1] + [2] * 4  # 4 samples per optimizer step before and after
    assert result.rows[-1]["step"] == 6
    from posetune.config import load_config

    saved = load_config(result.run_dir / "config.yaml")
    assert saved.data.batch_size == 2 and saved.train.accumulate == 2


# ----------------------------------------------------------------------------- overfitting warning
def test_overfit_warning_fires_when_val_rises_while_train_falls(tmp_path, data):
    """A real run whose validation labels are the training images with every keypoint mirrored
    through the box centre: fitting the training labels moves the predictions away from them,
    so val loss rises every epoch while train loss falls — the pattern the warning watches."""
    import numpy as np

    from posetune.data.formats import read_dataset, write_dataset

    ds = read_dataset(data[0])
    for rec in ds.images:
        for inst in rec.instances:
            x, y, w, h = inst.bbox
            kp = inst.keypoints.copy()
            kp[:, :2] = 2 * np.array([x + w / 2, y + h / 2]) - kp[:, :2]
            inst.keypoints = kp
    mirrored = data[0].parent / "mirrored.json"
    write_dataset(ds, mirrored, "coco")
    result, _ = run(tmp_path, (data[0], mirrored), "train.epochs=4", "train.freeze_bn=true",
                    "data.augment.enabled=false", "train.optimizer.lr=1e-4", "train.scheduler.type=constant",
                    "train.overfit_patience=3")
    train_loss = [r["train_loss"] for r in result.rows]
    val_loss = [r["val_loss"] for r in result.rows]
    assert all(b < a for a, b in zip(train_loss, train_loss[1:])) and all(b > a for a, b in zip(val_loss, val_loss[1:]))
    msg = result.summary["overfit_warning"]
    assert msg and "epoch 3" in msg and "augmentation" in msg and "early_stop" in msg


# ----------------------------------------------------------------------------- determinism
class DeterminismProbe(L.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.enabled = torch.are_deterministic_algorithms_enabled()


def test_deterministic_option_runs(tmp_path, data):
    before = torch.are_deterministic_algorithms_enabled()
    probe = DeterminismProbe()
    result, _ = run(tmp_path, data, "train.deterministic=true", "train.epochs=1", callbacks=[probe])
    assert probe.enabled and math.isfinite(result.rows[0]["train_loss"])
    assert torch.are_deterministic_algorithms_enabled() == before  # the global flag is restored afterwards
