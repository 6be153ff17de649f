"""Pair ground-truth instances with predictions, and the OKS similarity used to do it.

PCK, EPE, RMSE, NME and the swap rate compare one predicted pose with one labelled pose, so
predictions must first be paired with ground truth (COCO AP does its own greedy matching inside
pycocotools and does not use this module):

1. **By instance id** — a prediction whose ``id`` equals the id of a ground-truth instance in the
   same image is paired with it (top-down evaluation on ground-truth boxes, where the predictor
   keeps the box's id). ``match='oks'`` turns this off.
2. **By OKS, Hungarian** — the remaining predictions and instances of each image are paired one
   to one so that the summed OKS is largest (:func:`scipy.optimize.linear_sum_assignment`).
   Every instance gets a prediction while predictions last; pairs with OKS below ``min_oks``
   (default 0: keep every pair) are left unpaired.

Crowd regions (``iscrowd``) and instances without a labelled keypoint are never paired: they
do not take part in the per-keypoint metrics. A ground-truth instance left without a
prediction counts as *all keypoints wrong* for PCK and is left out of the distance averages
(EPE/RMSE/NME), which report how many instances were missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from posetune.data.records import ImageRecord, Instance, KeypointDataset
from posetune.errors import EvaluationError

MatchMode = Literal["auto", "id", "oks"]


def instance_area(inst: Instance, bbox_area_factor: float = 1.0) -> float | None:
    """The object scale OKS uses: ``area`` when labelled, else ``bbox_area_factor`` × bbox w·h.

    For predictions without either, the extent of the predicted keypoints (as pycocotools'
    ``loadRes`` computes it). None when nothing gives a scale.
    """
    if inst.area is not None and np.isfinite(inst.area):
        return float(inst.area)
    if inst.bbox is not None and np.isfinite(inst.bbox).all():
        return float(inst.bbox[2] * inst.bbox[3] * bbox_area_factor)
    return None


def keypoint_extent_area(xy: np.ndarray) -> float:
    """(max x − min x)·(max y − min y) over the finite points of ``xy`` (K, 2); 0 when none."""
    pts = xy[np.isfinite(xy).all(axis=1)]
    if len(pts) == 0:
        return 0.0
    span = pts.max(axis=0) - pts.min(axis=0)
    return float(span[0] * span[1])


def oks_matrix(gt_xyv: np.ndarray, gt_areas: np.ndarray, pred_xy: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Object keypoint similarity of every prediction with every ground-truth pose.

    ``gt_xyv`` (G, K, 3) with COCO visibility, ``gt_areas`` (G,), ``pred_xy`` (D, K, 2), ``sigmas``
    (K,). Returns (D, G): ``mean over labelled k of exp(-d² / (2 · area · (2σ_k)²))`` — the
    pycocotools formula (its ``vars = (2σ)²`` and ``area + eps``). Missing (NaN) predicted points
    contribute 0. Instances with no labelled keypoint get OKS 0.
    """
    gt_xyv = np.asarray(gt_xyv, dtype=np.float64).reshape(-1, len(sigmas), 3)
    pred_xy = np.asarray(pred_xy, dtype=np.float64).reshape(-1, len(sigmas), 2)
    if len(gt_xyv) == 0 or len(pred_xy) == 0:
        return np.zeros((len(pred_xy), len(gt_xyv)))
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    d2 = ((pred_xy[:, None, :, :] - gt_xyv[None, :, :, :2]) ** 2).sum(-1)  # D, G, K
    d2 = np.where(np.isfinite(d2), d2, np.inf)
    e = d2 / var / (np.asarray(gt_areas, dtype=np.float64)[None, :, None] + np.spacing(1)) / 2.0
    vis = gt_xyv[..., 2] > 0  # G, K
    n = vis.sum(-1)
    sim = (np.exp(-e) * vis[None]).sum(-1)
    return np.where(n[None] > 0, sim / np.maximum(n[None], 1), 0.0)


