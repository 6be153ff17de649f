"""CVAT for images 1.1 XML reader/writer: Datumaro's task/project exports, skeletons, round trips."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from posetune.data.formats import cvat, dlc, labelme
from posetune.data.images import save_image
from posetune.data.spec import KeypointSpec
from posetune.errors import DataError

from label_checks import assert_same_labels as _assert_same_labels


def _cvat_dir(shared_data: Path) -> Path:
    return shared_data / "formats_cvat_coco_datumaro" / "cvat_dataset" / "for_images"


assert_same_labels = partial(_assert_same_labels, groups=True, boxes=True)


SKELETON_SVG = (
    '<line x1="1" y1="1" x2="2" y2="2" stroke="black" data-type="edge" data-node-from="1" stroke-width="0.5" '
    'data-node-to="2"></line><line x1="1" y1="1" x2="3" y2="3" data-type="edge" data-node-from="1" '
    'data-node-to="3"></line>'
    '<circle r="1.5" cx="1" cy="1" data-type="element node" data-element-id="1" data-node-id="1" '
    'data-label-name="nose"></circle>'
    '<circle r="1.5" cx="2" cy="2" data-type="element node" data-element-id="2" data-node-id="2" '
    'data-label-id="12"></circle>'  # no label name: found through the sub-label's <id>
    '<circle r="1.5" cx="3" cy="3" data-type="element node" data-element-id="3" data-node-id="3"></circle>'
)  # node 3: neither name nor id -> the 3rd sub-label


def _skeleton_xml(path: Path) -> Path:
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    labels = ET.SubElement(ET.SubElement(ET.SubElement(root, "meta"), "job"), "labels")

    def label(name, kind, parent=None, ident=None, svg=None):
        lab = ET.SubElement(labels, "label")
        if ident:
            ET.SubElement(lab, "id").text = ident
        ET.SubElement(lab, "name").text = name
        ET.SubElement(lab, "type").text = kind
        ET.SubElement(lab, "attributes")
        if svg:
            ET.SubElement(lab, "svg").text = svg
        if parent:
            ET.SubElement(lab, "parent").text = parent

    label("person", "skeleton", svg=SKELETON_SVG)
    label("nose", "points", parent="person")
    label("left_eye", "points", parent="person", ident="12")
    label("right_eye", "points", parent="person")
    label("person box", "rectangle")
    img = ET.SubElement(root, "image", id="0", name="sub/frame_000.png", width="64", height="48")
    ET.SubElement(img, "box", label="person box", occluded="0", xtl="1", ytl="2", xbr="30", ybr="40", group_id="5")
    sk = ET.SubElement(img, "skeleton", label="person", z_order="0", group_id="5")
    ET.SubElement(sk, "points", label="nose", occluded="0", outside="0", points="10.5,12.25")
    ET.SubElement(sk, "points", label="left_eye", occluded="1", outside="0", points="8,9")
    ET.SubElement(sk, "points", label="right_eye", occluded="0", outside="1", points="3,4")
    ET.SubElement(sk, "attribute", name="track_id").text = "mouse1"
    sk2 = ET.SubElement(img, "skeleton", label="person", z_order="0")
    ET.SubElement(sk2, "points", label="nose", occluded="0", outside="0", points="50,20")
    ET.SubElement(sk2, "points", label="left_eye", occluded="0", outside="0", points="52,22")
    ET.SubElement(sk2, "points", label="right_eye", occluded="0", outside="0", points="48,22")
    ET.SubElement(img, "box", label="person box", occluded="0", xtl="40", ytl="10", xbr="60", ybr="30")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    save_image(path.parent / "sub" / "frame_000.png", np.zeros((48, 64, 3), np.uint8))
    return path


def test_task_export_fixture_is_read_exactly(shared_data):
    ds = cvat.read(_cvat_dir(shared_data) / "export_task" / "train.xml")
    # the multi-point <points label="label2" points="1,2;3,4;5,6"> has no names: kp_0..kp_2
    assert ds.spec.keypoints == ("kp_0", "kp_1", "kp_2") and ds.spec.skeleton == ()
    assert [(r.file_name, r.width, r.height) for r in ds.images] == [("images/img0.jpg", 8, 8),
                                                                     ("images/img1.jpg", 10, 10)]
    assert all(ds.image_path(r).is_file() for r in ds.images)
    (box_only,) = ds.images[0].instances
    assert box_only.bbox.tolist() == [0, 2, 4, 2] and box_only.category == "label1" and box_only.num_labelled == 0
    assert box_only.extra["attributes"] == {"a1": "true", "a2": "v3", "a3": "0003", "a4": "2.4"}
    (points,) = ds.images[1].instances
    assert points.keypoints.tolist() == [[1, 2, 2], [3, 4, 2], [5, 6, 2]]
    assert points.category == "label2" and points.bbox is None
    assert sorted(p.message for p in ds.problems) == [
        "1 <polygon> shape(s) ignored (posetune reads skeleton, points and box)",
        "1 <polyline> shape(s) ignored (posetune reads skeleton, points and box)"]


def test_project_export_fixture_reads_subsets(shared_data):
    ds = cvat.read(_cvat_dir(shared_data) / "export_project" / "annotations.xml")
    assert len(ds.images) == 6 and ds.num_instances == 6
    assert [r.group for r in ds.images] == ["Test", "Test", "Train", "Train", "Validation", "Validation"]
    assert [r.extra["subset"] for r in ds.images] == [r.group for r in ds.images]
    assert [r.file_name for r in ds.images] == [f"images/{s}/img{i}.jpg" for s in ("Test", "Train", "Validation")
                                                for i in (0, 1)]
    assert all(ds.image_path(r).is_file() for r in ds.images)
    for r in ds.images[1::2]:
        assert (r.width, r.height) == (10, 10)
        assert r.instances[0].keypoints.tolist() == [[1, 2, 2], [3, 4, 2], [5, 6, 2]]
    assert [p.message.split(" <")[0] for p in ds.problems] == ["3", "3"]  # 3 polylines, 3 polygons


def test_fixture_round_trips(shared_data, tmp_path):
    for src in (_cvat_dir(shared_data) / "export_task" / "train.xml",
                _cvat_dir(shared_data) / "export_project" / "annotations.xml"):
        ds = cvat.read(src)
        out = tmp_path / src.parent.name / "out.xml"
        assert cvat.write(ds, out) == [out]
        again = cvat.read(out)
        assert again.spec.keypoints == ds.spec.keypoints
        assert_same_labels(ds, again)
        assert [i.category for _, i in again.iter_instances()] == [i.category for _, i in ds.iter_instances()]
        assert [p for p in again.problems if p.code != "image_missing"] == []


def test_skeleton_export_is_read(tmp_path):
    ds = cvat.read(_skeleton_xml(tmp_path / "annotations.xml"))
    spec = ds.spec
    assert spec.keypoints == ("nose", "left_eye", "right_eye")
    assert spec.skeleton == ((0, 1), (0, 2)) and spec.flip_pairs == ((1, 2),)
    rec = ds.images[0]
    assert rec.file_name == "sub/frame_000.png" and (rec.width, rec.height) == (64, 48)
    a, b = rec.instances
    assert a.keypoints.tolist() == [[10.5, 12.25, 2], [8, 9, 1], [3, 4, 0]]  # occluded -> 1, outside -> 0
    assert a.bbox.tolist() == [1, 2, 29, 38] and a.track_id == "mouse1" and a.category == "person"
    assert b.bbox.tolist() == [40, 10, 20, 20] and b.track_id is None  # matched by containment
    assert ds.problems == []


def test_single_points_grouped_by_group_id(tmp_path):
    xml = """<annotations><version>1.1</version><meta><task><labels>
      <label><name>nose</name><type>points</type></label><label><name>tail</name><type>points</type></label>
      </labels></task></meta>
      <image id="0" name="a.png" width="20" height="10">
        <points label="nose" points="1,2" occluded="0" group_id="1"/>
        <points label="nose" points="5,6" occluded="1" group_id="2"/>
        <points label="tail" points="3,4" occluded="0" group_id="1"/>
        <points label="tail" points="7,8" outside="1" group_id="2"/>
        <box label="animal" xtl="0" ytl="0" xbr="4" ybr="5" group_id="1"/>
      </image></annotations>"""
    (tmp_path / "a.xml").write_text(xml, encoding="utf-8")
    ds = cvat.read(tmp_path / "a.xml")
    assert ds.spec.keypoints == ("nose", "tail")
    a, b = ds.images[0].instances
    assert a.keypoints.tolist() == [[1, 2, 2], [3, 4, 2]] and a.bbox.tolist() == [0, 0, 4, 5]
    assert b.keypoints.tolist() == [[5, 6, 1], [7, 8, 0]] and b.bbox is None
    assert [p.code for p in ds.problems] == ["image_missing"]


def test_multi_point_shape_named_by_label_attribute(tmp_path):
    xml = """<annotations><version>1.1</version><meta><task><labels>
      <label><name>hand</name><type>points</type><attributes><attribute><name>keypoints</name>
        <input_type>select</input_type><values>wrist
