"""Predictor API: crop geometry and the mapping back to image pixels, box sources (given, COCO
detection files, whole frame, MediaPipe's person detector), OKS-NMS, video box tracking and
re-detection, track ids, decoding faults, smoothing, and the built-in MediaPipe models on real
images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from posetune.config.schema import ModelConfig
from posetune.data.images import load_image
from posetune.data.presets import COCO17
from posetune.errors import CheckpointError, ConfigError, DataError, InferenceError, ModelError
from posetune.inference.detectors import (as_boxes, box_from_keypoints, box_iou_matrix, boxes_from_coco_detections,
                                          decode_ssd, ssd_anchors, weighted_nms, whole_frame)
from posetune.inference.predictor import Predictor, smooth_table
from posetune.inference.video import make_test_video
from posetune.models.build import build_model

INPUT = (48, 64)  # (w, h) of the test models


#: 2 shared CPU cores: one intra-op thread avoids OpenMP oversubscription stalls (conftest fixture)
pytestmark = pytest.mark.usefixtures("torch_single_thread")


def constant_pose() -> np.ndarray:
    """(17, 2) normalised crop coordinates spanning [1/6, 5/6] in x and y: the box around them,
    padded 0.1 per side and then 1.25 by the crop, is the crop again (a fixed point of tracking).
    Shoulders straight above hips: an upright subject (body rotation 0)."""
    rng = np.random.default_rng(3)
    pose = rng.uniform(0.25, 0.75, (17, 2))
    for name, xy in (("left_shoulder", (0.62, 0.3)), ("right_shoulder", (0.38, 0.3)),
                     ("left_hip", (0.58, 0.55)), ("right_hip", (0.42, 0.55))):
        pose[COCO17.index(name)] = xy
    pose[COCO17.index("nose")] = (0.5, 1 / 6)
    pose[COCO17.index("left_ankle")] = (5 / 6, 5 / 6)
    pose[COCO17.index("right_ankle")] = (1 / 6, 5 / 6)
    return pose


def constant_model(pose: np.ndarray | None = None):
    """A real posetune model (plain CNN + regression head) whose last layer outputs ``pose`` for any
    input: every prediction is this pose inside its crop, with score 1."""
    cfg = ModelConfig.model_validate({"head": {"type": "cnn", "hidden_dim": 8},
                                      "codec": {"type": "regression", "input_size": list(INPUT)}})
    model = build_model(cfg, COCO17)
    with torch.no_grad():
        model.head.fc.weight.zero_()
        model.head.fc.bias.copy_(torch.tensor(constant_pose() if pose is None else pose).reshape(-1))
    return model.eval()


def blind_model():
    """A heatmap model whose last layer is zero: all heatmaps 0, every keypoint score 0 (subject lost)."""
    cfg = ModelConfig.model_validate({"backbone": {"name": "resnet10t"}, "head": {"type": "heatmap"},
                                      "codec": {"type": "msra", "input_size": [32, 32]}})
    model = build_model(cfg, COCO17)
    with torch.no_grad():
        for p in model.head.final_layer.parameters():
            p.zero_()
    return model.eval()


def expected_image_points(pose: np.ndarray, box, size=INPUT, padding=1.25) -> np.ndarray:
    """Where a crop-normalised pose lands in the image for a box (standard top-down crop: the box
    grown to the input aspect, padded, its edges on the input's [0, w] range)."""
    x, y, w, h = box
    aspect = size[0] / size[1]
    sw, sh = (w, w / aspect) if w > aspect * h else (h * aspect, h)
    sw, sh = sw * padding, sh * padding
    cx, cy = x + w / 2, y + h / 2
    px = pose * np.array(size) - 0.5  # input pixels (pixel centres at integers)
    return np.c_[cx - sw / 2 + px[:, 0] * sw / size[0], cy - sh / 2 + px[:, 1] * sh / size[1]]


@pytest.fixture(scope="module")
def coco(shared_data):
    root = shared_data / "mmpose_coco" / "coco"
    return root, json.loads((root / "test_coco.json").read_text())


class FixedBoxes:
    """A user-supplied box source (the predictor's detector interface): the same boxes every image."""

    def __init__(self, boxes):
        self.boxes = as_boxes(boxes)
        self.calls = 0

    def boxes_batch(self, images):
        self.calls += len(images)
        return [self.boxes.copy() for _ in images]


# ----------------------------------------------------------------------------- images
def test_keypoints_map_back_to_image_pixels_for_given_and_whole_frame_boxes():
    pose = constant_pose()
    pred = Predictor(constant_model(pose))
    img = np.full((120, 200, 3), 90, np.uint8)
    boxes = [[20.0, 10.0, 40.0, 90.0], [110.0, 30.0, 80.0, 40.0]]  # tall and wide boxes
    got = pred.predict(img, boxes=boxes)
    assert len(got) == 2
    for p, box in zip(got, boxes):
        np.testing.assert_allclose(p.keypoints, expected_image_points(pose, box), atol=1e-3)
        np.testing.assert_array_equal(p.box, box)
        assert p.scores.shape == (17,) and np.all(p.scores == 1.0) and p.score == pytest.approx(1.0)
    # no boxes, no detector: the whole frame (pixel centres 0..W-1 -> edges -0.5..W-0.5)
    (whole,) = pred.predict(img)
    np.testing.assert_allclose(whole.keypoints, expected_image_points(pose, [-0.5, -0.5, 200, 120]), atol=1e-3)
    # the same through predict_batch with per-image boxes (None = default) and a grey image
    grey = np.full((120, 200), 90, np.uint8)
    a, b = pred.predict_batch([img, grey], [boxes[:1], None])
    np.testing.assert_allclose(a[0].keypoints, got[0].keypoints)
    np.testing.assert_allclose(b[0].keypoints, whole.keypoints)
    rec = got[0].to_coco(7, file_name="x.jpg")
    assert rec["image_id"] == 7 and len(rec["keypoints"]) == 51 and rec["file_name"] == "x.jpg"
    assert rec["bbox"] == boxes[0] and rec["category_id"] == 1


def test_coco_detections_give_one_prediction_per_box_and_oks_nms_merges_duplicates(coco):
    root, gt = coco
    dets_file = root / "test_coco_det_AP_H_56.json"
    raw = json.loads(dets_file.read_text())
    images = sorted(root.glob("*.jpg"))
    pred = Predictor(constant_model(), nms_thr=1.0)
    dets = boxes_from_coco_detections(dets_file, score_thr=0.3)
    expected = {iid: sum(1 for d in raw if d["image_id"] == iid and d["score"] >= 0.3) for iid in (785, 40083, 196141,
                                                                                                   197388)}
    results = pred.predict_batch(images, dets)
    for path, preds in zip(images, results):
        iid = int(path.stem)
        assert len(preds) == expected[iid] > 0
        boxes = dets.lookup(file_name=path)[1]
        np.testing.assert_allclose([p.box for p in preds], boxes[:, :4])
        np.testing.assert_allclose([p.box_score for p in preds], boxes[:, 4])
    # OKS-NMS (default 0.9): only near-duplicate boxes of one person are merged
    pred.nms_thr = 0.9
    merged = pred.predict_batch(images, dets)
    assert sum(map(len, merged)) < sum(map(len, results))
    for preds, kept in zip(results, merged):
        kept_boxes = np.array([p.box for p in kept])
        for p in preds:
            assert box_iou_matrix(p.box[None], kept_boxes).max() > 0.5  # every dropped box duplicates a kept one
    # at a box threshold of 0.5 the boxes are distinct people: one prediction each, NMS or not
    dets5 = boxes_from_coco_detections(dets_file, score_thr=0.5)
    assert [len(p) for p in pred.predict_batch(images, dets5)] == [len(dets5.lookup(file_name=p)[1]) for p in images]


def test_detection_files_match_by_name_id_and_report_bad_records(tmp_path, coco):
    root, gt = coco
    dets = boxes_from_coco_detections(root / "test_coco_det_AP_H_56.json", score_thr=0.9)
    assert dets.image_id_for(file_name="some/dir/000000000785.jpg") == 785  # COCO names end in the id
    assert dets.image_id_for(image_id=785) == 785 and dets.image_id_for(file_name="other.jpg") is None
    assert dets.lookup(file_name="nope.png") is None
    # a COCO dataset dict: file names map to ids; boxes without scores count 1
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    gtb = boxes_from_coco_detections(path, score_thr=0.5)
    iid, boxes, cats = gtb.lookup(file_name=root / "000000040083.jpg")
    assert iid == 40083 and len(boxes) == 3 and np.all(boxes[:, 4] == 1.0) and list(cats) == [1, 1, 1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 5, 5]}, {"image_id": 1, "bbox": [0, "x", 5, 5]}]))
    with pytest.raises(DataError, match=r"bad.json: record 1"):
        boxes_from_coco_detections(bad)
    with pytest.raises(DataError, match="box 0"):
        as_boxes([[0, 0, -1, 5]])


