"""One call for every metric: :func:`evaluate` returns a dict with stable keys.

Keys (always present; None where a metric was not asked for or does not apply):

``AP AP50 AP75 APm APl AR AR50 AR75 ARm ARl`` (COCO OKS, pycocotools), ``PCK@0.05 PCK@0.1``
(plus ``PCK@<α>`` for other requested thresholds), ``AUC``, ``EPE``, ``RMSE``, ``RMSE_pcutoff``,
``NME``, ``swap_rate``; then ``per_keypoint`` ``{name: {metric: value}}``, ``info`` (counts,
the normalisations used, notes) and, for specs with parts (COCO-WholeBody), ``parts``
``{part: {AP..ARl}}``.

When a metric does not apply it is None and ``info['notes']`` says why: COCO AP when a
ground-truth instance has neither area nor box; NME for keypoint sets that are neither faces
nor hands under ``nme_norm='auto'``; ``RMSE_pcutoff`` when predictions carry no keypoint
scores; ``swap_rate`` for specs without flip pairs; every distance metric when no prediction
could be paired.
"""

from __future__ import annotations

import contextlib
import gc
import math
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np

from posetune.data.records import Instance, KeypointDataset
from posetune.errors import EvaluationError
from posetune.evaluation import coco as coco_mod
from posetune.evaluation.matching import MatchMode, match_instances
from posetune.evaluation.nme import NmeNorm, nme, nme_normalizers, resolve_nme_norm
from posetune.evaluation.pck import (PCK_NORMS, Average, NormKind, auc, check_normalizers, epe, normalizers, pck,
                                     swap_rate)
from posetune.evaluation.rmse import dlc_rmse

METRICS: tuple[str, ...] = ("coco", "pck", "auc", "epe", "rmse", "nme")
DEFAULT_PCK_THRESHOLDS: tuple[float, ...] = (0.05, 0.1)
STABLE_KEYS: tuple[str, ...] = (*coco_mod.AP_KEYS, "PCK@0.05", "PCK@0.1", "AUC", "EPE", "RMSE", "RMSE_pcutoff",
                                "NME", "swap_rate")


def pck_key(threshold: float) -> str:
    """Result key of PCK at ``threshold``: ``PCK@0.05``."""
    return f"PCK@{threshold:g}"


