"""COCO keypoint AP/AR computed by pycocotools, with the inputs built right.

posetune does not re-implement COCO matching: :func:`coco_keypoint_eval` builds pycocotools'
``COCO`` ground-truth object in memory from a :class:`KeypointDataset`, loads the predictions as
``COCO.loadRes`` does and runs pycocotools' ``COCOeval(iouType='keypoints')`` with
``params.kpt_oks_sigmas`` set to the spec's sigmas (pycocotools uses ``len(kpt_oks_sigmas)``
keypoints, so any keypoint count works). Only the per-image OKS matrix is computed vectorised,
bit-identical to pycocotools' ``computeOks`` (see :func:`_cocoeval_class`). Its prints are
captured; the ten summary numbers come back as a dict (pycocotools' ``-1`` for "no ground truth
in this area range" becomes None).

What the ground-truth object holds, and why:

* one category (id 1) holding every instance: posetune datasets have one keypoint set, and
  pooling is what single-category COCO keypoint evaluation does;
* ``area`` = the instance's labelled ``area`` (in COCO that is the *segmentation* area); when a
  label has none, ``bbox_area_factor`` × bbox w·h (default 1.0). A box is larger than the
  silhouette (about 2× for people), so OKS is more forgiving and AP higher than with
  segmentation areas; xtcocotools uses 0.53 × box area for datasets without areas (CrowdPose).
  An instance with neither raises :class:`MissingAreaError`;
* ``num_keypoints`` = the number of labelled points (v > 0): pycocotools ignores instances with
  0, and crowd regions (``iscrowd``) are ignore regions as in COCO;
* ``bbox`` = the labelled box (tight keypoint box when missing): pycocotools uses it only for
  instances without labelled keypoints.

Predictions may be re-scored (``rescore``) and thinned by OKS-NMS (``oks_nms_thr``) before
evaluation, as MMPose does for top-down results.
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any, Literal, Sequence

import numpy as np

from posetune.data.records import Instance, KeypointDataset
from posetune.data.spec import DEFAULT_SIGMA
from posetune.errors import EvaluationError
from posetune.evaluation.matching import Matches, instance_area, keypoint_extent_area

AP_KEYS: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
RescoreMode = Literal["none", "keypoint_mean", "instance_x_keypoint"]
RESCORE_MODES: tuple[str, ...] = ("none", "keypoint_mean", "instance_x_keypoint")


class MissingAreaError(EvaluationError):
    """A ground-truth instance has neither ``area`` nor ``bbox``: OKS has no object scale."""


# ---------------------------------------------------------------------------- inputs
def image_ids_for(gt: KeypointDataset) -> list[int]:
    """The image ids used in the COCO objects: the dataset's own when unique ints, else 1..N."""
    ids = [rec.id for rec in gt.images]
    if all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids) and len(set(ids)) == len(ids):
        return [int(i) for i in ids]
    return list(range(1, len(gt.images) + 1))


