"""`split_dataset`: fractions, determinism, groups kept together, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from posetune.data.formats import read_dataset
from posetune.data.presets import COCO17
from posetune.data.records import ImageRecord, Instance, KeypointDataset
from posetune.data.split import group_key, split_dataset
from posetune.errors import DataError


def _dataset(file_names, groups=None):
    images = [ImageRecord(f, 64, 64, [Instance(np.zeros((17, 3)), bbox=[0, 0, 8, 8])], id=i + 1,
                          group=None if groups is None else groups[i]) for i, f in enumerate(file_names)]
    return KeypointDataset(spec=COCO17, images=images)


def _names(part):
    return [r.file_name for r in part.images]


def test_fractions_are_exact_per_image_and_splits_disjoint():
    ds = _dataset([f"img{i:03d}.png" for i in range(50)])
    parts = split_dataset(ds, val=0.2, test=0.1, seed=0)
    assert {k: len(v) for k, v in parts.items()} == {"train": 35, "val": 10, "test": 5}
    all_names = sum((_names(p) for p in parts.values()), [])
    assert sorted(all_names) == sorted(_names(ds)) and len(set(all_names)) == 50
    assert _names(parts["val"]) == sorted(_names(parts["val"]))  # original order kept
    assert "test" not in split_dataset(ds, val=0.3)
    assert len(split_dataset(ds, val=0.3)["val"]) == 15


def test_deterministic_for_a_seed():
    ds = _dataset([f"img{i:03d}.png" for i in range(40)])
    a = split_dataset(ds, 0.25, seed=7)
    b = split_dataset(ds, 0.25, seed=7)
    c = split_dataset(ds, 0.25, seed=8)
    assert _names(a["val"]) == _names(b["val"])
    assert _names(a["val"]) != _names(c["val"])
    assert ds.num_images == 40  # the input is not changed


def test_tiny_datasets_give_every_split_an_image_or_a_clear_error():
    parts = split_dataset(_dataset(["a.png", "b.png", "c.png"]), val=0.1, test=0.1)
    assert [len(p) for p in parts.values()] == [1, 1, 1]
    with pytest.raises(DataError, match="3 non-empty splits"):
        split_dataset(_dataset(["a.png", "b.png"]), val=0.2, test=0.1)
    with pytest.raises(DataError, match="nothing to train"):
        split_dataset(_dataset(["a.png"] * 10), val=0.6, test=0.4)
    with pytest.raises(DataError):
        split_dataset(_dataset(["a.png"] * 10), val=-0.1)
    with pytest.raises(DataError, match="grouping"):
        split_dataset(_dataset(["a.png"] * 10), by="camera")  # type: ignore[arg-type]


def test_folders_and_videos_stay_on_one_side():
    rng = np.random.default_rng(0)
    sizes = rng.integers(2, 15, 12)
    names = [f"session{g}/frame{j:03d}.png" for g, s in enumerate(sizes) for j in range(s)]
    ds = _dataset(names)
    n = len(names)
    for seed in range(3):
        parts = split_dataset(ds, val=0.2, test=0.1, seed=seed, by="folder")
        seen = {}
        for split, part in parts.items():
            for rec in part.images:
                assert seen.setdefault(rec.file_name.split("/")[0], split) == split
        assert len(parts["test"]) > 0 and len(parts["val"]) > 0
        # sizes within one (largest) group of the targets
        assert abs(len(parts["val"]) - 0.2 * n) <= sizes.max()
        assert abs(len(parts["test"]) - 0.1 * n) <= sizes.max()
    # by video: ImageRecord.group wins over the folder (two videos share a folder here)
    groups = ["v1" if i % 2 else "v2" for i in range(10)] + ["v3"] * 10 + ["v4"] * 10
    vids = _dataset([f"frames/{i}.png" for i in range(30)], groups)
    parts = split_dataset(vids, val=0.3, by="video", seed=1)
    val_groups = {r.group for r in parts["val"].images}
    train_groups = {r.group for r in parts["train"].images}
    assert val_groups and train_groups and not (val_groups & train_groups)
    assert group_key(vids.images[0], 0, "folder") == "frames"
    with pytest.raises(DataError, match="folder group"):
        split_dataset(vids, val=0.3, by="folder")  # one folder cannot make two splits


def test_real_deeplabcut_project(shared_data):
    ds = read_dataset(shared_data / "dlc_openfield" / "openfield-Pranav-2018-10-30")
    parts = split_dataset(ds, val=0.2, test=0.1, seed=0)
    assert [len(p) for p in parts.values()] == [81, 23, 12]
    # all 116 frames come from one video: a split by video is impossible and says so
    with pytest.raises(DataError, match="1 video group"):
        split_dataset(ds, val=0.2, by="video")
