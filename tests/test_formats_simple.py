"""The simple json list format: variants it accepts, round trips through COCO, problems, detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from posetune.data.formats import coco, detect_format, simple
from posetune.data.images import save_image
from posetune.data.presets import COCO17
from posetune.errors import DataError


def _images(folder: Path, *names: str, size=(40, 30)) -> None:
    for n in names:
        save_image(folder / n, np.zeros((size[1], size[0], 3), np.uint8))


def test_coco_to_simple_and_back(shared_data, tmp_path):
    ds = coco.read(shared_data / "mmpose_coco" / "coco" / "test_coco.json")
    out = simple.write(ds, tmp_path / "out")[0]
    assert out == tmp_path / "out" / "labels.json"
    raw = json.loads(out.read_text())
    assert raw["keypoint_names"] == list(COCO17.keypoints)  # dict form for named keypoints
    assert detect_format(out) == "simple"
    again = simple.read(out)
    assert again.problems == []
    assert (again.num_images, again.num_instances) == (4, 14)
    assert again.spec.name == "coco17" and again.spec.skeleton == COCO17.skeleton
    for ra, rb in zip(ds.images, again.images):
        assert ds.image_path(ra).resolve() == again.image_path(rb).resolve()
        assert (ra.width, ra.height) == (rb.width, rb.height)
        for ia, ib in zip(ra.instances, rb.instances):
            np.testing.assert_array_equal(ia.labelled, ib.labelled)
            np.testing.assert_allclose(ia.keypoints[ia.labelled], ib.keypoints[ib.labelled], atol=1e-9)
            np.testing.assert_allclose(ia.bbox, ib.bbox)


def test_generic_names_write_the_plain_list(shared_data, tmp_path):
    ds = coco.read(shared_data / "mmpose_wflw" / "wflw" / "test_wflw.json")
    out = simple.write(ds, tmp_path / "wflw.json")[0]
    raw = json.loads(out.read_text())
    assert isinstance(raw, list) and len(raw) == 4 and len(raw[0]["keypoints"]) == 98
    assert len(raw[0]["keypoints"][0]) == 3  # WFLW marks points v=1, so v is written
    again = simple.read(out)
    assert again.spec.keypoints[97] == "kp_97" and again.categories == ["face"]
    np.testing.assert_allclose(again.keypoint_array(), ds.keypoint_array())


def test_edge_cases_round_trip(keypoint_dataset, tmp_path):
    out = simple.write(keypoint_dataset, tmp_path / "nested" / "s.json")[0]
    again = simple.read(out)
    assert again.problems == []
    assert again.spec.keypoints == keypoint_dataset.spec.keypoints
    assert [r.num_instances for r in again.images] == [2, 12, 0]
    assert again.images[0].file_name.endswith("bild_ä_猫.png") and again.image_path(again.images[0]).is_file()
    assert again.images[0].instances[0].keypoints[:, 2].tolist() == [2, 0, 1, 2]  # v=0 and v=1 survive
    np.testing.assert_allclose(again.keypoint_array(), keypoint_dataset.keypoint_array())
    assert "null" in out.read_text(encoding="utf-8")


def test_accepts_the_usual_variants(tmp_path):
    _images(tmp_path, "a.jpg", "b.png", "c.png")
    entries = [
        {"image_name": "a.jpg", "keypoints": [[1, 2], [3, 4], None]},
        {"image": "a.jpg", "keypoints": [[5, 6, 1], [float("nan"), float("nan")], [7, 8, 2]], "bbox": [0, 0, 20, 20]},
        {"file_name": "b.png", "keypoints": [[0, 0], [9, 9], [10, 10, 0]]},
        {"path": "c.png", "keypoints": []},
    ]
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(entries))
    ds = simple.read(path)
    assert ds.problems == []
    assert [r.file_name for r in ds.images] == ["a.jpg", "b.png", "c.png"]
    assert [r.num_instances for r in ds.images] == [2, 1, 0]
    assert (ds.images[0].width, ds.images[0].height) == (40, 30)  # from the image header
    first, second = ds.images[0].instances
    assert first.keypoints.tolist() == [[1, 2, 2], [3, 4, 2], [0, 0, 0]]
    assert second.keypoints.tolist() == [[5, 6, 1], [0, 0, 0], [7, 8, 2]]
    assert second.bbox.tolist() == [0, 0, 20, 20] and first.bbox is None
    assert ds.images[1].instances[0].keypoints[:, 2].tolist() == [0, 2, 0]  # [0, 0] pair = missing
    assert ds.spec.keypoints == ("kp_0", "kp_1", "kp_2")


def test_dict_form_with_named_skeleton(tmp_path):
    _images(tmp_path, "a.jpg")
    data = {"keypoint_names": ["nose", "left_ear", "right_ear"], "skeleton": [["nose", "left_ear"], [0, 2]],
            "items": [{"image_name": "a.jpg", "keypoints": [[1, 1], [2, 2], [3, 3]]}]}
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data))
    assert simple.detect(path)
    ds = simple.read(path)
    assert ds.spec.skeleton == ((0, 1), (0, 2)) and ds.spec.flip_pairs == ((1, 2),)


def test_bad_entries_become_problems(tmp_path):
    _images(tmp_path, "a.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"")
    entries = [
        {"image_name": "a.jpg", "keypoints": [[1, 2], [3, 4]]},
        {"image_name": "a.jpg", "keypoints": [1, 2, 3, 4]},
        {"keypoints": [[1, 2], [3, 4]]},
        {"image_name": "a.jpg", "keypoints": [[1, 2]]},
        {"image_name": "a.jpg", "keypoints": [[float("nan"), 2, 2], [3, 4]]},
        {"image_name": "broken.jpg", "keypoints": [[1, 2], [3, 4]]},
    ]
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(entries))
    ds = simple.read(path)
    by_entry = {p.where.rsplit(":", 1)[-1]: p.code for p in ds.problems}
    assert by_entry == {"entry 1": "bad_keypoints", "entry 2": "no_image", "entry 3": "keypoints_length",
                        "entry 4": "bad_keypoints", "image 'broken.jpg'": "image_unreadable"}
    assert ds.num_instances == 2


def test_spec_mismatch_and_bad_top_level(tmp_path):
    path = tmp_path / "labels.json"
    items = [{"image": "x.jpg", "keypoints": [[1, 2], [3, 4]]}]
    path.write_text(json.dumps({"keypoint_names": ["a", "b"], "items": items}))
    with pytest.raises(DataError, match=r"labels\.json.*do not match spec 'coco17'"):
        simple.read(path, spec=COCO17)
    path.write_text('"just a string"')
    with pytest.raises(DataError, match="top level is a str"):
        simple.read(path)


def test_detection(shared_data, tmp_path, keypoint_dataset):
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([{"image_name": "a.jpg", "keypoints": [[1, 2]]}]))
    assert simple.detect(plain) and detect_format(plain) == "simple"
    assert not simple.detect(shared_data / "mmpose_coco" / "coco" / "test_coco_wholebody.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"name": "a.jpg", "points": [1, 2]}]))
    assert not simple.detect(other)