thumb_tip
index_tip</values></attribute></attributes></label></labels></task></meta>
      <image id="0" name="a.png" width="20" height="10">
        <points label="hand" points="1,2;3,4;5,6" occluded="1"/>
      </image></annotations>"""
    (tmp_path / "a.xml").write_text(xml, encoding="utf-8")
    ds = cvat.read(tmp_path / "a.xml")
    assert ds.spec.keypoints == ("wrist", "thumb_tip", "index_tip")
    (inst,) = ds.images[0].instances
    assert inst.category == "hand" and inst.keypoints.tolist() == [[1, 2, 1], [3, 4, 1], [5, 6, 1]]


def test_generated_round_trip(keypoint_dataset, tmp_path):
    ds = keypoint_dataset
    ds.images[0].instances[1].track_id = "cat_2"
    path = cvat.write(ds, tmp_path / "out")[0]
    assert path == tmp_path / "out" / "annotations.xml"
    again = cvat.read(path)
    assert again.spec.keypoints == ds.spec.keypoints
    assert again.spec.skeleton == ds.spec.skeleton and again.spec.flip_pairs == ds.spec.flip_pairs
    assert_same_labels(ds, again)
    first = again.images[0]
    assert first.file_name.endswith("bild_ä_猫.png") and first.instances[0].keypoints[:, 2].tolist() == [2, 0, 1, 2]
    assert [i.track_id for i in first.instances] == [None, "cat_2"]
    assert len(again.images[1].instances) == 12 and again.images[2].instances == []
    assert again.problems == []
    # writing again replaces the file atomically and leaves no temporary files behind
    cvat.write(again, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["annotations.xml"]


def test_spec_given(shared_data, tmp_path):
    spec = KeypointSpec.from_names(["a", "b", "c"])
    ds = cvat.read(_cvat_dir(shared_data) / "export_task" / "train.xml", spec=spec)
    assert ds.spec is spec and ds.images[1].instances[0].keypoints.tolist() == [[1, 2, 2], [3, 4, 2], [5, 6, 2]]
    path = _skeleton_xml(tmp_path / "s.xml")
    ds = cvat.read(path, spec=KeypointSpec.from_names(["nose", "left_eye"]))
    unknown = [p for p in ds.problems if p.code == "unknown_keypoint"]
    assert len(unknown) == 2 and all("right_eye" in p.message and str(path) in p.where for p in unknown)
    with pytest.raises(DataError, match="no keypoint label matches spec"):
        cvat.read(path, spec=KeypointSpec.from_names(["x", "y"]))


@pytest.mark.parametrize("text, message", [
    ("<annotations><version>1.1</version>\n<image name='a.png'>\n<points label='x' points='1,2'></image>",
     "malformed XML"),
    ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "boom">]><annotations>&e;</annotations>', "refused"),
    ("<annotation><filename>a.jpg</filename></annotation>", "not a CVAT XML file"),
    ("<annotations><version>1.1</version><track id='0' label='a'/></annotations>", "CVAT for video"),
])
def test_broken_xml_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.xml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        cvat.read(path)
    assert str(path) in str(err.value)
    if message == "malformed XML":
        assert f"{path}:3:" in str(err.value)


def test_bad_shape_and_empty_image_are_problems(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    xml = """<annotations><version>1.1</version>
      <image id="0" name="empty.png"><points label="nose" points="1,2"/><points label="tail" points="x,y"/></image>
      </annotations>"""
    (tmp_path / "a.xml").write_text(xml, encoding="utf-8")
    ds = cvat.read(tmp_path / "a.xml")
    assert ds.images[0].instances[0].keypoints.tolist() == [[1, 2, 2]]
    codes = {p.code: p for p in ds.problems}
    assert set(codes) == {"bad_shape", "image_unreadable"} and "0 bytes" in codes["image_unreadable"].message


def test_detection(shared_data):
    for p in (_cvat_dir(shared_data) / "export_task" / "train.xml", _cvat_dir(shared_data) / "export_task",
              _cvat_dir(shared_data) / "export_project" / "annotations.xml"):
        assert cvat.detect(p)
        assert not labelme.detect(p) and not dlc.detect(p)
    coco = shared_data / "formats_cvat_coco_datumaro" / "coco_dataset" / "coco_person_keypoints" / "annotations"
    project = shared_data / "dlc_openfield" / "openfield-Pranav-2018-10-30"
    for other in (coco / "person_keypoints_train.json", coco, project, project / "labeled-data" / "m4s1",
                  shared_data / "formats_labelme" / "examples" / "primitives" / "primitives.json"):
        assert not cvat.detect(other), other