def coco_ground_truth(gt: KeypointDataset, *, keypoints: Sequence[int] | None = None,
                      bbox_area_factor: float = 1.0, image_ids: Sequence[int] | None = None,
                      as_lists: bool = True) -> dict[str, Any]:
    """pycocotools-ready ground-truth dict of ``gt`` (only the ``keypoints`` indices when given).

    ``as_lists=False`` keeps each annotation's ``keypoints`` as a numpy row (faster; what
    :func:`run_cocoeval` uses) instead of a JSON-ready list.
    """
    idx = np.arange(gt.spec.num_keypoints) if keypoints is None else np.asarray(keypoints, dtype=np.int64)
    ids = list(image_ids) if image_ids is not None else image_ids_for(gt)
    names = [gt.spec.keypoints[i] for i in idx]
    remap = {int(o): n for n, o in enumerate(idx)}
    skeleton = [[remap[a] + 1, remap[b] + 1] for a, b in gt.spec.skeleton if a in remap and b in remap]
    cat_name = gt.categories[0] if gt.categories else "person"
    used = {int(inst.id) for _, inst in gt.iter_instances()
            if isinstance(inst.id, (int, np.integer)) and inst.id > 0}
    unique_ok = len(used) == gt.num_instances
    next_id = max(used, default=0) + 1
    images: list[dict[str, Any]] = []
    rows: list[tuple[int, int, Instance]] = []
    for rec, img_id in zip(gt.images, ids):
        im: dict[str, Any] = {"id": img_id, "file_name": rec.file_name}
        if rec.width and rec.height:
            im["width"], im["height"] = int(rec.width), int(rec.height)
        images.append(im)
        rows.extend((img_id, j, inst) for j, inst in enumerate(rec.instances))
    anns: list[dict[str, Any]] = []
    if rows:
        kps = np.stack([inst.keypoints for _, _, inst in rows])[:, idx]  # (N, K', 3)
        flat = kps.reshape(len(rows), -1)
        flat = flat.tolist() if as_lists else list(flat)
        num = (kps[:, :, 2] > 0).sum(1).tolist()
    for n, (img_id, j, inst) in enumerate(rows):
        area = inst.area
        if type(area) is not float or not math.isfinite(area):  # the labelled float area is the common case
            area = instance_area(inst, bbox_area_factor)
        if area is None:
            rec_name = next(r.file_name for r, i in zip(gt.images, ids) if i == img_id)
            raise MissingAreaError(
                "instance has neither 'area' nor 'bbox', so OKS has no object scale",
                where=f"image {img_id} ('{rec_name}'), instance {inst.id if inst.id is not None else '#' + str(j)}",
                hint="add 'bbox' (or 'area') to the ground truth; PCK/EPE/NME need neither")
        box = inst.bbox if inst.bbox is not None else inst.keypoint_bbox(0.0)
        if unique_ok:
            ann_id = int(inst.id)  # type: ignore[arg-type]
        else:
            ann_id, next_id = next_id, next_id + 1
        anns.append({
            "id": ann_id, "image_id": img_id, "category_id": 1, "keypoints": flat[n], "num_keypoints": num[n],
            "bbox": [0.0, 0.0, 0.0, 0.0] if box is None else box.tolist(),
            "area": float(area), "iscrowd": int(bool(inst.iscrowd)),
        })
    return {
        "images": images, "annotations": anns,
        "categories": [{"id": 1, "name": cat_name, "supercategory": cat_name, "keypoints": names,
                        "skeleton": skeleton}],
    }


def _keypoint_scores(inst: Instance) -> np.ndarray:
    """Per-keypoint scores: ``keypoint_scores``, else 1 for predicted points and 0 for absent ones."""
    k = inst.num_keypoints
    if inst.keypoint_scores is not None and len(inst.keypoint_scores) == k:
        return inst.keypoint_scores
    return (inst.keypoints[:, 2] > 0).astype(np.float64)


def instance_score(inst: Instance, rescore: RescoreMode = "none", kpt_score_thr: float = 0.2) -> float:
    """The detection score a prediction is ranked by.

    ``'none'``: the instance ``score`` (1.0 when it has none). ``'keypoint_mean'``: mean of the
    keypoint scores above ``kpt_score_thr`` (0 when none is). ``'instance_x_keypoint'``: instance
    score × that mean (MMPose's top-down re-scoring).
    """
    base = 1.0 if inst.score is None else float(inst.score)
    if rescore == "none":
        return base
    ks = _keypoint_scores(inst)
    above = ks[ks > kpt_score_thr]
    kmean = float(above.mean()) if len(above) else 0.0
    if rescore == "keypoint_mean":
        return kmean
    if rescore == "instance_x_keypoint":
        return base * kmean
    raise EvaluationError(f"unknown rescore mode '{rescore}'", hint=f"use one of: {', '.join(RESCORE_MODES)}")