def _clean(x: Any) -> Any:
    """Floats with NaN/inf -> None, numpy scalars -> Python (JSON-ready)."""
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def evaluate(
    gt: KeypointDataset,
    pred: KeypointDataset | Sequence[Sequence[Instance]],
    *,
    metrics: Sequence[str] = METRICS,
    pck_thresholds: Sequence[float] = DEFAULT_PCK_THRESHOLDS,
    pck_norm: NormKind = "bbox",
    rmse_pcutoff: float | None = 0.6,
    nme_norm: NmeNorm = "auto",
    sigmas: Sequence[float] | None = None,
    rescore: coco_mod.RescoreMode = "none",
    kpt_score_thr: float = 0.2,
    oks_nms_thr: float | None = None,
    bbox_area_factor: float = 1.0,
    match: MatchMode = "auto",
    pck_average: Average = "pooled",
    auc_norm: NormKind = "pixel",
    auc_max: float = 30.0,
    auc_steps: int = 20,
    swap_margin: float = 0.02,
    on_zero_norm: Literal["error", "skip"] = "error",
    per_keypoint: bool = True,
    parts: bool = True,
) -> dict[str, Any]:
    """Evaluate predictions ``pred`` against ground truth ``gt``; see the module doc for the keys.

    ``pred`` is a KeypointDataset (images matched to ``gt`` by file name, see
    :func:`~posetune.evaluation.predictions.align_predictions`) or one list of instances per
    ``gt`` image. COCO options: ``sigmas`` (default: the spec's), ``rescore``/``kpt_score_thr``,
    ``oks_nms_thr`` (None: no NMS), ``bbox_area_factor`` (for instances without ``area``).
    Per-keypoint options: ``pck_norm`` ('bbox' | 'torso' | 'head' | 'pixel'), ``pck_average``
    ('pooled' | 'keypoint_mean'), AUC over ``auc_steps`` thresholds up to ``auc_max`` in
    ``auc_norm`` units (default 30 px, as MMPose), ``rmse_pcutoff`` (DeepLabCut likelihood
    cut-off), ``nme_norm``, ``on_zero_norm`` ('error' | 'skip'), ``match`` (pairing, see
    :mod:`~posetune.evaluation.matching`). docs/metrics.md states every formula.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise EvaluationError(f"unknown metric(s) {unknown}", hint=f"use some of: {', '.join(METRICS)}")
    if pck_norm not in PCK_NORMS or auc_norm not in PCK_NORMS:
        raise EvaluationError(f"unknown normalisation '{pck_norm if pck_norm not in PCK_NORMS else auc_norm}'",
                              hint=f"use one of: {', '.join(PCK_NORMS)}")
    if on_zero_norm not in ("error", "skip"):
        raise EvaluationError(f"on_zero_norm must be 'error' or 'skip', got '{on_zero_norm}'")
    spec = gt.spec
    sig = coco_mod.check_sigmas(gt, sigmas)
    per_image = coco_mod.per_image_predictions(gt, pred)
    want = set(metrics)
    thresholds = list(dict.fromkeys([*DEFAULT_PCK_THRESHOLDS, *[float(t) for t in pck_thresholds]]))

    out: dict[str, Any] = {k: None for k in STABLE_KEYS}
    for t in thresholds:
        out.setdefault(pck_key(t), None)
    notes: list[str] = []
    info: dict[str, Any] = {"num_images": gt.num_images, "num_gt_instances": gt.num_instances,
                            "num_predictions": sum(len(x) for x in per_image), "notes": notes}
    kp_table: dict[str, dict[str, Any]] = {n: {} for n in spec.keypoints}

    if "coco" in want:
        try:
            out.update(coco_mod.coco_keypoint_eval(gt, per_image, sigmas=sig, rescore=rescore,
                                                   kpt_score_thr=kpt_score_thr, oks_nms_thr=oks_nms_thr,
                                                   bbox_area_factor=bbox_area_factor))
            if parts and spec.parts:
                out["parts"] = coco_mod.coco_wholebody_eval(gt, per_image, sigmas=sig, rescore=rescore,
                                                            kpt_score_thr=kpt_score_thr, oks_nms_thr=oks_nms_thr,
                                                            bbox_area_factor=bbox_area_factor)
        except coco_mod.MissingAreaError as e:
            notes.append(f"COCO AP not computed: {e}")
        info.update(rescore=rescore, oks_nms_thr=oks_nms_thr, sigmas=sig.tolist())

    need_matches = bool(want - {"coco"}) or (per_keypoint and "coco" in want)
    if need_matches:
        m = match_instances(gt, per_image, sigmas=sig, match=match)
        info.update(num_evaluated_instances=m.num_instances, num_matched=int(m.matched.sum()),
                    num_unmatched_gt=int((~m.matched).sum()), num_unmatched_predictions=m.unmatched_predictions,
                    matched_by_id=m.matched_by_id)
        if m.num_instances == 0:
            notes.append("no ground-truth instance with labelled keypoints: per-keypoint metrics are undefined")
        if "coco" in want and per_keypoint:
            for n, v in zip(spec.keypoints, coco_mod.per_keypoint_oks(m, sig)):
                kp_table[n]["OKS"] = _clean(v)
        if "pck" in want:
            nv = normalizers(m, gt, pck_norm)
            valid = check_normalizers(nv, m, gt, f"PCK ({pck_norm})", on_zero_norm)
            overall, per_kp = pck(m, nv, thresholds, valid=valid, average=pck_average)
            for t in thresholds:
                out[pck_key(t)] = _clean(overall[t])
                for n, v in zip(spec.keypoints, per_kp[t]):
                    kp_table[n][pck_key(t)] = _clean(v)
            info.update(pck_norm=pck_norm, pck_average=pck_average, pck_skipped_instances=int((~valid).sum()))
        if "auc" in want:
            nv = normalizers(m, gt, auc_norm)
            valid = check_normalizers(nv, m, gt, f"AUC ({auc_norm})", on_zero_norm)
            value, per_kp_auc = auc(m, nv, max_threshold=auc_max, steps=auc_steps, valid=valid, average=pck_average)
            out["AUC"] = _clean(value)
            for n, v in zip(spec.keypoints, per_kp_auc):
                kp_table[n]["AUC"] = _clean(v)
            info.update(auc_norm=auc_norm, auc_max=auc_max, auc_steps=auc_steps,
                        auc_skipped_instances=int((~valid).sum()))
        if "epe" in want:
            value, per_kp_epe = epe(m)
            out["EPE"] = _clean(value)
            for n, v in zip(spec.keypoints, per_kp_epe):
                kp_table[n]["EPE"] = _clean(v)
        if "rmse" in want:
            r = dlc_rmse(m, rmse_pcutoff)
            out["RMSE"], out["RMSE_pcutoff"] = _clean(r["RMSE"]), _clean(r["RMSE_pcutoff"])
            for key in ("RMSE", "RMSE_pcutoff"):
                for n, v in zip(spec.keypoints, r["per_keypoint"][key]):  # type: ignore[index]
                    kp_table[n][key] = _clean(v)
            info.update(rmse_pcutoff=rmse_pcutoff, root_mean_square=_clean(r["root_mean_square"]),
                        pcutoff_kept_fraction=_clean(r["kept_fraction"]))
            if r["RMSE_pcutoff"] is None and r["RMSE"] is not None:
                notes.append("RMSE_pcutoff not computed: the predictions carry no keypoint scores"
                             if not np.isfinite(m.scores).any() else
                             f"RMSE_pcutoff not computed: no predicted point has likelihood >= {rmse_pcutoff}")
        if "nme" in want:
            resolved = resolve_nme_norm(spec, nme_norm)
            info["nme_norm"] = resolved
            if resolved is None:
                notes.append(f"NME not computed: keypoint set '{spec.name}' is neither a face nor a hand "
                             "(pass nme_norm='interocular' or 'bbox' to force it)")
            else:
                nv = nme_normalizers(m, spec, resolved)
                valid = check_normalizers(nv, m, gt, f"NME ({resolved})", on_zero_norm)
                value, per_kp_nme = nme(m, nv, valid=valid)
                out["NME"] = _clean(value)
                for n, v in zip(spec.keypoints, per_kp_nme):
                    kp_table[n]["NME"] = _clean(v)
                info["nme_skipped_instances"] = int((~valid).sum())
        value, per_kp_swap = swap_rate(m, spec.flip_pairs, margin=swap_margin)
        out["swap_rate"] = _clean(value)
        if spec.flip_pairs:
            for n, v in zip(spec.keypoints, per_kp_swap):
                kp_table[n]["swap_rate"] = _clean(v)
        labelled = m.labelled.sum(0)
        for n, c in zip(spec.keypoints, labelled):
            kp_table[n]["labelled"] = int(c)
        if m.num_instances and not m.matched.any():
            notes.append("no prediction could be paired with a ground-truth instance: PCK is 0, distances undefined")
    if per_keypoint:
        out["per_keypoint"] = kp_table
    out["info"] = info
    return out


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while reading and evaluating.

    Parsed label files are hundreds of thousands of lists and dicts, and every collection of
    the oldest generation walks them all: about a tenth of an evaluation's time. Reading and
    evaluating build no reference cycles, so holding the collector off only defers it; its
    previous state is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def evaluate_files(
    gt_path: str | Path,
    pred_path: str | Path,
    *,
    gt_format: str = "auto",
    pred_format: str = "auto",
    spec: str | None = None,
    image_root: str | Path | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`evaluate` on files: ground truth in any label format, predictions as COCO results
    json or any label format (see :mod:`posetune.evaluation.predictions`). This is what
    ``posetune metrics ...`` calls. ``kwargs`` go to :func:`evaluate`."""
    from posetune.evaluation.predictions import read_ground_truth, read_predictions

    with _no_gc_pauses():
        gt = read_ground_truth(gt_path, format=gt_format, spec=spec, image_root=image_root)
        pred = read_predictions(pred_path, gt, format=pred_format)
        result = evaluate(gt, pred, **kwargs)
    errors = [p for p in gt.problems if p.severity == "error"]
    result["info"]["gt_file"] = str(gt_path)
    result["info"]["pred_file"] = str(pred_path)
    result["info"]["gt_problems"] = len(errors)
    if errors:
        result["info"]["notes"].append(f"{len(errors)} ground-truth record(s) were skipped while reading, e.g. "
                                       f"{errors[0]} — run `posetune data check` on the labels")
    return result