def test_box_helpers():
    np.testing.assert_array_equal(whole_frame(640, 480), [[-0.5, -0.5, 640, 480, 1.0]])
    kp = np.array([[10, 20], [30, 60], [500, 500]], float)
    np.testing.assert_allclose(box_from_keypoints(kp, [0.9, 0.8, 0.1], padding=0.25), [5, 10, 30, 60])
    assert box_from_keypoints(kp, [0.9, 0.1, 0.1]) is None  # one confident point is not a subject
    np.testing.assert_allclose(box_iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 10, 10], [20, 20, 1, 1]])),
                               [[50 / 150, 0.0]])
    assert box_iou_matrix(np.array([[0, 0, 100, 100]]), np.array([[10, 10, 20, 30]]), mode="min")[0, 0] == 1.0


# ----------------------------------------------------------------------------- MediaPipe detector
def test_ssd_anchors_and_decoding_follow_the_mediapipe_pose_detector_layout():
    a = ssd_anchors()
    assert a.shape == (2254, 4) and np.all(a[:, 2:] == 1.0)
    # 28x28 cells x 2, then 14x14 x 2, then 7x7 x 6 (three stride-32 layers share one grid)
    np.testing.assert_allclose(a[0, :2], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[1, :2], a[0, :2])
    np.testing.assert_allclose(a[2, :2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[1568, :2], [0.5 / 14, 0.5 / 14])
    np.testing.assert_allclose(a[1568 + 392:1568 + 392 + 6, :2], [[0.5 / 7, 0.5 / 7]] * 6)
    np.testing.assert_allclose(a[-1, :2], [6.5 / 7, 6.5 / 7])
    raw = np.zeros((2254, 12))
    raw[5] = [22.4, -11.2, 44.8, 67.2, 0, 0, 11.2, 0, 0, 0, 0, 0]
    logits = np.full(2254, -200.0)
    logits[5] = 0.0
    boxes, kps, scores = decode_ssd(raw, logits, a)
    np.testing.assert_allclose(boxes[5], [a[5, 0] + 0.1, a[5, 1] - 0.05, 0.2, 0.3])
    np.testing.assert_allclose(kps[5, 1], [a[5, 0] + 0.05, a[5, 1]])
    assert scores[5] == 0.5 and scores[0] == pytest.approx(1 / (1 + np.exp(100)))  # logits clipped at ±100
    # weighted NMS: two overlapping detections are averaged by score, a far one stays apart
    b = np.array([[0.5, 0.5, 0.2, 0.2], [0.52, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]])
    k = np.zeros((3, 4, 2))
    k[1] += 1.0
    out = weighted_nms(b, k, np.array([0.9, 0.3, 0.8]), iou_thr=0.3)
    assert len(out) == 2 and out[0][2] == 0.9 and out[1][2] == 0.8
    np.testing.assert_allclose(out[0][0][0], (0.5 * 0.9 + 0.52 * 0.3) / 1.2)
    np.testing.assert_allclose(out[0][1], 0.25)


def test_mediapipe_detector_finds_the_people_of_real_images(mediapipe_cache, monkeypatch, coco):
    monkeypatch.setenv("POSETUNE_CACHE", str(mediapipe_cache))
    from posetune.inference.detectors import MediaPipePoseDetector

    root, gt = coco
    det = MediaPipePoseDetector()
    files = {im["id"]: im["file_name"] for im in gt["images"]}
    # the clearly visible person of each image (annotation index within the image)
    clear = {785: 0, 40083: 0, 196141: 0, 197388: 3}
    images = [load_image(root / files[i]) for i in clear]
    found = det.boxes_batch(images)
    for (iid, k), boxes in zip(clear.items(), found):
        gt_boxes = np.array([a["bbox"] for a in gt["annotations"] if a["image_id"] == iid])
        assert len(boxes) >= 1 and np.all(boxes[:, 4] >= 0.5), iid
        iou = box_iou_matrix(boxes, gt_boxes)
        assert iou[:, k].max() > 0.5, (iid, iou)
        assert np.all(iou.max(axis=1) > 0.5), iid  # no box off the people
    # the hip point of the skier lies between her GT hips
    d = det.detect(images[0])[0]
    ann = next(a for a in gt["annotations"] if a["image_id"] == 785)
    kp = np.asarray(ann["keypoints"], float).reshape(17, 3)
    hips = kp[[COCO17.index("left_hip"), COCO17.index("right_hip")], :2].mean(0)
    assert np.linalg.norm(d.keypoints[0] - hips) < 0.1 * ann["bbox"][3]


def test_builtin_mediapipe_pose_predicts_inside_the_person(mediapipe_cache, monkeypatch, coco):
    monkeypatch.setenv("POSETUNE_CACHE", str(mediapipe_cache))
    root, gt = coco
    pred = Predictor.from_checkpoint("mediapipe-pose")
    assert pred.spec.num_keypoints == 33 and pred.detector is not None
    (p,) = pred.predict(root / "000000000785.jpg")
    ann = next(a for a in gt["annotations"] if a["image_id"] == 785)
    x, y, w, h = ann["bbox"]
    sure = p.scores >= 0.5
    assert sure.sum() >= 20
    xy = p.keypoints[sure]
    assert np.all((xy[:, 0] > x - 0.05 * w) & (xy[:, 0] < x + 1.05 * w) & (xy[:, 1] > y - 0.05 * h)
                  & (xy[:, 1] < y + 1.05 * h))
    # the body points named like COCO's are near the labels (mean error < 10 % of the box height)
    kp = np.asarray(ann["keypoints"], float).reshape(17, 3)
    errs = [np.linalg.norm(p.keypoints[pred.spec.index(n)] - kp[i, :2]) for i, n in enumerate(COCO17.keypoints)
            if kp[i, 2] > 0]
    assert np.mean(errs) < 0.1 * h


def test_builtin_holistic_gives_543_points_with_the_body_on_the_person(mediapipe_cache, monkeypatch, coco):
    monkeypatch.setenv("POSETUNE_CACHE", str(mediapipe_cache))
    from posetune.inference.predictor import HolisticPredictor

    root, gt = coco
    pred = Predictor.from_checkpoint("mediapipe-holistic", detector="none")
    assert isinstance(pred, HolisticPredictor) and pred.spec.num_keypoints == 543
    ann = next(a for a in gt["annotations"] if a["image_id"] == 785)
    (p,) = pred.predict(root / "000000000785.jpg", boxes=np.array([ann["bbox"]]))
    assert p.keypoints.shape == (543, 2) and p.scores.shape == (543,)
    kp = np.asarray(ann["keypoints"], float).reshape(17, 3)
    errs = [np.linalg.norm(p.keypoints[pred.spec.index(n)] - kp[i, :2]) for i, n in enumerate(COCO17.keypoints)
            if kp[i, 2] > 0]
    assert np.mean(errs) < 0.1 * ann["bbox"][3]
    face = p.keypoints[pred.spec.index("face_0"):pred.spec.index("face_467") + 1]
    nose = kp[COCO17.index("nose"), :2]
    # the face mesh sits on the face: around the labelled nose, within a head's size
    assert np.linalg.norm(face.mean(axis=0) - nose) < 0.1 * ann["bbox"][3]


def test_unknown_or_unavailable_models_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError) as e:
        Predictor.from_checkpoint("mediapipe-pos")
    assert "\n" not in str(e.value)
    for name in ("mediapipe-pose", "mediapipe-hand", "mediapipe-face", "mediapipe-holistic"):
        assert name in str(e.value)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        Predictor.from_checkpoint(tmp_path / "none.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt"):
        Predictor.from_checkpoint(junk)


