"""`check_dataset`: every kind of problem found with its place; clean data not flagged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posetune.data.check import check_dataset, find_outliers, procrustes_align
from posetune.data.formats import read_dataset
from posetune.data.images import save_image
from posetune.data.records import ImageRecord, Instance, Problem
from posetune.data.synthetic import make_synthetic_dataset, synthetic_dataset

N = 20


@pytest.fixture()
def broken(tmp_path):
    """A 20-image synthetic dataset on disk with one of each problem planted at a known place."""
    ds, images = synthetic_dataset(N, seed=2)
    ds.root = tmp_path
    for rec, img in zip(ds.images, images):
        save_image(tmp_path / rec.file_name, img)
    im = ds.images
    (tmp_path / im[0].file_name).write_bytes(b"")  # 0-byte image
    (tmp_path / im[1].file_name).unlink()  # missing image
    im[2].instances[0].keypoints[9, :2] = (300.0, 40.0)  # left_wrist outside the 256x256 image
    im[4].id = im[3].id  # duplicate image id
    im[5].instances[0].id = im[6].instances[0].id  # duplicate instance id
    im[7].instances[0] = Instance(im[7].instances[0].keypoints[:15].copy(), bbox=im[7].instances[0].bbox, id=900)
    im[8].instances.append(Instance(np.zeros((17, 3)), id=901))  # empty instance
    inst = im[9].instances[0]
    inst.bbox = np.array([*inst.keypoints[0, :2] - 10, 20, 20])  # box around the nose only
    swapped = im[10].instances[0]
    swapped.keypoints = swapped.keypoints[ds.spec.flip_index].copy()  # left/right labels swapped
    out = im[11].instances[0]
    out.keypoints[0, :2] = out.keypoints[16, :2] + (3.0, -2.0)  # nose clicked on the right ankle
    im[12].width = 300  # labels disagree with the 256x256 file
    dup = ImageRecord(im[13].file_name, 256, 256, [], id=999)  # the same image listed twice
    ds.images.append(dup)
    ds.problems.append(Problem("bad_annotation", "annotation 77 has no keypoints list; skipped", "labels.json:77"))
    return ds


def _find(report, code):
    return [p for p in report.problems if p.code == code]


def test_each_planted_problem_is_found_at_its_place(broken):
    report = check_dataset(broken)
    im = broken.images
    codes = report.codes()

    def one(code, *needles):
        hits = [p for p in _find(report, code) if all(n in p.where for n in needles)]
        assert hits, f"{code} not found at {needles}: {[str(p) for p in report.problems]}"
        return hits[0]

    assert one("empty_image", im[0].file_name).severity == "error"
    assert one("missing_image", im[1].file_name).severity == "error"
    p = one("keypoint_outside_image", im[2].file_name, "left_wrist")
    assert "300.0" in p.message
    p = one("duplicate_image_id", f"image id {im[3].id}")
    assert im[3].file_name in p.message and im[4].file_name in p.message
    p = one("duplicate_instance_id", f"instance id {im[6].instances[0].id}")
    assert im[5].file_name in p.message and im[6].file_name in p.message
    assert "15 keypoints" in one("keypoint_count", im[7].file_name, "instance id 900").message
    assert one("empty_instance", im[8].file_name, "instance id 901").severity == "warning"
    p = one("keypoint_outside_box", im[9].file_name)
    assert "left_ankle" in p.message or "more" in p.message
    p = one("swapped_left_right", im[10].file_name, f"instance id {im[10].instances[0].id}")
    assert p.severity == "warning"
    one("outlier_keypoint", im[11].file_name, "'nose'")
    assert "300x256" in one("size_mismatch", im[12].file_name).message
    one("duplicate_file_name", im[13].file_name)
    assert _find(report, "bad_annotation"), "reading problems must be part of the report"
    # nothing flagged in the untouched images 14..19 (besides the listed-twice image 13)
    for rec in im[14:N]:
        assert not [p for p in report.problems if rec.file_name in p.where], rec.file_name
    # exactly one swap and the outlier on image 11 only
    assert len(_find(report, "swapped_left_right")) == 1
    assert {p.where.split(" ")[0] for p in _find(report, "outlier_keypoint")} <= {im[2].file_name, im[11].file_name}
    assert not report.ok and report.errors and report.warnings
    assert codes >= {"missing_image", "empty_image", "keypoint_outside_image", "duplicate_image_id",
                     "duplicate_instance_id", "keypoint_count", "empty_instance", "keypoint_outside_box",
                     "swapped_left_right", "outlier_keypoint", "size_mismatch", "duplicate_file_name"}
    d = report.to_dict()
    json.dumps(d)
    assert d["counts"]["error"] == len(report.errors) and d["summary"]["images"] == N + 1
    assert d["summary"]["keypoints"]["nose"]["labelled"] == N - 1  # the 15-point instance is not counted


def test_clean_synthetic_datasets_are_not_flagged(tmp_path):
    for spec, seed in (("coco17", 0), ("mouse4", 0)):
        path = make_synthetic_dataset(tmp_path / spec, n_images=24, spec=spec, seed=seed)
        report = check_dataset(read_dataset(path))
        assert report.problems == [], [str(p) for p in report.problems]
        assert report.ok and report.num_images == 24
        assert report.labelled_per_keypoint == [24] * len(report.keypoint_names)
    # two people per image, in memory, no image files to open
    ds, _ = synthetic_dataset(24, seed=1, people_per_image=2)
    assert check_dataset(ds, check_images=False).problems == []


def test_swap_rule_is_rotation_invariant_and_needs_a_majority():
    ds, _ = synthetic_dataset(16, spec="mouse4", seed=4)  # mice point in every direction
    target = ds.images[5].instances[0]
    target.keypoints = target.keypoints[[0, 2, 1, 3]].copy()  # ears swapped
    found = [p for p in check_dataset(ds, check_images=False).problems if p.code == "swapped_left_right"]
    assert [p.where for p in found] == [f"{ds.images[5].file_name} (image id 6), instance id {target.id}"]
    # half the instances mirrored: no majority, so no evidence for any swap
    ds, _ = synthetic_dataset(16, seed=4)
    for rec in ds.images[::2]:
        rec.instances[0].keypoints = rec.instances[0].keypoints[ds.spec.flip_index].copy()
    assert not _find(check_dataset(ds, check_images=False), "swapped_left_right")


def test_statistics_need_enough_instances():
    ds, _ = synthetic_dataset(7, seed=2)
    inst = ds.images[3].instances[0]
    inst.keypoints[0, :2] = inst.keypoints[16, :2]
    assert not _find(check_dataset(ds, check_images=False), "outlier_keypoint")  # 7 < 8 instances
    ds, _ = synthetic_dataset(8, seed=2)
    inst = ds.images[3].instances[0]
    inst.keypoints[0, :2] = inst.keypoints[16, :2]
    found = _find(check_dataset(ds, check_images=False), "outlier_keypoint")
    assert any("'nose'" in p.where and ds.images[3].file_name in p.where for p in found)
    # a stricter limit finds at least as much, a looser one less
    loose = _find(check_dataset(ds, check_images=False, outlier_sigma=50), "outlier_keypoint")
    assert len(loose) <= len(found)


def test_procrustes_recovers_similarity_transforms():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 2))
    shapes, mask = [], np.ones((10, 6), bool)
    for i in range(10):
        a, s, t = rng.uniform(-3, 3), rng.uniform(0.5, 4), rng.normal(size=2) * 50
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        shapes.append(base @ rot.T * s + t)
    mask[3, 2] = False  # a missing point does not break the fit
    aligned, mean = procrustes_align(np.stack(shapes), mask)
    assert np.abs(aligned[mask] - np.broadcast_to(mean, aligned.shape)[mask]).max() < 1e-6
    assert np.isclose(np.sqrt((mean ** 2).sum(axis=1).mean()), 1.0)
    flags, _ = find_outliers(np.stack(shapes), mask)
    assert not flags.any()


def test_real_dlc_labels_show_the_known_swapped_frame(shared_data):
    """The DeepLabCut open-field example has one frame (img0102) with the ear labels swapped."""
    ds = read_dataset(shared_data / "dlc_openfield" / "openfield-Pranav-2018-10-30")
    report = check_dataset(ds)
    assert report.ok
    swaps = _find(report, "swapped_left_right")
    assert [p.where.split(" ")[0] for p in swaps] == ["labeled-data/m4s1/img0102.png"]
    lx = {r.file_name: r.instances[0].keypoints for r in ds.images}
    kp = lx["labeled-data/m4s1/img0102.png"]
    heading, to_left = kp[0, :2] - kp[3, :2], kp[1, :2] - kp[2, :2]
    assert heading[0] * to_left[1] - heading[1] * to_left[0] > 0  # mirrored vs. every other frame