def oks_nms(instances: Sequence[Instance], thr: float = 0.9, sigmas: Sequence[float] | np.ndarray | None = None,
            *, scores: Sequence[float] | None = None, kpt_score_thr: float | None = None) -> list[int]:
    """Greedy non-maximum suppression of poses by OKS; returns the kept indices (input order).

    Poses are visited by decreasing score (``scores``, else the instance scores); a pose is
    dropped when its OKS with an already kept pose exceeds ``thr``. OKS between two predictions
    uses the mean of their areas (area, else box w·h, else keypoint extent) and ``sigmas``
    (default :data:`~posetune.data.spec.DEFAULT_SIGMA` for every point). With ``kpt_score_thr``
    only keypoints scored above it in both poses count (MMPose's ``vis_thr``).
    """
    n = len(instances)
    if n == 0:
        return []
    k = instances[0].num_keypoints
    sig = np.full(k, DEFAULT_SIGMA) if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if len(sig) != k:
        raise EvaluationError(f"{len(sig)} sigmas for {k} keypoints", hint="give one OKS sigma per keypoint")
    xy = np.stack([inst.keypoints[:, :2] for inst in instances])
    areas = np.array([a if (a := instance_area(inst)) is not None else keypoint_extent_area(xy[i])
                      for i, inst in enumerate(instances)])
    s = np.asarray(scores, dtype=np.float64) if scores is not None else np.array(
        [1.0 if inst.score is None else inst.score for inst in instances])
    var = (2.0 * sig) ** 2
    d2 = ((xy[:, None] - xy[None]) ** 2).sum(-1)  # N, N, K
    mean_area = (areas[:, None] + areas[None]) / 2.0
    sim = np.exp(-d2 / var / (mean_area[..., None] + np.spacing(1)) / 2.0)
    if kpt_score_thr is not None:
        ks = np.stack([_keypoint_scores(inst) for inst in instances]) > kpt_score_thr
        valid = ks[:, None] & ks[None]
        cnt = valid.sum(-1)
        oks = np.where(cnt > 0, (sim * valid).sum(-1) / np.maximum(cnt, 1), 0.0)
    else:
        oks = sim.mean(-1)
    suppressed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    for i in np.argsort(-s, kind="mergesort"):
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= oks[i] > thr
        suppressed[i] = True
    return sorted(keep)


def prepare_predictions(per_image: Sequence[Sequence[Instance]], *, rescore: RescoreMode = "none",
                        kpt_score_thr: float = 0.2, oks_nms_thr: float | None = None,
                        sigmas: Sequence[float] | np.ndarray | None = None
                        ) -> tuple[list[list[Instance]], list[list[float]]]:
    """Apply re-scoring, then OKS-NMS per image. Returns (instances, their scores) per image."""
    if rescore not in RESCORE_MODES:
        raise EvaluationError(f"unknown rescore mode '{rescore}'", hint=f"use one of: {', '.join(RESCORE_MODES)}")
    out_insts: list[list[Instance]] = []
    out_scores: list[list[float]] = []
    for insts in per_image:
        scores = [instance_score(inst, rescore, kpt_score_thr) for inst in insts]
        insts = list(insts)
        if oks_nms_thr is not None and len(insts) > 1:
            keep = oks_nms(insts, oks_nms_thr, sigmas, scores=scores)
            insts = [insts[i] for i in keep]
            scores = [scores[i] for i in keep]
        out_insts.append(insts)
        out_scores.append(scores)
    return out_insts, out_scores


def coco_results(per_image: Sequence[Sequence[Instance]], image_ids: Sequence[int],
                 scores: Sequence[Sequence[float]], *, keypoints: Sequence[int] | None = None,
                 as_lists: bool = True) -> list[dict[str, Any]]:
    """COCO keypoint results ``[{image_id, category_id, keypoints [x, y, s]*K, score}]`` in image order.

    ``as_lists=False`` keeps ``keypoints`` as numpy rows (faster, not JSON-ready).
    """
    flat = [(img_id, inst, s) for insts, img_id, sc in zip(per_image, image_ids, scores) for inst, s in zip(insts, sc)]
    if not flat:
        return []
    xys = np.empty((len(flat), flat[0][1].num_keypoints, 3))
    for n, (_, inst, _) in enumerate(flat):
        xys[n, :, :2] = inst.keypoints[:, :2]
        xys[n, :, 2] = _keypoint_scores(inst)
    if keypoints is not None:
        xys = xys[:, np.asarray(keypoints, dtype=np.int64)]
    rows = xys.reshape(len(flat), -1)
    rows = rows.tolist() if as_lists else list(rows)
    return [{"image_id": img_id, "category_id": 1, "keypoints": row, "score": float(s)}
            for (img_id, _, s), row in zip(flat, rows)]