def test_checkpoint_round_trip_through_from_checkpoint(tmp_path):
    from posetune.engine.metadata import checkpoint_metadata

    model = constant_model()
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": {"model." + k: v for k, v in model.state_dict().items()},
                "posetune": checkpoint_metadata(model, None)}, path)
    pred = Predictor.from_checkpoint(path, device="cpu", batch_size=2, score_thr=0.5)
    assert pred.detector is None and pred.batch_size == 2 and pred.name == "best"
    img = np.zeros((50, 70, 3), np.uint8)
    np.testing.assert_allclose(pred.predict(img)[0].keypoints, Predictor(model).predict(img)[0].keypoints)
    assert Predictor.from_checkpoint(tmp_path).name == "best"  # a run folder: its best checkpoint


# ----------------------------------------------------------------------------- video
@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_test_video(tmp_path_factory.mktemp("clip") / "clip.mp4", 12, fps=25, size=(160, 120))


def test_track_mode_crops_around_the_previous_keypoints(clip):
    pose = constant_pose()
    pred = Predictor(constant_model(pose))
    frames = list(pred.iter_video(clip, boxes="track", draw=True))
    assert [f.index for f in frames] == list(range(12))
    assert all(len(f.predictions) == 1 and f.predictions[0].track_id == 0 for f in frames)
    np.testing.assert_allclose(frames[0].predictions[0].box, [-0.5, -0.5, 160, 120])  # first: whole frame
    for prev, cur in zip(frames, frames[1:]):
        kp = prev.predictions[0].keypoints
        lo, hi = kp.min(0), kp.max(0)
        box = np.r_[lo - 0.1 * (hi - lo), 1.2 * (hi - lo)]
        np.testing.assert_allclose(cur.predictions[0].box, box, atol=1e-6)
        np.testing.assert_allclose(cur.predictions[0].keypoints, expected_image_points(pose, box), atol=1e-3)
    assert frames[3].drawn is not None and not np.array_equal(frames[3].drawn, frames[3].image)
    assert abs(frames[0].time) < 1e-9 and frames[5].time == pytest.approx(5 / 25)


