"""`posetune predict` end to end: real COCO images with a detection file, a real video, a truncated
video, a folder with an unreadable image, the webcam code path fed by a video file, and one-line
errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from posetune.cli.main import main
from posetune.config.schema import ModelConfig
from posetune.data.images import load_image
from posetune.data.presets import COCO17
from posetune.inference.video import VideoReader, make_test_video
from posetune.models.build import build_model


#: 2 shared CPU cores: one intra-op thread avoids OpenMP oversubscription stalls (conftest fixture)
pytestmark = pytest.mark.usefixtures("torch_single_thread")


def run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A posetune checkpoint (plain CNN + regression head, saved the way training saves it) whose
    output is a fixed pose spread over the middle two thirds of every crop, with score 1."""
    from posetune.engine.metadata import checkpoint_metadata

    cfg = ModelConfig.model_validate({"head": {"type": "cnn", "hidden_dim": 8},
                                      "codec": {"type": "regression", "input_size": [48, 64]}})
    model = build_model(cfg, COCO17)
    pose = np.random.default_rng(5).uniform(1 / 6, 5 / 6, (17, 2))
    with torch.no_grad():
        model.head.fc.weight.zero_()
        model.head.fc.bias.copy_(torch.tensor(pose.reshape(-1)))
    path = tmp_path_factory.mktemp("ckpt") / "best.ckpt"
    torch.save({"state_dict": {"model." + k: v for k, v in model.state_dict().items()},
                "posetune": checkpoint_metadata(model, None)}, path)
    return path


@pytest.fixture(scope="module")
def coco(shared_data):
    return shared_data / "mmpose_coco" / "coco"


@pytest.fixture(scope="module")
def test_mp4(shared_data) -> Path:
    return shared_data / "mmaction2_video" / "tests" / "data" / "test.mp4"


# ----------------------------------------------------------------------------- images
def test_images_with_detection_boxes(ckpt, coco, tmp_path, capsys):
    dets = coco / "test_coco_det_AP_H_56.json"
    raw = json.loads(dets.read_text())
    out = tmp_path / "out"
    code, stdout, err = run(["predict", ckpt, coco, "--boxes", dets, "--out", out, "--score-thr", "0.5",
                             "--device", "cpu"], capsys)
    assert code == 0, err
    preds = json.loads((out / "predictions.json").read_text())
    counts = {iid: sum(1 for d in raw if d["image_id"] == iid and d["score"] >= 0.5)
              for iid in (785, 40083, 196141, 197388)}
    assert {iid: sum(1 for p in preds if p["image_id"] == iid) for iid in counts} == counts  # one per box
    images = json.loads((out / "images.json").read_text())
    assert {im["id"]: im["file_name"] for im in images} == {785: "000000000785.jpg", 40083: "000000040083.jpg",
                                                             196141: "000000196141.jpg", 197388: "000000197388.jpg"}
    for p in preds:
        assert len(p["keypoints"]) == 51 and p["category_id"] == 1 and p["file_name"].endswith(".jpg")
        assert any(np.allclose(p["bbox"], d["bbox"], atol=0.01) for d in raw if d["image_id"] == p["image_id"])
    assert "predictions" in stdout

    # drawn images: the skeleton's links are painted in their colours
    orig = load_image(coco / "000000000785.jpg")
    drawn = load_image(out / "vis" / "000000000785.jpg")
    assert drawn.shape == orig.shape
    (p,) = [p for p in preds if p["image_id"] == 785]
    kp = np.asarray(p["keypoints"]).reshape(17, 3)[:, :2]
    hits = 0
    for (a, b), color in zip(COCO17.skeleton, COCO17.link_colors()):
        mid = np.round((kp[a] + kp[b]) / 2).astype(int)
        if np.linalg.norm(kp[a] - kp[b]) < 8:
            continue
        px, ref = drawn[mid[1], mid[0]].astype(int), orig[mid[1], mid[0]].astype(int)
        hits += np.abs(px - np.array(color)).max() < 60 and np.abs(px - ref).max() > 40
    assert hits >= 8

    # the 0.3 threshold keeps duplicate boxes of the same people: --nms-thr 1 keeps one pose per box,
    # the default OKS-NMS merges the duplicates
    out2 = tmp_path / "all"
    assert run(["predict", ckpt, coco, "--boxes", dets, "--out", out2, "--nms-thr", "1", "--no-save-frames"],
               capsys)[0] == 0
    assert len(json.loads((out2 / "predictions.json").read_text())) == sum(d["score"] >= 0.3 for d in raw)
    assert not (out2 / "vis").exists()
    assert run(["predict", ckpt, coco, "--boxes", dets, "--out", out2, "--no-save-frames"], capsys)[0] == 0
    assert len(json.loads((out2 / "predictions.json").read_text())) < sum(d["score"] >= 0.3 for d in raw)


