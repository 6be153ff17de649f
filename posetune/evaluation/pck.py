"""PCK / PCKh / AUC / EPE and the left-right swap rate, on paired instances.

All functions take :class:`~posetune.evaluation.matching.Matches` (ground truth paired with
predictions). Only labelled ground-truth keypoints (v > 0) of non-crowd instances count.

* **PCK@α** — a keypoint is correct when ``‖pred − gt‖ / norm < α`` (strict, as MMPose).
  A keypoint of an instance without a paired prediction, or that the prediction lacks, is wrong.
  ``average='pooled'`` (default) = correct / labelled over all keypoints of all instances;
  ``'keypoint_mean'`` = mean over keypoints of each keypoint's PCK (MMPose's ``PCKAccuracy``).
* **norm** (per instance): ``'bbox'`` = max(w, h) of the ground-truth box (the tight box around
  the labelled keypoints when the label has none); ``'torso'`` = the longer torso diagonal
  (left_shoulder–right_hip or right_shoulder–left_hip, both points labelled); ``'head'`` (PCKh) =
  0.6 × the diagonal of a labelled head box (``extra['head_box']`` x1, y1, x2, y2: the MPII
  official evaluation's ``SC_BIAS``), else the head segment head_top–upper_neck (or –neck)
  itself: 0.6 × box diagonal is how MPII approximates that segment from its head rectangles;
  ``'pixel'`` = 1 (α in pixels).
  A zero or undefined normaliser raises an EvaluationError naming the image and instance
  (``on_zero_norm='skip'`` leaves such instances out and counts them instead).
* **AUC** — mean of PCK at ``steps`` thresholds ``α_max·i/steps, i = 0..steps−1`` (MMPose's
  ``keypoint_auc``: a left Riemann sum that starts at 0, so a perfect prediction scores
  ``(steps−1)/steps``). MMPose's default is ``norm='pixel'``, α_max = 30 px, 20 steps.
* **EPE** — mean pixel distance over labelled keypoints that have a prediction.
* **swap rate** — among labelled keypoints of a flip pair whose partner is labelled too, the
  fraction whose prediction is closer to the partner's ground truth than to its own by more
  than ``margin`` × max(w, h) of the instance box.
"""

from __future__ import annotations

import re
from typing import Literal, Sequence

import numpy as np

from posetune.data.records import KeypointDataset
from posetune.data.spec import KeypointSpec
from posetune.errors import EvaluationError
from posetune.evaluation.matching import Matches

NormKind = Literal["bbox", "torso", "head", "pixel"]
Average = Literal["pooled", "keypoint_mean"]
PCK_NORMS: tuple[str, ...] = ("bbox", "torso", "head", "pixel")

#: MPII's official PCKh: head size = SC_BIAS × head-box diagonal.
MPII_SC_BIAS = 0.6

_TORSO_DIAGONALS = (("leftshoulder", "righthip"), ("rightshoulder", "lefthip"))
_HEAD_SEGMENTS = (("headtop", "upperneck"), ("headtop", "neck"), ("topofhead", "neck"), ("head", "neck"))


def _key(name: str) -> str:
    return re.sub(r"[_\-\s.]", "", name).lower()


def _find_pairs(spec: KeypointSpec, candidates: Sequence[tuple[str, str]]) -> list[tuple[int, int]]:
    index = {_key(n): i for i, n in enumerate(spec.keypoints)}
    return [(index[a], index[b]) for a, b in candidates if a in index and b in index]


def _segment(gt: np.ndarray, a: int, b: int) -> np.ndarray:
    """(N,) length of segment a-b where both are labelled, else NaN."""
    ok = (gt[:, a, 2] > 0) & (gt[:, b, 2] > 0)
    length = np.linalg.norm(gt[:, a, :2] - gt[:, b, :2], axis=-1)
    return np.where(ok, length, np.nan)


def normalizers(matches: Matches, gt: KeypointDataset, norm: NormKind = "bbox") -> np.ndarray:
    """(N,) per-instance PCK normaliser (NaN where it cannot be computed; see the module doc)."""
    n = matches.num_instances
    if norm == "pixel":
        return np.ones(n)
    if norm == "bbox":
        return np.max(matches.boxes[:, 2:], axis=1) if n else np.zeros(0)
    spec = gt.spec
    if norm == "torso":
        pairs = _find_pairs(spec, _TORSO_DIAGONALS)
        if not pairs:
            raise EvaluationError(f"keypoint spec '{spec.name}' has no left/right shoulder and hip points for the "
                                  "torso size", hint="use --norm bbox (or name the points left_shoulder, "
                                                     "right_shoulder, left_hip, right_hip)")
        lengths = np.stack([_segment(matches.gt, a, b) for a, b in pairs])
        return np.fmax.reduce(lengths, axis=0)  # NaN only where no diagonal is labelled
    if norm == "head":
        out = np.full(n, np.nan)
        pairs = _find_pairs(spec, _HEAD_SEGMENTS)
        if pairs:
            out = _segment(matches.gt, *pairs[0])
        has_box = False
        for r in range(n):
            inst = gt.images[int(matches.image_index[r])].instances[int(matches.instance_index[r])]
            box = inst.extra.get("head_box", inst.extra.get("headbox"))
            if box is not None:
                b = np.asarray(box, dtype=np.float64).reshape(4)
                out[r] = MPII_SC_BIAS * float(np.hypot(b[2] - b[0], b[3] - b[1]))
                has_box = True
        if not pairs and not has_box:
            raise EvaluationError(f"keypoint spec '{spec.name}' has no head_top/upper_neck (or neck) points and the "
                                  "labels carry no head boxes, so PCKh has no head size",
                                  hint="use --norm bbox, or label head_top and upper_neck")
        return out
    raise EvaluationError(f"unknown PCK normalisation '{norm}'", hint=f"use one of: {', '.join(PCK_NORMS)}")


