"""MediaPipe Holistic pipeline (pose -> hand / face crops -> 543 points) on real images: crop
geometry, the holistic keypoint spec, accuracy against COCO-WholeBody labels (pose, hand, face,
person mask), rotation handling and handedness on OneHand10K, skipped parts and input errors."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from posetune.data.images import load_image
from posetune.data.presets import COCO17_NAMES, MEDIAPIPE_HOLISTIC543, MP_HAND21_NAMES, MP_POSE33_NAMES
from posetune.data.spec import KeypointSpec, get_spec
from posetune.data.transforms import apply_affine, invert_affine
from posetune.errors import ConfigError, InferenceError
from posetune.models.mediapipe.holistic import HolisticPipeline, HolisticResult, Roi, rotation_up

COCO = "mmpose_coco/coco"
#: COCO-17 body points inside BlazePose-33
BODY_IDX = [MP_POSE33_NAMES.index(n) for n in COCO17_NAMES]
#: MediaPipe face-mesh index -> the same point of the 68-point (iBUG) face of COCO-WholeBody:
#: nose tip, eye corners, mouth corners, chin
MESH_TO_68 = {1: 30, 33: 36, 133: 39, 362: 42, 263: 45, 61: 48, 291: 54, 152: 8}


@pytest.fixture(scope="module")
def pipeline(mediapipe_cache):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets on a shared 2-core machine
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSETUNE_CACHE", str(mediapipe_cache))
        pipe = HolisticPipeline(version="0.10.21", device="cpu")
    yield pipe
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def wholebody(shared_data):
    d = json.loads((shared_data / COCO / "test_coco_wholebody.json").read_text())
    files = {im["id"]: im["file_name"] for im in d["images"]}
    anns = {a["id"]: a for a in d["annotations"]}
    return lambda ann_id: (shared_data / COCO / files[anns[ann_id]["image_id"]], anns[ann_id])


def _pts(ann: dict, key: str) -> np.ndarray:
    return np.asarray(ann[key], dtype=np.float64).reshape(-1, 3)


# ----------------------------------------------------------------------------- geometry and spec
def test_roi_matrix_maps_the_rotated_square_onto_the_crop():
    roi = Roi((100.0, 50.0), 40.0, math.radians(30))
    m = roi.matrix((224, 224))
    # centre -> crop centre (pixel centres at integers); corners -> the crop's outer edges
    np.testing.assert_allclose(apply_affine(np.array([roi.center]), m)[0], [111.5, 111.5])
    np.testing.assert_allclose(apply_affine(roi.corners(), m), [[-0.5, -0.5], [223.5, -0.5], [223.5, 223.5],
                                                               [-0.5, 223.5]], atol=1e-9)
    np.testing.assert_allclose(apply_affine(apply_affine(roi.corners(), m), invert_affine(m)), roi.corners())
    # rotation_up turns start -> end to "up" in the crop: a hand pointing right, or down-left
    for end in ([130.0, 50.0], [80.0, 90.0]):
        r = Roi((100.0, 50.0), 60.0, rotation_up(np.array([100.0, 50.0]), np.array(end)))
        a, b = apply_affine(np.array([[100.0, 50.0], end]), r.matrix((100, 100)))
        assert abs(a[0] - b[0]) < 1e-9 and b[1] < a[1]
    box = Roi((10.0, 10.0), 10.0, math.radians(45)).box()
    np.testing.assert_allclose(box, [10 - 5 * math.sqrt(2), 10 - 5 * math.sqrt(2), 10 * math.sqrt(2),
                                     10 * math.sqrt(2)])


def test_holistic_spec_preset():
    spec = MEDIAPIPE_HOLISTIC543
    assert get_spec("holistic") is spec and get_spec("mediapipe_holistic543") is spec
    parts = dict(spec.parts)
    assert [len(parts[p]) for p in ("pose", "left_hand", "right_hand", "face")] == [33, 21, 21, 468]
    assert spec.keypoints[:33] == MP_POSE33_NAMES and spec.keypoints[75] == "face_0"
    assert spec.keypoints[33:54] == tuple(f"left_hand_{n}" for n in MP_HAND21_NAMES)
    assert spec.keypoints[54:75] == tuple(f"right_hand_{n}" for n in MP_HAND21_NAMES)
    flip = spec.flip_index
    assert flip[spec.index("left_wrist")] == spec.index("right_wrist")
    assert flip[spec.index("left_hand_thumb_tip")] == spec.index("right_hand_thumb_tip")
    assert flip[spec.index("nose")] == spec.index("nose") and flip[100] == 100
    assert not spec.can_flip  # the face mesh has no known mirror pairs
    links = set(spec.skeleton)
    assert (33 + 0, 33 + 1) in links and (54 + 19, 54 + 20) in links and not any(a >= 75 for a, _ in links)
    assert spec.sigmas[33:54] == spec.sigmas[54:75] and spec.sigmas[75] == 0.01
    assert KeypointSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


# ----------------------------------------------------------------------------- real people
def test_pose_face_and_mask_of_a_coco_person(pipeline, wholebody):
    from pycocotools import mask as mask_utils

    path, ann = wholebody(442619)  # the skier of 000000000785.jpg: body, face and right hand labelled
    img = load_image(path)
    r = pipeline.predict(img, ann["bbox"], segmentation=True)
    assert isinstance(r, HolisticResult) and r.keypoints.shape == (543, 2) and r.scores.shape == (543,)
    assert np.isfinite(r.keypoints).all() and ((r.scores >= 0) & (r.scores <= 1)).all()
    # body: BlazePose's COCO-17 points near the labels (measured 0.022 of the box's long side)
    body = _pts(ann, "keypoints")
    err = np.linalg.norm(r.keypoints[BODY_IDX] - body[:, :2], axis=1)[body[:, 2] > 0]
    assert err.mean() < 0.05 * max(ann["bbox"][2:])
    assert r.presence["pose"] > 0.9 and r.scores[BODY_IDX].mean() > 0.8
    # face: the mesh lies on the labelled face box and its landmarks on the 68-point labels
    # (measured: 86 % inside the tight box, all inside it grown by 30 %; landmarks 0.05 of the box)
    fx, fy, fw, fh = ann["face_box"]
    face, face_scores = r.part("face")
    grow = 0.3 * max(fw, fh)
    inside = ((face[:, 0] > fx - grow) & (face[:, 0] < fx + fw + grow) & (face[:, 1] > fy - grow)
              & (face[:, 1] < fy + fh + grow))
    assert inside.mean() > 0.98 and r.presence["face"] > 0.9 and np.all(face_scores == r.presence["face"])
    gt68 = _pts(ann, "face_kpts")
    ferr = [np.linalg.norm(face[m] - gt68[g, :2]) for m, g in MESH_TO_68.items()]
    assert np.mean(ferr) < 0.12 * max(fw, fh), ferr
    np.testing.assert_allclose(r.boxes["face"], [face[:, 0].min(), face[:, 1].min(), np.ptp(face[:, 0]),
                                                 np.ptp(face[:, 1])])
    # person mask in image coordinates against the COCO polygon (measured IoU 0.93)
    gt = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], *img.shape[:2]))) > 0
    pred = r.segmentation > 0.5
    assert r.segmentation.shape == img.shape[:2]
    assert (pred & gt).sum() / (pred | gt).sum() > 0.8
    # without a box the whole image is the first crop; the refined pass finds the same person
    r2 = pipeline.predict(img)
    err2 = np.linalg.norm(r2.keypoints[BODY_IDX] - body[:, :2], axis=1)[body[:, 2] > 0]
    assert err2.mean() < 0.05 * max(ann["bbox"][2:])


def test_hand_from_the_pose_lands_on_the_labelled_hand(pipeline, wholebody):
    path, ann = wholebody(531914)  # 000000197388.jpg: a skier's right hand, open white glove, 22 px
    _, other = wholebody(543117)  # another person of the same image, for the batch check
    img = load_image(path)
    results = pipeline.predict_batch([img, img], [ann["bbox"], other["bbox"]])
    r = results[0]
    gt = _pts(ann, "righthand_kpts")
    size = max(ann["righthand_box"][2:])
    hand, scores = r.part("right_hand")
    err = np.linalg.norm(hand - gt[:, :2], axis=1).mean() / size
    assert err < 0.3, err  # measured 0.18 of the hand box
    roi = r.rois["right_hand"]
    assert roi.valid and np.all(scores == r.presence["right_hand"])
    # it beats putting every point at the crop centre (0.50) ...
    assert np.linalg.norm(np.asarray(roi.center) - gt[:, :2], axis=1).mean() / size > err + 0.15
    # ... and a wrong way back from the crop fails: mirrored or missing rotation, or upside down
    in_crop = apply_affine(hand, roi.matrix((224, 224)))
    for wrong in (-roi.rotation, 0.0, roi.rotation + math.pi):
        back = apply_affine(in_crop, invert_affine(Roi(roi.center, roi.size, wrong).matrix((224, 224))))
        assert np.linalg.norm(back - gt[:, :2], axis=1).mean() / size > 0.45
    # batched and single predictions agree (up to float rounding, which batching changes)
    single = pipeline.predict(img, other["bbox"])
    np.testing.assert_allclose(single.keypoints, results[1].keypoints, atol=0.25)
    np.testing.assert_allclose(single.scores, results[1].scores, atol=0.01)


def test_hand_crops_undo_any_rotation_and_report_handedness(pipeline, shared_data):
    root = shared_data / "mmpose_onehand10k" / "onehand10k"
    ann = next(a for a in json.loads((root / "test_onehand10k.json").read_text())["annotations"]
               if a["image_id"] == 1402)  # an OK sign: a right hand, palm to the camera
    img = load_image(root / "1402.jpg")
    gt = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2]
    h, w = img.shape[:2]
    side = int(math.hypot(h, w)) + 2
    for angle in (100.0, -150.0):  # rotate the photo: the crop must turn the hand upright again
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
        m[:, 2] += [(side - w) / 2, (side - h) / 2]
        rotated = cv2.warpAffine(img, m, (side, side))
        g = apply_affine(gt, m)
        size = float(np.ptp(g, axis=0).max())
        center = tuple((g.min(axis=0) + g.max(axis=0)) / 2)
        upright = Roi(center, 2.0 * size, rotation_up(g[0], g[9]))  # wrist -> middle-finger knuckle up
        pts, presence, handed = pipeline.run_part("hand", [rotated, rotated], [upright, Roi(center, 2.0 * size)])
        err = np.linalg.norm(pts - g, axis=2).mean(axis=1) / size
        assert err[0] < 0.08 and presence[0] > 0.9, (angle, err, presence)  # measured 0.045, 0.98
        assert err[1] > 1.5 * err[0] or presence[1] < 0.5  # the same crop left sideways is worse
        assert handed[0] > 0.8  # raw handedness: right hand (unmirrored photo)
    mirrored = np.ascontiguousarray(img[:, ::-1])
    gm = gt.copy()
    gm[:, 0] = w - 1 - gm[:, 0]
    size = float(np.ptp(gm, axis=0).max())
    _, _, handed = pipeline.run_part("hand", [mirrored], [Roi(tuple((gm.min(0) + gm.max(0)) / 2), 2.0 * size)])
    assert handed[0] < 0.2  # the mirror image reads as a left hand


# ----------------------------------------------------------------------------- skipped parts, errors
def test_skipped_parts_score_zero_without_nans(pipeline, wholebody, mediapipe_cache, monkeypatch):
    monkeypatch.setenv("POSETUNE_CACHE", str(mediapipe_cache))
    path, ann = wholebody(442619)
    img = load_image(path)
    strict = HolisticPipeline(pose_model=pipeline.pose, hand_model=pipeline.hand, face_model=pipeline.face,
                              hand_min_visibility=1.01, face_min_visibility=1.01)
    r = strict.predict(img, ann["bbox"])
    for part in ("left_hand", "right_hand", "face"):
        kp, sc = r.part(part)
        assert not r.rois[part].valid and np.all(kp == 0) and np.all(sc == 0) and r.presence[part] == 0
        assert np.all(r.boxes[part] == 0)
    assert np.isnan(r.handedness["left_hand"]) and r.scores[:33].mean() > 0.8
    # nobody in the picture: nothing is cropped and every score is 0
    blank = pipeline.predict(np.full((120, 160, 3), 128, np.uint8))
    assert blank.presence["pose"] < 0.5 and np.all(blank.scores == 0) and np.isfinite(blank.keypoints).all()
    assert not any(blank.rois[p].valid for p in ("left_hand", "right_hand", "face"))
    assert pipeline.predict_batch([]) == []


def test_bad_inputs_are_inference_errors(pipeline):
    img = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(InferenceError, match="RGB uint8"):
        pipeline.predict(img.astype(np.float32))
    with pytest.raises(InferenceError, match="RGB uint8"):
        pipeline.predict(img[..., 0])
    with pytest.raises(InferenceError, match="pose box 0"):
        pipeline.predict(img, [1, 2, 0, 5])
    with pytest.raises(InferenceError, match="2 boxes for 1 images"):
        pipeline.predict_batch([img], [None, None])
    with pytest.raises(InferenceError, match="unknown part"):
        pipeline.run_part("foot", [img], [Roi((5.0, 5.0), 10.0)])
    with pytest.raises(ConfigError, match="unknown hand network"):
        HolisticPipeline(hand_variant="hand_heavy", pose_model=pipeline.pose)
    with pytest.raises(InferenceError, match="hand_model is a MediaPipe .face."):
        HolisticPipeline(pose_model=pipeline.pose, hand_model=pipeline.face, face_model=pipeline.face)