# ---------------------------------------------------------------------------- running pycocotools
def _load_results(coco_gt: Any, results: list[dict[str, Any]], dt_areas: Sequence[float] | None) -> Any:
    """``coco_gt.loadRes(results)`` for keypoint results, with the per-result loop vectorised.

    Same result object as pycocotools' ``loadRes`` (ids 1..N in list order, ``area`` and ``bbox``
    from the keypoints' extent; checked against it in the tests); falls back to ``loadRes`` for
    anything unusual. ``dt_areas`` replaces the computed areas.
    """
    from pycocotools.coco import COCO

    try:
        arr = np.asarray([r["keypoints"] for r in results], dtype=np.float64)
    except (TypeError, ValueError, KeyError):
        arr = None
    if arr is None or arr.ndim != 2 or arr.shape[1] % 3 or not arr.shape[1]:
        res = coco_gt.loadRes(results)
    else:
        gt_ids = set(coco_gt.getImgIds())
        if not {r["image_id"] for r in results} <= gt_ids:
            raise EvaluationError("results refer to images that are not in the ground truth",
                                  hint="align predictions with the ground truth first")
        x, y = arr[:, 0::3], arr[:, 1::3]
        x0, x1, y0, y1 = x.min(1), x.max(1), y.min(1), y.max(1)
        area = (x1 - x0) * (y1 - y0)
        boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1).tolist()
        for n, (ann, a, box) in enumerate(zip(results, area.tolist(), boxes)):
            ann["area"] = a
            ann["id"] = n + 1
            ann["bbox"] = box
        res = COCO()
        res.dataset["info"] = dict(coco_gt.dataset.get("info", {}))
        res.dataset["images"] = list(coco_gt.dataset["images"])
        res.dataset["categories"] = [dict(c) for c in coco_gt.dataset["categories"]]
        res.dataset["annotations"] = results
        res.createIndex()
    if dt_areas is not None:
        for n, a in enumerate(dt_areas):
            res.anns[n + 1]["area"] = float(a)
    return res


def _row_sums(a: np.ndarray) -> np.ndarray:
    """Sum of each row of ``a`` (M, n), bit-identical to ``np.sum`` of that row as a 1-D array.

    numpy sums a contiguous 1-D float array pairwise (8 partial sums, blocks of 128); summing a
    2-D array along an axis may add in another order and differ in the last bit. Reproducing the
    1-D order keeps the vectorised OKS equal to pycocotools' bit for bit.
    """
    n = a.shape[1]
    if n < 8:
        res = np.zeros(a.shape[0])
        for i in range(n):
            res = res + a[:, i]
        return res
    if n <= 128:
        r = a[:, :8].copy()
        m = n - n % 8
        for i in range(8, m, 8):
            r += a[:, i:i + 8]
        res = ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + ((r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7]))
        for i in range(m, n):
            res = res + a[:, i]
        return res
    half = n // 2
    half -= half % 8
    return _row_sums(a[:, :half]) + _row_sums(a[:, half:])


