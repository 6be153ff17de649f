"""Training curves (matplotlib, headless): losses, 0–1 accuracy metrics, pixel errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: metrics in [0, 1], higher is better
RATIO_METRICS = ("val_AP", "val_AP50", "val_AR", "val_PCK@0.05", "val_PCK@0.1", "val_AUC")
#: errors in pixels (or normalised), lower is better
ERROR_METRICS = ("val_EPE", "val_RMSE", "val_NME")


def _series(rows: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]


def plot_curves(rows: list[dict[str, Any]], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from posetune.io_utils import atomic_path

    panels: list[tuple[str, list[tuple[str, str]], bool]] = [
        ("loss", [("train_loss", "train loss"), ("val_loss", "val loss")], True)]
    ratios = [(k, k.removeprefix("val_")) for k in RATIO_METRICS if _series(rows, k)]
    errors = [(k, k.removeprefix("val_") + (" (px)" if k != "val_NME" else "")) for k in ERROR_METRICS
              if _series(rows, k)]
    if ratios:
        panels.append(("validation accuracy", ratios, False))
    if errors:
        panels.append(("validation error", errors, False))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (ylabel, keys, log) in zip(axes[0], panels):
        for key, label in keys:
            pts = _series(rows, key)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if log and all(v > 0 for key, _ in keys for _, v in _series(rows, key)):
            ax.set_yscale("log")
        if ylabel == "validation accuracy":
            ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
