"""Multi-subject tracking across video frames: Hungarian matching on OKS / IoU with short-term memory.

:class:`Tracker` gives every detection of a frame a track id. For each frame it predicts where
every live track should be (constant velocity of the track's keypoint centroid, measured over
the last matches), scores every (track, detection) pair with a similarity in [0, 1]:

* ``'oks'`` — COCO object keypoint similarity between the predicted and detected keypoints,
  with the spec's per-keypoint sigmas and the detection's box area as scale;
* ``'iou'`` — intersection over union of the predicted and detected boxes;
* ``'mix'`` — ``mix_weight * OKS + (1 - mix_weight) * IoU``,

and solves the assignment with the Hungarian algorithm
(:func:`scipy.optimize.linear_sum_assignment`, cost ``1 - similarity``). Pairs with a
similarity below ``thr`` are not matched. A track that finds no detection stays alive for
``max_age`` frames (keeping its id and moving with its velocity), so a subject hidden for a
few frames gets its id back; older tracks end. Unmatched detections start new tracks with new,
never reused, ids (0, 1, 2, ...).

:func:`interpolate_gaps` fills short holes in a :class:`~posetune.analysis.tracks.TrackTable`
by linear interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Sequence

import numpy as np

from posetune.data.spec import KeypointSpec
from posetune.inference.smoothing import fill_short_gaps

MatchKind = Literal["oks", "iou", "mix"]


@dataclass
class _Det:
    xy: np.ndarray | None  # (K, 2), NaN where not usable
    box: np.ndarray | None  # xywh


@dataclass
class _Track:
    id: int
    xy: np.ndarray | None
    box: np.ndarray | None
    last_frame: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # pixels / frame
    hits: int = 1

    def predict(self, frame: int, use_velocity: bool) -> _Det:
        shift = self.velocity * (frame - self.last_frame) if use_velocity else np.zeros(2)
        xy = None if self.xy is None else self.xy + shift
        box = None
        if self.box is not None:
            box = self.box.copy()
            box[:2] += shift
        return _Det(xy, box)


def _box_from_points(xy: np.ndarray, padding: float = 0.1) -> np.ndarray | None:
    ok = np.isfinite(xy).all(axis=1)
    if not ok.any():
        return None
    p = xy[ok]
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    return np.array([x0 - padding * w, y0 - padding * h, w * (1 + 2 * padding), h * (1 + 2 * padding)])


def _as_det(item: Any, kp_thr: float) -> _Det:
    from posetune.data.records import Instance

    if isinstance(item, Instance):
        kp = item.keypoints
        ok = kp[:, 2] > 0
        if item.keypoint_scores is not None:
            ok &= np.nan_to_num(item.keypoint_scores, nan=-1.0) >= kp_thr
        xy = np.where(ok[:, None], kp[:, :2], np.nan)
        box = item.bbox if item.bbox is not None and item.bbox[2] > 0 and item.bbox[3] > 0 else _box_from_points(xy)
        return _Det(xy, None if box is None else np.asarray(box, dtype=np.float64))
    arr = np.asarray(item, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == 4:
        return _Det(None, arr.copy())
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise ValueError(f"a detection is an Instance, a (K, 2|3) keypoint array or a (4,) xywh box; got {arr.shape}")
    xy = arr[:, :2].copy()
    if arr.shape[1] == 3:  # third column: score or COCO visibility flag (0 = missing)
        xy[~(np.nan_to_num(arr[:, 2], nan=-1.0) >= kp_thr)] = np.nan
    xy[~np.isfinite(xy).all(axis=1)] = np.nan
    return _Det(xy, _box_from_points(xy))


def box_iou(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """IoU of two xywh boxes (0 when either is missing)."""
    if a is None or b is None:
        return 0.0
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def keypoint_oks(xy_a: np.ndarray, xy_b: np.ndarray, sigmas: np.ndarray, area: float) -> float:
    """COCO OKS between two (K, 2) keypoint sets over the points finite in both (0 if none)."""
    ok = np.isfinite(xy_a).all(axis=1) & np.isfinite(xy_b).all(axis=1)
    if not ok.any():
        return 0.0
    d2 = ((xy_a[ok] - xy_b[ok]) ** 2).sum(axis=1)
    var = (2.0 * sigmas[ok]) ** 2
    return float(np.mean(np.exp(-d2 / (2.0 * max(area, 1.0) * var))))


class Tracker:
    """Assigns track ids to the detections of consecutive frames (see the module docstring).

    ``spec`` gives the OKS sigmas (None: 0.05 for every keypoint); ``max_age`` is how many
    frames an unmatched track survives; ``thr`` the minimum similarity to match; ``kp_thr`` the
    score a keypoint needs to count; ``use_velocity=False`` predicts tracks at their last
    position (useful for comparison).
    """

    def __init__(self, spec: KeypointSpec | None = None, *, max_age: int = 5, match: MatchKind = "oks",
                 thr: float = 0.3, kp_thr: float = 0.3, mix_weight: float = 0.5, use_velocity: bool = True,
                 velocity_momentum: float = 0.5):
        if match not in ("oks", "iou", "mix"):
            raise ValueError(f"match must be 'oks', 'iou' or 'mix', not {match!r}")
        self.spec = spec
        self.max_age = int(max_age)
        self.match = match
        self.thr = float(thr)
        self.kp_thr = float(kp_thr)
        self.mix_weight = float(mix_weight)
        self.use_velocity = use_velocity
        self.velocity_momentum = float(velocity_momentum)
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (ids start again at 0)."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._frame = -1

    @property
    def live_track_ids(self) -> list[int]:
        """Ids of the tracks that can still be matched."""
        return [t.id for t in self._tracks]

    def _sigmas(self, k: int) -> np.ndarray:
        if self.spec is not None and self.spec.num_keypoints == k:
            return self.spec.sigmas_array
        return np.full(k, 0.05)

    def similarity(self, pred: _Det, det: _Det) -> float:
        """Similarity in [0, 1] of a predicted track position and a detection."""
        iou = box_iou(pred.box, det.box)
        if self.match == "iou" or pred.xy is None or det.xy is None or pred.xy.shape != det.xy.shape:
            return iou
        box = det.box if det.box is not None else pred.box
        area = float(box[2] * box[3]) if box is not None else 1.0
        oks = keypoint_oks(pred.xy, det.xy, self._sigmas(len(det.xy)), area)
        if self.match == "oks":
            return oks
        return self.mix_weight * oks + (1.0 - self.mix_weight) * iou

    def update(self, detections: Sequence[Any], frame: int | None = None) -> list[int]:
        """Track ids for one frame's detections (same order).

        ``detections`` are :class:`~posetune.data.records.Instance` objects, ``(K, 2|3)``
        keypoint arrays (third column = score) or ``(4,)`` xywh boxes. ``frame`` is the frame
        index (default: the previous one + 1), so skipped frames count towards ``max_age``.
        """
        from scipy.optimize import linear_sum_assignment

        self._frame = self._frame + 1 if frame is None else int(frame)
        f = self._frame
        dets = [_as_det(d, self.kp_thr) for d in detections]
        self._tracks = [t for t in self._tracks if f - t.last_frame <= self.max_age + 1]
        ids: list[int | None] = [None] * len(dets)
        if self._tracks and dets:
            preds = [t.predict(f, self.use_velocity) for t in self._tracks]
            sim = np.array([[self.similarity(p, d) for d in dets] for p in preds])
            cost = np.where(sim >= self.thr, 1.0 - sim, 1e6)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if sim[r, c] >= self.thr:
                    self._update_track(self._tracks[r], dets[c], f)
                    ids[c] = self._tracks[r].id
        for c, d in enumerate(dets):
            if ids[c] is None:
                t = _Track(self._next_id, d.xy, d.box, f)
                self._next_id += 1
                self._tracks.append(t)
                ids[c] = t.id
        # tracks not seen for more than max_age frames end
        self._tracks = [t for t in self._tracks if f - t.last_frame <= self.max_age]
        return [int(i) for i in ids]  # type: ignore[arg-type]

    def _update_track(self, t: _Track, d: _Det, f: int) -> None:
        dt = max(1, f - t.last_frame)
        step = None
        if t.xy is not None and d.xy is not None and t.xy.shape == d.xy.shape:
            both = np.isfinite(t.xy).all(axis=1) & np.isfinite(d.xy).all(axis=1)
            if both.any():
                step = (d.xy[both] - t.xy[both]).mean(axis=0) / dt
        if step is None and t.box is not None and d.box is not None:
            step = ((d.box[:2] + d.box[2:] / 2) - (t.box[:2] + t.box[2:] / 2)) / dt
        if step is not None:
            m = self.velocity_momentum if t.hits > 1 else 0.0
            t.velocity = m * t.velocity + (1.0 - m) * step
        if d.xy is not None:
            if t.xy is not None and t.xy.shape == d.xy.shape:
                # keep (moved) old positions of points this detection lacks
                keep = ~np.isfinite(d.xy).all(axis=1) & np.isfinite(t.xy).all(axis=1)
                new = d.xy.copy()
                new[keep] = t.xy[keep] + t.velocity * dt
                t.xy = new
            else:
                t.xy = d.xy
        if d.box is not None:
            t.box = d.box
        t.last_frame = f
        t.hits += 1


def interpolate_gaps(table, max_gap: int, score_thr: float | None = None):
    """A copy of a :class:`~posetune.analysis.tracks.TrackTable` with short gaps filled.

    For every track and keypoint, runs of up to ``max_gap`` missing frames (no coordinates, or a
    score below ``score_thr`` when given) between two good frames are filled by linear
    interpolation of x, y and score. Frame numbers count: the table is made dense first
    (:meth:`TrackTable.densify`), so frames absent from the table are gaps too.
    """
    dense = table.densify()
    xy = dense.xy.copy()
    sc = dense.scores.copy()
    t_count, n, k = sc.shape
    for j in range(n):
        for i in range(k):
            ok = np.isfinite(xy[:, j, i]).all(axis=1)
            if score_thr is not None:
                ok &= np.nan_to_num(sc[:, j, i], nan=-1.0) >= score_thr
            if ok.all() or not ok.any():
                continue
            filled = fill_short_gaps(xy[:, j, i], ok, max_gap)
            fill = ~ok & np.isfinite(filled).all(axis=1)
            xy[fill, j, i] = filled[fill]
            s = np.where(np.isfinite(sc[:, j, i]), sc[:, j, i], 1.0)
            sc[fill, j, i] = fill_short_gaps(s, ok, max_gap)[fill]
            # points below the threshold that could not be bridged keep their original values
    return replace(dense, xy=xy, scores=sc, info=dict(dense.info))