def _masked_row_sums(terms: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sum of ``terms[i, mask[i]]`` for every row i of ``terms`` (P, K), each bit-identical to
    ``np.sum`` of that 1-D selection (the order :func:`_row_sums` reproduces), all rows at once.

    Each row's selected terms are moved to the front and zero-padded; adding the padding zeros
    leaves the non-negative partial sums unchanged, so every row gets numpy's order for its own
    count n: blocks of 8 into 8 partial sums, their pairwise sum, then the n % 8 left one by one
    (only those, from 0, when n < 8). Rows with n > 128 use :func:`_row_sums`.
    """
    n_rows, k = terms.shape
    counts = np.count_nonzero(mask, axis=1)
    order = np.argsort(~mask, axis=1, kind="stable")  # the selected terms first, in their order
    width = 8 * (k // 8 + 1)
    c = np.zeros((n_rows, width))
    c[:, :k] = np.where(np.arange(k) < counts[:, None], np.take_along_axis(terms, order, axis=1), 0.0)
    blocks = counts // 8
    r = c[:, :8].copy()
    for b in range(1, k // 8):
        r += np.where((b < blocks)[:, None], c[:, 8 * b:8 * b + 8], 0.0)
    res = ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + ((r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7]))
    res = np.where(blocks > 0, res, 0.0)
    tail = np.take_along_axis(c, 8 * blocks[:, None] + np.arange(8), axis=1)  # zeros past n
    for t in range(8):
        res = res + tail[:, t]
    for i in np.flatnonzero(counts > 128).tolist():
        res[i] = _row_sums(terms[i:i + 1, mask[i]])[0]
    return res


_OKS_BATCH_PAIRS = 1 << 13  # (prediction, ground truth) pairs per vectorised OKS batch (~20 MB of temporaries)
_NO_BOX = (np.nan,) * 4  # pycocotools needs a ground-truth box only for instances without labelled points


def _batched_oks(gts_dts: list[tuple[list[dict], list[dict]]], sigmas: np.ndarray) -> list[np.ndarray]:
    """pycocotools' ``computeOks`` matrix (D, G) for each (ground truths, score-sorted predictions)
    of one image, all images' pairs computed together with the same expression."""
    if not gts_dts:
        return []
    var = (sigmas * 2) ** 2
    k = len(sigmas)
    sizes = [(len(d), len(g)) for g, d in gts_dts]
    dt = np.asarray([x["keypoints"] for _, d in gts_dts for x in d], dtype=np.float64)
    gt = np.asarray([x["keypoints"] for g, _ in gts_dts for x in g], dtype=np.float64)
    if dt.ndim != 2 or gt.ndim != 2 or dt.shape[1] != 3 * k or gt.shape[1] != 3 * k:
        raise ValueError(f"keypoints do not have 3 x {k} values (one per OKS sigma)")
    scale = np.array([x["area"] for g, _ in gts_dts for x in g], dtype=np.float64) + np.spacing(1)
    box = np.array([x.get("bbox", _NO_BOX) for g, _ in gts_dts for x in g], dtype=np.float64).reshape(-1, 4)
    n_d = np.array([s[0] for s in sizes], dtype=np.int64)
    n_g = np.array([s[1] for s in sizes], dtype=np.int64)
    n_pairs = n_d * n_g
    first = np.cumsum(n_pairs) - n_pairs
    q = np.arange(int(n_pairs.sum())) - np.repeat(first, n_pairs)  # pair index within its image
    pd = np.repeat(np.cumsum(n_d) - n_d, n_pairs) + q // np.repeat(n_g, n_pairs)  # row-major: (d, g)
    pg = np.repeat(np.cumsum(n_g) - n_g, n_pairs) + q % np.repeat(n_g, n_pairs)
    oks = np.empty(len(q))
    for lo in range(0, len(q), _OKS_BATCH_PAIRS):
        a, b = pd[lo:lo + _OKS_BATCH_PAIRS], pg[lo:lo + _OKS_BATCH_PAIRS]
        xd, yd = dt[a, 0::3], dt[a, 1::3]
        xg, yg, vis = gt[b, 0::3], gt[b, 1::3], gt[b, 2::3] > 0
        labelled = vis.any(axis=1)
        dx, dy = xd - xg, yd - yg
        bb = box[b]  # pycocotools: predictions scored by their distance to 3x the box when nothing is labelled
        x0, x1 = bb[:, :1] - bb[:, 2:3], bb[:, :1] + bb[:, 2:3] * 2
        y0, y1 = bb[:, 1:2] - bb[:, 3:4], bb[:, 1:2] + bb[:, 3:4] * 2
        bx = np.maximum(0.0, x0 - xd) + np.maximum(0.0, xd - x1)
        by = np.maximum(0.0, y0 - yd) + np.maximum(0.0, yd - y1)
        dx = np.where(labelled[:, None], dx, bx)
        dy = np.where(labelled[:, None], dy, by)
        e = (dx**2 + dy**2) / var / scale[b][:, None] / 2
        mask = np.where(labelled[:, None], vis, True)
        oks[lo:lo + _OKS_BATCH_PAIRS] = _masked_row_sums(np.exp(-e), mask) / np.count_nonzero(mask, axis=1)
    out, start = [], 0
    for d, g in sizes:
        out.append(oks[start:start + d * g].reshape(d, g))
        start += d * g
    return out


def _cocoeval_class() -> type:
    """pycocotools' COCOeval with ``computeOks`` vectorised over all images at once.

    Everything else (matching, accumulation, summary) is pycocotools' own code. The OKS values are
    computed by the same expression, each sum over an instance's labelled points taken in numpy's
    1-D order (:func:`_masked_row_sums`): bit-identical to the original ``computeOks`` (checked in
    the tests). ``evaluate`` computes every image's matrix in one go on its first ``computeOks``.
    """
    from pycocotools.cocoeval import COCOeval

    class KeypointCOCOeval(COCOeval):
        _oks: dict[tuple[Any, Any], Any] | None = None  # every image's OKS matrix, during evaluate()
        _evaluating = False

        def evaluate(self) -> None:
            self._evaluating, self._oks = True, None
            try:
                super().evaluate()
            finally:
                self._evaluating, self._oks = False, None

        def _all_oks(self, keys: list[tuple[Any, Any]]) -> dict[tuple[Any, Any], Any]:
            pairs = {}
            for key in keys:
                gts, dts = self._gts[key], self._dts[key]
                inds = np.argsort([-d["score"] for d in dts], kind="mergesort")
                pairs[key] = (gts, [dts[i] for i in inds][:self.params.maxDets[-1]])
            full = [key for key, (g, d) in pairs.items() if g and d]
            ious = _batched_oks([pairs[key] for key in full], np.asarray(self.params.kpt_oks_sigmas, dtype=np.float64))
            out: dict[tuple[Any, Any], Any] = {key: [] for key in keys}
            out.update(zip(full, ious))
            return out

        def computeOks(self, imgId: Any, catId: Any) -> Any:  # noqa: N802 (pycocotools' name)
            if not self._evaluating:  # called on its own
                return self._all_oks([(imgId, catId)])[imgId, catId]
            if self._oks is None:  # first call of this evaluate(): every (image, category) it asks for
                p = self.params
                self._oks = self._all_oks([(i, c) for i in p.imgIds for c in (p.catIds if p.useCats else [-1])])
            return self._oks[imgId, catId]

    return KeypointCOCOeval


def run_cocoeval(gt_dict: dict[str, Any], results: list[dict[str, Any]], sigmas: Sequence[float] | np.ndarray,
                 *, dt_areas: Sequence[float] | None = None) -> dict[str, float | None]:
    """Run pycocotools' keypoint COCOeval on an in-memory GT dict and results list (prints captured).

    ``results`` dicts get ``id``/``area``/``bbox`` added as ``loadRes`` does. ``dt_areas``
    overrides the prediction areas (used by the whole-body protocol, where xtcocotools takes them
    from the body keypoints only).
    """
    from pycocotools.coco import COCO

    sig = np.asarray(sigmas, dtype=np.float64)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        if results:
            coco_dt = _load_results(coco_gt, results, dt_areas)
        else:  # loadRes cannot take an empty list: an empty result set gives AP 0 where there is GT
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(gt_dict["images"]), "annotations": [],
                               "categories": list(gt_dict["categories"])}
            coco_dt.createIndex()
        ev = _cocoeval_class()(coco_gt, coco_dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = sig
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: (None if v < 0 else float(v)) for k, v in zip(AP_KEYS, ev.stats)}


