"""Joint angles (geometry, presets across specs), range of motion, keyframes and track tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posetune.analysis.angles import (
    available_angles,
    compute_angle,
    compute_angles,
    joint_angle,
    segment_angle,
)
from posetune.analysis.rom import analyze_rom, write_rom_report
from posetune.analysis.tracks import (
    TrackTableBuilder,
    read_track_csv,
    read_tracks,
    write_track_csv,
)
from posetune.data.presets import COCO17, COCO_WHOLEBODY133, MEDIAPIPE_POSE33, MPII16
from posetune.data.spec import KeypointSpec
from posetune.errors import ConfigError, DataError
from posetune.inference.keyframes import extreme_frames, select_keyframes


def body(knee_flex: float = 0.0, elbow_flex: float = 0.0, lean: float = 0.0, toe_up: float = 0.0) -> dict:
    """Named 2-D points of a side-view body: left knee/right elbow flexed by the given degrees."""
    p = {"left_shoulder": (100.0, 60.0), "right_shoulder": (104.0, 60.0),
         "left_hip": (100.0, 140.0), "right_hip": (104.0, 140.0)}
    if lean:  # shift the shoulders sideways: trunk leans by `lean` degrees towards the image right
        dx = 80 * np.tan(np.radians(lean))
        p["left_shoulder"] = (100.0 + dx, 60.0)
        p["right_shoulder"] = (104.0 + dx, 60.0)
    for s, flex in (("left", knee_flex), ("right", 0.0)):
        hip = np.array(p[f"{s}_hip"])
        knee = hip + [0, 60]
        th = np.radians(flex)
        ankle = knee + 60 * np.array([-np.sin(th), np.cos(th)])
        p[f"{s}_knee"], p[f"{s}_ankle"] = tuple(knee), tuple(ankle)
        tu = np.radians(toe_up)
        p[f"{s}_heel"] = tuple(ankle + [4, 6])
        toe = np.array(p[f"{s}_heel"]) + 30 * np.array([-np.cos(tu), -np.sin(tu)])
        p[f"{s}_foot_index"] = p[f"{s}_big_toe"] = tuple(toe)
    for s, flex in (("left", 0.0), ("right", elbow_flex)):
        sh = np.array(p[f"{s}_shoulder"])
        elbow = sh + [0, 40]
        te = np.radians(flex)
        p[f"{s}_elbow"], p[f"{s}_wrist"] = tuple(elbow), tuple(elbow + 40 * np.array([-np.sin(te), np.cos(te)]))
    mid_sh = (np.array(p["left_shoulder"]) + p["right_shoulder"]) / 2
    p["nose"] = tuple(mid_sh + [0, -30])
    p["left_ear"], p["right_ear"] = tuple(mid_sh + [-4, -28]), tuple(mid_sh + [4, -28])
    p["thorax"], p["pelvis"] = tuple(mid_sh), (102.0, 140.0)
    p["head_top"] = tuple(mid_sh + [0, -40])
    return p


def as_array(points: dict, spec: KeypointSpec) -> np.ndarray:
    """(K, 2) array for ``spec`` (NaN for names the body does not define)."""
    return np.array([points.get(n, (np.nan, np.nan)) for n in spec.keypoints], dtype=float)


# ---------------------------------------------------------------------- geometry
def test_joint_angle_hand_computed():
    assert joint_angle([0, 1], [0, 0], [1, 0]) == pytest.approx(90.0)
    assert joint_angle([0, -1], [0, 0], [0, 1]) == pytest.approx(180.0)
    assert joint_angle([1, 0], [0, 0], [1, 1]) == pytest.approx(45.0)
    assert joint_angle([2, 0], [0, 0], [1, 0]) == pytest.approx(0.0)
    assert np.isnan(joint_angle([0, 0], [0, 0], [1, 0]))  # zero-length limb
    a = np.array([[0, 1], [0, -1]], float)
    np.testing.assert_allclose(joint_angle(a, np.zeros((2, 2)), np.array([[1, 0], [0, 1]], float)), [90, 180])


def test_segment_angle_signs():
    up_right = segment_angle([0, 0], [1, -1])  # y down: (1, -1) is up and to the right
    assert up_right == pytest.approx(45.0)
    assert segment_angle([0, 0], [-1, -1]) == pytest.approx(-45.0)
    assert segment_angle([0, 0], [0, -5]) == pytest.approx(0.0)
    assert segment_angle([0, 0], [0, 5]) == pytest.approx(180.0)
    assert segment_angle([0, 0], [3, 0], "horizontal") == pytest.approx(0.0)
    assert segment_angle([0, 0], [0, -3], "horizontal") == pytest.approx(90.0)


# ---------------------------------------------------------------------- presets
@pytest.mark.parametrize("spec", [COCO17, MEDIAPIPE_POSE33, MPII16, COCO_WHOLEBODY133], ids=lambda s: s.name)
def test_presets_by_name_work_across_specs(spec):
    xy = as_array(body(knee_flex=90, elbow_flex=30, lean=10), spec)
    assert compute_angle("left_knee", xy, spec) == pytest.approx(90.0)
    assert compute_angle("right_knee", xy, spec) == pytest.approx(0.0, abs=1e-9)  # straight limb: 0 flexion
    assert compute_angle("right_elbow", xy, spec) == pytest.approx(30.0)
    assert compute_angle("trunk_tilt", xy, spec) == pytest.approx(10.0)  # leaning to the image right
    assert compute_angle("neck", xy, spec) == pytest.approx(0.0, abs=1e-9)
    # left shoulder: the arm hangs vertically while the trunk leans 10 degrees -> 10
    assert compute_angle("left_shoulder", xy, spec) == pytest.approx(10.0)
    upright = as_array(body(), spec)
    assert compute_angle("left_shoulder", upright, spec) == pytest.approx(0.0, abs=1e-9)


def test_hip_and_shoulder_conventions():
    p = body()
    p["left_knee"] = (160.0, 140.0)  # thigh horizontal: 90 degrees hip flexion
    p["left_elbow"] = (140.0, 60.0)  # arm horizontal: 90 degrees shoulder flexion/abduction
    xy = as_array(p, COCO17)
    assert compute_angle("left_hip", xy, COCO17) == pytest.approx(90.0)
    assert compute_angle("left_shoulder", xy, COCO17) == pytest.approx(90.0)


def test_ankle_needs_foot_points():
    assert "left_ankle" in available_angles(MEDIAPIPE_POSE33)
    assert "left_ankle" in available_angles(COCO_WHOLEBODY133)  # heel + big toe
    assert "left_ankle" not in available_angles(COCO17)
    for spec in (MEDIAPIPE_POSE33, COCO_WHOLEBODY133):
        assert compute_angle("left_ankle", as_array(body(), spec), spec) == pytest.approx(0.0, abs=1e-9)
        assert compute_angle("left_ankle", as_array(body(toe_up=15), spec), spec) == pytest.approx(15.0)
    with pytest.raises(DataError) as e:
        compute_angle("left_ankle", as_array(body(), COCO17), COCO17)
    msg = str(e.value)
    assert "left_ankle" in msg and "left_heel" in msg and "left_foot_index" in msg and "coco17" in msg


def test_unknown_angle_and_custom_spec_by_names():
    with pytest.raises(ConfigError, match="left_kne"):
        compute_angle("left_kne", np.zeros((17, 2)), COCO17)
    custom = KeypointSpec.from_names(["Left-Hip", "LEFT_KNEE", "left ankle", "tail"], name="mine")
    assert available_angles(custom) == ["left_knee"]
    xy = as_array({"Left-Hip": (0, 0), "LEFT_KNEE": (0, 10), "left ankle": (10, 10)}, custom)
    assert compute_angle("left_knee", xy, custom) == pytest.approx(90.0)
    with pytest.raises(DataError, match="left_shoulder"):
        compute_angle("left_elbow", xy, custom)


def test_low_confidence_points_give_nan():
    xy = np.stack([as_array(body(knee_flex=f), COCO17) for f in (10, 20, 30)])
    scores = np.full((3, 17), 0.9)
    scores[1, COCO17.index("left_knee")] = 0.1
    out = compute_angles(["left_knee", "right_knee"], xy, COCO17, scores, score_thr=0.3)
    np.testing.assert_allclose(out["left_knee"][[0, 2]], [10, 30])
    assert np.isnan(out["left_knee"][1]) and np.isfinite(out["right_knee"]).all()


# ---------------------------------------------------------------------- ROM
def knee_sequence(frames: int = 61, noise: float = 0.0, seed: int = 0):
    """Left knee flexion 0 -> 90 -> 0 (peak at the middle frame), right elbow 0 -> 45."""
    rng = np.random.default_rng(seed)
    flex = 90 * np.sin(np.linspace(0, np.pi, frames))
    b = TrackTableBuilder(COCO17, fps=30)
    for i in range(frames):
        kp = as_array(body(knee_flex=flex[i], elbow_flex=45 * i / (frames - 1)), COCO17)
        kp = kp + rng.normal(0, noise, kp.shape)
        b.add(i, 0, np.c_[kp, np.full(17, 0.9)], time=i / 30)
    return b.build(), flex


@pytest.mark.parametrize("smooth", ["none", "savgol", "one_euro"])
def test_rom_of_knee_going_0_90_0(smooth):
    table, _ = knee_sequence()
    res = {r.name: r for r in analyze_rom(table, ["left_knee", "right_elbow"], smooth=smooth).results}
    knee = res["left_knee"]
    assert knee.range == pytest.approx(90.0, abs=1.0)
    assert knee.min == pytest.approx(0.0, abs=1.0) and knee.min_frame in (0, 60)
    peak = {"none": 0, "savgol": 0, "one_euro": 3}[smooth]  # the causal filter lags a little
    assert 30 <= knee.max_frame <= 30 + peak
    if smooth != "one_euro":
        assert knee.max_frame == 30 and knee.max_time == pytest.approx(1.0)
    elbow = res["right_elbow"]  # a ramp to the last frame: the causal One-Euro filter lags ~4 frames
    assert elbow.range == pytest.approx(45.0, abs=1.0 if smooth != "one_euro" else 3.0) and elbow.max_frame >= 58
    assert knee.valid_frames == knee.total_frames == 61


def test_rom_with_noise_smoothing_helps_and_is_repeatable(tmp_path):
    table, _ = knee_sequence(noise=1.5)
    raw = analyze_rom(table, ["left_knee"], smooth="none").results[0]
    sm = analyze_rom(table, ["left_knee"], smooth="savgol").results[0]
    assert abs(sm.range - 90) < abs(raw.range - 90)  # noise inflates the raw range
    assert abs(sm.range - 90) < 3.0 and abs(sm.max_frame - 30) <= 3
    a1 = analyze_rom(table, ["left_knee"])
    a2 = analyze_rom(table, ["left_knee"])
    assert a1.to_dict() == a2.to_dict()
    np.testing.assert_array_equal(a1.angles["left_knee"], a2.angles["left_knee"])
    f1 = write_rom_report(a1, tmp_path / "r1")
    f2 = write_rom_report(a2, tmp_path / "r2")
    for name in ("angles.csv", "rom.json", "report.md"):
        assert f1[name].read_bytes() == f2[name].read_bytes()


def test_rom_low_scores_and_no_data():
    table, _ = knee_sequence(frames=21)
    table.scores[:, 0, COCO17.index("left_knee")] = 0.05
    with pytest.raises(DataError, match="score"):
        analyze_rom(table, ["left_knee"])
    with pytest.raises(DataError, match="left_heel"):
        analyze_rom(table, ["left_ankle"])


def test_rom_report_files(tmp_path):
    table, _ = knee_sequence(frames=31)
    files = write_rom_report(analyze_rom(table, ["left_knee", "trunk_tilt"]), tmp_path / "rep")
    names = set(files)
    assert {"angles.csv", "rom.json", "report.md", "report.html", "plot_left_knee.png",
            "plot_trunk_tilt.png"} <= names
    assert files["plot_left_knee.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = files["report.html"].read_text()
    assert html.count("data:image/png;base64,") == 2 and "<img" in html and 'src="plot_' not in html
    summary = json.loads(files["rom.json"].read_text())
    knee = summary["joints"][0]
    assert knee["joint"] == "left_knee" and knee["max_frame"] == 15 and abs(knee["range_deg"] - 90) < 1
    lines = files["angles.csv"].read_text().splitlines()
    assert lines[0].split(",") == ["frame", "time", "left_knee", "trunk_tilt", "left_knee_raw", "trunk_tilt_raw"]
    assert len(lines) == 32 and lines[16].startswith("15,0.500000,")
    row = dict(zip(lines[0].split(","), lines[16].split(",")))
    assert row["left_knee_raw"] == "90.000" and abs(float(row["left_knee"]) - 90) < 0.1


# ---------------------------------------------------------------------- keyframes
def test_keyframes_are_distinct_poses_and_include_extremes():
    table, flex = knee_sequence(frames=61)
    xy, sc = table.track(0)
    kf = select_keyframes(xy, sc, 2)
    assert kf[0] == 0 and 25 <= kf[1] <= 35  # the most different pose from standing is the deepest flexion
    assert select_keyframes(xy, sc, 2) == kf  # deterministic
    angles = compute_angle("right_elbow", xy, COCO17, sc)
    assert extreme_frames(angles) == (0, 60)
    assert 60 in select_keyframes(xy, sc, 1, angles=angles)
    assert extreme_frames(np.full(4, np.nan)) == (None, None)
    assert select_keyframes(np.full((5, 17, 2), np.nan), None, 3) == []


# ---------------------------------------------------------------------- track tables
def test_track_csv_round_trip(tmp_path):
    table, _ = knee_sequence(frames=5)
    table.xy[2, 0, 3] = np.nan  # a missing point is simply absent from the file
    path = write_track_csv(table, tmp_path / "t.csv")
    lines = path.read_text().splitlines()
    n_points = int(np.isfinite(table.xy).all(-1).sum())
    assert lines[0] == "frame,time,track,keypoint,x,y,score" and len(lines) == 1 + n_points
    assert not any(",left_ear," in ln for ln in lines if ln.startswith("2,"))
    back = read_track_csv(path)
    assert back.spec.name == "coco17" and back.track_ids == [0] and list(back.frames) == list(range(5))
    np.testing.assert_allclose(back.xy, table.xy, atol=1e-3)
    np.testing.assert_allclose(back.times, table.times, atol=1e-6)
    assert back.fps == pytest.approx(30.0)  # implied by the time column
    assert np.isnan(back.xy[2, 0, 3]).all()


def test_track_csv_errors(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("frame,track,keypoint,x,y\n0,0,nose,1,2\n")
    with pytest.raises(DataError, match="score"):
        read_track_csv(p)
    p.write_text("frame,track,keypoint,x,y,score\n0,0,nose,1,2,0.9\n1,0,nose,abc,2,0.9\n")
    with pytest.raises(DataError) as e:
        read_track_csv(p)
    assert f"{p}:3" in str(e.value) and "'x'" in str(e.value)
    p.write_text("frame,track,keypoint,x,y,score\n0,0,nose,1,2,0.9\n0,0,nose,1,2,0.9\n")
    with pytest.raises(DataError, match="twice"):
        read_track_csv(p)
    with pytest.raises(DataError, match="not in spec"):
        p.write_text("frame,track,keypoint,x,y,score\n0,0,snout,1,2,0.9\n")
        read_track_csv(p, spec="coco17")


def test_coco_results_two_subjects_without_track_ids(tmp_path):
    results = []
    for f in range(10):
        for cx in (100 + 5 * f, 300 - 5 * f):  # two people, each listed in changing order
            kp = np.c_[as_array(body(), COCO17) + [cx - 100, 0], np.full(17, 0.8)]
            results.append({"image_id": f, "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.9})
        if f % 2:
            results[-2], results[-1] = results[-1], results[-2]
    p = tmp_path / "res.json"
    p.write_text(json.dumps(results))
    table = read_tracks(p, fps=25)
    assert table.spec.name == "coco17" and table.num_tracks == 2 and table.num_frames == 10
    xy0, _ = table.track(table.track_ids[0])
    assert np.all(np.diff(xy0[:, 0, 0]) > 0) or np.all(np.diff(xy0[:, 0, 0]) < 0)  # one person per track
    assert table.time_of(5) == pytest.approx(0.2)


def test_rom_picks_the_track_with_the_joint_visible():
    table, _ = knee_sequence(frames=21)
    b = TrackTableBuilder(COCO17, fps=30)
    xy, sc = table.track(0)
    for f in range(21):
        b.add(f, 0, np.c_[xy[f] + [200, 0], np.full(17, 0.95)])  # a confident bystander ...
        knee_hidden = np.full(17, 0.95)
        knee_hidden[COCO17.index("left_knee")] = 0.0  # ... whose left knee is never visible
        b.add(f, 0, np.c_[xy[f] + [200, 0], knee_hidden])
        b.add(f, 5, np.c_[xy[f], np.full(17, 0.6)])  # the patient
    two = b.build()
    a = analyze_rom(two, ["left_knee"])
    assert a.track_id == 5 and a.results[0].range == pytest.approx(90, abs=1)
    with pytest.raises(DataError, match="no frame of track 0"):
        analyze_rom(two, ["left_knee"], track=0)
