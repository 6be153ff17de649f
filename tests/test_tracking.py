"""Tracking: ids follow subjects through a crossing, survive short occlusions; gap interpolation."""

from __future__ import annotations

import numpy as np
import pytest

from posetune.analysis.tracks import TrackTableBuilder
from posetune.data.presets import COCO17
from posetune.data.records import Instance
from posetune.inference.tracking import Tracker, box_iou, interpolate_gaps, keypoint_oks

# A standing COCO-17 person, about 40 x 100 px, centred on (0, 0).
_TEMPLATE = np.array([
    [0, -45], [-3, -48], [3, -48], [-7, -46], [7, -46],      # nose, eyes, ears
    [-12, -30], [12, -30], [-16, -8], [16, -8], [-18, 12], [18, 12],  # shoulders, elbows, wrists
    [-8, 5], [8, 5], [-9, 28], [9, 28], [-9, 50], [9, 50],   # hips, knees, ankles
], dtype=float)


def _person(cx: float, cy: float, score: float = 0.9) -> np.ndarray:
    return np.c_[_TEMPLATE + [cx, cy], np.full(17, score)]


def _crossing(frames: int = 40):
    """A walks right, B walks left, slightly lower; they overlap around frame 19-20."""
    a = [_person(50 + 8 * t, 100) for t in range(frames)]
    b = [_person(360 - 8 * t, 104) for t in range(frames)]
    return a, b


def _ids_through(tracker: Tracker, a, b, order_flip: bool = True):
    out = []
    for t, (pa, pb) in enumerate(zip(a, b)):
        dets = [pa, pb] if not (order_flip and t % 2) else [pb, pa]
        ids = tracker.update(dets)
        out.append((ids[0], ids[1]) if not (order_flip and t % 2) else (ids[1], ids[0]))
    return out


@pytest.mark.parametrize("match", ["oks", "iou", "mix"])
def test_ids_follow_subjects_through_a_crossing(match):
    a, b = _crossing()
    mid = 19
    assert box_iou(_box(a[mid]), _box(b[mid])) > 0.5  # they really overlap
    ids = _ids_through(Tracker(COCO17, match=match, thr=0.1), a, b)
    assert ids[0][0] != ids[0][1]
    assert all(pair == ids[0] for pair in ids), f"ids changed: {ids}"


def test_without_velocity_the_crossing_swaps_ids():
    """Control: the test above would catch a tracker that does not predict motion."""
    a, b = _crossing()
    ids = _ids_through(Tracker(COCO17, use_velocity=False, thr=0.1), a, b)
    assert ids[-1] != ids[0]


def _box(kp: np.ndarray) -> np.ndarray:
    x0, y0 = kp[:, :2].min(0)
    x1, y1 = kp[:, :2].max(0)
    return np.array([x0, y0, x1 - x0, y1 - y0])


def test_short_disappearance_keeps_id_and_new_subject_gets_new_id():
    tracker = Tracker(COCO17, max_age=5)
    seen = []  # per frame: {"A": id, "B": id, "C": id} for the subjects present
    for t in range(20):
        people = {}
        if not 8 <= t <= 10:  # A hidden for 3 frames while moving
            people["A"] = _person(100 + 6 * t, 150)
        people["B"] = _person(400, 150 - 2 * t)  # B moves slowly upwards
        if t >= 14:
            people["C"] = _person(250, 300)  # C walks in
        ids = tracker.update(list(people.values()))
        seen.append(dict(zip(people, ids)))
    a0, b0 = seen[0]["A"], seen[0]["B"]
    assert a0 != b0
    assert [s["B"] for s in seen] == [b0] * 20
    assert [s["A"] for s in seen if "A" in s] == [a0] * 17  # A came back under its id after 3 frames
    c = seen[14]["C"]
    assert c not in (a0, b0) and [s["C"] for s in seen[14:]] == [c] * 6


def test_long_disappearance_ends_the_track():
    tracker = Tracker(COCO17, max_age=2)
    first = tracker.update([_person(100, 100)])[0]
    for _ in range(3):  # 3 missed frames > max_age
        tracker.update([])
    assert tracker.update([_person(100, 100)])[0] != first
    assert first not in tracker.live_track_ids


def test_instances_boxes_and_low_scores():
    tracker = Tracker(COCO17, match="iou")
    inst = Instance(keypoints=_person(100, 100)[:, :2], bbox=[80, 50, 40, 100])
    box_only = np.array([300.0, 50, 40, 100])
    ids = tracker.update([inst, box_only])
    moved = Instance(keypoints=_person(104, 100)[:, :2], bbox=[84, 50, 40, 100])
    assert tracker.update([box_only + [3, 0, 0, 0], moved]) == [ids[1], ids[0]]
    # keypoints below kp_thr do not count for OKS
    low = _person(100, 100, score=0.1)
    trk = Tracker(COCO17, match="oks")
    first = trk.update([_person(100, 100)])[0]
    assert trk.update([low])[0] != first  # no usable keypoint -> no OKS -> new track


def test_oks_values():
    kp = _person(0, 0)[:, :2]
    assert keypoint_oks(kp, kp, COCO17.sigmas_array, 4000) == pytest.approx(1.0)
    assert keypoint_oks(kp, kp + 30, COCO17.sigmas_array, 4000) < 0.2
    assert keypoint_oks(kp, np.full_like(kp, np.nan), COCO17.sigmas_array, 4000) == 0.0


def test_interpolate_gaps_fills_short_holes_only():
    b = TrackTableBuilder(COCO17, fps=10)
    for f in range(12):
        if f in (3, 4):  # frames 3-4 absent entirely (short gap)
            continue
        kp = _person(10 * f, 50)
        if 7 <= f:  # nose missing from frame 7 on at the end: cannot be bridged
            kp[0, :2] = np.nan
        b.add(f, 0, kp)
    table = b.build()
    assert table.num_frames == 10
    filled = interpolate_gaps(table, max_gap=2)
    assert list(filled.frames) == list(range(12))
    xy, sc = filled.track(0)
    np.testing.assert_allclose(xy[3:5, :, 0], _person(30, 50)[None, :, 0] + [[0], [10]], atol=1e-9)
    assert np.allclose(sc[3:5], 0.9)
    assert np.isnan(xy[7:, 0]).all()
    assert np.isnan(interpolate_gaps(table, max_gap=1).track(0)[0][3:5]).all()