def test_folder_with_an_empty_image_keeps_the_readable_ones(ckpt, coco, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("000000000785.jpg", "000000040083.jpg"):
        shutil.copy(coco / name, folder / name)
    (folder / "b_empty.png").write_bytes(b"")
    out = tmp_path / "out"
    code, _, err = run(["predict", ckpt, folder, "--out", out], capsys)
    assert code == 2
    line = _error_line(err)
    assert "b_empty.png" in line and "1 of 3 images" in line and "empty" in line
    preds = json.loads((out / "predictions.json").read_text())
    images = json.loads((out / "images.json").read_text())
    assert sorted(im["file_name"] for im in images) == ["000000000785.jpg", "000000040083.jpg"]
    assert len(preds) == 2  # whole frame: one subject per readable image
    assert sorted(p.name for p in (out / "vis").iterdir()) == ["000000000785.jpg", "000000040083.jpg"]


def test_glob_source_and_max_frames(ckpt, coco, tmp_path, capsys):
    out = tmp_path / "g"
    code, _, err = run(["predict", ckpt, str(coco / "*0*.jpg"), "--out", out, "--max-frames", "2",
                        "--no-save-frames"], capsys)
    assert code == 0, err
    images = json.loads((out / "images.json").read_text())
    assert [im["id"] for im in images] == [1, 2] and images[0]["file_name"] == "000000000785.jpg"


# ----------------------------------------------------------------------------- video
def test_video_writes_tracks_predictions_and_overlay(ckpt, test_mp4, tmp_path, capsys):
    out = tmp_path / "v"
    code, stdout, err = run(["predict", ckpt, test_mp4, "--out", out, "--max-frames", "20"], capsys)
    assert code == 0, err
    tracks = pd.read_csv(out / "tracks.csv")
    assert sorted(tracks.frame.unique()) == list(range(20)) and set(tracks.track) == {0}
    assert len(tracks) == 20 * 17
    np.testing.assert_allclose(tracks.time.unique(), np.arange(20) / 30, atol=1e-5)
    preds = json.loads((out / "predictions.json").read_text())
    assert [p["image_id"] for p in preds] == list(range(20)) and all(p["track_id"] == 0 for p in preds)
    with VideoReader(out / "test_pose.mp4") as r:
        frames = list(r)
        assert r.fps == 30 and (r.width, r.height) == (340, 256)
    assert len(frames) == 20
    with VideoReader(test_mp4) as src:
        first = next(iter(src)).image
    assert np.abs(frames[0].image.astype(int) - first.astype(int)).max() > 100  # the skeleton is drawn


def test_smoothed_video_draws_the_smoothed_tracks(ckpt, tmp_path, capsys):
    clip = make_test_video(tmp_path / "clip.mp4", 15, fps=25, size=(128, 96))
    out = tmp_path / "s"
    code, _, err = run(["predict", ckpt, clip, "--out", out, "--smooth", "savgol", "--box-mode", "frame"], capsys)
    assert code == 0, err
    assert pd.read_csv(out / "tracks.csv").frame.nunique() == 15
    with VideoReader(out / "clip_pose.mp4") as r:
        assert sum(1 for _ in r) == 15 and r.fps == 25


def test_truncated_video_keeps_the_frames_before_the_fault(ckpt, tmp_path, capsys):
    full = make_test_video(tmp_path / "full.mp4", 40, size=(96, 64))
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "t"
    code, _, err = run(["predict", ckpt, cut, "--out", out], capsys)
    assert code == 2
    line = _error_line(err)
    assert "cut.mp4: frame" in line and "before it are in" in line
    n = pd.read_csv(out / "tracks.csv").frame.nunique()
    assert 0 < n < 40
    assert len(json.loads((out / "predictions.json").read_text())) == n
    with VideoReader(out / "cut_pose.mp4") as r:
        assert sum(1 for _ in r) == n


def test_webcam_path_with_a_video_file_standing_in_for_the_camera(ckpt, tmp_path, capsys):
    clip = make_test_video(tmp_path / "cam.mp4", 12, fps=15, size=(128, 96))
    out = tmp_path / "c"
    code, _, err = run(["predict", ckpt, "--camera-file", clip, "--out", out, "--max-frames", "8", "--no-show"],
                       capsys)
    assert code == 0, err
    tracks = pd.read_csv(out / "tracks.csv")
    assert tracks.frame.nunique() == 8 and tracks.time.is_monotonic_increasing
    with VideoReader(out / "camera_cam_pose.mp4") as r:
        assert sum(1 for _ in r) == 8 and r.fps == 15
    # past the end of the stand-in the camera 'stops delivering': outputs kept, one-line error
    code, _, err = run(["predict", ckpt, "--camera-file", clip, "--out", tmp_path / "c2", "--no-show"], capsys)
    assert code == 2 and "stopped delivering frames after 12" in _error_line(err)
    assert pd.read_csv(tmp_path / "c2" / "tracks.csv").frame.nunique() == 12


def test_one_line_errors(ckpt, coco, tmp_path, capsys):
    from posetune.cli.predict_cmd import gui_available

    out = tmp_path / "e"
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 50)
    cases = [
        (["predict", ckpt, junk, "--out", out], "cannot open video"),
        (["predict", "mediapipe-pos", coco / "000000000785.jpg", "--out", out],
         "mediapipe-pose, mediapipe-hand, mediapipe-hand-lite, mediapipe-face, mediapipe-holistic"),
        (["predict", ckpt, tmp_path / "nothing.mp4", "--out", out], "source not found"),
        (["predict", ckpt, tmp_path, "--out", out], "folder holds no images"),
        (["predict", ckpt, "--source", "7", "--out", out, "--no-show"], "cannot open camera 7"),
        (["predict", ckpt, "0", "--out", out, "--smooth", "kalman"], "--smooth"),
        (["predict", ckpt, "0", "--out", out, "--box-mode", "nearest"], "--box-mode"),
        (["predict", ckpt, "0", "--out", out, "--detector", "yolo"], "mediapipe-palm"),
    ]
    if not gui_available():
        cases.append((["predict", ckpt, "0", "--out", out, "--show"], "--no-show"))
    for args, text in cases:
        code, _, err = run(args, capsys)
        assert code == 2 and text in _error_line(err), (args, err)
