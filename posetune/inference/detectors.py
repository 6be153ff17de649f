"""Where the top-down predictor crops: boxes given in a file, the whole frame, a person detector,
or the previous frame's keypoints.

Boxes are numpy arrays ``(N, 5)``: ``x, y, w, h`` in image pixels (pixel centres at integers,
like every posetune coordinate) and a box score, or ``(N, 6)`` with a sixth column, the subject's
**rotation** in degrees (counter-clockwise as displayed, 0 = upright). A rotated box is the box in
the subject's upright frame, centred on its centre; the predictor crops it turned upright, the way
MediaPipe crops a person who is lying or leaning (a rehab exercise on a mat, a fall).

* :func:`boxes_from_coco_detections` — a COCO detection results json (``image_id``, ``bbox``,
  ``score``, ``category_id``), or a COCO dataset json whose annotations carry boxes. Images are
  matched by file name when the file names images, else by ``image_id`` (a COCO file name such
  as ``000000000785.jpg`` matches id 785; for a video, ``image_id`` is the frame index).
* :func:`whole_frame` — one box covering the image (the single-subject lab / rehab case).
* :func:`box_from_keypoints` — the padded box around the confident keypoints of a previous frame
  (BlazePose-style tracking: the next frame's crop follows the subject); with ``rotation`` the box
  is taken in the subject's upright frame. :func:`body_rotation` reads that rotation from the
  hips and shoulders (mid-hip -> mid-shoulder; MPII: pelvis -> thorax).
* :func:`rotated_box_corners` / :func:`enclosing_box` — the corners of a rotated box and the
  axis-aligned box around them (what predictions report and drawings show).
* :class:`MediaPipePoseDetector` — MediaPipe's BlazePose person detector
  (``pose_detection.tflite``, converted to PyTorch by :mod:`posetune.models.mediapipe`); its
  palm and face siblings are in :mod:`posetune.inference.part_detectors`, all three built on
  :class:`MediaPipeSSDDetector` and picked by name with :func:`build_detector`.

MediaPipe pose detector. The network sees the image letterboxed into 224x224 (aspect kept,
black borders, values in [-1, 1]) and scores 2254 SSD anchors: a 28x28 grid (stride 8) and a 14x14
grid (stride 16) with 2 anchors per cell, and a 7x7 grid (stride 32) with 6 (three layers of
stride 32, 2 anchors each) — MediaPipe's ``SsdAnchorsCalculator`` with ``num_layers 5``,
``strides [8, 16, 32, 32, 32]``, aspect ratio 1.0 plus one interpolated anchor per layer, anchor
offset 0.5 and fixed anchor size (every anchor is 1x1 in normalised units). Each anchor regresses
12 numbers in input pixels (``x_scale = y_scale = w_scale = h_scale = 224``): the centre offset
and size of a box (the head region), then 4 keypoints: the mid-hip centre, a point on the circle
enclosing the whole body, the mid-shoulder centre and a point on the circle enclosing the upper
body. Scores are ``sigmoid(clip(logit, -100, 100))``; detections above ``score_thr`` are merged
with MediaPipe's *weighted* non-maximum suppression (overlapping detections are averaged,
weighted by their scores). The **person box** is BlazePose's region of interest before its 1.25x
enlargement: the square centred on the mid-hip point whose half side is the distance from the
mid-hip point to the body-circle point. The predictor's crop padding (1.25) then gives exactly
MediaPipe's landmark ROI; ``boxes_batch(images, rotated=True)`` adds its rotation (the hip ->
body-circle direction turned upright) as the sixth column.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from posetune.errors import DataError, ModelError

#: columns of a box array (the sixth, rotation, is optional)
BOX_COLUMNS = ("x", "y", "w", "h", "score", "rotation")


# ============================================================================ box arrays
def as_boxes(boxes: Any, where: str = "boxes") -> np.ndarray:
    """``(N, 5)`` float64 boxes from ``(4,)``, ``(5,)``, ``(N, 4)`` or ``(N, 5)`` input (score 1 when
    absent); ``(N, 6)`` input (with a rotation column) stays ``(N, 6)``.

    Raises :class:`~posetune.errors.DataError` for other shapes, non-finite values or
    non-positive sizes.
    """
    arr = np.asarray(boxes if boxes is not None else np.zeros((0, 5)), dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 5))
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (4, 5, 6):
        raise DataError(f"boxes must be x, y, w, h[, score[, rotation]] rows, got shape {arr.shape}", where=where,
                        hint="give a list of [x, y, w, h] (COCO xywh) boxes")
    if arr.shape[1] == 4:
        arr = np.c_[arr, np.ones(len(arr))]
    if not np.isfinite(arr).all() or (arr[:, 2:4] <= 0).any():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(1) | (arr[:, 2:4] <= 0).any(1))[0])
        raise DataError(f"box {bad} {arr[bad, :4].tolist()} is not a finite box with positive width and height",
                        where=where, hint="boxes are x, y, w, h in pixels (COCO xywh)")
    return arr


def whole_frame(width: int, height: int) -> np.ndarray:
    """One box ``(1, 5)`` covering a ``width`` x ``height`` image (pixel centres 0..W-1), score 1."""
    return np.array([[-0.5, -0.5, float(width), float(height), 1.0]])


def box_from_keypoints(keypoints: np.ndarray, scores: np.ndarray | None = None, padding: float = 0.25,
                       score_thr: float = 0.3, min_points: int = 2, min_size: float = 1.0,
                       rotation: float = 0.0) -> np.ndarray | None:
    """The ``(4,)`` xywh box around the keypoints scored ``>= score_thr``, grown by ``padding`` times
    its width and height on every side; None when fewer than ``min_points`` points qualify.

    A thin extent (a subject seen edge-on) is widened to at least a quarter of the other side so
    the next crop still holds the whole subject, and the box is scaled up (about its centre) until
    its longer side, before padding, is at least ``min_size`` pixels. With ``rotation`` (degrees,
    counter-clockwise as displayed) the box is measured in the subject's upright frame and
    centred on the points' centre in the image (a rotated box, see the module docstring).
    """
    xy = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    ok = np.isfinite(xy).all(axis=1)
    if scores is not None:
        ok &= np.nan_to_num(np.asarray(scores, dtype=np.float64).reshape(-1), nan=-1.0) >= score_thr
    if ok.sum() < max(1, min_points):
        return None
    p = xy[ok]
    if rotation:
        upright = box_from_keypoints(_turn(p, -rotation), None, padding, min_points=min_points, min_size=min_size)
        if upright is None:
            return None
        centre = _turn((upright[:2] + upright[2:] / 2)[None], rotation)[0]
        return np.r_[centre - upright[2:] / 2, upright[2:]]
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    w, h = x1 - x0, y1 - y0
    side = max(w, h, 1e-6)
    w, h = max(w, side / 4), max(h, side / 4)
    grow = max(1.0, float(min_size) / max(w, h))
    w, h = w * grow, h * grow
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = w * (1 + 2 * padding), h * (1 + 2 * padding)
    return np.array([cx - w / 2, cy - h / 2, w, h])


def body_rotation(spec, keypoints: np.ndarray, scores: np.ndarray | None = None,
                  score_thr: float = 0.3) -> float | None:
    """The subject's rotation in degrees, counter-clockwise as displayed (0: upright, the mid-hip ->
    mid-shoulder vector points up; 90: lying with the head to the image left), in (-180, 180].

    Reads the spec's ``left_/right_hip`` and ``left_/right_shoulder`` (at least one of each scored
    ``>= score_thr``; MPII's ``pelvis``/``thorax`` otherwise); for a hand, ``wrist`` ->
    ``middle_finger_mcp`` (MMPose: ``middle_finger1``) pointing up is 0, as MediaPipe's hand crops.
    None for specs without them (faces, animals), when they are not seen, or the two coincide.
    """
    xy = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    ok = np.isfinite(xy).all(axis=1)
    if scores is not None:
        ok &= np.nan_to_num(np.asarray(scores, dtype=np.float64).reshape(-1), nan=-1.0) >= score_thr

    def centre(names: Sequence[str]) -> np.ndarray | None:
        idx = [spec.index(n) for n in names if spec.has(n)]
        idx = [i for i in idx if i < len(ok) and ok[i]]
        return xy[idx].mean(axis=0) if idx else None

    low, high = centre(("left_hip", "right_hip")), centre(("left_shoulder", "right_shoulder"))
    if low is None or high is None:
        low, high = centre(("pelvis",)), centre(("thorax",))
    if low is None or high is None:  # a hand: wrist -> middle finger knuckle (MediaPipe / MMPose names)
        low, high = centre(("wrist",)), centre(("middle_finger_mcp", "middle_finger1"))
    if low is None or high is None:
        return None
    if np.hypot(*(high - low)) < 1e-6:
        return None
    return vector_rotation(low, high, 90.0)


def vector_rotation(start: np.ndarray, end: np.ndarray, target_deg: float = 90.0) -> float:
    """How far the vector ``start -> end`` is turned counter-clockwise (as displayed) from the
    direction ``target_deg`` (90: straight up, 0: to the image right), in degrees in (-180, 180]."""
    d = np.asarray(end, dtype=np.float64) - np.asarray(start, dtype=np.float64)
    angle = float(np.degrees(np.arctan2(-d[1], d[0]))) - float(target_deg)
    return -((180.0 - angle) % 360.0 - 180.0)


def _turn(points: np.ndarray, degrees: float) -> np.ndarray:
    """``points`` (N, 2) turned counter-clockwise as displayed (image y down) about the origin."""
    t = np.radians(degrees)
    cs, sn = np.cos(t), np.sin(t)
    return points @ np.array([[cs, -sn], [sn, cs]])


def rotated_box_corners(box: np.ndarray | Sequence[float], rotation: float = 0.0) -> np.ndarray:
    """``(4, 2)`` corners in the image of the xywh ``box`` of a subject rotated by ``rotation``
    degrees (the box is in the subject's upright frame, turned about its centre)."""
    x, y, w, h = (float(v) for v in np.asarray(box, dtype=np.float64)[:4])
    c = np.array([x + w / 2, y + h / 2])
    half = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    return c + _turn(half, rotation)


def enclosing_box(box: np.ndarray | Sequence[float], rotation: float = 0.0) -> np.ndarray:
    """The axis-aligned xywh box around a rotated box (the box itself when ``rotation`` is 0)."""
    if not rotation:
        return np.asarray(box, dtype=np.float64)[:4].copy()
    corners = rotated_box_corners(box, rotation)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    return np.r_[lo, hi - lo]


def box_iou_matrix(a: np.ndarray, b: np.ndarray, mode: str = "iou") -> np.ndarray:
    """``(N, M)`` overlap of xywh boxes ``a (N, >=4)`` and ``b (M, >=4)``: intersection over union
    (``mode='iou'``) or over the smaller of the two areas (``mode='min'``: 1 when one box holds the
    other)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, np.shape(a)[-1] if np.ndim(a) > 1 else 4)[:, :4]
    b = np.asarray(b, dtype=np.float64).reshape(-1, np.shape(b)[-1] if np.ndim(b) > 1 else 4)[:, :4]
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay1[:, None], by1[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a, area_b = (a[:, 2] * a[:, 3])[:, None], (b[:, 2] * b[:, 3])[None]
    denom = np.minimum(area_a, area_b) if mode == "min" else area_a + area_b - inter
    return np.where(denom > 0, inter / np.maximum(denom, 1e-12), 0.0)


# ============================================================================ COCO detections
_DIGITS = re.compile(r"(\d+)$")


@dataclass
class DetectionBoxes:
    """Boxes of a detection file, looked up per image (see :func:`boxes_from_coco_detections`).

    ``by_id`` maps image ids (as found in the file) to ``(N, 5)`` boxes, ``by_name`` file names
    (and their base names) to image ids, ``categories`` box category ids parallel to the boxes.
    """

    source: Path
    by_id: dict[Any, np.ndarray]
    categories: dict[Any, np.ndarray]
    by_name: dict[str, Any]
    score_thr: float

    def __len__(self) -> int:
        return sum(len(b) for b in self.by_id.values())

    def image_id_for(self, file_name: str | os.PathLike | None = None, image_id: Any = None) -> Any:
        """The file's image id for a file name (exact, then base name, then the number at the end of
        the stem: ``000000000785.jpg`` -> 785), or ``image_id`` when given; None if unknown."""
        if image_id is not None:
            for key in (image_id, str(image_id)):
                if key in self.by_id or key in self._known_ids:
                    return key
            if isinstance(image_id, str) and image_id.isdigit() and int(image_id) in self._known_ids:
                return int(image_id)
            return None
        if file_name is None:
            return None
        name = str(file_name).replace("\\", "/")
        for key in (name, name.rsplit("/", 1)[-1]):
            if key in self.by_name:
                return self.by_name[key]
        stem = Path(name).stem
        if stem in self._known_ids:
            return stem
        m = _DIGITS.search(stem)
        if m and int(m.group(1)) in self._known_ids:
            return int(m.group(1))
        return None

    @property
    def _known_ids(self) -> set:
        return set(self.by_id) | set(self.by_name.values())

    def lookup(self, file_name: str | os.PathLike | None = None, image_id: Any = None
               ) -> tuple[Any, np.ndarray, np.ndarray] | None:
        """``(image_id, boxes (N, 5), category ids (N,))`` of an image, or None when the file does
        not know the image. An image the file knows but without boxes above ``score_thr`` gets
        an empty array."""
        key = self.image_id_for(file_name, image_id)
        if key is None:
            return None
        return key, self.by_id.get(key, np.zeros((0, 5))), self.categories.get(key, np.zeros(0, np.int64))


def boxes_from_coco_detections(path: str | os.PathLike, score_thr: float = 0.3,
                               category_id: int | Sequence[int] | None = None) -> DetectionBoxes:
    """Boxes per image from a COCO detection results json.

    Accepted: a list of ``{image_id, bbox: [x, y, w, h], score, category_id}`` (the format
    detectors write; an optional ``file_name`` per record is used for matching), or a COCO
    dataset dict (``images`` + ``annotations`` with ``bbox``; scores default to 1). Boxes scored
    below ``score_thr`` are dropped; ``category_id`` keeps only those categories.
    """
    from posetune.io_utils import read_json

    path = Path(path)
    data = read_json(path)
    by_name: dict[str, Any] = {}
    if isinstance(data, dict):
        images = data.get("images") or []
        records = data.get("annotations") if "annotations" in data else data.get("detections")
        if not isinstance(records, list):
            raise DataError("a detections json is a list of {image_id, bbox, score} records (or a COCO dict with "
                            "'annotations')", where=path, hint="write COCO detection results")
        for im in images:
            if isinstance(im, dict) and "id" in im and "file_name" in im:
                by_name[str(im["file_name"]).replace("\\", "/")] = im["id"]
                by_name.setdefault(str(im["file_name"]).replace("\\", "/").rsplit("/", 1)[-1], im["id"])
    elif isinstance(data, list):
        records = data
    else:
        raise DataError(f"a detections json holds a list, not a {type(data).__name__}", where=path,
                        hint="write COCO detection results: [{image_id, bbox: [x, y, w, h], score, category_id}]")
    keep_cats = None if category_id is None else {int(c) for c in np.atleast_1d(category_id)}
    boxes: dict[Any, list[list[float]]] = {}
    cats: dict[Any, list[int]] = {}
    for n, rec in enumerate(records):
        where = f"{path}: record {n}"
        if not isinstance(rec, dict) or "image_id" not in rec or "bbox" not in rec:
            raise DataError("not a detection (needs image_id and bbox)", where=where,
                            hint="each record is {image_id, bbox: [x, y, w, h], score, category_id}")
        iid = rec["image_id"]
        if isinstance(iid, (bool, float)) or not isinstance(iid, (int, str)):
            raise DataError(f"image_id {iid!r} is not an integer or a string", where=where)
        try:
            bbox = [float(v) for v in rec["bbox"]]
            score = float(rec.get("score", 1.0))
        except (TypeError, ValueError):
            raise DataError("bbox/score are not numbers", where=where, hint="bbox is [x, y, w, h] in pixels") from None
        if len(bbox) != 4 or not np.isfinite(bbox).all() or not np.isfinite(score):
            raise DataError(f"bbox {rec['bbox']!r} is not 4 finite numbers", where=where,
                            hint="bbox is [x, y, w, h] in pixels")
        if "file_name" in rec:
            name = str(rec["file_name"]).replace("\\", "/")
            by_name.setdefault(name, iid)
            by_name.setdefault(name.rsplit("/", 1)[-1], iid)
        boxes.setdefault(iid, [])
        cats.setdefault(iid, [])
        cat = int(rec.get("category_id", 1) or 1)
        if score < score_thr or bbox[2] <= 0 or bbox[3] <= 0 or (keep_cats is not None and cat not in keep_cats):
            continue
        boxes[iid].append(bbox + [score])
        cats[iid].append(cat)
    by_id = {k: np.asarray(v, dtype=np.float64).reshape(-1, 5) for k, v in boxes.items()}
    categories = {k: np.asarray(v, dtype=np.int64) for k, v in cats.items()}
    for iid in set(by_name.values()):
        by_id.setdefault(iid, np.zeros((0, 5)))
        categories.setdefault(iid, np.zeros(0, np.int64))
    return DetectionBoxes(path, by_id, categories, by_name, float(score_thr))


# ============================================================================ SSD anchors
def ssd_anchors(input_size: tuple[int, int] = (224, 224), strides: Sequence[int] = (8, 16, 32, 32, 32),
                aspect_ratios: Sequence[float] = (1.0,), interpolated_scale_aspect_ratio: float = 1.0,
                min_scale: float = 0.1484375, max_scale: float = 0.75, anchor_offset: tuple[float, float] = (0.5, 0.5),
                fixed_anchor_size: bool = True) -> np.ndarray:
    """``(N, 4)`` anchors ``cx, cy, w, h`` in normalised input units, in the order an SSD head
    (MediaPipe's ``SsdAnchorsCalculator``) emits them: consecutive layers of the same stride share
    one grid; per grid cell (rows, then columns) come the anchors of every layer of that stride —
    one per aspect ratio plus one interpolated-scale anchor (``interpolated_scale_aspect_ratio > 0``).
    With ``fixed_anchor_size`` every anchor is 1 x 1 (the regressed sizes are absolute).
    """
    n = len(strides)

    def scale(i: int) -> float:
        return (min_scale + max_scale) / 2 if n == 1 else min_scale + (max_scale - min_scale) * i / (n - 1)

    w_in, h_in = input_size
    out: list[np.ndarray] = []
    layer = 0
    while layer < n:
        shapes: list[tuple[float, float]] = []  # (w, h) per anchor of one grid cell
        last = layer
        while last < n and strides[last] == strides[layer]:
            s = scale(last)
            for ar in aspect_ratios:
                shapes.append((s * np.sqrt(ar), s / np.sqrt(ar)))
            if interpolated_scale_aspect_ratio > 0:
                s_next = 1.0 if last == n - 1 else scale(last + 1)
                si = np.sqrt(s * s_next)
                ar = interpolated_scale_aspect_ratio
                shapes.append((si * np.sqrt(ar), si / np.sqrt(ar)))
            last += 1
        stride = strides[layer]
        fw, fh = int(np.ceil(w_in / stride)), int(np.ceil(h_in / stride))
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = (xs.reshape(-1) + anchor_offset[0]) / fw
        cy = (ys.reshape(-1) + anchor_offset[1]) / fh
        k = len(shapes)
        wh = np.ones((k, 2)) if fixed_anchor_size else np.asarray(shapes)
        grid = np.empty((fh * fw, k, 4))
        grid[:, :, 0] = cx[:, None]
        grid[:, :, 1] = cy[:, None]
        grid[:, :, 2:] = wh[None]
        out.append(grid.reshape(-1, 4))
        layer = last
    return np.concatenate(out, axis=0)


def decode_ssd(raw: np.ndarray, logits: np.ndarray, anchors: np.ndarray, scale: tuple[float, float] = (224.0, 224.0),
               num_keypoints: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode SSD regressions ``raw (N, 4 + 2 * num_keypoints)`` and ``logits (N,)`` against
    ``anchors (N, 4)``: boxes ``(N, 4)`` as normalised ``cx, cy, w, h``, keypoints
    ``(N, num_keypoints, 2)`` normalised, scores ``(N,)`` (sigmoid of the logit clipped to
    ±100). Regressions are in input pixels relative to the anchor centre, x before y."""
    raw = np.asarray(raw, dtype=np.float64).reshape(len(anchors), -1)
    sx, sy = float(scale[0]), float(scale[1])
    a = np.asarray(anchors, dtype=np.float64)
    boxes = np.empty((len(a), 4))
    boxes[:, 0] = raw[:, 0] / sx * a[:, 2] + a[:, 0]
    boxes[:, 1] = raw[:, 1] / sy * a[:, 3] + a[:, 1]
    boxes[:, 2] = raw[:, 2] / sx * a[:, 2]
    boxes[:, 3] = raw[:, 3] / sy * a[:, 3]
    kp = raw[:, 4:4 + 2 * num_keypoints].reshape(len(a), num_keypoints, 2)
    kps = np.empty_like(kp)
    kps[..., 0] = kp[..., 0] / sx * a[:, None, 2] + a[:, None, 0]
    kps[..., 1] = kp[..., 1] / sy * a[:, None, 3] + a[:, None, 1]
    scores = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, dtype=np.float64).reshape(-1), -100.0, 100.0)))
    return boxes, kps, scores


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_thr: float = 0.3,
                 max_detections: int | None = None) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS on ``cx, cy, w, h`` boxes: take the best remaining detection, average
    it with every remaining detection overlapping it by IoU > ``iou_thr`` (weights: scores), keep
    the best score; repeat. Returns ``(box, keypoints, score)`` best first."""
    order = list(np.argsort(-scores, kind="stable"))
    xywh = np.c_[boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2, boxes[:, 2:4]]
    out: list[tuple[np.ndarray, np.ndarray, float]] = []
    while order and (max_detections is None or len(out) < max_detections):
        idx = np.asarray(order)
        ious = box_iou_matrix(xywh[idx[:1]], xywh[idx])[0]
        group = idx[ious > iou_thr]
        if len(group) == 0:
            group = idx[:1]
        w = scores[group] / scores[group].sum()
        out.append(((boxes[group] * w[:, None]).sum(0), (keypoints[group] * w[:, None, None]).sum(0),
                    float(scores[idx[0]])))
        drop = set(group.tolist())
        order = [i for i in order if i not in drop]
    return out


# ============================================================================ MediaPipe detector
@dataclass
class PoseDetection:
    """One person found by :class:`MediaPipePoseDetector`, in image pixels.

    ``keypoints`` (4, 2): mid-hip centre, a point on the full-body circle, mid-shoulder centre, a
    point on the upper-body circle. ``head_box`` is the detector's own xywh box (the head region);
    ``image_size`` the (width, height) of the image.
    """

    score: float
    keypoints: np.ndarray
    head_box: np.ndarray
    image_size: tuple[int, int]

    @property
    def radius(self) -> float:
        """Radius of the circle enclosing the whole body (pixels)."""
        return float(np.linalg.norm(self.keypoints[1] - self.keypoints[0]))

    @property
    def roi(self) -> np.ndarray:
        """``(4,)`` xywh square around the body circle (BlazePose's ROI before its 1.25x padding)."""
        cx, cy = self.keypoints[0]
        r = max(self.radius, 1.0)
        return np.array([cx - r, cy - r, 2 * r, 2 * r])

    @property
    def box(self) -> np.ndarray:
        """The person box ``(4,)`` xywh: :attr:`roi` clipped to the image (the part that can hold
        the person); the ROI itself when it lies outside the image."""
        x, y, w, h = self.roi
        width, height = self.image_size
        x0, y0 = max(x, -0.5), max(y, -0.5)
        x1, y1 = min(x + w, width - 0.5), min(y + h, height - 0.5)
        if x1 - x0 < 1 or y1 - y0 < 1:
            return self.roi
        return np.array([x0, y0, x1 - x0, y1 - y0])

    @property
    def rotation(self) -> float:
        """Body rotation in degrees, counter-clockwise as displayed (0: upright; the hip -> body-circle
        vector points up), the opposite sign of MediaPipe's clockwise ROI rotation."""
        return vector_rotation(self.keypoints[0], self.keypoints[1], 90.0)


class MediaPipeSSDDetector:
    """Base of MediaPipe's single-shot detectors (person, palm, face): the ``.tflite`` network
    converted to PyTorch, MediaPipe's letterboxed input, SSD anchors, box + keypoint decoding and
    weighted NMS. Subclasses set the model, input size, anchor strides, keypoint count and input
    value range, and turn each raw detection into their detection type (:meth:`_make`), which has
    ``score``, ``box`` (upright xywh), ``roi`` (xywh in the subject's upright frame) and
    ``rotation`` (degrees, counter-clockwise as displayed).

    ``score_thr`` is the detection threshold (MediaPipe's 0.5), ``nms_iou`` the weighted-NMS
    overlap (0.3), ``max_detections`` the most subjects per image. The model comes from the
    posetune cache (``posetune weights fetch mediapipe``; fetched on first use). Call the detector
    with an RGB uint8 image to get ``(N, 5)`` boxes; :meth:`detect` gives the detection objects.
    """

    MODEL = ""
    INPUT_SIZE = 224
    STRIDES: tuple[int, ...] = (8, 16, 32, 32, 32)
    #: MediaPipe's ``interpolated_scale_aspect_ratio`` (1.0: one extra anchor per layer; 0: none)
    INTERPOLATED_ANCHOR = 1.0
    NUM_KEYPOINTS = 4
    #: network input values: ``(low, high)`` for pixel values 0 and 255
    INPUT_RANGE = (-1.0, 1.0)
    #: ``boxes_batch(images, rotated=True)`` gives rotated boxes (see :class:`~posetune.inference.predictor.Predictor`)
    gives_rotation = True

    def __init__(self, *, score_thr: float = 0.5, nms_iou: float = 0.3, max_detections: int = 10,
                 version: str | None = None, device: Any = "cpu", module: Any = None):
        import torch

        if module is None:
            from posetune.models.mediapipe import DEFAULT_VERSION, load_tflite_module

            module = load_tflite_module(self.MODEL, version or DEFAULT_VERSION, output_layout="nhwc")
        self.net = module.eval().to(device)
        self.device = torch.device(device)
        self.score_thr = float(score_thr)
        self.nms_iou = float(nms_iou)
        self.max_detections = int(max_detections)
        self.anchors = ssd_anchors((self.INPUT_SIZE, self.INPUT_SIZE), self.STRIDES,
                                   interpolated_scale_aspect_ratio=self.INTERPOLATED_ANCHOR)
        shapes = module.output_shapes
        if len(shapes) < 2 or shapes[0][1] != len(self.anchors):
            raise ModelError(f"the {self.MODEL} detector has outputs {shapes}, not {len(self.anchors)} anchors",
                             where=getattr(module, "source", self.MODEL),
                             hint=f"use MediaPipe's {self.MODEL}.tflite (mediapipe 0.10.x)")

    def _letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float, tuple[float, float]]:
        """(square RGB input letterboxed like MediaPipe: aspect kept, centred, black borders;
        scale; padding x, y). Edge coordinates map as ``u = s * (x + 0.5) + pad`` (posetune pixel
        centres ``x`` on the image side and ``u - 0.5`` on the input side); bilinear like
        MediaPipe's CPU ImageToTensor."""
        import cv2

        h, w = image.shape[:2]
        size = self.INPUT_SIZE
        s = size / max(w, h)
        px, py = (size - s * w) / 2, (size - s * h) / 2
        m = np.array([[s, 0.0, s * 0.5 + px - 0.5], [0.0, s, s * 0.5 + py - 0.5]])
        out = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=(0, 0, 0))
        return out, s, (px, py)

    def _make(self, score: float, keypoints: np.ndarray, box: np.ndarray, image_size: tuple[int, int]) -> Any:
        raise NotImplementedError

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Any]]:
        """The subjects in each RGB uint8 image, best first."""
        import torch

        if not len(images):
            return []
        boxes_in, frames = [], []
        for img in images:
            lb, s, pad = self._letterbox(img)
            boxes_in.append(lb)
            frames.append((s, pad))
        low, high = self.INPUT_RANGE
        x = torch.from_numpy(np.stack(boxes_in)).to(self.device).permute(0, 3, 1, 2).float()
        x = x.mul_((high - low) / 255.0).add_(low)
        with torch.no_grad():
            raw, logits = self.net(x)[:2]
        raw = raw.float().cpu().numpy()
        logits = logits.float().cpu().numpy().reshape(len(images), -1)
        out = []
        size = float(self.INPUT_SIZE)
        for i, (s, (px, py)) in enumerate(frames):
            h, w = images[i].shape[:2]
            boxes, kps, scores = decode_ssd(raw[i], logits[i], self.anchors, (size, size), self.NUM_KEYPOINTS)
            keep = scores >= self.score_thr
            dets = []
            for box, kp, score in weighted_nms(boxes[keep], kps[keep], scores[keep], self.nms_iou, self.max_detections):
                # normalised edge coordinates -> image pixel centres
                kp_img = np.c_[(kp[:, 0] * size - px) / s - 0.5, (kp[:, 1] * size - py) / s - 0.5]
                cx, cy = (box[0] * size - px) / s - 0.5, (box[1] * size - py) / s - 0.5
                bw, bh = box[2] * size / s, box[3] * size / s
                dets.append(self._make(score, kp_img, np.array([cx - bw / 2, cy - bh / 2, bw, bh]), (w, h)))
            out.append(dets)
        return out

    def detect(self, image: np.ndarray) -> list[Any]:
        """The subjects in one RGB uint8 image, best first."""
        return self.detect_batch([image])[0]

    def boxes_batch(self, images: Sequence[np.ndarray], rotated: bool = False) -> list[np.ndarray]:
        """``(N, 5)`` boxes (xywh + score) per image; with ``rotated``, ``(N, 6)``: MediaPipe's
        ROI in the subject's upright frame and its rotation (see the module docstring)."""
        if rotated:
            return [np.array([np.r_[d.roi, d.score, d.rotation] for d in dets]).reshape(-1, 6)
                    for dets in self.detect_batch(images)]
        return [np.array([np.r_[d.box, d.score] for d in dets]).reshape(-1, 5) for dets in self.detect_batch(images)]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """``(N, 5)`` boxes (xywh + score) in one RGB uint8 image."""
        return self.boxes_batch([image])[0]