def test_lost_subject_falls_back_to_the_whole_frame_or_the_detector(clip):
    blind = Predictor(blind_model())
    frames = list(blind.iter_video(clip, boxes="track", max_frames=5))
    assert len(frames) == 5
    for f in frames:  # every frame is lost (scores 0): the next crop is the whole frame again
        (p,) = f.predictions
        assert p.mean_score == 0.0
        np.testing.assert_allclose(p.box, [-0.5, -0.5, 160, 120])
    boxes = [[10, 10, 50, 90], [100, 20, 50, 90]]
    det = FixedBoxes(boxes)
    with_det = Predictor(blind_model(), detector=det)
    frames = list(with_det.iter_video(clip, boxes="track", max_frames=4))
    assert det.calls == 4  # lost in every frame: re-detected every frame
    assert all(sorted(p.box.tolist() for p in f.predictions) == boxes for f in frames)


def test_several_subjects_keep_their_track_ids(clip):
    boxes = [[5, 10, 45, 90], [100, 15, 50, 95]]
    det = FixedBoxes(boxes)
    pred = Predictor(constant_model(), detector=det, redetect_every=5)
    frames = list(pred.iter_video(clip, boxes="track"))
    assert det.calls == 3  # frame 0, then every 5 frames (nobody lost)
    for f in frames:
        by_id = {p.track_id: p for p in f.predictions}
        assert sorted(by_id) == [0, 1]
        assert by_id[0].keypoints[:, 0].mean() < 80 < by_id[1].keypoints[:, 0].mean()
    table = pred.predict_video(clip, boxes="detector")
    assert table.track_ids == [0, 1] and table.num_frames == 12 and np.isfinite(table.xy).all()
    assert table.fps == 25 and table.times[3] == pytest.approx(3 / 25)


