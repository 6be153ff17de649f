"""LabelMe json reader/writer: the upstream fixture, round trips, grouping, visibility, broken input."""

from __future__ import annotations

import base64
import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from posetune.data.formats import cvat, dlc, labelme
from posetune.data.images import save_image
from posetune.data.spec import KeypointSpec
from posetune.errors import DataError

from label_checks import assert_same_labels as _assert_same_labels


def _primitives(shared_data: Path) -> Path:
    return shared_data / "formats_labelme" / "examples" / "primitives" / "primitives.json"


def _shape(label, points, kind="point", group=None, flags=None, description=None):
    return {"label": label, "points": points, "group_id": group, "shape_type": kind,
            "flags": flags or {}, "description": description}


def _labelme_file(path: Path, shapes: list, image: str = "img.png", w: int | None = 40, h: int | None = 30,
                  image_data: str | None = None) -> Path:
    data = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": image, "imageData": image_data,
            "imageHeight": h, "imageWidth": w}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _image(path: Path, w: int = 40, h: int = 30) -> Path:
    save_image(path, np.full((h, w, 3), 128, np.uint8))
    return path


assert_same_labels = partial(_assert_same_labels, boxes=True)


def test_primitives_fixture_is_read_exactly(shared_data):
    ds = labelme.read(_primitives(shared_data))
    assert ds.spec.keypoints == ("point",)
    assert len(ds.images) == 1
    rec = ds.images[0]
    assert (rec.file_name, rec.width, rec.height, rec.group) == ("primitives.jpg", 560, 450, None)
    assert ds.image_path(rec).is_file()
    # two ungrouped rectangles that contain no point -> box-only instances; the point -> its own instance
    boxes = [inst.bbox.tolist() for inst in rec.instances if inst.bbox is not None]
    assert boxes == [[32, 35, 100, 100], [391, 33, 151, 102]]
    assert [inst.category for inst in rec.instances] == ["rectangle", "rectangle", None]
    point = rec.instances[2]
    assert point.keypoints.tolist() == [[345, 174, 2]] and point.bbox is None
    assert all(inst.num_labelled == 0 for inst in rec.instances[:2])
    ignored = {p.message.split("'")[1] for p in ds.problems if p.code == "ignored_shape"}
    assert ignored == {"circle", "polygon", "line", "linestrip", "mask"}
    assert all(p.severity == "warning" for p in ds.problems) and len(ds.problems) == 5
    # the folder reads the same
    assert labelme.read(_primitives(shared_data).parent).images[0].instances[2].keypoints.tolist() == [[345, 174, 2]]


def test_primitives_round_trip(shared_data, tmp_path):
    ds = labelme.read(_primitives(shared_data))
    files = labelme.write(ds, tmp_path / "out")
    assert tmp_path / "out" / "primitives.json" in files and tmp_path / "out" / labelme.SPEC_SIDECAR in files
    again = labelme.read(tmp_path / "out")
    assert again.spec == ds.spec
    assert_same_labels(ds, again)
    assert [i.category for i in again.images[0].instances] == ["rectangle", "rectangle", None]
    written = json.loads((tmp_path / "out" / "primitives.json").read_text())
    assert written["imageData"] is None and (written["imageWidth"], written["imageHeight"]) == (560, 450)
    assert (tmp_path / "out" / written["imagePath"]).resolve() == _primitives(shared_data).with_suffix(".jpg").resolve()


def test_generated_round_trip_keeps_occlusion_missing_and_many_instances(keypoint_dataset, tmp_path):
    labelme.write(keypoint_dataset, tmp_path / "lm")
    assert (tmp_path / "lm" / "bild_ä_猫.json").is_file()
    again = labelme.read(tmp_path / "lm")
    # the sidecar keeps what LabelMe cannot hold: skeleton, flip pairs, sigmas
    assert again.spec == keypoint_dataset.spec and again.spec.skeleton == ((0, 1), (0, 2), (0, 3))
    assert again.problems == []
    # images outside the label folder are referenced by absolute path
    assert sorted(r.file_name for r in again.images) == sorted(
        (tmp_path / "imgs" / r.file_name).as_posix() for r in keypoint_dataset.images)
    reordered = keypoint_dataset.with_images(sorted(keypoint_dataset.images, key=lambda r: r.file_name))
    assert_same_labels(reordered, again)
    first = next(r for r in again.images if r.file_name.endswith("bild_ä_猫.png"))
    assert first.instances[0].keypoints[:, 2].tolist() == [2, 0, 1, 2]
    assert len(next(r for r in again.images if r.file_name.endswith("crowd.png")).instances) == 12


