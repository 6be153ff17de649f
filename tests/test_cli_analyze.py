"""`posetune analyze rom` / `analyze joints`: report files, keyframes from a video, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from posetune.analysis.tracks import TrackTableBuilder, write_track_csv
from posetune.cli.main import main
from posetune.data.presets import COCO17
from posetune.inference.video import make_test_video
from posetune.inference.visualize import draw_instances


def run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def _pose(knee_flex: float, elbow_flex: float) -> np.ndarray:
    k = COCO17.index
    p = np.zeros((17, 2))
    p[k("nose")], p[k("left_eye")], p[k("right_eye")] = (82, 22), (79, 19), (85, 19)
    p[k("left_ear")], p[k("right_ear")] = (76, 22), (88, 22)
    p[k("left_shoulder")], p[k("right_shoulder")] = (80, 45), (84, 45)
    p[k("left_hip")], p[k("right_hip")] = (80, 100), (84, 100)
    for side, flex in (("left", knee_flex), ("right", 0.0)):
        knee = p[k(f"{side}_hip")] + (0, 45)
        th = np.radians(flex)
        p[k(f"{side}_knee")], p[k(f"{side}_ankle")] = knee, knee + 45 * np.array([-np.sin(th), np.cos(th)])
    for side, flex in (("left", 0.0), ("right", elbow_flex)):
        elbow = p[k(f"{side}_shoulder")] + (0, 30)
        th = np.radians(flex)
        p[k(f"{side}_elbow")], p[k(f"{side}_wrist")] = elbow, elbow + 30 * np.array([-np.sin(th), np.cos(th)])
    return p


@pytest.fixture()
def predictions(tmp_path: Path):
    """A track CSV of a knee flexing 0 -> 90 -> 0 over 31 frames, and the matching video."""
    frames = 31
    flex = 90 * np.sin(np.linspace(0, np.pi, frames))
    b = TrackTableBuilder(COCO17, fps=15)
    images = []
    for i in range(frames):
        pose = _pose(flex[i], 60 * i / (frames - 1))
        b.add(i, 3, np.c_[pose, np.full(17, 0.9)], time=i / 15)
        images.append(draw_instances(np.full((200, 160, 3), 50, np.uint8), [pose], COCO17, draw_boxes=False))
    csv = write_track_csv(b.build(), tmp_path / "pred.csv")
    video = make_test_video(tmp_path / "clip.mp4", images, fps=15)
    return csv, video


def test_rom_writes_all_files(predictions, tmp_path, capsys):
    csv, _ = predictions
    out = tmp_path / "report"
    code, stdout, err = run(["analyze", "rom", csv, "--joints", "left_knee,right_elbow", "--out", out], capsys)
    assert code == 0, err
    expected = {"angles.csv", "rom.json", "report.md", "report.html", "plot_left_knee.png", "plot_right_elbow.png"}
    assert expected <= {p.name for p in out.iterdir()}
    assert not any(p.name.startswith("keyframe") for p in out.iterdir())  # no video given
    summary = json.loads((out / "rom.json").read_text())
    knee = summary["joints"][0]
    assert summary["track"] == 3 and summary["smoothing"] == "savgol"
    assert abs(knee["range_deg"] - 90) < 1.0 and knee["max_frame"] == 15 and knee["max_time_s"] == pytest.approx(1.0)
    assert "left_knee" in stdout and "report.html" in stdout
    md = (out / "report.md").read_text()
    assert "| Left knee flexion |" in md and "plot_left_knee.png" in md


def test_rom_is_repeatable(predictions, tmp_path, capsys):
    csv, _ = predictions
    for name in ("a", "b"):
        code, _, err = run(["analyze", "rom", csv, "-j", "left_knee", "--smooth", "one_euro", "-o", tmp_path / name],
                           capsys)
        assert code == 0, err
    for f in ("rom.json", "angles.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_rom_with_video_writes_keyframes(predictions, tmp_path, capsys):
    csv, video = predictions
    out = tmp_path / "kf"
    code, _, err = run(["analyze", "rom", csv, "-j", "left_knee", "--video", video, "-o", out], capsys)
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert {"keyframe_left_knee_min.png", "keyframe_left_knee_max.png", "keyframes.png"} <= names
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3  # plot + two keyframes, all embedded


def test_default_output_folder(predictions, capsys):
    csv, _ = predictions
    code, _, err = run(["analyze", "rom", csv, "-j", "right_elbow", "--smooth", "none"], capsys)
    assert code == 0, err
    assert (csv.parent / "pred_rom" / "report.html").exists()


@pytest.mark.parametrize("args,needle", [
    (["--joints", "left_kne"], "left_kne"),
    (["--joints", "left_ankle"], "left_heel"),
    (["--joints", "left_knee", "--smooth", "kalman"], "kalman"),
    (["--joints", "left_knee", "--track", "9"], "track 9"),
])
def test_bad_arguments_are_one_line_errors(predictions, capsys, args, needle):
    csv, _ = predictions
    code, _, err = run(["analyze", "rom", csv, *args], capsys)
    assert code == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_video_input_needs_a_model(predictions, capsys):
    _, video = predictions
    code, _, err = run(["analyze", "rom", video, "-j", "left_knee"], capsys)
    assert code == 2 and "--model" in err and len(err.strip().splitlines()) == 1
    # with a model that cannot be loaded (or no predictor module) it is still one clear line
    code, _, err = run(["analyze", "rom", video, "-j", "left_knee", "--model", video.parent / "none.ckpt"], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_joints_listing(capsys):
    code, out, _ = run(["analyze", "joints", "--spec", "mediapipe_pose33"], capsys)
    assert code == 0 and "left_ankle" in out and "trunk_tilt" in out
