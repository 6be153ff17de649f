"""DeepLabCut reader/writer: the openfield project, multi-animal CSVs, round trips, cross-format."""

from __future__ import annotations

import csv
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from posetune.data.formats import coco, cvat, dlc, labelme
from posetune.data.images import save_image
from posetune.data.spec import KeypointSpec
from posetune.errors import DataError

from label_checks import assert_same_labels as _assert_same_labels

PROJECT = "openfield-Pranav-2018-10-30"


@pytest.fixture(scope="module")
def project(shared_data) -> Path:
    return shared_data / "dlc_openfield" / PROJECT


@pytest.fixture(scope="module")
def openfield(project):
    return dlc.read(project)


def _fixture_csv(project: Path) -> Path:
    return project / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv"


assert_same_labels = partial(_assert_same_labels, track_ids=True)


def _multi_animal_project(root: Path) -> Path:
    """A small multi-animal project: 2 mice + a unique bodypart, newer 3-column image index."""
    config = {"Task": "mice", "scorer": "Ann", "date": "Jan1", "multianimalproject": True, "identity": False,
              "bodyparts": "MULTI!", "multianimalbodyparts": ["snout", "left_ear", "right_ear"],
              "uniquebodyparts": ["corner"], "individuals": ["m1", "m2"],
              "skeleton": [["snout", "left_ear"], ["snout", "right_ear"]]}
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    parts = ["snout", "left_ear", "right_ear"]
    header = [["scorer", "", ""] + ["Ann"] * 14,
              ["individuals", "", ""] + ["m1"] * 6 + ["m2"] * 6 + ["single"] * 2,
              ["bodyparts", "", ""] + [p for p in parts for _ in "xy"] * 2 + ["corner", "corner"],
              ["coords", "", ""] + ["x", "y"] * 7]
    rows = [["labeled-data", "vid1", "img0.png", 1, 2, 3, 4, 5, 6, 11, 12, 13, 14, "", "", 100, 101],
            ["labeled-data", "vid1", "img1.png", 7, 8, "", "", 9, 10, "", "", "", "", "", "", "", ""]]
    folder = root / "labeled-data" / "vid1"
    folder.mkdir(parents=True)
    with open(folder / "CollectedData_Ann.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(header + rows)
    for name in ("img0.png", "img1.png"):
        save_image(folder / name, np.zeros((48, 64, 3), np.uint8))
    return root


def test_openfield_fixture(openfield, project):
    ds = openfield
    assert ds.spec.keypoints == ("snout", "leftear", "rightear", "tailbase")
    assert ds.spec.flip_pairs == ((1, 2),) and ds.spec.skeleton == ()
    assert len(ds.images) == 116 and ds.num_instances == 116 and ds.problems == []
    assert all((r.width, r.height, r.group) == (640, 480, "m4s1") for r in ds.images)
    assert ds.images[0].file_name == "labeled-data/m4s1/img0000.png" and ds.image_path(ds.images[0]).is_file()
    assert ds.info["dlc_scorer"] == "Pranav"
    # every coordinate equals an independent parse of the CSV with the csv module
    with open(_fixture_csv(project), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[1][1:] == ["snout", "snout", "leftear", "leftear", "rightear", "rightear", "tailbase", "tailbase"]
    expected = np.array([[float(c) for c in row[1:]] for row in rows[3:]]).reshape(-1, 4, 2)
    assert [r.file_name for r in ds.images] == [row[0] for row in rows[3:]]
    np.testing.assert_allclose(ds.keypoint_array()[:, :, :2], expected, rtol=0, atol=1e-6)
    assert (ds.keypoint_array()[:, :, 2] == 2).all()
    np.testing.assert_allclose(ds.images[0].instances[0].keypoints[:, :2],
                               [[21.521, 265.428], [33.819, 265.941], [19.984, 250.056], [87.11, 152.698]],
                               rtol=0, atol=1e-6)
    assert ds.images[115].file_name.endswith("img0115.png")


def test_csv_and_h5_give_identical_numbers(openfield, project):
    folder = project / "labeled-data" / "m4s1"
    from_csv = dlc.read(folder / "CollectedData_Pranav.csv")
    from_h5 = dlc.read(folder / "CollectedData_Pranav.h5")
    np.testing.assert_array_equal(from_csv.keypoint_array(), from_h5.keypoint_array())
    np.testing.assert_array_equal(from_csv.keypoint_array(), openfield.keypoint_array())
    assert [r.file_name for r in from_h5.images] == [r.file_name for r in openfield.images]
    assert from_h5.root == project and from_h5.spec == openfield.spec


def test_h5_only_and_csv_h5_disagreement(project, openfield, tmp_path):
    dest = tmp_path / "p"
    (dest / "labeled-data" / "m4s1").mkdir(parents=True)
    shutil.copy(project / "config.yaml", dest)
    shutil.copy(project / "labeled-data" / "m4s1" / "CollectedData_Pranav.h5", dest / "labeled-data" / "m4s1")
    ds = dlc.read(dest, image_root=project)
    assert ds.problems == []
    np.testing.assert_array_equal(ds.keypoint_array(), openfield.keypoint_array())
    # a hand-edited CSV that no longer matches the H5: the H5 wins, with a warning
    text = _fixture_csv(project).read_text().replace("21.521,265.428", "99.0,265.428", 1)
    (dest / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv").write_text(text)
    ds = dlc.read(dest, image_root=project)
    assert [p.code for p in ds.problems] == ["csv_h5_differ"]
    np.testing.assert_array_equal(ds.keypoint_array(), openfield.keypoint_array())


def test_openfield_round_trip(openfield, project, tmp_path):
    dest = tmp_path / "out"
    files = dlc.write(openfield, dest)
    csv_out = dest / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv"
    h5_out = csv_out.with_suffix(".h5")
    assert files == [dest / "config.yaml", csv_out, h5_out]
    again = dlc.read(dest)
    assert again.problems == [] and again.spec == openfield.spec
    assert_same_labels(openfield, again)
    assert [r.file_name for r in again.images] == [r.file_name for r in openfield.images]
    assert all(r.group == "m4s1" for r in again.images)
    # same header rows and image column as DeepLabCut's own file; the images sit beside it (linked)
    with open(csv_out, newline="") as f:
        written = list(csv.reader(f))
    with open(_fixture_csv(project), newline="") as f:
        original = list(csv.reader(f))
    assert written[:3] == original[:3] and [r[0] for r in written] == [r[0] for r in original]
    assert (dest / "labeled-data" / "m4s1" / "img0000.png").resolve() == (
        project / "labeled-data" / "m4s1" / "img0000.png").resolve()
    df = pd.read_hdf(h5_out, "df_with_missing")
    assert list(df.columns.names) == ["scorer", "bodyparts", "coords"]
    np.testing.assert_allclose(df.to_numpy().reshape(-1, 4, 2), openfield.keypoint_array()[:, :, :2], atol=1e-6)
    config = yaml.safe_load((dest / "config.yaml").read_text())
    assert config["bodyparts"] == ["snout", "leftear", "rightear", "tailbase"] and config["scorer"] == "Pranav"
    assert config["multianimalproject"] is False and [Path(v).stem for v in config["video_sets"]] == ["m4s1"]
    # writing again into the same project is fine (links kept, files replaced)
    dlc.write(again, dest)
    assert_same_labels(openfield, dlc.read(dest))


def test_cross_format_from_dlc(openfield, tmp_path):
    subset = openfield.subset(list(range(0, 116, 10)))
    coco.write(subset, tmp_path / "coco" / "ann.json")
    from_coco = coco.read(tmp_path / "coco" / "ann.json")
    assert from_coco.spec.keypoints == subset.spec.keypoints
    assert_same_labels(subset, from_coco)
    assert_same_labels(subset, cvat.read(cvat.write(subset, tmp_path / "cvat.xml")[0]))
    labelme.write(subset, tmp_path / "lm")
    from_labelme = labelme.read(tmp_path / "lm")
    assert_same_labels(subset, from_labelme)
    assert from_labelme.spec == subset.spec
    # and back into DeepLabCut from LabelMe
    dlc.write(from_labelme, tmp_path / "dlc")
    assert_same_labels(subset, dlc.read(tmp_path / "dlc"))


def test_multi_animal_project(tmp_path):
    root = _multi_animal_project(tmp_path / "ma")
    ds = dlc.read(root)
    assert ds.spec.keypoints == ("snout", "left_ear", "right_ear", "corner")
    assert ds.spec.skeleton == ((0, 1), (0, 2)) and ds.spec.flip_pairs == ((1, 2),)
    assert [r.file_name for r in ds.images] == ["labeled-data/vid1/img0.png", "labeled-data/vid1/img1.png"]
    assert ds.problems == []
    m1, m2, single = ds.images[0].instances
    assert (m1.track_id, m2.track_id, single.track_id) == ("m1", "m2", "single")
    assert m1.keypoints.tolist() == [[1, 2, 2], [3, 4, 2], [5, 6, 2], [0, 0, 0]]
    assert m2.keypoints.tolist() == [[11, 12, 2], [13, 14, 2], [0, 0, 0], [0, 0, 0]]
    assert single.keypoints.tolist() == [[0, 0, 0], [0, 0, 0], [0, 0, 0], [100, 101, 2]]
    (only,) = ds.images[1].instances  # m2 and the unique part are unlabelled there
    assert only.track_id == "m1" and only.keypoints.tolist() == [[7, 8, 2], [0, 0, 0], [9, 10, 2], [0, 0, 0]]
    # round trip keeps individuals and the unique bodypart
    dlc.write(ds, tmp_path / "out")
    config = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert config["multianimalproject"] is True and config["individuals"] == ["m1", "m2"]
    assert config["uniquebodyparts"] == ["corner"] and config["multianimalbodyparts"] == ["snout", "left_ear",
                                                                                        "right_ear"]
    again = dlc.read(tmp_path / "out")
    assert again.spec == ds.spec
    assert_same_labels(ds, again)
    # the same table as DeepLabCut stores it in .h5 (pandas, 3-level row index), without a CSV
    df = pd.read_csv(root / "labeled-data" / "vid1" / "CollectedData_Ann.csv", header=[0, 1, 2, 3],
                     index_col=[0, 1, 2])
    h5_only = tmp_path / "h5only"
    (h5_only / "labeled-data" / "vid1").mkdir(parents=True)
    shutil.copy(root / "config.yaml", h5_only)
    df.to_hdf(h5_only / "labeled-data" / "vid1" / "CollectedData_Ann.h5", key="df_with_missing")  # "fixed" format
    from_h5 = dlc.read(h5_only, image_root=root)
    assert [r.file_name for r in from_h5.images] == [r.file_name for r in ds.images]
    assert_same_labels(ds, from_h5)


def test_generated_round_trip(keypoint_dataset, tmp_path):
    ds = keypoint_dataset
    dlc.write(ds, tmp_path / "proj")
    folder = tmp_path / "proj" / "labeled-data" / "images"
    assert (folder / "bild_ä_猫.png").is_symlink()
    again = dlc.read(tmp_path / "proj")
    assert again.spec.keypoints == ds.spec.keypoints and again.spec.skeleton == ds.spec.skeleton
    assert again.spec.flip_pairs == ds.spec.flip_pairs
    # several animals per image; DLC has no occlusion flag, so v=1 comes back as 2; track ids are assigned
    assert_same_labels(ds, again, occluded_becomes_visible=True, track_ids=False)
    assert [i.track_id for i in again.images[0].instances] == ["animal1", "animal2"]
    assert again.images[0].file_name == "labeled-data/images/bild_ä_猫.png" and again.images[2].instances == []
    from_h5 = dlc.read(folder / "CollectedData_posetune.h5")
    np.testing.assert_array_equal(from_h5.keypoint_array(), again.keypoint_array())


def test_same_image_names_from_different_folders_get_distinct_slots(tmp_path):
    from posetune.data.records import ImageRecord, Instance, KeypointDataset

    for sub in ("a", "b"):
        save_image(tmp_path / "imgs" / sub / "x.png", np.zeros((8, 8, 3), np.uint8))
    spec = KeypointSpec.from_names(["p"])
    ds = KeypointDataset(spec=spec, root=tmp_path / "imgs", images=[
        ImageRecord("a/x.png", 8, 8, [Instance([[1, 2, 2]])]), ImageRecord("b/x.png", 8, 8, [Instance([[3, 4, 2]])])])
    dlc.write(ds, tmp_path / "proj")
    again = dlc.read(tmp_path / "proj")
    assert [r.file_name for r in again.images] == ["labeled-data/images/x.png", "labeled-data/images/x_1.png"]
    assert_same_labels(ds, again)


def test_wrong_header_names_file_and_row(project, tmp_path):
    bad = tmp_path / "CollectedData_x.csv"
    bad.write_text(_fixture_csv(project).read_text().replace("bodyparts,", "bodypart,", 1))
    with pytest.raises(DataError) as err:
        dlc.read(bad)
    assert f"{bad}:2" in str(err.value) and "should start with 'bodyparts'" in str(err.value)
    bad.write_text("image,x,y\na.png,1,2\n")
    with pytest.raises(DataError, match="header row 1 should start with 'scorer'"):
        dlc.read(bad)


def test_bad_row_is_skipped_with_its_line(project, tmp_path):
    lines = _fixture_csv(project).read_text().splitlines()
    lines[4] = lines[4].replace("10.248", "ten")
    path = tmp_path / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines[:8]) + "\n")
    ds = dlc.read(path, image_root=project)
    assert len(ds.images) == 4 and [p.code for p in ds.problems] == ["bad_row"]
    assert ds.problems[0].where == f"{path}:5" and "'ten'" in ds.problems[0].message


def test_spec_given(project):
    csv_path = _fixture_csv(project)
    spec = KeypointSpec.from_names(["snout", "tailbase", "paw"])
    ds = dlc.read(csv_path, spec=spec)
    np.testing.assert_allclose(ds.images[0].instances[0].keypoints,
                               [[21.521, 265.428, 2], [87.11, 152.698, 2], [0, 0, 0]], rtol=0, atol=1e-6)
    unknown = [p for p in ds.problems if p.code == "unknown_keypoint"]
    assert sorted(p.message.split("'")[1] for p in unknown) == ["leftear", "rightear"]
    assert all(p.where == str(csv_path) for p in unknown)
    with pytest.raises(DataError, match="no bodypart matches spec"):
        dlc.read(csv_path, spec=KeypointSpec.from_names(["a", "b"]))


def test_empty_image_is_a_problem(tmp_path):
    root = _multi_animal_project(tmp_path / "ma")
    (root / "labeled-data" / "vid1" / "img1.png").write_bytes(b"")
    ds = dlc.read(root)
    (problem,) = ds.problems
    assert problem.code == "image_unreadable" and "0 bytes" in problem.message and problem.where.endswith(".csv:6")
    assert ds.images[1].width is None and len(ds.images[1].instances) == 1


def test_detection(project, shared_data, tmp_path):
    folder = project / "labeled-data" / "m4s1"
    for p in (project, project / "labeled-data", folder, folder / "CollectedData_Pranav.csv",
              folder / "CollectedData_Pranav.h5"):
        assert dlc.detect(p), p
        assert not labelme.detect(p) and not cvat.detect(p)
    others = [shared_data / "formats_labelme" / "examples" / "primitives",
              shared_data / "formats_cvat_coco_datumaro" / "cvat_dataset" / "for_images" / "export_task",
              shared_data / "formats_cvat_coco_datumaro" / "coco_dataset" / "coco_person_keypoints" / "annotations"]
    for p in others:
        assert not dlc.detect(p), p
    (tmp_path / "config.yaml").write_text("model: {name: resnet}\n")
    assert not dlc.detect(tmp_path)  # a posetune/other config is not a DLC project
