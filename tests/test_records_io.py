"""Record types and atomic file writes."""

from __future__ import annotations

import numpy as np
import pytest

from posetune.data import presets
from posetune.data.records import ImageRecord, Instance, KeypointDataset
from posetune.errors import DataError
from posetune.io_utils import atomic_path, read_json, write_json_atomic


def test_instance_from_xy_marks_nan_unlabelled():
    inst = Instance(keypoints=[[1, 2], [np.nan, np.nan], [3, 4]])
    assert inst.keypoints.shape == (3, 3)
    assert inst.labelled.tolist() == [True, False, True]
    assert inst.keypoint_bbox().tolist() == [1, 2, 2, 2]
    assert inst.box(padding=0).tolist() == [1, 2, 2, 2]


def test_dataset_ids_and_summary():
    k = np.zeros((17, 3))
    k[0] = [5, 5, 2]
    k[1] = [6, 6, 1]
    ds = KeypointDataset(spec=presets.COCO17, images=[
        ImageRecord("a.jpg", 10, 10, [Instance(k.copy(), id=7), Instance(k.copy(), id=7)], id=3),
        ImageRecord("b.jpg", 10, 10, [Instance(k.copy())], id=3)])
    ds.ensure_ids()
    assert len({im.id for im in ds.images}) == 2
    assert len({inst.id for _, inst in ds.iter_instances()}) == 3
    s = ds.summary()
    assert s["instances"] == 3 and s["labelled_per_keypoint"][:3] == [3, 3, 0] and s["visible_per_keypoint"][:2] == [3, 0]


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("crash")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_read_json_errors_name_line(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"a": 1,\n "b": }')
    with pytest.raises(DataError) as e:
        read_json(p)
    assert f"{p}:2:" in str(e.value)
    with pytest.raises(DataError, match="not found"):
        read_json(tmp_path / "missing.json")


def test_atomic_write_uses_umask_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        p = write_json_atomic(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
