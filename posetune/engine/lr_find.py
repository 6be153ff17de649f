"""LR range test (Lightning's Tuner.lr_find): loss vs. exponentially growing LR, a plot and a
suggestion (the steepest descent of the smoothed loss)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from posetune.config import Config
from posetune.errors import TrainingError
from posetune.io_utils import atomic_path, write_json_atomic


def find_lr(cfg: Config, *, min_lr: float = 1e-5, max_lr: float = 1e-1, num_steps: int = 100,
            out_dir: str | Path = "runs/lr_find", datamodule: Any = None, model: Any = None) -> dict[str, Any]:
    import lightning as L
    from lightning.pytorch.tuner import Tuner

    from posetune.engine.fit import build_components, quiet_lightning
    from posetune.engine.module import PoseModule

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm, model, loss = build_components(cfg, datamodule, model)
    module = PoseModule(model, loss, cfg, val_data=None)
    # max_epochs=-1: the range test runs num_steps steps (Tuner sets max_steps) however few
    # batches an epoch has and whatever train.epochs says
    trainer = L.Trainer(default_root_dir=str(out_dir), max_epochs=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator={"cuda": "gpu"}.get(cfg.train.accelerator, cfg.train.accelerator),
                        devices=1, limit_val_batches=0, num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        finder = Tuner(trainer).lr_find(module, datamodule=dm, min_lr=min_lr, max_lr=max_lr, num_training=num_steps,
                                        update_attr=False, early_stop_threshold=4.0)
    if finder is None or not finder.results.get("lr"):
        raise TrainingError("the LR range test recorded no steps", where="lr-find",
                            hint="check that the training set is not empty")
    suggestion = finder.suggestion()
    if suggestion is None:
        raise TrainingError("the loss did not decrease at any LR tried", where="lr-find",
                            hint="widen --min-lr/--max-lr or check the data")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = finder.plot(suggest=True, show=False)
    plot = out_dir / "lr_find.png"
    with atomic_path(plot) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    result = {"suggestion": float(suggestion), "lr": [float(x) for x in finder.results["lr"]],
              "loss": [float(x) for x in finder.results["loss"]], "plot": str(plot)}
    write_json_atomic(out_dir / "lr_find.json", result)
    return result