def check_sigmas(gt: KeypointDataset, sigmas: Sequence[float] | np.ndarray | None) -> np.ndarray:
    """``sigmas`` (default: the spec's) as an array, checked: one positive finite value per keypoint."""
    sig = np.asarray(gt.spec.sigmas if sigmas is None else sigmas, dtype=np.float64).reshape(-1)
    if len(sig) != gt.spec.num_keypoints:
        raise EvaluationError(f"{len(sig)} OKS sigmas for {gt.spec.num_keypoints} keypoints",
                              where=f"keypoint spec '{gt.spec.name}'", hint="give one sigma per keypoint")
    if not (np.isfinite(sig).all() and (sig > 0).all()):
        raise EvaluationError("OKS sigmas must be positive finite numbers", where=f"keypoint spec '{gt.spec.name}'",
                              hint="check the --sigmas values")
    return sig


def per_image_predictions(gt: KeypointDataset, pred: KeypointDataset | Sequence[Sequence[Instance]]
                          ) -> list[list[Instance]]:
    """One list of predicted instances per ``gt`` image (a KeypointDataset is aligned by file name).

    A predicted instance without any predicted point (all v = 0, e.g. an empty annotation in a
    label-format prediction file) is not a prediction and is left out.
    """
    if isinstance(pred, KeypointDataset):
        from posetune.evaluation.predictions import align_predictions

        per_image = align_predictions(gt, pred)
    else:
        per_image = [list(x) for x in pred]
    if len(per_image) != len(gt.images):
        raise EvaluationError(f"predictions for {len(per_image)} images, ground truth has {len(gt.images)}",
                              hint="give one list of predicted instances per ground-truth image")
    return _with_labelled_points(per_image)