def test_group_ids_flags_description_and_ambiguity(tmp_path):
    _image(tmp_path / "img.png")
    shapes = [
        _shape("nose", [[1, 2]], group=1),
        _shape("tail", [[3, 4]], group=1, flags={"occluded": True}),
        _shape("nose", [[10, 20]], group=2, description="nose is occluded by a paw"),
        _shape("animal", [[0, 0], [5, 6]], kind="rectangle", group=1),
        _shape("nose", [[30, 5]]),
        _shape("nose", [[31, 6]]),  # repeats without a group: a second ungrouped instance
        _shape("nose", [[7, 7]], group=2),  # duplicate in group 2: first one kept
    ]
    ds = labelme.read(_labelme_file(tmp_path / "a.json", shapes))
    assert ds.spec.keypoints == ("nose", "tail")
    insts = ds.images[0].instances
    assert len(insts) == 4
    assert insts[0].keypoints.tolist() == [[1, 2, 2], [3, 4, 1]]
    assert insts[0].bbox.tolist() == [0, 0, 5, 6] and insts[0].category == "animal"
    assert insts[1].keypoints.tolist() == [[10, 20, 1], [0, 0, 0]]
    assert insts[2].keypoints[0].tolist() == [30, 5, 2] and insts[3].keypoints[0].tolist() == [31, 6, 2]
    codes = sorted(p.code for p in ds.problems)
    assert codes == ["ambiguous_instances", "duplicate_keypoint"]
    assert all("a.json" in p.where for p in ds.problems)


def test_ungrouped_rectangle_attaches_by_containment(tmp_path):
    _image(tmp_path / "img.png")
    shapes = [_shape("nose", [[2, 2]]), _shape("person", [[1, 1], [9, 9]], kind="rectangle"),
              _shape("other", [[20, 20], [30, 25]], kind="rectangle")]
    insts = labelme.read(_labelme_file(tmp_path / "a.json", shapes)).images[0].instances
    assert len(insts) == 2
    assert insts[0].bbox.tolist() == [1, 1, 8, 8] and insts[0].keypoints.tolist() == [[2, 2, 2]]
    assert insts[1].bbox.tolist() == [20, 20, 10, 5] and insts[1].num_labelled == 0


def test_stale_windows_image_path_falls_back_to_the_json_folder(tmp_path):
    _image(tmp_path / "img.png")
    path = _labelme_file(tmp_path / "a.json", [_shape("nose", [[1, 1]])], image="C:\\Users\\me\\img.png")
    ds = labelme.read(path)
    assert ds.images[0].file_name == "img.png" and ds.problems == []


def test_keypoint_order_is_first_appearance_across_sorted_files(tmp_path):
    _image(tmp_path / "img.png")
    _labelme_file(tmp_path / "b.json", [_shape("tail", [[1, 1]]), _shape("ear", [[2, 2]])])
    _labelme_file(tmp_path / "a.json", [_shape("nose", [[1, 1]]), _shape("tail", [[3, 3]])])
    ds = labelme.read(tmp_path)
    assert ds.spec.keypoints == ("nose", "tail", "ear")
    assert [r.extra["label_file"] for r in ds.images] == ["a.json", "b.json"]


