"""COCO / COCO-WholeBody reader and writer: real fixtures, round trips, soft errors, detection."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from posetune.data.formats import coco, detect_format, read_dataset, simple, yolo
from posetune.data.presets import COCO17, COCO17_NAMES, COCO_WHOLEBODY133, HAND21
from posetune.errors import DataError


def _coco(shared_data: Path) -> Path:
    return shared_data / "mmpose_coco" / "coco"


def _same_file(ds_a, rec_a, ds_b, rec_b) -> bool:
    return ds_a.image_path(rec_a).resolve() == ds_b.image_path(rec_b).resolve()


def assert_same_dataset(a, b, atol: float = 1e-6) -> None:
    """Images, ids, instances, keypoints, boxes and crowd flags agree."""
    assert a.num_images == b.num_images
    assert a.num_instances == b.num_instances
    assert a.spec.keypoints == b.spec.keypoints
    for ra, rb in zip(a.images, b.images):
        assert ra.id == rb.id
        assert _same_file(a, ra, b, rb)
        assert (ra.width, ra.height) == (rb.width, rb.height)
        assert len(ra.instances) == len(rb.instances)
        for ia, ib in zip(ra.instances, rb.instances):
            assert ia.id == ib.id
            np.testing.assert_allclose(ia.keypoints, ib.keypoints, atol=atol)
            np.testing.assert_allclose(ia.bbox, ib.bbox, atol=atol)
            assert ia.iscrowd == ib.iscrowd
            assert (ia.category or a.categories[0]) == ib.category


# ----------------------------------------------------------------------------- real fixtures
def test_read_test_coco_counts_spec_and_sizes(shared_data):
    path = _coco(shared_data) / "test_coco.json"
    raw = json.loads(path.read_text())
    ds = coco.read(path)
    assert (ds.num_images, ds.num_instances, ds.spec.num_keypoints) == (4, 14, 17)
    assert ds.spec.keypoints == COCO17_NAMES and ds.spec.name == "coco17"
    assert ds.spec.skeleton[0] == (15, 13)  # [16, 14] in the 1-based file
    assert ds.problems == []
    assert ds.root == path.parent
    rec = next(r for r in ds.images if r.id == 785)
    assert (rec.file_name, rec.width, rec.height) == ("000000000785.jpg", 640, 425)
    assert ds.image_path(rec).is_file()
    # labelled points per annotation equal the file's num_keypoints, including the 0-keypoint boxes
    by_id = {inst.id: inst for _, inst in ds.iter_instances()}
    for ann in raw["annotations"]:
        assert by_id[ann["id"]].num_labelled == ann["num_keypoints"]
        np.testing.assert_allclose(by_id[ann["id"]].bbox, ann["bbox"])
    assert by_id[1202706].num_labelled == 0 and by_id[1202706].bbox is not None
    assert ds.info["info"]["description"] == "For testing COCO dataset only."
    assert read_dataset(path).format == "coco"


def test_coco_round_trip_keeps_everything(shared_data, tmp_path):
    src = _coco(shared_data) / "test_coco.json"
    ds = coco.read(src)
    out = tmp_path / "elsewhere" / "out.json"
    assert coco.write(ds, out) == [out]
    again = coco.read(out)
    assert again.problems == []
    assert_same_dataset(ds, again)
    # written file: relative image paths that resolve from its own folder, 1-based skeleton, info/licenses
    raw, written = json.loads(src.read_text()), json.loads(out.read_text())
    assert not Path(written["images"][0]["file_name"]).is_absolute()
    assert written["categories"][0]["skeleton"] == raw["categories"][0]["skeleton"]
    assert written["info"] == raw["info"] and written["licenses"] == raw["licenses"]
    assert [a["num_keypoints"] for a in written["annotations"]] == [a["num_keypoints"] for a in raw["annotations"]]
    assert [im["coco_url"] for im in written["images"]] == [im["coco_url"] for im in raw["images"]]
    assert [a["area"] for a in written["annotations"]] == pytest.approx([a["area"] for a in raw["annotations"]])


def _assert_json_equal(a, b, path="") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {set(a) ^ set(b)}"
        for k in a:
            _assert_json_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_json_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, (int, float)) and not isinstance(a, bool):
        assert b == pytest.approx(a, abs=1e-9), path
    else:
        assert a == b, path


def test_wholebody_reads_133_points_and_round_trips_field_for_field(shared_data, tmp_path):
    src = _coco(shared_data) / "test_coco_wholebody.json"
    raw = json.loads(src.read_text())
    ds = coco.read(src)
    assert ds.spec is COCO_WHOLEBODY133
    assert (ds.num_images, ds.num_instances, ds.spec.num_keypoints) == (4, 14, 133)
    inst = next(i for _, i in ds.iter_instances() if i.id == 442619)
    ann = next(a for a in raw["annotations"] if a["id"] == 442619)
    np.testing.assert_allclose(inst.keypoints[17:23].ravel(), ann["foot_kpts"])
    np.testing.assert_allclose(inst.keypoints[23:91].ravel(), ann["face_kpts"])
    np.testing.assert_allclose(inst.keypoints[112:133].ravel(), ann["righthand_kpts"])
    assert inst.extra["face_box"] == ann["face_box"] and inst.extra["lefthand_valid"] is False
    # fractional (confidence-like) visibilities of some hand points stay labelled, as in the file
    frac = next(i for _, i in ds.iter_instances() if i.id == 531914).keypoints[112:133, 2]
    assert ((frac > 0) & (frac < 1)).sum() == 21

    out = tmp_path / "wb.json"
    coco.write(ds, out)
    written = json.loads(out.read_text())
    for im in written["images"]:  # paths are relative to the new location; the rest is identical
        im["file_name"] = Path(im["file_name"]).name
    _assert_json_equal(raw, written)
    assert_same_dataset(ds, coco.read(out))


def test_merged_133_point_file_matches_split_wholebody(shared_data):
    merged = coco.read(_coco(shared_data) / "test_keypoint_partition_metric.json")
    split = coco.read(_coco(shared_data) / "test_coco_wholebody.json")
    assert merged.spec is COCO_WHOLEBODY133
    np.testing.assert_allclose(merged.keypoint_array(), split.keypoint_array())


def test_onehand10k_round_trip(shared_data, tmp_path):
    ds = coco.read(shared_data / "mmpose_onehand10k" / "onehand10k" / "test_onehand10k.json")
    assert (ds.num_images, ds.num_instances, ds.spec.num_keypoints) == (4, 4, 21)
    assert ds.spec.name == HAND21.name and ds.categories == ["hand"]
    coco.write(ds, tmp_path / "hand.json")
    assert_same_dataset(ds, coco.read(tmp_path / "hand.json"))


def test_wflw_without_names_gets_generated_names(shared_data, tmp_path):
    ds = coco.read(shared_data / "mmpose_wflw" / "wflw" / "test_wflw.json")
    assert (ds.num_images, ds.num_instances, ds.spec.num_keypoints) == (2, 4, 98)
    assert ds.spec.keypoints[0] == "kp_0" and ds.spec.keypoints[-1] == "kp_97"
    assert [p.code for p in ds.problems] == ["generated_names"] and ds.problems[0].severity == "warning"
    coco.write(ds, tmp_path / "wflw.json")
    again = coco.read(tmp_path / "wflw.json")
    assert again.problems == []  # names are now written into the category
    assert_same_dataset(ds, again)


def test_animalpose_flip_pairs_inferred_and_round_trip(shared_data, tmp_path):
    ds = coco.read(shared_data / "mmpose_animalpose" / "animalpose" / "test_animalpose.json")
    assert (ds.num_images, ds.num_instances, ds.spec.num_keypoints) == (2, 2, 20)
    idx = ds.spec.index
    pairs = set(ds.spec.flip_pairs)
    assert (idx("L_Eye"), idx("R_Eye")) in pairs and (idx("L_B_Paw"), idx("R_B_Paw")) in pairs
    assert len(pairs) == 8  # eyes, ear bases, 2 elbows, 2 knees, 2 paws (front/back)
    assert ds.spec.skeleton[0] == (0, 1)
    coco.write(ds, tmp_path / "animal.json")
    again = coco.read(tmp_path / "animal.json")
    assert_same_dataset(ds, again)
    assert set(again.spec.flip_pairs) == pairs


def test_datumaro_export_finds_images_in_sibling_images_folder(shared_data):
    base = shared_data / "formats_cvat_coco_datumaro" / "coco_dataset" / "coco_person_keypoints"
    ds = coco.read(base / "annotations" / "person_keypoints_val.json")
    assert ds.root == base / "images" / "val"
    assert ds.image_path(ds.images[0]).is_file()
    assert ds.spec.keypoints == ("kp_0", "kp_1", "kp_2") and ds.spec.skeleton == ((0, 1), (1, 2))
    assert {p.code for p in ds.problems} == {"generated_names", "skeleton_0based"}
    assert all(p.severity == "warning" for p in ds.problems)
    assert ds.categories == ["a", "b"]
    assert [i.category for i in ds.images[0].instances] == ["a", "b"]
    assert [i.iscrowd for i in ds.images[0].instances] == [False, True]
    assert ds.images[0].instances[0].extra["coco"]["attributes"] == {"x": 1, "y": "hello"}
    # the folder holding both splits reads as one dataset with groups
    both = coco.read(base)
    assert both.num_images == 2 and both.num_instances == 3
    assert sorted(r.group for r in both.images) == ["train", "val"]
    assert all(both.image_path(r).is_file() for r in both.images)
    assert detect_format(base) == "coco"


def test_image_root_argument(shared_data, tmp_path):
    base = shared_data / "formats_cvat_coco_datumaro" / "coco_dataset" / "coco_person_keypoints"
    labels = base / "annotations" / "person_keypoints_train.json"
    (tmp_path / "a.jpg").write_bytes((base / "images" / "train" / "a.jpg").read_bytes())
    ds = coco.read(labels, image_root=tmp_path)
    assert ds.root == tmp_path and "image_root_ignored" not in [p.code for p in ds.problems]
    # a wrong image_root: the images are still found, with a warning naming both folders
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    ds = coco.read(labels, image_root=elsewhere)
    assert ds.root == base / "images" / "train"
    assert [str(elsewhere) in p.message for p in ds.problems if p.code == "image_root_ignored"] == [True]
    # labels copied away from their images: a warning that says what to do
    moved = tmp_path / "x" / "y" / "moved.json"
    moved.parent.mkdir(parents=True)
    moved.write_text(labels.read_text())
    lost = coco.read(moved)
    problem = next(p for p in lost.problems if p.code == "images_not_found")
    assert problem.severity == "warning" and "image_root" in problem.hint and "'a.jpg'" in problem.message


# ----------------------------------------------------------------------------- generated edge cases
def test_edge_cases_round_trip(keypoint_dataset, tmp_path):
    ds = keypoint_dataset
    out = tmp_path / "sub" / "labels.json"
    coco.write(ds, out)
    again = coco.read(out)
    assert again.problems == []
    assert_same_dataset(ds, again)
    assert again.images[0].file_name.endswith("bild_ä_猫.png") and again.image_path(again.images[0]).is_file()
    assert again.images[1].num_instances == 12 and again.images[1].instances[11].iscrowd
    assert again.images[2].num_instances == 0
    v = again.images[0].instances[0].keypoints[:, 2]
    assert v.tolist() == [2, 0, 1, 2]
    assert "bild_ä_猫.png" in out.read_text(encoding="utf-8")  # written as UTF-8, not \\u escapes


def _write(tmp_path: Path, d) -> Path:
    p = tmp_path / "labels.json"
    p.write_text(json.dumps(d), encoding="utf-8")
    return p


def _minimal(anns, names=("a", "b"), images=None) -> dict:
    return {"images": images or [{"id": 1, "file_name": "x.jpg", "width": 100, "height": 80}],
            "annotations": anns,
            "categories": [{"id": 1, "name": "thing", "keypoints": list(names), "skeleton": [[1, 2]]}]}


def test_broken_annotations_are_skipped_with_problems(tmp_path):
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "keypoints": [1, 2, 2, 3, 4, 1], "bbox": [0, 0, 10, 10]},
        {"id": 2, "image_id": 99, "category_id": 1, "keypoints": [1, 2, 2, 3, 4, 2]},
        {"id": 3, "image_id": 1, "category_id": 1, "keypoints": [1, 2, 2, 3, 4]},
        {"id": 4, "image_id": 1, "category_id": 1, "keypoints": [float("nan"), 2, 2, 3, 4, 2]},
        {"id": 5, "image_id": 1, "category_id": 1, "keypoints": [None, None, 0, 3, 4, 2], "score": 0.75, "track_id": 7},
        {"id": 6, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "num_keypoints": 0},
    ]
    ds = coco.read(_write(tmp_path, _minimal(anns)))
    codes = {p.where.rsplit(":", 1)[1]: p.code for p in ds.problems if p.code != "images_not_found"}
    assert codes == {"annotation id 2": "unknown_image_id", "annotation id 3": "keypoints_length",
                     "annotation id 4": "nan_keypoints"}
    assert all(str(tmp_path / "labels.json") in p.where for p in ds.problems)
    assert [i.id for i in ds.images[0].instances] == [1, 5, 6]
    kept = ds.images[0].instances
    assert kept[1].keypoints.tolist() == [[0, 0, 0], [3, 4, 2]]  # NaN of an unlabelled point is harmless
    assert kept[1].score == 0.75 and kept[1].track_id == 7
    assert kept[2].num_labelled == 0 and kept[2].bbox.tolist() == [5, 5, 20, 20]  # box-only annotation kept
    out = tmp_path / "out.json"
    coco.write(ds, out)
    written = {a["id"]: a for a in json.loads(out.read_text())["annotations"]}
    assert written[5]["score"] == 0.75 and written[5]["track_id"] == 7 and written[5]["num_keypoints"] == 1
    assert written[6]["keypoints"] == [0, 0, 0, 0, 0, 0]


def test_structural_errors_raise_with_place(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [], "annotations": [\n  {"id": 1,}\n]}')
    with pytest.raises(DataError, match=r"bad\.json:2:\d+"):
        coco.read(bad)
    with pytest.raises(DataError, match="missing top-level key 'annotations'"):
        coco.read(_write(tmp_path, {"images": [], "categories": []}))
    two = _minimal([])
    two["categories"].append({"id": 2, "name": "dog", "keypoints": ["nose", "tail", "paw"]})
    with pytest.raises(DataError, match=r"'thing' \(2 keypoints\).*'dog' \(3 keypoints\)") as e:
        coco.read(_write(tmp_path, two))
    assert e.value.hint and "one file per category" in e.value.hint


def test_spec_argument_is_checked_and_reorders(tmp_path):
    path = _write(tmp_path, _minimal([{"id": 1, "image_id": 1, "category_id": 1, "keypoints": [1, 2, 2, 3, 4, 1]}]))
    from posetune.data.spec import KeypointSpec

    swapped = KeypointSpec.from_names(["b", "a"])
    ds = coco.read(path, spec=swapped)
    assert ds.spec is swapped
    assert ds.images[0].instances[0].keypoints.tolist() == [[3, 4, 1], [1, 2, 2]]
    with pytest.raises(DataError) as e:
        coco.read(path, spec=COCO17)
    assert "labels.json" in str(e.value) and "'a'" in str(e.value) and "'nose'" in str(e.value)


def test_missing_sizes_come_from_image_header(tmp_path):
    from posetune.data.images import save_image

    save_image(tmp_path / "ok.png", np.zeros((30, 50, 3), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    images = [{"id": 1, "file_name": "ok.png"}, {"id": 2, "file_name": "broken.png"}]
    ds = coco.read(_write(tmp_path, _minimal([], images=images)))
    assert (ds.images[0].width, ds.images[0].height) == (50, 30)
    assert ds.images[1].width is None
    assert [p.code for p in ds.problems] == ["image_unreadable"] and "broken.png" in ds.problems[0].where


def test_dict_helpers_are_pure_inverse(keypoint_dataset):
    d = coco.dataset_to_coco_dict(keypoint_dataset)
    assert json.loads(json.dumps(d)) == d
    back = coco.coco_dict_to_dataset(d, root=keypoint_dataset.root)
    assert_same_dataset(keypoint_dataset, back)
    merged = coco.dataset_to_coco_dict(coco.coco_dict_to_dataset(d), split_wholebody=False)
    assert len(merged["annotations"][0]["keypoints"]) == 12


def test_reading_5000_instances_is_fast(tmp_path):
    rng = np.random.default_rng(0)
    images = [{"id": i + 1, "file_name": f"img_{i}.jpg", "width": 640, "height": 480} for i in range(1000)]
    kps = np.stack([rng.uniform(0, 640, (5000, 17)), rng.uniform(0, 480, (5000, 17)),
                    rng.integers(0, 3, (5000, 17))], axis=-1).round(2).reshape(5000, -1).tolist()
    anns = [{"id": j + 1, "image_id": j % 1000 + 1, "category_id": 1, "keypoints": kps[j],
             "bbox": [1, 2, 300, 400], "area": 120000, "iscrowd": 0} for j in range(5000)]
    path = _write(tmp_path, {"images": images, "annotations": anns,
                             "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17_NAMES)}]})
    t0 = time.perf_counter()
    ds = coco.read(path)
    elapsed = time.perf_counter() - t0
    assert ds.num_instances == 5000
    # the images do not exist: a header read per image would have added 1000 problems
    assert [p.code for p in ds.problems] == ["images_not_found"]
    assert elapsed < 2.0, f"reading 5000 instances took {elapsed:.2f} s"


# ----------------------------------------------------------------------------- detection
def test_detection_tells_coco_from_others(shared_data, tmp_path, keypoint_dataset):
    coco_file = _coco(shared_data) / "test_coco.json"
    assert detect_format(coco_file) == "coco"
    assert coco.detect(shared_data / "mmpose_wflw" / "wflw" / "test_wflw.json")
    simple_file = simple.write(keypoint_dataset, tmp_path / "s.json")[0]
    yolo_dir = tmp_path / "y"
    yolo.write(keypoint_dataset, yolo_dir)
    assert not coco.detect(simple_file) and not coco.detect(yolo_dir) and not coco.detect(yolo_dir / "data.yaml")
    assert not simple.detect(coco_file) and not yolo.detect(coco_file)
    # a detections list (bbox + score, no keypoints, no image names) is neither COCO labels nor simple
    det = _coco(shared_data) / "test_coco_det_AP_H_56.json"
    assert not coco.detect(det) and not simple.detect(det)