@dataclass
class Matches:
    """Ground truth paired with predictions, as flat arrays over the evaluated instances.

    Only non-crowd ground-truth instances with at least one labelled keypoint are listed. Row
    ``n`` describes instance ``instance_index[n]`` of image ``image_index[n]``.
    """

    gt: np.ndarray  # (N, K, 3) x, y, v
    boxes: np.ndarray  # (N, 4) xywh of the labelled box (keypoint box when none); NaN when neither
    areas: np.ndarray  # (N,) OKS area (NaN when unknown)
    pred: np.ndarray  # (N, K, 2) predicted x, y; NaN where unmatched or the point was not predicted
    scores: np.ndarray  # (N, K) predicted keypoint scores (likelihood); NaN when unknown
    matched: np.ndarray  # (N,) bool
    image_index: np.ndarray  # (N,) int
    instance_index: np.ndarray  # (N,) int
    num_predictions: int = 0
    unmatched_predictions: int = 0
    matched_by_id: int = 0
    names: tuple[str, ...] = field(default_factory=tuple)

    @property
    def num_instances(self) -> int:
        return int(len(self.gt))

    @property
    def labelled(self) -> np.ndarray:
        """(N, K) bool: the ground-truth keypoint is labelled (v > 0)."""
        return self.gt[..., 2] > 0

    @property
    def predicted(self) -> np.ndarray:
        """(N, K) bool: a prediction exists for this keypoint (instance matched, point finite)."""
        return np.isfinite(self.pred).all(-1)

    def distances(self) -> np.ndarray:
        """(N, K) Euclidean pixel error; NaN where unlabelled, unmatched or not predicted."""
        d = np.linalg.norm(self.pred - self.gt[..., :2], axis=-1)
        return np.where(self.labelled & self.predicted, d, np.nan)

    def where(self, gt: KeypointDataset, n: int) -> str:
        """'image <id> (<file>), instance <i>' for row ``n``, for error messages."""
        rec = gt.images[int(self.image_index[n])]
        inst = rec.instances[int(self.instance_index[n])]
        inst_name = f"instance id {inst.id}" if inst.id is not None else f"instance #{int(self.instance_index[n])}"
        return f"image {rec.id if rec.id is not None else int(self.image_index[n])} ('{rec.file_name}'), {inst_name}"


def _pred_arrays(inst: Instance, k: int) -> tuple[np.ndarray, np.ndarray]:
    kp = inst.keypoints
    xy = kp[:, :2].copy()
    xy[~(kp[:, 2] > 0)] = np.nan  # a point the prediction marks as absent
    if inst.keypoint_scores is not None and len(inst.keypoint_scores) == k:
        s = inst.keypoint_scores.astype(np.float64)
    else:
        s = np.full(k, np.nan)
    return xy, s


def _gt_box(inst: Instance) -> np.ndarray:
    if inst.bbox is not None and np.isfinite(inst.bbox).all() and inst.bbox[2] > 0 and inst.bbox[3] > 0:
        return inst.bbox.astype(np.float64)
    kb = inst.keypoint_bbox(0.0)
    return np.asarray(kb, dtype=np.float64) if kb is not None else np.full(4, np.nan)


