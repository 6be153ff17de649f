"""YOLO-pose datasets: write from COCO and read back, splits, stems, [K,2] labels, labels-only folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from posetune.data.formats import coco, detect_format, simple, yolo
from posetune.data.images import save_image
from posetune.data.presets import COCO17
from posetune.data.records import ImageRecord, Instance, KeypointDataset
from posetune.errors import DataError


def _close_in_pixels(a: KeypointDataset, b: KeypointDataset) -> None:
    """Labelled points and boxes agree within 1e-4 of the image size; visibility flags agree."""
    for ra, rb in zip(a.images, b.images):
        size = np.array([ra.width, ra.height], dtype=float)
        assert len(ra.instances) == len(rb.instances)
        for ia, ib in zip(ra.instances, rb.instances):
            np.testing.assert_array_equal(ia.keypoints[:, 2], ib.keypoints[:, 2])
            m = ia.labelled
            assert np.all(np.abs(ia.keypoints[m, :2] - ib.keypoints[m, :2]) <= 1e-4 * size)
            assert np.all(np.abs(ia.bbox - ib.bbox) <= 1e-4 * np.r_[size, size])


def test_coco_to_yolo_and_back(shared_data, tmp_path):
    src = shared_data / "mmpose_coco" / "coco" / "test_coco.json"
    ds = coco.read(src)
    written = yolo.write(ds, tmp_path / "yolo")
    cfg = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert cfg["kpt_shape"] == [17, 3] and cfg["names"] == {0: "person"}
    assert cfg["flip_idx"] == COCO17.flip_index.tolist()
    assert cfg["kpt_names"][0] == list(COCO17.keypoints)
    labels = sorted((tmp_path / "yolo" / "labels" / "train").glob("*.txt"))
    assert [p.stem for p in labels] == sorted(Path(r.file_name).stem for r in ds.images)
    link = tmp_path / "yolo" / "images" / "train" / "000000000785.jpg"
    assert link in written and link.resolve() == (src.parent / "000000000785.jpg").resolve()
    first = labels[0].read_text().splitlines()[0].split()
    assert len(first) == 5 + 17 * 3 and len(first[1].split(".")[1]) >= 6

    assert detect_format(tmp_path / "yolo") == "yolo"
    again = yolo.read(tmp_path / "yolo" / "data.yaml")
    assert (again.num_images, again.num_instances) == (4, 14)
    assert again.spec.name == "coco17" and again.categories == ["person"]
    assert {r.group for r in again.images} == {"train"} and again.images[0].extra["split"] == "train"
    assert yolo.read(tmp_path / "yolo" / "labels").spec.name == "coco17"  # finds the dataset's yaml
    by_name = {Path(r.file_name).name: r for r in again.images}
    again.images = [by_name[Path(r.file_name).name] for r in ds.images]
    _close_in_pixels(ds, again)


def test_wholebody_and_animal_survive_yolo(shared_data, tmp_path):
    for path in (shared_data / "mmpose_coco" / "coco" / "test_coco_wholebody.json",
                 shared_data / "mmpose_animalpose" / "animalpose" / "test_animalpose.json"):
        ds = coco.read(path)
        out = tmp_path / path.stem
        yolo.write(ds, out)
        again = yolo.read(out)
        assert again.spec.keypoints == ds.spec.keypoints
        assert set(again.spec.flip_pairs) == set(ds.spec.flip_pairs)
        assert again.num_instances == ds.num_instances
        assert int((again.keypoint_array()[..., 2] > 0).sum()) == int((ds.keypoint_array()[..., 2] > 0).sum())


def test_edge_cases_splits_and_colliding_stems(keypoint_dataset, tmp_path):
    ds = keypoint_dataset
    # a second image with the same stem from another folder, and a validation image
    save_image(ds.root / "more" / "crowd.jpg", np.zeros((20, 20, 3), np.uint8))
    ds.images.append(ImageRecord("more/crowd.jpg", 20, 20, [Instance([[1, 1, 2], [2, 2, 2], [3, 3, 2], [4, 4, 1]],
                                                                     bbox=[0, 0, 10, 10])]))
    ds.images[2].group = "Validation2017"
    yolo.write(ds, tmp_path / "y")
    assert sorted(p.name for p in (tmp_path / "y" / "labels" / "train").iterdir()) == \
        ["bild_ä_猫.txt", "crowd.txt", "crowd_1.txt"]
    assert (tmp_path / "y" / "labels" / "val" / "empty.txt").read_text() == ""
    cfg = yaml.safe_load((tmp_path / "y" / "data.yaml").read_text(encoding="utf-8"))
    assert cfg["val"] == "images/val" and "path" not in cfg  # ultralytics then uses the yaml's folder

    again = yolo.read(tmp_path / "y")
    assert again.problems == []
    assert again.spec.keypoints == ds.spec.keypoints and again.spec.skeleton == ds.spec.skeleton
    by_split = {(r.group, Path(r.file_name).name): r for r in again.images}
    assert set(by_split) == {("train", "bild_ä_猫.png"), ("train", "crowd.png"), ("train", "crowd_1.jpg"),
                             ("val", "empty.png")}
    assert by_split[("train", "crowd.png")].num_instances == 12
    assert by_split[("train", "bild_ä_猫.png")].instances[0].keypoints[:, 2].tolist() == [2, 0, 1, 2]
    order = [("train", "bild_ä_猫.png"), ("train", "crowd.png"), ("val", "empty.png"), ("train", "crowd_1.jpg")]
    again.images = [by_split[k] for k in order]
    _close_in_pixels(ds, again)
    # written a second time into the same folder: links are replaced, nothing duplicated
    yolo.write(ds, tmp_path / "y")
    assert len(list((tmp_path / "y" / "images" / "train").iterdir())) == 3


def _toy_yolo(tmp_path: Path, kpt_shape, lines: list[str], extra: dict | None = None) -> Path:
    save_image(tmp_path / "ds" / "images" / "train" / "a.png", np.zeros((50, 100, 3), np.uint8))
    (tmp_path / "ds" / "labels" / "train").mkdir(parents=True)
    (tmp_path / "ds" / "labels" / "train" / "a.txt").write_text("\n".join(lines) + "\n")
    cfg = {"path": str(tmp_path / "ds"), "train": "images/train", "val": "images/train", "kpt_shape": kpt_shape,
           "names": ["cat", "dog"], **(extra or {})}
    path = tmp_path / "ds" / "pose.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_two_value_points_and_flip_idx(tmp_path):
    path = _toy_yolo(tmp_path, [3, 2], ["1 0.5 0.5 0.4 0.4 0.1 0.2 0 0 0.3 0.4"],
                     {"flip_idx": [0, 2, 1],
                      "kpt_names": {0: ["nose", "eye_a", "eye_b"], 1: ["nose", "eye_a", "eye_b"]}})
    assert detect_format(tmp_path / "ds") == "yolo"
    ds = yolo.read(tmp_path / "ds")
    assert ds.source == path
    inst = ds.images[0].instances[0]
    assert inst.category == "dog"
    np.testing.assert_allclose(inst.keypoints, [[10, 10, 2], [0, 0, 0], [30, 20, 2]])
    np.testing.assert_allclose(inst.bbox, [30, 15, 40, 20])
    assert ds.spec.keypoints == ("nose", "eye_a", "eye_b") and ds.spec.flip_pairs == ((1, 2),)
    assert [p.code for p in ds.problems] == ["split_overlap"]  # val reuses the train images


def test_bad_lines_and_bad_yaml(tmp_path):
    lines = ["0 0.5 0.5 0.4 0.4 0.1 0.2 2 0.3 0.4 1", "0 0.5 0.5 0.4", "0 a b c d 1 2 3 4 5 6"]
    path = _toy_yolo(tmp_path, [2, 3], lines)
    ds = yolo.read(path)
    assert ds.num_instances == 1
    assert {p.where.rsplit(":", 1)[-1]: p.code for p in ds.problems if p.code != "split_overlap"} == \
        {"2": "keypoints_length", "3": "bad_line"}
    with pytest.raises(DataError, match="kpt_shape"):
        yolo.read(_write_yaml(tmp_path / "k.yaml", "train: x\nkpt_shape: [3, 4]\n"))
    with pytest.raises(DataError, match=r"m\.yaml:\d+:\d+: malformed YAML"):
        yolo.read(_write_yaml(tmp_path / "m.yaml", "kpt_shape: [3, 3]\ntrain: [a, b\n"))
    with pytest.raises(DataError, match="'val' points to"):
        yolo.read(_write_yaml(tmp_path / "v.yaml", "kpt_shape: [3, 3]\nval: nowhere\n"))
    with pytest.raises(DataError, match="names.*kpt_names|kpt_names.*3"):
        yolo.read(_write_yaml(tmp_path / "n.yaml", f"path: {tmp_path / 'ds'}\ntrain: images/train\n"
                              "kpt_shape: [2, 3]\nkpt_names: [a, b, c]\n"))


def _write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_labels_folder_without_yaml(tmp_path, keypoint_dataset):
    yolo.write(keypoint_dataset, tmp_path / "y")
    (tmp_path / "y" / "data.yaml").unlink()
    assert yolo.detect(tmp_path / "y" / "labels") and detect_format(tmp_path / "y") == "yolo"
    ds = yolo.read(tmp_path / "y" / "labels")
    assert ds.problems[0].code == "no_yaml"
    assert ds.spec.num_keypoints == 4 and ds.num_images == 3 and ds.num_instances == 14
    with_spec = yolo.read(tmp_path / "y" / "labels", spec=keypoint_dataset.spec)
    assert with_spec.spec is keypoint_dataset.spec
    with pytest.raises(DataError, match="4 keypoints but spec 'coco17' has 17"):
        yolo.read(tmp_path / "y" / "labels", spec=COCO17)


def test_detection_does_not_claim_other_formats(shared_data, tmp_path, keypoint_dataset):
    assert not yolo.detect(shared_data / "mmpose_coco" / "coco")
    assert not yolo.detect(shared_data / "dlc_openfield")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("clip1.mp4 3\nclip2.mp4 1\n")
    assert not yolo.detect(lists)
    s = simple.write(keypoint_dataset, tmp_path / "s.json")[0]
    assert not yolo.detect(s) and not yolo.detect(tmp_path)
    assert not simple.detect(tmp_path / "lists" / "train.txt")


def test_symlink_target_is_the_original_image(keypoint_dataset, tmp_path):
    written = yolo.write(keypoint_dataset, tmp_path / "y" / "custom.yaml")
    assert written[0] == tmp_path / "y" / "custom.yaml"
    link = tmp_path / "y" / "images" / "train" / "bild_ä_猫.png"
    assert link.is_symlink() and os.path.samefile(link, keypoint_dataset.root / "bild_ä_猫.png")