def test_frame_mode_batches_frames_and_matches_single_images(clip):
    from posetune.inference.video import VideoReader

    pred = Predictor(constant_model(), batch_size=5)
    table = pred.predict_video(clip, boxes="frame", max_frames=7)
    assert table.num_frames == 7 and table.track_ids == [0]
    with VideoReader(clip) as r:
        img = next(iter(r)).image
    np.testing.assert_allclose(table.xy[0, 0], pred.predict(img)[0].keypoints)
    with pytest.raises(ConfigError, match="detector"):
        list(pred.iter_video(clip, boxes="detector"))
    with pytest.raises(ConfigError, match="box mode"):
        pred.predict_video(clip, boxes="nearest")


def test_truncated_video_keeps_the_frames_before_the_fault(tmp_path):
    full = make_test_video(tmp_path / "full.mp4", 40, size=(96, 64))
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    pred = Predictor(constant_model())
    with pytest.raises(InferenceError, match=r"cut.mp4: frame \d+") as e:
        pred.predict_video(cut, boxes="frame")
    partial = e.value.partial
    assert 0 < partial.num_frames < 40 and list(partial.frames) == list(range(partial.num_frames))
    table = pred.predict_video(cut, on_error="stop")
    assert table.num_frames == partial.num_frames and "cut.mp4" in table.info["error"]


