"""Overhead of ``posetune train`` over a bare PyTorch training loop (CPU).

For each model (ResNet-18 + SimpleBaseline deconv head, HRNet-W18-small + 1x1 heatmap head; MSRA
heatmaps, input 256x192 (h x w), batch 8):

* engine: :func:`posetune.engine.fit.train` on a synthetic COCO-17 dataset written to disk
  (PNG decode, augmentation and heatmap encoding in 2 DataLoader workers), validation off,
  progress bar off, with every real callback (metrics.csv, overfit warning, best/last
  checkpoints each epoch, TensorBoard logger, per-batch reseeding);
* bare: forward + loss + backward + AdamW step over pre-made tensors of the same shapes on the
  same model, the same number of steps.

Reported: images/s in steady state (from the end of the first step to the end of the last,
so the engine's number includes waiting for data, epoch ends and checkpoint writes, but not
start-up), the ratio engine/bare (goal >= 0.9), the engine's in-epoch images/s (epoch ends
excluded: what a long epoch approaches), end-to-end images/s of the whole ``train()``
call (start-up, model build, summary and plot included), and peak RSS (``ru_maxrss``) of the
process (for the engine also the largest DataLoader worker). Every measurement runs in its own
subprocess so that the peak RSS is its own.

    .venv/bin/python benchmarks/train_overhead.py [--images 32] [--epochs 3] [--workers 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {
    "resnet18": ["model.backbone.name=resnet18", "model.head.type=deconv"],
    "hrnet_w18_small": ["model.backbone.name=hrnet_w18_small", "model.head.type=heatmap"],
}
BATCH = 8


def config_overrides(model: str, labels: Path, out: Path, epochs: int, workers: int) -> list[str]:
    return [f"out={out}", f"data.train={labels}", "data.val_fraction=0", f"data.batch_size={BATCH}",
            f"data.workers={workers}", "model.codec.type=msra", "model.codec.input_size=[192,256]",
            f"train.epochs={epochs}", "train.validate_every=0", "train.progress=false", "train.accelerator=cpu",
            *MODELS[model]]


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # KiB on Linux


def steady_rate(ends: list[float], sizes: list[int], start: float) -> float:
    """Images/s from the end of the first step to the end of the last."""
    return sum(sizes[1:]) / (ends[-1] - ends[0]) if len(ends) > 1 else sum(sizes) / (ends[-1] - start)


def in_epoch_rate(ends: list[float], sizes: list[int], epochs: list[int]) -> float:
    """Images/s over the steps whose previous step was in the same epoch (epoch ends excluded)."""
    pairs = [(ends[i] - ends[i - 1], sizes[i]) for i in range(1, len(ends)) if epochs[i] == epochs[i - 1]]
    return sum(n for _, n in pairs) / sum(dt for dt, _ in pairs) if pairs else float("nan")


# ----------------------------------------------------------------------------- children
def run_engine(model: str, labels: Path, epochs: int, workers: int) -> dict:
    import lightning as L

    from posetune.config import load_config
    from posetune.engine.fit import train

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.sizes: list[int] = []
            self.epochs: list[int] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.ends.append(time.perf_counter())
            self.sizes.append(int(batch["image"].shape[0]))
            self.epochs.append(trainer.current_epoch)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, config_overrides(model, labels, Path(tmp) / "run", epochs, workers))
        timer = StepTimer()
        t0 = time.perf_counter()
        result = train(cfg, extra_callbacks=[timer], progress=False, quiet=True)
        wall = time.perf_counter() - t0
    return {"steps": len(timer.ends), "steady_ips": steady_rate(timer.ends, timer.sizes, t0),
            "in_epoch_ips": in_epoch_rate(timer.ends, timer.sizes, timer.epochs),
            "e2e_ips": sum(timer.sizes) / wall, "epochs": result.summary["epochs_run"],
            "rss_mib": peak_rss_mib(), "workers_rss_mib": peak_rss_mib(resource.RUSAGE_CHILDREN)}


def run_bare(model: str, labels: Path, epochs: int, workers: int, steps: int) -> dict:
    import torch

    from posetune.config import load_config
    from posetune.data.formats import read_dataset
    from posetune.engine.losses import build_loss
    from posetune.models.build import build_model

    t0 = time.perf_counter()
    cfg = load_config(None, config_overrides(model, labels, Path("unused"), epochs, workers))
    spec = read_dataset(labels).spec
    torch.manual_seed(0)
    net = build_model(cfg.model, spec)
    loss_fn = build_loss(cfg.loss, net.codec, spec)
    w, h = cfg.model.codec.input_size
    hw, hh = net.codec.heatmap_size
    k = spec.num_keypoints
    images = torch.randint(0, 256, (BATCH, 3, h, w), dtype=torch.uint8)
    targets = {"heatmaps": torch.rand(BATCH, k, hh, hw), "keypoint_weights": torch.ones(BATCH, k)}
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.train.optimizer.lr, weight_decay=cfg.train.optimizer.weight_decay)
    net.train()
    ends = []
    for _ in range(steps):
        loss, _ = loss_fn(net(images), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ends.append(time.perf_counter())
    return {"steps": steps, "steady_ips": steady_rate(ends, [BATCH] * steps, t0),
            "e2e_ips": BATCH * steps / (time.perf_counter() - t0), "rss_mib": peak_rss_mib()}


# ----------------------------------------------------------------------------- parent
def child(args: list[str]) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def best(results: list[dict]) -> dict:
    """The fastest of repeated runs (rates: max; peak RSS: max over the runs)."""
    out = dict(max(results, key=lambda r: r["steady_ips"]))
    for k in out:
        if k.endswith("_ips"):
            out[k] = max(r[k] for r in results)
        elif k.endswith("rss_mib"):
            out[k] = max(r[k] for r in results)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=32, help="synthetic training images (one person each)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeat", type=int, default=2,
                    help="alternate bare/engine runs this many times and keep each one's best "
                         "(shared machines are noisy)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        mode, model, labels, epochs, workers, *rest = a.child
        if mode == "engine":
            res = run_engine(model, Path(labels), int(epochs), int(workers))
        else:
            res = run_bare(model, Path(labels), int(epochs), int(workers), int(rest[0]))
        print(json.dumps(res))
        return

    import torch

    from posetune.data.synthetic import make_synthetic_dataset

    print(f"posetune train vs bare loop — CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), batch {BATCH}, input 256x192, "
          f"{a.images} images x {a.epochs} epochs, {a.workers} workers")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        labels = make_synthetic_dataset(Path(tmp) / "data", n_images=a.images, spec="coco17", size=(320, 320), seed=0)
        steps = -(-a.images // BATCH) * a.epochs
        for model in a.models.split(","):
            engs, bares = [], []
            for _ in range(max(1, a.repeat)):
                bares.append(child(["bare", model, str(labels), str(a.epochs), str(a.workers), str(steps)]))
                engs.append(child(["engine", model, str(labels), str(a.epochs), str(a.workers)]))
            rows.append((model, best(engs), best(bares)))
    header = ("model", "steps", "bare img/s", "engine img/s", "ratio", "engine in-epoch img/s", "in-epoch ratio",
              "engine end-to-end img/s", "bare peak RSS MiB", "engine peak RSS MiB (worker)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for model, eng, bare in rows:
        print(f"| {model} | {eng['steps']} | {bare['steady_ips']:.2f} | {eng['steady_ips']:.2f} | "
              f"{eng['steady_ips'] / bare['steady_ips']:.2f} | {eng['in_epoch_ips']:.2f} | "
              f"{eng['in_epoch_ips'] / bare['steady_ips']:.2f} | {eng['e2e_ips']:.2f} | {bare['rss_mib']:.0f} | "
              f"{eng['rss_mib']:.0f} ({eng['workers_rss_mib']:.0f}) |")
    print("ratio: steady-state engine / bare (epoch ends with their checkpoint writes included); in-epoch: "
          "epoch ends excluded; end-to-end: the whole train() call incl. start-up")


if __name__ == "__main__":
    main()