def _with_labelled_points(per_image: list[list[Instance]]) -> list[list[Instance]]:
    """``per_image`` without the instances that have no point with v > 0 (checked in one go)."""
    insts = [inst for x in per_image for inst in x]
    try:
        labelled = (np.stack([inst.keypoints[:, 2] for inst in insts]) > 0).any(axis=1).tolist() if insts else []
    except ValueError:  # instances with different numbers of keypoints
        labelled = [inst.num_labelled > 0 for inst in insts]
    out, start = [], 0
    for x in per_image:
        keep = labelled[start:start + len(x)]
        start += len(x)
        out.append(list(x) if all(keep) else [inst for inst, k in zip(x, keep) if k])
    return out


def coco_keypoint_eval(
    gt: KeypointDataset,
    pred: KeypointDataset | Sequence[Sequence[Instance]],
    *,
    sigmas: Sequence[float] | np.ndarray | None = None,
    rescore: RescoreMode = "none",
    kpt_score_thr: float = 0.2,
    oks_nms_thr: float | None = None,
    bbox_area_factor: float = 1.0,
) -> dict[str, float | None]:
    """COCO keypoint AP/AR (keys :data:`AP_KEYS`) of ``pred`` against ``gt`` via pycocotools.

    ``pred`` is a KeypointDataset (aligned by :func:`~posetune.evaluation.predictions.align_predictions`)
    or one list of instances per ground-truth image. Values are None where pycocotools reports -1
    (no ground truth in that area range); with no predictions at all, AP and AR are 0.
    """
    sig = check_sigmas(gt, sigmas)
    per_image, scores = prepare_predictions(per_image_predictions(gt, pred), rescore=rescore,
                                            kpt_score_thr=kpt_score_thr, oks_nms_thr=oks_nms_thr, sigmas=sig)
    ids = image_ids_for(gt)
    gt_dict = coco_ground_truth(gt, bbox_area_factor=bbox_area_factor, image_ids=ids, as_lists=False)
    return run_cocoeval(gt_dict, coco_results(per_image, ids, scores, as_lists=False), sig)