def match_instances(
    gt: KeypointDataset,
    predictions: Sequence[Sequence[Instance]],
    *,
    sigmas: np.ndarray | Sequence[float] | None = None,
    match: MatchMode = "auto",
    min_oks: float = 0.0,
) -> Matches:
    """Pair every evaluated ground-truth instance of ``gt`` with at most one prediction.

    ``predictions[i]`` holds the predicted instances of ``gt.images[i]`` (see
    :func:`posetune.evaluation.predictions.align_predictions`). ``match``: ``'auto'`` pairs by
    instance id first and by OKS for the rest, ``'id'`` by id only, ``'oks'`` by OKS only.
    """
    if len(predictions) != len(gt.images):
        raise EvaluationError(f"predictions for {len(predictions)} images, ground truth has {len(gt.images)}",
                              hint="align predictions with align_predictions(gt, pred)")
    if match not in ("auto", "id", "oks"):
        raise EvaluationError(f"unknown match mode '{match}'", hint="use 'auto', 'id' or 'oks'")
    k = gt.spec.num_keypoints
    sig = np.asarray(sigmas if sigmas is not None else gt.spec.sigmas, dtype=np.float64)
    rows_gt, rows_box, rows_area, rows_pred, rows_score, rows_matched, rows_img, rows_inst = ([] for _ in range(8))
    n_pred = n_unmatched = n_by_id = 0
    for i, (rec, preds) in enumerate(zip(gt.images, predictions)):
        n_pred += len(preds)
        evaluated = [j for j, inst in enumerate(rec.instances) if not inst.iscrowd and inst.num_labelled > 0]
        pairs = _match_image(rec, evaluated, list(preds), sig, match, min_oks)
        used = {p for p in pairs.values() if p is not None}
        n_unmatched += len(preds) - len(used)
        n_by_id += sum(1 for j, p in pairs.items() if p is not None and _id_pair(rec.instances[j], preds[p]))
        for j in evaluated:
            inst = rec.instances[j]
            rows_gt.append(inst.keypoints)
            rows_box.append(_gt_box(inst))
            area = instance_area(inst)
            rows_area.append(np.nan if area is None else area)
            p = pairs.get(j)
            if p is None:
                rows_pred.append(np.full((k, 2), np.nan))
                rows_score.append(np.full(k, np.nan))
                rows_matched.append(False)
            else:
                xy, s = _pred_arrays(preds[p], k)
                rows_pred.append(xy)
                rows_score.append(s)
                rows_matched.append(True)
            rows_img.append(i)
            rows_inst.append(j)
    n = len(rows_gt)
    return Matches(
        gt=np.stack(rows_gt) if n else np.zeros((0, k, 3)),
        boxes=np.stack(rows_box) if n else np.zeros((0, 4)),
        areas=np.asarray(rows_area, dtype=np.float64),
        pred=np.stack(rows_pred) if n else np.zeros((0, k, 2)),
        scores=np.stack(rows_score) if n else np.zeros((0, k)),
        matched=np.asarray(rows_matched, dtype=bool),
        image_index=np.asarray(rows_img, dtype=np.int64),
        instance_index=np.asarray(rows_inst, dtype=np.int64),
        num_predictions=n_pred,
        unmatched_predictions=n_unmatched,
        matched_by_id=n_by_id,
        names=tuple(gt.spec.keypoints),
    )


def _id_pair(g: Instance, p: Instance) -> bool:
    return g.id is not None and p.id is not None and g.id == p.id


def _match_image(rec: ImageRecord, evaluated: list[int], preds: list[Instance], sigmas: np.ndarray,
                 match: str, min_oks: float) -> dict[int, int | None]:
    """GT instance index -> prediction index (or None) for one image."""
    pairs: dict[int, int | None] = {j: None for j in evaluated}
    free_preds = list(range(len(preds)))
    free_gt = list(evaluated)
    if match in ("auto", "id"):
        by_id: dict[int, int] = {}
        for pi, p in enumerate(preds):
            if p.id is not None and p.id not in by_id:
                by_id[p.id] = pi
        for j in evaluated:
            gid = rec.instances[j].id
            if gid is not None and gid in by_id:
                pairs[j] = by_id.pop(gid)
        taken = {p for p in pairs.values() if p is not None}
        free_preds = [p for p in free_preds if p not in taken]
        free_gt = [j for j in evaluated if pairs[j] is None]
    if match == "id" or not free_preds or not free_gt:
        return pairs
    from scipy.optimize import linear_sum_assignment  # imported here: scipy.optimize takes ~0.5 s to load
    k = len(sigmas)
    g = np.stack([rec.instances[j].keypoints for j in free_gt])
    areas = []
    for j in free_gt:
        inst = rec.instances[j]
        a = instance_area(inst)
        if a is None:  # no area and no box: scale from the labelled keypoints' extent
            a = max(keypoint_extent_area(inst.keypoints[inst.labelled, :2]), 1.0)
        areas.append(a)
    areas_arr = np.asarray(areas)
    d = np.stack([_pred_arrays(preds[p], k)[0] for p in free_preds])
    oks = oks_matrix(g, areas_arr, d, sigmas)
    # tie-break pairs whose OKS underflows to 0 by a 100x looser OKS (nearest pose wins)
    loose = oks_matrix(g, areas_arr * 100.0, d, sigmas)
    rows, cols = linear_sum_assignment(-(oks + 1e-6 * loose))
    for r, c in zip(rows, cols):
        if oks[r, c] >= min_oks:
            pairs[free_gt[c]] = free_preds[r]
    return pairs
