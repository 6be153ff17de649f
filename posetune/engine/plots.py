"""Training curves (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curves(rows: list[dict[str, Any]], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from posetune.io_utils import atomic_path

    epochs = [r["epoch"] for r in rows]
    metric_keys = [k for k in rows[-1] if k.startswith("val_") and k != "val_loss"
                   and any(r.get(k) is not None for r in rows)]
    ncols = 2 if metric_keys else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4), squeeze=False)
    ax = axes[0][0]
    for key, label in (("train_loss", "train loss"), ("val_loss", "val loss")):
        pts = [(e, r[key]) for e, r in zip(epochs, rows) if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    if metric_keys:
        ax2 = axes[0][1]
        for key in metric_keys:
            pts = [(e, r[key]) for e, r in zip(epochs, rows) if r.get(key) is not None]
            if pts:
                ax2.plot(*zip(*pts), marker="o", label=key.removeprefix("val_"))
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("validation metric")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
