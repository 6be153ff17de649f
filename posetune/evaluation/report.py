"""Before-vs-after comparison of two models on one labelled set: the report people ask for
after fine-tuning. Markdown + self-contained HTML with the metrics side by side and their
difference, per-keypoint bars, and a grid of the same images drawn with ground truth and
both models' predictions."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from posetune.data.records import KeypointDataset
from posetune.io_utils import atomic_path, write_json_atomic, write_text_atomic

#: metric -> True when higher is better
METRICS: dict[str, bool] = {"AP": True, "AP50": True, "AP75": True, "AR": True, "PCK@0.05": True, "PCK@0.1": True,
                            "AUC": True, "EPE": False, "RMSE": False, "NME": False, "swap_rate": False}


def metric_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per metric present in every result: values per model and B - A."""
    names = list(results)
    rows = []
    for key, higher in METRICS.items():
        vals = [results[n].get(key) for n in names]
        if any(v is None for v in vals):
            continue
        row = {"metric": key, "higher_is_better": higher, **{n: float(v) for n, v in zip(names, vals)}}
        if len(names) == 2:
            diff = float(vals[1]) - float(vals[0])
            row["difference"] = diff
            row["better"] = (diff > 0) == higher if diff != 0 else None
        rows.append(row)
    return rows


def _fig_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def per_keypoint_plot(results: dict[str, dict[str, Any]], metric: str) -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    per = [results[n].get("per_keypoint") or {} for n in names]
    kps = [k for k in per[0] if all(p.get(k, {}).get(metric) is not None for p in per)]
    if not kps:
        return None
    x = np.arange(len(kps))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(kps) + 2), 4))
    for i, (n, p) in enumerate(zip(names, per)):
        ax.bar(x + (i - (len(names) - 1) / 2) * width, [p[k][metric] for k in kps], width, label=n)
    ax.set_xticks(x, kps, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per keypoint")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    data = _fig_png(fig)
    plt.close(fig)
    return data


def comparison_grid(data: KeypointDataset, preds: dict[str, KeypointDataset], n_images: int = 6,
                    max_side: int = 320) -> np.ndarray | None:
    """Rows of [ground truth | model A | model B] for the first ``n_images`` labelled images."""
    import cv2

    from posetune.data.images import load_image
    from posetune.inference.visualize import draw_grid, draw_instances

    picked = [i for i, im in enumerate(data.images) if any(inst.num_labelled for inst in im.instances)][:n_images]
    if not picked:
        return None
    cells, titles = [], []
    for i in picked:
        rec = data.images[i]
        try:
            image = load_image(data.image_path(rec))
        except Exception:  # noqa: BLE001 - a missing image must not sink the whole report
            continue
        scale = max_side / max(image.shape[:2])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        s = min(1.0, scale)

        def scaled(instances: list) -> list:
            out = []
            for inst in instances:
                c = inst.copy()
                c.keypoints[:, :2] *= s
                if c.bbox is not None:
                    c.bbox = c.bbox * s
                out.append(c)
            return out

        cells.append(draw_instances(small, scaled(rec.instances), data.spec, draw_boxes=False))
        titles.append(f"{Path(rec.file_name).name}: labels")
        for name, pred in preds.items():
            cells.append(draw_instances(small, scaled(pred.images[i].instances), data.spec, draw_boxes=False))
            titles.append(name)
    if not cells:
        return None
    return draw_grid(cells, ncols=1 + len(preds), titles=titles)


def _md_table(rows: list[dict[str, Any]], names: list[str]) -> str:
    head = "| metric | " + " | ".join(names) + (" | difference |" if len(names) == 2 else " |")
    sep = "|---|" + "---:|" * len(names) + ("---:|" if len(names) == 2 else "")
    lines = [head, sep]
    for r in rows:
        cells = [f"{r[n]:.4f}" for n in names]
        if len(names) == 2:
            mark = "" if r["better"] is None else (" ✓" if r["better"] else " ✗")
            cells.append(f"{r['difference']:+.4f}{mark}")
        lines.append(f"| {r['metric']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out_dir: str | Path, results: dict[str, dict[str, Any]], preds: dict[str, KeypointDataset],
                 data: KeypointDataset, *, title: str = "posetune comparison", n_images: int = 6) -> dict[str, Path]:
    """Write metrics.json, report.md, report.html, per_keypoint.png and grid.png into ``out_dir``."""
    from posetune.data.images import save_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(results)
    rows = metric_rows(results)
    files: dict[str, Path] = {}
    files["metrics"] = write_json_atomic(out / "metrics.json", {"models": names, "rows": rows, "results": results})
    images: list[tuple[str, bytes]] = []
    metric = "PCK@0.1" if all((results[n].get("per_keypoint") or {}) for n in names) else None
    if metric is not None:
        bars = per_keypoint_plot(results, metric) or per_keypoint_plot(results, "EPE")
        if bars:
            with atomic_path(out / "per_keypoint.png") as tmp:
                tmp.write_bytes(bars)
            files["per_keypoint"] = out / "per_keypoint.png"
            images.append(("Per-keypoint comparison", bars))
    grid = comparison_grid(data, preds, n_images=n_images)
    if grid is not None:
        files["grid"] = save_image(out / "grid.png", grid)
        images.append(("Ground truth and predictions", (out / "grid.png").read_bytes()))
    n_inst = sum(1 for _, i in data.iter_instances() if not i.iscrowd)
    intro = f"{data.num_images} images, {n_inst} instances, {data.spec.num_keypoints} keypoints ({data.spec.name})."
    md = [f"# {title}", "", intro, "", _md_table(rows, names), ""]
    if "per_keypoint" in files:
        md += ["![per keypoint](per_keypoint.png)", ""]
    if "grid" in files:
        md += ["Each row: ground truth, then " + ", then ".join(names) + ".", "", "![grid](grid.png)", ""]
    files["markdown"] = write_text_atomic(out / "report.md", "\n".join(md))
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>", "<table border=1 cellpadding=4>",
            "<tr><th>metric</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names)
            + ("<th>difference</th>" if len(names) == 2 else "") + "</tr>"]
    for r in rows:
        cells = "".join(f"<td align=right>{r[n]:.4f}</td>" for n in names)
        if len(names) == 2:
            color = "" if r["better"] is None else (" style='color:green'" if r["better"] else " style='color:red'")
            cells += f"<td align=right{color}>{r['difference']:+.4f}</td>"
        body.append(f"<tr><td>{html.escape(r['metric'])}</td>{cells}</tr>")
    body.append("</table>")
    for caption, png in images:
        b64 = base64.b64encode(png).decode()
        body.append(f"<h2>{html.escape(caption)}</h2><img src='data:image/png;base64,{b64}' style='max-width:100%'>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title)
            + "</title></head><body style='font-family:sans-serif'>" + "\n".join(body) + "</body></html>\n")
    files["html"] = write_text_atomic(out / "report.html", page)
    return files