class MediaPipePoseDetector(MediaPipeSSDDetector):
    """Person boxes from MediaPipe's BlazePose detector (see the module docstring)."""

    MODEL = "pose_detection"
    INPUT_SIZE = 224
    STRIDES = (8, 16, 32, 32, 32)
    NUM_KEYPOINTS = 4
    INPUT_RANGE = (-1.0, 1.0)

    def _make(self, score: float, keypoints: np.ndarray, box: np.ndarray, image_size: tuple[int, int]) -> PoseDetection:
        return PoseDetection(score, keypoints, box, image_size)


#: detector names accepted by the predictor and ``posetune predict --detector``: people (BlazePose's
#: person detector), hands (palm detector), faces (full-range face detector; ``-near``: short range)
DETECTORS = ("mediapipe", "mediapipe-palm", "mediapipe-face", "mediapipe-face-near")


def build_detector(name: str, device: Any = "cpu", score_thr: float | None = None) -> MediaPipeSSDDetector:
    """A detector by name (see :data:`DETECTORS`); ``score_thr`` None keeps MediaPipe's threshold
    of that detector (0.5; 0.6 for the full-range face detector)."""
    kwargs: dict[str, Any] = {"device": device}
    if score_thr is not None:
        kwargs["score_thr"] = float(score_thr)
    if name == "mediapipe":
        return MediaPipePoseDetector(**kwargs)
    from posetune.inference import part_detectors as parts

    classes = {"mediapipe-palm": parts.MediaPipePalmDetector, "mediapipe-face": parts.MediaPipeFaceDetector,
               "mediapipe-face-near": parts.MediaPipeNearFaceDetector}
    if name in classes:
        return classes[name](**kwargs)
    from posetune.errors import ConfigError

    raise ConfigError(f"unknown detector '{name}'", where="--detector",
                      hint=f"use one of: {', '.join(DETECTORS)} or none")
