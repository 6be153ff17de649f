"""Read prediction files and line them up with the ground truth's images.

Two kinds of prediction file are accepted:

* **COCO results** — a json list of ``{"image_id", "category_id", "keypoints": [x, y, s] * K,
  "score"}`` (what pycocotools' ``loadRes`` reads; ``s`` is the keypoint score). Images are
  found by ``image_id`` among the ground truth's image ids. An optional ``"id"`` is kept as the
  instance id (pairing by id, see :mod:`posetune.evaluation.matching`); an optional
  ``"keypoint_scores"`` list overrides the third values. ``score`` defaults to 1.0 when absent.
* **Any label format** posetune reads (:func:`posetune.data.formats.read_dataset`) — images are
  matched on ``file_name`` (as written, then as absolute path, then by base name when that is
  unique in the ground truth).

Every problem names the record (its index in the list and its ``image_id``) and says what to do.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from posetune.data.records import ImageRecord, Instance, KeypointDataset
from posetune.data.spec import KeypointSpec
from posetune.errors import DataError, EvaluationError, FormatDetectionError


def read_ground_truth(path: str | Path, *, format: str = "auto", spec: KeypointSpec | str | None = None,
                      image_root: str | Path | None = None) -> KeypointDataset:
    """Read ground-truth labels in any supported format (thin wrapper over ``read_dataset``)."""
    from posetune.data.formats import read_dataset

    if format == "auto" and _looks_like_coco_json(Path(path)):
        # skip format detection (it parses the whole file once more); fall back to it on failure
        try:
            return read_dataset(path, format="coco", spec=spec, image_root=image_root)
        except DataError:
            pass
    return read_dataset(path, format=format, spec=spec, image_root=image_root)


def _looks_like_coco_json(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return head.lstrip().startswith("{") and ('"annotations"' in head or '"images"' in head)


def is_coco_results(data: Any) -> bool:
    """True for a json value shaped like COCO keypoint results (a list of dicts with image_id/keypoints)."""
    if not isinstance(data, list):
        return False
    return data == [] or any(isinstance(r, dict) and "image_id" in r and "keypoints" in r for r in data[:20])


def read_predictions(path: str | Path, gt: KeypointDataset, *, format: str = "auto") -> KeypointDataset:
    """Predictions at ``path`` as a KeypointDataset aligned with ``gt`` (same images, same order).

    ``format='auto'`` reads a json list as COCO results and anything else with the label readers;
    ``format='coco_results'`` forces the former, any label format name the latter.
    """
    path = Path(path)
    if not path.exists():
        raise EvaluationError("prediction file not found", where=path, hint="check the --pred path")
    if format in ("auto", "coco_results") and path.suffix.lower() == ".json":
        from posetune.io_utils import read_json

        data = read_json(path)
        if format == "coco_results" or is_coco_results(data):
            return results_to_dataset(data, gt, where=path)
    elif format == "coco_results":
        raise EvaluationError("COCO results must be a .json file", where=path,
                              hint="write predictions as a json list of {image_id, keypoints, score}")
    from posetune.data.formats import read_dataset

    try:
        pred = read_dataset(path, format=format)
    except FormatDetectionError:
        raise EvaluationError("cannot tell which format these predictions are in", where=path,
                              hint="write COCO results json (a list of {image_id, keypoints, score}) or pass the "
                                   "label format (--pred-format)") from None
    except DataError as e:
        raise EvaluationError(f"cannot read predictions: {e.what}", where=e.where or path,
                              hint=e.hint or "write predictions as COCO results json") from None
    per_image = align_predictions(gt, pred)
    return _aligned_dataset(gt, per_image, source=path, fmt=pred.format)


def _aligned_dataset(gt: KeypointDataset, per_image: Sequence[Sequence[Instance]], source: Path | None,
                     fmt: str | None) -> KeypointDataset:
    images = [ImageRecord(file_name=rec.file_name, width=rec.width, height=rec.height, id=rec.id,
                          instances=list(insts)) for rec, insts in zip(gt.images, per_image)]
    ds = KeypointDataset(spec=gt.spec, images=images, root=gt.root, source=source, format=fmt,
                         categories=list(gt.categories))
    ds.info["aligned_to_ground_truth"] = True
    return ds


def _record_where(source: str | Path, n: int, image_id: Any) -> str:
    return f"{source}: record {n} (image_id {image_id!r})"


def results_to_dataset(results: Any, gt: KeypointDataset, *, where: str | Path = "<results>") -> KeypointDataset:
    """COCO keypoint results (a list of dicts) as a KeypointDataset aligned with ``gt``."""
    if not isinstance(results, list):
        raise EvaluationError(f"COCO results must be a json list, got {type(results).__name__}", where=where,
                              hint="write a list of {image_id, category_id, keypoints, score}")
    ids = [rec.id for rec in gt.images]
    if any(i is None for i in ids) or len(set(ids)) != len(ids):
        raise EvaluationError("the ground truth's images have no unique ids, so COCO results cannot refer to them",
                              where=gt.source or "ground truth",
                              hint="read the ground truth from a COCO json, or give predictions in a format "
                                   "with file names")
    index = {i: n for n, i in enumerate(ids)}
    k = gt.spec.num_keypoints
    per_image: list[list[Instance]] = [[] for _ in gt.images]
    flat = _flat_keypoint_table(results, k, where)
    if flat is not None:  # one array for all: each instance gets views into it
        table = flat.copy()
        table[:, :, 2] = 2.0
        kp_scores = np.ascontiguousarray(flat[:, :, 2])
    categories = _CategoryNames(gt)
    for n, r in enumerate(results):
        if not isinstance(r, dict):
            raise EvaluationError(f"record {n} is a {type(r).__name__}, not an object", where=where,
                                  hint="every result is {image_id, category_id, keypoints, score}")
        image_id = r.get("image_id")
        if flat is not None and type(image_id) is int and image_id in index and "keypoint_scores" not in r:
            score = r.get("score", 1.0)
            if type(score) is float and math.isfinite(score):  # the common case, checked quickly
                rid = r.get("id")
                per_image[index[image_id]].append(Instance(
                    keypoints=table[n], score=score, keypoint_scores=kp_scores[n],
                    id=int(rid) if isinstance(rid, int) and not isinstance(rid, bool) else None,
                    category=categories.get(r.get("category_id"))))
                continue
        w = _record_where(where, n, image_id)
        if isinstance(image_id, bool) or image_id not in index:
            example = ", ".join(str(i) for i in ids[:5])
            raise EvaluationError("unknown image_id (not an image of the ground truth)", where=w,
                                  hint=f"use the ground truth's image ids (e.g. {example}); check that both files "
                                       "come from the same split")
        if flat is not None:
            kp, scores = table[n], kp_scores[n]
        else:
            raw = _keypoints_of(r, k, w)
            kp, scores = np.column_stack([raw[:, :2], np.full(k, 2.0)]), raw[:, 2].copy()
        if "keypoint_scores" in r:
            scores = _number_array(r["keypoint_scores"], k, w, "keypoint_scores")
        score = r.get("score", 1.0)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not np.isfinite(score):
            raise EvaluationError(f"'score' is {score!r}, not a finite number", where=w,
                                  hint="give each result a finite instance score")
        rid = r.get("id")
        inst_id = int(rid) if isinstance(rid, int) and not isinstance(rid, bool) else None
        inst = Instance(keypoints=kp, score=float(score), keypoint_scores=scores, id=inst_id,
                        category=categories.get(r.get("category_id")))
        per_image[index[image_id]].append(inst)
    return _aligned_dataset(gt, per_image, source=Path(where) if not isinstance(where, Path) else where,
                            fmt="coco_results")


def _category_name(cid: Any, gt: KeypointDataset) -> str | None:
    cats = gt.info.get("coco_categories") or []
    for c in cats:
        if isinstance(c, dict) and c.get("id") == cid:
            return str(c.get("name"))
    return None


class _CategoryNames:
    """:func:`_category_name` with the answers for plain int ids remembered (one lookup per result)."""

    def __init__(self, gt: KeypointDataset) -> None:
        self.gt = gt
        self.known: dict[int, str | None] = {}

    def get(self, cid: Any) -> str | None:
        if type(cid) is not int:
            return _category_name(cid, self.gt)
        if cid not in self.known:
            self.known[cid] = _category_name(cid, self.gt)
        return self.known[cid]


def _flat_keypoint_table(results: list, k: int, where: str | Path) -> np.ndarray | None:
    """Fast path: all records' keypoints as one (N, K, 3) array, or None to check one by one."""
    try:
        arr = np.asarray([r["keypoints"] for r in results], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        return None
    if arr.ndim != 2 or arr.shape[1] != 3 * k or not np.isfinite(arr).all():
        return None
    return arr.reshape(len(results), k, 3)


def _number_array(values: Any, n: int, where: str, field: str) -> np.ndarray:
    if not isinstance(values, list):
        raise EvaluationError(f"'{field}' is a {type(values).__name__}, not a list", where=where,
                              hint=f"give '{field}' as a flat list of numbers")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise EvaluationError(f"'{field}' holds values that are not numbers", where=where,
                              hint=f"give '{field}' as a flat list of numbers") from None
    if arr.ndim != 1 or arr.size != n:
        raise EvaluationError(f"'{field}' has {arr.size} values, expected {n}", where=where,
                              hint="predictions must use the ground truth's keypoint set")
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        raise EvaluationError(f"'{field}' has NaN/inf at position(s) {bad[:10].tolist()}", where=where,
                              hint="write finite numbers (drop the result or give a low score instead of NaN)")
    return arr


def _keypoints_of(r: dict, k: int, where: str) -> np.ndarray:
    if "keypoints" not in r:
        raise EvaluationError("record has no 'keypoints'", where=where, hint="each result needs [x, y, score] * K")
    vals = r["keypoints"]
    if isinstance(vals, list) and len(vals) != 3 * k:
        if len(vals) % 3 == 0:
            what = f"'keypoints' has {len(vals) // 3} keypoints ({len(vals)} numbers), the ground truth has {k}"
        else:
            what = f"'keypoints' has {len(vals)} numbers, expected {3 * k} ({k} keypoints x 3)"
        raise EvaluationError(what, where=where,
                              hint="predict the ground truth's keypoint set, in its order (x, y, score per point)")
    return _number_array(vals, 3 * k, where, "keypoints").reshape(k, 3)


# ---------------------------------------------------------------------------- alignment by file name
def _norm(name: str) -> str:
    p = name.replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p


def align_predictions(gt: KeypointDataset, pred: KeypointDataset) -> list[list[Instance]]:
    """Predicted instances for each image of ``gt`` (list index = ``gt.images`` index).

    A dataset made by :func:`read_predictions` is already aligned. Otherwise images are matched
    on ``file_name`` (relative as written, then absolute path, then unique base name); images
    with an empty ``file_name`` are matched on ``id``. Keypoints are reordered when the prediction's spec
    has the same names in another order. Raises EvaluationError for a predicted image the ground
    truth does not have, or a different keypoint count.
    """
    order = _keypoint_order(gt.spec, pred.spec, pred.source)
    if pred.info.get("aligned_to_ground_truth") and len(pred.images) == len(gt.images) and all(
            p.file_name == g.file_name for p, g in zip(pred.images, gt.images)):
        per_image = [list(p.instances) for p in pred.images]
    else:
        per_image = _align_by_name(gt, pred)
    if order is not None:
        per_image = [[_reorder(inst, order) for inst in insts] for insts in per_image]
    return per_image


def _reorder(inst: Instance, order: np.ndarray) -> Instance:
    out = inst.copy()
    out.keypoints = out.keypoints[order]
    if out.keypoint_scores is not None and len(out.keypoint_scores) == len(order):
        out.keypoint_scores = out.keypoint_scores[order]
    return out


def _keypoint_order(gt_spec: KeypointSpec, pred_spec: KeypointSpec, source: Any) -> np.ndarray | None:
    if pred_spec.num_keypoints != gt_spec.num_keypoints:
        raise EvaluationError(f"predictions have {pred_spec.num_keypoints} keypoints, the ground truth has "
                              f"{gt_spec.num_keypoints}", where=source or "predictions",
                              hint="predict with a model trained on the ground truth's keypoint set")
    if list(pred_spec.keypoints) == list(gt_spec.keypoints) or set(pred_spec.keypoints) != set(gt_spec.keypoints):
        return None  # same order, or unrelated names: compare position by position
    return np.array([pred_spec.index(n) for n in gt_spec.keypoints])


def _align_by_name(gt: KeypointDataset, pred: KeypointDataset) -> list[list[Instance]]:
    by_rel = {_norm(r.file_name): i for i, r in enumerate(gt.images)}
    by_abs = {os.path.abspath(gt.image_path(r)): i for i, r in enumerate(gt.images)}
    base_count: dict[str, int] = {}
    for r in gt.images:
        b = Path(_norm(r.file_name)).name
        base_count[b] = base_count.get(b, 0) + 1
    by_base = {Path(_norm(r.file_name)).name: i for i, r in enumerate(gt.images)
               if base_count[Path(_norm(r.file_name)).name] == 1}
    by_id = {r.id: i for i, r in enumerate(gt.images) if r.id is not None}
    per_image: list[list[Instance]] = [[] for _ in gt.images]
    for n, rec in enumerate(pred.images):
        i = by_rel.get(_norm(rec.file_name))
        if i is None:
            i = by_abs.get(os.path.abspath(pred.image_path(rec)))
        if i is None:
            i = by_base.get(Path(_norm(rec.file_name)).name)
        if i is None and not rec.file_name and rec.id is not None:  # in-memory predictions without names
            i = by_id.get(rec.id)
        if i is None:
            if not rec.instances:
                continue  # an image without predictions costs nothing
            example = gt.images[0].file_name if gt.images else "-"
            raise EvaluationError(f"predicted image '{rec.file_name}' (image {n}) is not in the ground truth",
                                  where=pred.source or "predictions",
                                  hint=f"predict on the ground truth's images (e.g. '{example}'); file names are "
                                       "compared as written, as absolute paths, then by base name")
        per_image[i].extend(rec.instances)
    return per_image