def check_normalizers(values: np.ndarray, matches: Matches, gt: KeypointDataset, what: str,
                      on_zero_norm: Literal["error", "skip"] = "error") -> np.ndarray:
    """Boolean (N,) mask of instances with a usable (> 0, finite) normaliser.

    With ``on_zero_norm='error'`` the first bad one raises an EvaluationError naming it.
    """
    ok = np.isfinite(values) & (values > 0)
    if on_zero_norm == "error" and not ok.all():
        r = int(np.flatnonzero(~ok)[0])
        raise EvaluationError(f"{what} normaliser is {'zero' if values[r] == 0 else 'undefined'} for this instance "
                              f"({int((~ok).sum())} instance(s) in all)", where=matches.where(gt, r),
                              hint="fix its box / label the reference points, choose another normalisation, or "
                                   "skip such instances (on_zero_norm='skip', CLI --skip-zero-norm)")
    return ok


def _average(correct: np.ndarray, counted: np.ndarray, average: Average) -> tuple[float | None, np.ndarray]:
    per_kp_n = counted.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_kp = np.where(per_kp_n > 0, (correct & counted).sum(0) / np.maximum(per_kp_n, 1), np.nan)
    if per_kp_n.sum() == 0:
        return None, per_kp
    if average == "pooled":
        return float((correct & counted).sum() / counted.sum()), per_kp
    if average == "keypoint_mean":
        return float(np.nanmean(per_kp)), per_kp
    raise EvaluationError(f"unknown PCK average '{average}'", hint="use 'pooled' or 'keypoint_mean'")


def pck(matches: Matches, norm_values: np.ndarray, thresholds: Sequence[float], *, valid: np.ndarray | None = None,
        average: Average = "pooled") -> tuple[dict[float, float | None], dict[float, np.ndarray]]:
    """PCK at each threshold: ({α: value}, {α: (K,) per keypoint}). ``valid`` masks instances."""
    valid = np.ones(matches.num_instances, dtype=bool) if valid is None else valid
    counted = matches.labelled & valid[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.linalg.norm(matches.pred - matches.gt[..., :2], axis=-1) / norm_values[:, None]
    rel = np.where(np.isfinite(rel), rel, np.inf)  # unmatched / not predicted: wrong
    overall, per_kp = {}, {}
    for thr in thresholds:
        overall[thr], per_kp[thr] = _average(rel < thr, counted, average)
    return overall, per_kp


def auc(matches: Matches, norm_values: np.ndarray, *, max_threshold: float = 30.0, steps: int = 20,
        valid: np.ndarray | None = None, average: Average = "pooled") -> tuple[float | None, np.ndarray]:
    """Area under the PCK curve over thresholds ``max_threshold·i/steps`` (i = 0..steps−1)."""
    if steps < 1 or not max_threshold > 0:
        raise EvaluationError(f"AUC needs steps >= 1 and a positive maximum threshold (got {steps}, {max_threshold})",
                              hint="e.g. 20 steps up to 30 px")
    thrs = [max_threshold * i / steps for i in range(steps)]
    overall, per_kp = pck(matches, norm_values, thrs, valid=valid, average=average)
    if any(v is None for v in overall.values()):
        return None, np.full(len(matches.names), np.nan)
    with np.errstate(invalid="ignore"):
        return float(np.mean([overall[t] for t in thrs])), np.mean(np.stack([per_kp[t] for t in thrs]), axis=0)


def epe(matches: Matches) -> tuple[float | None, np.ndarray]:
    """End-point error: (mean pixel distance over labelled predicted keypoints, (K,) per keypoint)."""
    return mean_distance(matches.distances())


def mean_distance(d: np.ndarray) -> tuple[float | None, np.ndarray]:
    """(nan-mean of all of ``d``, (K,) nan-mean per column); None / NaN where nothing counts."""
    cnt = np.isfinite(d).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_kp = np.where(cnt > 0, np.nansum(d, axis=0) / np.maximum(cnt, 1), np.nan)
    total = float(np.nansum(d) / cnt.sum()) if cnt.sum() else None
    return total, per_kp


def swap_rate(matches: Matches, flip_pairs: Sequence[tuple[int, int]], *, margin: float = 0.02
              ) -> tuple[float | None, np.ndarray]:
    """Left/right swap rate: (overall, (K,) per keypoint; NaN for keypoints outside flip pairs)."""
    k = len(matches.names)
    swapped = np.zeros((matches.num_instances, k), dtype=bool)
    counted = np.zeros((matches.num_instances, k), dtype=bool)
    if not flip_pairs or matches.num_instances == 0:
        return None, np.full(k, np.nan)
    scale = np.max(matches.boxes[:, 2:], axis=1)
    scale = np.where(np.isfinite(scale), scale, 0.0)
    lab, has = matches.labelled, matches.predicted
    for a, b in flip_pairs:
        for own, partner in ((a, b), (b, a)):
            ok = lab[:, own] & lab[:, partner] & has[:, own]
            d_own = np.linalg.norm(matches.pred[:, own] - matches.gt[:, own, :2], axis=-1)
            d_partner = np.linalg.norm(matches.pred[:, own] - matches.gt[:, partner, :2], axis=-1)
            with np.errstate(invalid="ignore"):
                swapped[:, own] = ok & (d_own - d_partner > margin * scale)
            counted[:, own] = ok
    per_kp_n = counted.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_kp = np.where(per_kp_n > 0, swapped.sum(0) / np.maximum(per_kp_n, 1), np.nan)
    if counted.sum() == 0:
        return None, per_kp
    return float(swapped.sum() / counted.sum()), per_kp