def test_smoothing_reduces_jitter_and_keeps_scores(clip):
    from posetune.analysis.tracks import TrackTableBuilder
    from posetune.inference.smoothing import jitter

    rng = np.random.default_rng(0)
    b = TrackTableBuilder(COCO17, fps=30)
    truth = np.linspace(0, 60, 40)[:, None, None] + np.zeros((40, 17, 2))
    noisy = truth + rng.normal(0, 2.0, truth.shape)
    for t in range(40):
        b.add(t, 0, np.c_[noisy[t], np.full(17, 0.9)], time=t / 30)
    raw = b.build()
    for method in ("one_euro", "savgol"):
        sm = smooth_table(raw, method, 0.3)
        assert jitter(sm.xy[:, 0]) < 0.5 * jitter(raw.xy[:, 0]), method
        assert np.array_equal(sm.scores, raw.scores) and sm.info["smoothing"] == method
    assert smooth_table(raw, "none") is raw
    with pytest.raises(ConfigError, match="smoothing"):
        smooth_table(raw, "kalman")
    smoothed = Predictor(constant_model()).predict_video(clip, smooth="one_euro", max_frames=6)
    assert smoothed.num_frames == 6 and np.isfinite(smoothed.xy).all()


def test_mediapipe_pose_follows_a_real_person_through_a_video(mediapipe_cache, monkeypatch, coco, tmp_path):
    """A clip panning and zooming over the COCO skier: BlazePose-style tracking keeps one subject,
    one crop per frame, the detector only on the first frame (and every 30), and the keypoints on
    the labelled joints."""
    import cv2

    monkeypatch.setenv("POSETUNE_CACHE", str(mediapipe_cache))
    root, gt = coco
    img = load_image(root / "000000000785.jpg")
    ann = next(a for a in gt["annotations"] if a["image_id"] == 785)
    kp = np.asarray(ann["keypoints"], float).reshape(17, 3)
    frames, mats = [], []
    for i in range(20):
        s, dx = 0.7 + 0.015 * i, -150 + 6 * i
        m = np.array([[s, 0, dx], [0, s, -20 + 0.5 * i]])
        frames.append(cv2.warpAffine(img, m, (480, 360), borderMode=cv2.BORDER_REFLECT))
        mats.append(m)
    clip = make_test_video(tmp_path / "skier.mp4", frames, fps=30)
    pred = Predictor.from_checkpoint("mediapipe-pose")
    table = pred.predict_video(clip)
    assert table.track_ids == [0] and table.num_frames == 20
    assert pred.stats == {"crops": 20, "detector_images": 1}
    names = [pred.spec.index(n) for n in COCO17.keypoints]
    for t, m in enumerate(mats):
        truth = kp[:, :2] @ m[:, :2].T + m[:, 2]
        err = np.linalg.norm(table.xy[t, 0, names] - truth, axis=1)[kp[:, 2] > 0]
        assert err.mean() < 0.1 * ann["bbox"][3] * m[0, 0], (t, err)