def coco_wholebody_eval(
    gt: KeypointDataset,
    pred: KeypointDataset | Sequence[Sequence[Instance]],
    *,
    sigmas: Sequence[float] | np.ndarray | None = None,
    rescore: RescoreMode = "none",
    kpt_score_thr: float = 0.2,
    oks_nms_thr: float | None = None,
    bbox_area_factor: float = 1.0,
) -> dict[str, dict[str, float | None]]:
    """Per-part AP/AR for a spec with ``parts`` (COCO-WholeBody: body, foot, face, lefthand,
    righthand) plus ``'wholebody'`` over every keypoint — the xtcocotools protocol on pycocotools.

    For each part, the evaluation sees only that part's keypoints and sigmas, with the whole
    instance's ``area`` as scale. As in xtcocotools' ``COCOeval(iouType='keypoints_<part>')``:
    an instance with no labelled point in the part is ignored; a prediction whose scores for the
    part are all <= 0 is dropped; a prediction's area (for the area-range filters) is the extent of
    its ``body`` keypoints (xtcocotools takes it from the 17-point ``keypoints`` field).
    """
    if not gt.spec.parts:
        raise EvaluationError(f"keypoint spec '{gt.spec.name}' defines no parts", where="ground truth",
                              hint="per-part AP needs a spec with parts, e.g. coco_wholebody133")
    sig = check_sigmas(gt, sigmas)
    per_image, scores = prepare_predictions(per_image_predictions(gt, pred), rescore=rescore,
                                            kpt_score_thr=kpt_score_thr, oks_nms_thr=oks_nms_thr, sigmas=sig)
    ids = image_ids_for(gt)
    parts = dict(gt.spec.parts)
    body = np.asarray(parts.get("body", range(gt.spec.num_keypoints)))
    out: dict[str, dict[str, float | None]] = {}
    for name, idx in [*parts.items(), ("wholebody", tuple(range(gt.spec.num_keypoints)))]:
        idx_arr = np.asarray(idx, dtype=np.int64)
        kept_insts, kept_scores, areas = [], [], []
        for insts, sc in zip(per_image, scores):
            ki, ks = [], []
            for inst, s in zip(insts, sc):
                if (_keypoint_scores(inst)[idx_arr] > 0).any():
                    ki.append(inst)
                    ks.append(s)
                    xy = inst.keypoints[body, :2]
                    span = xy.max(axis=0) - xy.min(axis=0)
                    areas.append(float(span[0] * span[1]))
            kept_insts.append(ki)
            kept_scores.append(ks)
        gt_dict = coco_ground_truth(gt, keypoints=idx_arr, bbox_area_factor=bbox_area_factor, image_ids=ids,
                                    as_lists=False)
        results = coco_results(kept_insts, ids, kept_scores, keypoints=idx_arr, as_lists=False)
        out[name] = run_cocoeval(gt_dict, results, sig[idx_arr], dt_areas=areas)
    return out


# ---------------------------------------------------------------------------- per-keypoint view
def per_keypoint_oks(matches: Matches, sigmas: Sequence[float] | np.ndarray) -> np.ndarray:
    """(K,) mean per-keypoint OKS term ``exp(-d² / (2·area·(2σ)²))`` over paired, labelled points.

    Uses the pairs of :func:`~posetune.evaluation.matching.match_instances` (not pycocotools'
    matching); a point the paired prediction lacks scores 0. NaN where no point counts (or no area).
    """
    sig = np.asarray(sigmas, dtype=np.float64)
    ok = matches.labelled & matches.matched[:, None] & np.isfinite(matches.areas)[:, None]
    d2 = ((matches.pred - matches.gt[..., :2]) ** 2).sum(-1)
    d2 = np.where(np.isfinite(d2), d2, np.inf)
    area = np.where(np.isfinite(matches.areas), matches.areas, 1.0)[:, None]
    term = np.exp(-d2 / ((2.0 * sig) ** 2)[None] / (area + np.spacing(1)) / 2.0)
    cnt = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (term * ok).sum(0) / np.maximum(cnt, 1), np.nan)