def test_embedded_image_data_is_decoded_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSETUNE_CACHE", str(tmp_path / "cache"))
    png = _image(tmp_path / "src.png", 24, 16).read_bytes()
    path = _labelme_file(tmp_path / "labels" / "a.json", [_shape("nose", [[3, 4]])], image="gone.png",
                         w=None, h=None, image_data=base64.b64encode(png).decode())
    ds = labelme.read(path)
    rec = ds.images[0]
    cached = ds.image_path(rec)
    assert cached.parent == tmp_path / "cache" / "labelme" and cached.suffix == ".png"
    assert cached.read_bytes() == png and (rec.width, rec.height) == (24, 16)
    assert ds.problems == []


def test_spec_given_unknown_label_is_a_problem_and_no_match_is_an_error(tmp_path):
    _image(tmp_path / "img.png")
    path = _labelme_file(tmp_path / "a.json", [_shape("nose", [[1, 1]]), _shape("paw", [[2, 2]])])
    spec = KeypointSpec.from_names(["nose", "tail"])
    ds = labelme.read(path, spec=spec)
    assert ds.spec is spec and ds.images[0].instances[0].keypoints.tolist() == [[1, 1, 2], [0, 0, 0]]
    (problem,) = ds.problems
    assert problem.code == "unknown_keypoint" and problem.where == f"{path}:shape 1" and "paw" in problem.message
    with pytest.raises(DataError, match="no point label matches spec"):
        labelme.read(path, spec=KeypointSpec.from_names(["a", "b"]))


def test_bad_shape_is_skipped_and_reading_goes_on(tmp_path):
    _image(tmp_path / "img.png")
    path = _labelme_file(tmp_path / "a.json", [_shape("nose", [["x", 1]]), _shape("tail", [[5, 6]])])
    ds = labelme.read(path)
    assert ds.spec.keypoints == ("tail",)
    assert [p.code for p in ds.problems] == ["bad_shape"] and ds.problems[0].where.endswith("a.json:shape 0")


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"shapes": [\n  {"label": "nose",,}\n]}', encoding="utf-8")
    with pytest.raises(DataError) as err:
        labelme.read(path)
    assert f"{path}:2:" in str(err.value) and "malformed JSON" in str(err.value)


def test_empty_and_missing_images_are_problems(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    _labelme_file(tmp_path / "a.json", [_shape("nose", [[1, 1]])], image="empty.png", w=None, h=None)
    _labelme_file(tmp_path / "b.json", [_shape("nose", [[1, 1]])], image="missing.png")
    ds = labelme.read(tmp_path)
    assert len(ds.images) == 2
    by_code = {p.code: p for p in ds.problems}
    assert "0 bytes" in by_code["image_unreadable"].message and by_code["image_unreadable"].where.endswith("a.json")
    assert by_code["image_missing"].severity == "warning" and ds.images[1].width == 40


def test_stale_sidecar_is_ignored_with_a_warning(tmp_path):
    _image(tmp_path / "img.png")
    _labelme_file(tmp_path / "a.json", [_shape("nose", [[1, 1]]), _shape("new_point", [[2, 2]])])
    (tmp_path / labelme.SPEC_SIDECAR).write_text(json.dumps(KeypointSpec.from_names(["nose"]).to_dict()))
    ds = labelme.read(tmp_path)
    assert ds.spec.keypoints == ("nose", "new_point") and [p.code for p in ds.problems] == ["stale_spec"]


def test_detection(shared_data, tmp_path):
    fixture = _primitives(shared_data)
    assert labelme.detect(fixture) and labelme.detect(fixture.parent)
    coco = shared_data / "formats_cvat_coco_datumaro" / "coco_dataset" / "coco_person_keypoints" / "annotations"
    cvat_xml = shared_data / "formats_cvat_coco_datumaro" / "cvat_dataset" / "for_images" / "export_task"
    project = shared_data / "dlc_openfield" / "openfield-Pranav-2018-10-30"
    for other in (coco / "person_keypoints_train.json", coco, cvat_xml / "train.xml", cvat_xml, project,
                  project / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv"):
        assert not labelme.detect(other), other
    assert not cvat.detect(fixture) and not dlc.detect(fixture) and not dlc.detect(fixture.parent)
    (tmp_path / "x.json").write_text("{not json")
    assert not labelme.detect(tmp_path / "x.json")  # detection never raises
