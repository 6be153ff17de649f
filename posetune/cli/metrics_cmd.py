"""``posetune metrics ...``: score prediction files against ground-truth labels.

Each command reads the ground truth (any label format) and the predictions (COCO results json,
or any label format matched on file names), calls :func:`posetune.evaluation.evaluate_files`
and prints a table, or the stable-key JSON with ``--json``. Formulas: docs/metrics.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import typer

from posetune.cli.console import err, out
from posetune.errors import EvaluationError

app = typer.Typer(help="Score predictions against ground truth (COCO AP, PCK, AUC, EPE, RMSE, NME).",
                  no_args_is_help=True)

# ---------------------------------------------------------------------------- shared options
GT = typer.Option(..., "--gt", help="Ground-truth labels (COCO json, LabelMe, CVAT, DeepLabCut, YOLO, ...).")
PRED = typer.Option(..., "--pred", help="Predictions: COCO results json, or labels in any format posetune reads.")
GT_FORMAT = typer.Option("auto", "--gt-format", help="Label format of --gt (default: detect).")
PRED_FORMAT = typer.Option("auto", "--pred-format", help="Format of --pred: auto, coco_results or a label format.")
SPEC = typer.Option(None, "--spec", help="Keypoint spec of the ground truth (preset name); default: from the labels.")
JSON = typer.Option(False, "--json", help="Print the result as JSON (stable keys) instead of a table.")
PER_KP = typer.Option(False, "--per-keypoint", help="Add the per-keypoint breakdown.")
OUT = typer.Option(None, "--out", help="Also write the JSON result to this file.")
MATCH = typer.Option("auto", "--match", help="Pairing of predictions with GT: auto (id, then OKS), id, oks.")
SKIP_ZERO = typer.Option(False, "--skip-zero-norm",
                         help="Leave out instances whose normaliser is zero (default: stop with an error).")


def _floats(text: Optional[str], option: str) -> Optional[list[float]]:
    if text is None:
        return None
    try:
        values = [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise EvaluationError(f"'{text}' is not a comma-separated list of numbers", where=option,
                              hint=f"e.g. {option} 0.05,0.1") from None
    if not values:
        raise EvaluationError("empty list", where=option, hint=f"e.g. {option} 0.05,0.1")
    return values


# ---------------------------------------------------------------------------- printing
_PIXEL_KEYS = {"EPE", "RMSE", "RMSE_pcutoff"}


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f} px" if key in _PIXEL_KEYS else f"{value:.4f}"
    return str(value)


def _fmt_cell(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _report(result: dict[str, Any], keys: Sequence[str], *, as_json: bool, per_keypoint: bool,
            out_file: Optional[Path], title: str) -> None:
    if out_file is not None:
        from posetune.io_utils import write_json_atomic

        write_json_atomic(out_file, result)
    if as_json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    info = result.get("info", {})
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in keys:
        table.add_row(key, _fmt(key, result.get(key)))
    out.print(table)
    parts = result.get("parts")
    if parts:
        pt = Table(title="per part (COCO-WholeBody protocol)", title_justify="left")
        pt.add_column("part")
        for k in ("AP", "AP50", "AP75", "AR"):
            pt.add_column(k, justify="right")
        for name, stats in parts.items():
            pt.add_row(name, *(_fmt(k, stats.get(k)) for k in ("AP", "AP50", "AP75", "AR")))
        out.print(pt)
    if per_keypoint and result.get("per_keypoint"):
        rows = result["per_keypoint"]
        cols = [c for c in (*keys, "OKS", "labelled") if any(c in r and r[c] is not None for r in rows.values())]
        kt = Table(title="per keypoint (distances in px)", title_justify="left")
        kt.add_column("keypoint", no_wrap=True)
        for c in cols:
            kt.add_column(c, justify="right", no_wrap=True)
        for name, r in rows.items():
            kt.add_row(name, *(_fmt_cell(r.get(c)) for c in cols))
        width = max(len(n) for n in rows) + 4 + sum(max(len(c), 6) + 3 for c in cols)
        if out.is_terminal or width <= out.width:
            out.print(kt)
        else:  # piped / redirected: print the whole table rather than squeezing it into 80 columns
            from rich.console import Console

            Console(file=out.file, width=width, highlight=False).print(kt)
    counts = [f"{info.get('num_images', 0)} images", f"{info.get('num_gt_instances', 0)} GT instances",
              f"{info.get('num_predictions', 0)} predictions"]
    if "num_matched" in info:
        counts.append(f"{info['num_matched']} paired, {info['num_unmatched_gt']} GT without prediction")
    err.print(", ".join(counts), style="dim")
    for note in info.get("notes", []):
        err.print(f"note: {note}", style="yellow", markup=False)


def _run(gt: Path, pred: Path, gt_format: str, pred_format: str, spec: Optional[str], **kwargs: Any) -> dict[str, Any]:
    from posetune.evaluation import evaluate_files

    return evaluate_files(gt, pred, gt_format=gt_format, pred_format=pred_format, spec=spec, **kwargs)


# ---------------------------------------------------------------------------- commands
@app.command("coco")
def coco(
    gt: Path = GT,
    pred: Path = PRED,
    sigmas: Optional[str] = typer.Option(None, "--sigmas", help="OKS sigmas, one per keypoint, comma-separated "
                                         "(default: the spec's)."),
    rescore: str = typer.Option("none", "--rescore", help="Ranking score: none, keypoint_mean, instance_x_keypoint."),
    kpt_thr: float = typer.Option(0.2, "--kpt-thr", help="Keypoint-score threshold used by --rescore."),
    oks_nms: Optional[float] = typer.Option(None, "--oks-nms", help="Apply OKS-NMS with this threshold (e.g. 0.9)."),
    bbox_area_factor: float = typer.Option(1.0, "--bbox-area-factor",
                                           help="Area = factor × box w·h for GT without 'area' (xtcocotools: 0.53)."),
    gt_format: str = GT_FORMAT,
    pred_format: str = PRED_FORMAT,
    spec: Optional[str] = SPEC,
    as_json: bool = JSON,
    per_keypoint: bool = PER_KP,
    out_file: Optional[Path] = OUT,
) -> None:
    """COCO keypoint AP/AR (pycocotools, OKS with the spec's sigmas); per part for COCO-WholeBody."""
    from posetune.evaluation import AP_KEYS

    result = _run(gt, pred, gt_format, pred_format, spec, metrics=("coco",), sigmas=_floats(sigmas, "--sigmas"),
                  rescore=rescore, kpt_score_thr=kpt_thr, oks_nms_thr=oks_nms, bbox_area_factor=bbox_area_factor,
                  per_keypoint=per_keypoint)
    _report(result, AP_KEYS, as_json=as_json, per_keypoint=per_keypoint, out_file=out_file, title="COCO keypoints")


@app.command("pck")
def pck(
    gt: Path = GT,
    pred: Path = PRED,
    thr: str = typer.Option("0.05,0.1", "--thr", help="PCK thresholds (fractions of the normaliser)."),
    norm: str = typer.Option("bbox", "--norm", help="Normaliser: bbox (max side), torso, head (PCKh), pixel."),
    average: str = typer.Option("pooled", "--average", help="pooled (all keypoints) or keypoint_mean (MMPose)."),
    auc_max: float = typer.Option(30.0, "--auc-max", help="AUC: largest threshold (in --auc-norm units)."),
    auc_steps: int = typer.Option(20, "--auc-steps", help="AUC: number of thresholds."),
    auc_norm: str = typer.Option("pixel", "--auc-norm", help="AUC normaliser (pixel = MMPose's AUC)."),
    match: str = MATCH,
    skip_zero_norm: bool = SKIP_ZERO,
    gt_format: str = GT_FORMAT,
    pred_format: str = PRED_FORMAT,
    spec: Optional[str] = SPEC,
    as_json: bool = JSON,
    per_keypoint: bool = PER_KP,
    out_file: Optional[Path] = OUT,
) -> None:
    """PCK@α (or PCKh with --norm head), AUC and EPE."""
    from posetune.evaluation import pck_key

    thresholds = _floats(thr, "--thr") or []
    result = _run(gt, pred, gt_format, pred_format, spec, metrics=("pck", "auc", "epe"), pck_thresholds=thresholds,
                  pck_norm=norm, pck_average=average, auc_max=auc_max, auc_steps=auc_steps, auc_norm=auc_norm,
                  match=match, on_zero_norm="skip" if skip_zero_norm else "error", per_keypoint=per_keypoint)
    keys = [pck_key(t) for t in thresholds] + ["AUC", "EPE", "swap_rate"]
    _report(result, keys, as_json=as_json, per_keypoint=per_keypoint, out_file=out_file, title=f"PCK ({norm})")


@app.command("rmse")
def rmse(
    gt: Path = GT,
    pred: Path = PRED,
    pcutoff: float = typer.Option(0.6, "--pcutoff", help="Likelihood cut-off: points scored below it are left out."),
    match: str = MATCH,
    gt_format: str = GT_FORMAT,
    pred_format: str = PRED_FORMAT,
    spec: Optional[str] = SPEC,
    as_json: bool = JSON,
    per_keypoint: bool = PER_KP,
    out_file: Optional[Path] = OUT,
) -> None:
    """DeepLabCut's RMSE (mean pixel distance), with and without the likelihood cut-off."""
    result = _run(gt, pred, gt_format, pred_format, spec, metrics=("rmse", "epe"), rmse_pcutoff=pcutoff, match=match,
                  per_keypoint=per_keypoint)
    _report(result, ["RMSE", "RMSE_pcutoff", "EPE", "swap_rate"], as_json=as_json, per_keypoint=per_keypoint,
            out_file=out_file, title=f"DeepLabCut RMSE (p-cutoff {pcutoff:g})")


@app.command("nme")
def nme(
    gt: Path = GT,
    pred: Path = PRED,
    norm: str = typer.Option("auto", "--norm", help="auto, interocular (outer eye corners), bbox (sqrt(w·h)), "
                                                     "bbox_diag."),
    match: str = MATCH,
    skip_zero_norm: bool = SKIP_ZERO,
    gt_format: str = GT_FORMAT,
    pred_format: str = PRED_FORMAT,
    spec: Optional[str] = SPEC,
    as_json: bool = JSON,
    per_keypoint: bool = PER_KP,
    out_file: Optional[Path] = OUT,
) -> None:
    """Normalised mean error (faces: inter-ocular; hands: box size)."""
    result = _run(gt, pred, gt_format, pred_format, spec, metrics=("nme", "epe"), nme_norm=norm, match=match,
                  on_zero_norm="skip" if skip_zero_norm else "error", per_keypoint=per_keypoint)
    title = f"NME ({result['info'].get('nme_norm') or 'not applicable'})"
    _report(result, ["NME", "EPE", "swap_rate"], as_json=as_json, per_keypoint=per_keypoint, out_file=out_file,
            title=title)


@app.command("all")
def all_metrics(
    gt: Path = GT,
    pred: Path = PRED,
    thr: str = typer.Option("0.05,0.1", "--thr", help="PCK thresholds."),
    norm: str = typer.Option("bbox", "--norm", help="PCK normaliser: bbox, torso, head, pixel."),
    nme_norm: str = typer.Option("auto", "--nme-norm", help="NME normaliser: auto, interocular, bbox, bbox_diag."),
    pcutoff: float = typer.Option(0.6, "--pcutoff", help="RMSE likelihood cut-off."),
    sigmas: Optional[str] = typer.Option(None, "--sigmas", help="OKS sigmas, comma-separated."),
    rescore: str = typer.Option("none", "--rescore", help="none, keypoint_mean, instance_x_keypoint."),
    oks_nms: Optional[float] = typer.Option(None, "--oks-nms", help="OKS-NMS threshold."),
    match: str = MATCH,
    skip_zero_norm: bool = SKIP_ZERO,
    gt_format: str = GT_FORMAT,
    pred_format: str = PRED_FORMAT,
    spec: Optional[str] = SPEC,
    as_json: bool = JSON,
    per_keypoint: bool = PER_KP,
    out_file: Optional[Path] = OUT,
) -> None:
    """Every metric: COCO AP/AR, PCK, AUC, EPE, RMSE, NME and the left/right swap rate."""
    from posetune.evaluation import STABLE_KEYS, pck_key

    thresholds = _floats(thr, "--thr") or []
    result = _run(gt, pred, gt_format, pred_format, spec, pck_thresholds=thresholds, pck_norm=norm,
                  nme_norm=nme_norm, rmse_pcutoff=pcutoff, sigmas=_floats(sigmas, "--sigmas"), rescore=rescore,
                  oks_nms_thr=oks_nms, match=match, on_zero_norm="skip" if skip_zero_norm else "error",
                  per_keypoint=per_keypoint)
    keys = list(dict.fromkeys([*STABLE_KEYS[:10], *(pck_key(t) for t in thresholds), *STABLE_KEYS[10:]]))
    _report(result, keys, as_json=as_json, per_keypoint=per_keypoint, out_file=out_file, title="all metrics")
