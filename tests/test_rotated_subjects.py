"""Lying and leaning subjects: rotated boxes, crops turned upright, and the accuracy they buy.

Top-down networks are trained on upright people; a patient on a mat or a fallen person seen
through an upright crop is unreadable to them. These tests pin the geometry (rotation from hips and
shoulders, rotated boxes, the turned crop) and measure the effect on real people: COCO persons
turned by 90 and 180 degrees through MediaPipe's BlazePose, image and video (tracking) paths.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from posetune.data.images import load_image
from posetune.data.presets import COCO17
from posetune.data.transforms import topdown_crop
from posetune.inference.detectors import (as_boxes, body_rotation, box_from_keypoints, enclosing_box,
                                          rotated_box_corners)
from posetune.inference.video import make_test_video


#: small nets on a shared 2-core machine: one torch thread (conftest fixture)
pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _turn_ccw(xy: np.ndarray, width: int, height: int, k: int = 1) -> np.ndarray:
    """Where pixel centres (x, y) land after ``np.rot90(image, k)`` (k quarter turns counter-clockwise)."""
    xy = np.asarray(xy, dtype=np.float64).copy()
    for _ in range(k % 4):
        xy = np.c_[xy[:, 1], width - 1 - xy[:, 0]]
        width, height = height, width
    return xy


def _upright_pose() -> np.ndarray:
    pose = np.zeros((17, 2))
    for name, xy in {"left_shoulder": (120, 100), "right_shoulder": (80, 100), "left_hip": (115, 200),
                     "right_hip": (85, 200), "nose": (100, 60), "left_ankle": (118, 330),
                     "right_ankle": (82, 330)}.items():
        pose[COCO17.index(name)] = xy
    return pose


# ----------------------------------------------------------------------------- geometry
def test_body_rotation_from_hips_and_shoulders():
    pose = _upright_pose()
    scores = np.ones(17)
    named = [COCO17.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
    scores[[i for i in range(17) if i not in named]] = 0.0  # only the four body points are seen
    assert body_rotation(COCO17, pose, scores) == pytest.approx(0.0, abs=1e-9)
    for k, expected in ((1, 90.0), (2, 180.0), (3, -90.0)):  # head to the left, down, to the right
        assert body_rotation(COCO17, _turn_ccw(pose, 400, 400, k), scores) == pytest.approx(expected, abs=1e-9)
    leaning = pose.copy()
    leaning[named[:2]] += (100.0, 0.0)  # shoulders 100 px right of the hips, 100 px above them
    assert body_rotation(COCO17, leaning, scores) == pytest.approx(-45.0, abs=1e-9)
    one_side = scores.copy()
    one_side[[named[1], named[3]]] = 0.0  # one shoulder and one hip are enough
    # (the left shoulder stands 5 px outside the left hip: about 3 degrees off the body axis)
    assert body_rotation(COCO17, _turn_ccw(pose, 400, 400, 1), one_side) == pytest.approx(90.0, abs=3.5)
    no_hips = scores.copy()
    no_hips[named[2:]] = 0.0
    assert body_rotation(COCO17, pose, no_hips) is None


def test_body_rotation_needs_body_names():
    from posetune.data.presets import HAND21, MEDIAPIPE_HAND21
    from posetune.data.spec import KeypointSpec

    for hand, knuckle in ((MEDIAPIPE_HAND21, "middle_finger_mcp"), (HAND21, "middle_finger1")):
        pts = np.full((21, 2), np.nan)
        pts[hand.index("wrist")] = (50.0, 50.0)
        pts[hand.index(knuckle)] = (20.0, 50.0)  # fingers to the image left: a quarter turn counter-clockwise
        assert body_rotation(hand, pts) == pytest.approx(90.0)

    mouse = KeypointSpec(name="mouse", keypoints=("snout", "leftear", "rightear", "tailbase"))
    assert body_rotation(mouse, np.random.default_rng(0).uniform(0, 100, (4, 2))) is None


def test_rotated_box_from_keypoints_is_the_upright_box_turned():
    pose = _upright_pose()
    upright = box_from_keypoints(pose, padding=0.1, score_thr=0.0, min_points=2)
    turned = _turn_ccw(pose, 400, 400, 1)
    box = box_from_keypoints(turned, padding=0.1, score_thr=0.0, rotation=90.0)
    np.testing.assert_allclose(box[2:], upright[2:], atol=1e-9)  # measured in the body's frame
    centre = box[:2] + box[2:] / 2
    np.testing.assert_allclose(centre, _turn_ccw((upright[:2] + upright[2:] / 2)[None], 400, 400, 1)[0], atol=1e-9)
    # its corners hold every point; the enclosing axis-aligned box is the upright box's transpose
    corners = rotated_box_corners(box, 90.0)
    lo, hi = corners.min(0), corners.max(0)
    assert np.all(turned >= lo - 1e-9) and np.all(turned <= hi + 1e-9)
    np.testing.assert_allclose(enclosing_box(box, 90.0)[2:], upright[2:][::-1], atol=1e-9)
    np.testing.assert_allclose(enclosing_box(box, 0.0), box, atol=0)
    assert as_boxes(np.r_[box, 0.9, 90.0]).shape == (1, 6)  # a rotation column is kept


def test_turned_crop_of_a_turned_image_is_the_upright_crop():
    rng = np.random.default_rng(1)
    img = (rng.uniform(0, 255, (24, 32, 3))).astype(np.uint8)
    img = np.kron(img, np.ones((8, 8, 1), np.uint8))  # 256x192 image of 8-px blocks
    box = np.array([40.0, 30.0, 100.0, 150.0])
    crop, _ = topdown_crop(img, box, (96, 128))
    for k in (1, 2, 3):
        turned = np.ascontiguousarray(np.rot90(img, k))
        c = _turn_ccw((box[:2] + box[2:] / 2)[None], img.shape[1], img.shape[0], k)[0]
        tbox = np.r_[c - box[2:] / 2, box[2:]]
        crop_k, m = topdown_crop(turned, tbox, (96, 128), rotation=90.0 * k)
        assert np.abs(crop_k.astype(int) - crop.astype(int)).mean() < 1.0, k
    crop_0, m0 = topdown_crop(img, box, (96, 128), rotation=0.0)
    np.testing.assert_array_equal(crop_0, crop)  # no rotation: the crop of before, bit for bit


# ----------------------------------------------------------------------------- real people
@pytest.fixture(scope="module")
def people(shared_data):
    """The clearly visible COCO people of the fixtures, each cut out with a margin: (image, (17, 3) GT, size)."""
    root = shared_data / "mmpose_coco" / "coco"
    gt = json.loads((root / "test_coco.json").read_text())
    files = {im["id"]: im["file_name"] for im in gt["images"]}
    out = []
    for ann in gt["annotations"]:
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        x, y, w, h = ann["bbox"]
        if (kp[:, 2] > 0).sum() < 10 or h < 100:
            continue
        img = load_image(root / files[ann["image_id"]])
        x0, y0 = int(max(0, x - 0.3 * w)), int(max(0, y - 0.3 * h))
        x1, y1 = int(min(img.shape[1], x + 1.3 * w)), int(min(img.shape[0], y + 1.3 * h))
        kp[:, :2] -= (x0, y0)
        out.append((np.ascontiguousarray(img[y0:y1, x0:x1]), kp, max(w, h)))
    assert len(out) >= 8
    return out


def _pck(predictor, people, k: int) -> float:
    """PCK@0.1 (of the box's longer side) of the best prediction per person, people turned k quarter turns."""
    idx = [predictor.spec.index(n) for n in COCO17.keypoints]
    hits = []
    for img, kp, size in people:
        turned = np.ascontiguousarray(np.rot90(img, k))
        gt = _turn_ccw(kp[:, :2], img.shape[1], img.shape[0], k)
        vis = kp[:, 2] > 0
        preds = predictor.predict(turned)
        if not preds:
            hits += [False] * int(vis.sum())
            continue
        best = max(preds, key=lambda p: p.score)
        hits += list(np.linalg.norm(best.keypoints[idx][vis] - gt[vis], axis=1) < 0.1 * size)
    return float(np.mean(hits))


def test_blazepose_reads_people_lying_and_upside_down(mediapipe_cache, monkeypatch, people):
    monkeypatch.setenv("POSETUNE_CACHE", str(mediapipe_cache))
    from posetune.inference.predictor import Predictor

    turned = Predictor.from_checkpoint("mediapipe-pose")
    upright_only = Predictor.from_checkpoint("mediapipe-pose", rotate=False)
    assert turned.rotate and not upright_only.rotate
    for k in (1, 2):
        with_rotation, without = _pck(turned, people, k), _pck(upright_only, people, k)
        print(f"quarter turns {k}: PCK@0.1 {with_rotation:.3f} turned crops, {without:.3f} upright crops")
        # measured: 90 deg 0.73 vs 0.10, 180 deg 0.74 vs 0.10 (11 people; a person the detector misses
        # counts as all points wrong); upright people 0.90 vs 0.80
        assert with_rotation >= 0.65, (k, with_rotation)
        assert with_rotation >= without + 0.4, (k, with_rotation, without)
    upright = _pck(turned, people, 0), _pck(upright_only, people, 0)
    print(f"upright people: PCK@0.1 {upright[0]:.3f} turned crops, {upright[1]:.3f} upright crops")
    assert upright[0] >= upright[1]


def test_video_tracking_keeps_a_lying_person_upright_in_the_crop(mediapipe_cache, monkeypatch, people, tmp_path):
    """Frame 0 comes from the detector; every later crop takes its rotation from the previous
    frame's hips and shoulders, so tracking a lying person stays as good as the first frame."""
    monkeypatch.setenv("POSETUNE_CACHE", str(mediapipe_cache))
    from posetune.inference.predictor import Predictor

    img, kp, size = max(people, key=lambda p: p[2])
    turned = np.ascontiguousarray(np.rot90(img, 1))
    turned = turned[: turned.shape[0] // 2 * 2, : turned.shape[1] // 2 * 2]
    gt = _turn_ccw(kp[:, :2], img.shape[1], img.shape[0], 1)
    vis = kp[:, 2] > 0
    clip = make_test_video(tmp_path / "lying.mp4", [turned] * 4, fps=10, size=(turned.shape[1], turned.shape[0]))
    idx = None
    for rotate, floor in ((True, 0.8), (False, None)):
        pred = Predictor.from_checkpoint("mediapipe-pose", rotate=rotate)
        idx = [pred.spec.index(n) for n in COCO17.keypoints]
        frames = list(pred.iter_video(clip, boxes="track"))
        assert len(frames) == 4
        scores = []
        for fr in frames[1:]:  # the tracked frames
            p = max(fr.predictions, key=lambda q: q.score)
            scores.append(np.mean(np.linalg.norm(p.keypoints[idx][vis] - gt[vis], axis=1) < 0.1 * size))
        print(f"rotate={rotate}: PCK@0.1 of the tracked frames {np.round(scores, 3).tolist()}")
        if floor is not None:
            assert min(scores) >= floor, scores
            tracked = scores
        else:
            assert np.mean(tracked) > np.mean(scores) + 0.3, (tracked, scores)
