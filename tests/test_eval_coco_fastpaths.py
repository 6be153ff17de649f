"""The vectorised paths of COCO reading and evaluation give exactly what the plain paths give.

* the COCO reader checks all annotations' keypoints/boxes in one go and leaves the odd ones to the
  per-annotation code: same instances (bit for bit) and the same Problems as that code alone;
* OKS for all images at once equals pycocotools' ``computeOks`` bit for bit (crowd regions,
  instances without labelled points, more than 20 predictions per image, 133 keypoints);
* the masked pairwise sums equal ``np.sum`` of each 1-D selection bit for bit.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posetune.data.formats import coco as coco_format
from posetune.data.records import KeypointDataset
from posetune.evaluation.coco import _cocoeval_class, _masked_row_sums


# ----------------------------------------------------------------------------- masked sums
@pytest.mark.parametrize("k", [1, 5, 8, 17, 26, 133])
def test_masked_row_sums_equal_numpy_1d_sums(k):
    rng = np.random.default_rng(k)
    terms = np.exp(-rng.uniform(0, 5, (300, k)))
    mask = rng.uniform(size=(300, k)) < rng.uniform(0, 1, (300, 1))
    mask[0] = True
    mask[1] = False
    sums = _masked_row_sums(terms, mask)
    for i in range(len(terms)):
        assert sums[i] == np.sum(terms[i][mask[i]]), (i, int(mask[i].sum()))


# ----------------------------------------------------------------------------- OKS for all images at once
def _files(tmp_path: Path, k: int, seed: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    images, anns, res = [], [], []
    for i in range(1, 41):
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 500, "height": 500})
        for p in range(0 if i % 11 == 0 else int(rng.integers(1, 7))):
            xy = rng.uniform(0, 500, (k, 2)).round(1)
            v = (rng.uniform(size=k) < rng.uniform(0, 1.05)).astype(int) * 2
            crowd = int(p == 0 and i % 5 == 0)
            v[:] = 0 if crowd else v
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": crowd,
                         "keypoints": np.column_stack([xy, v]).ravel().tolist(), "num_keypoints": int((v > 0).sum()),
                         "bbox": [int(xy[:, 0].min()), int(xy[:, 1].min()), int(rng.integers(5, 200)), 80],
                         "area": float(rng.uniform(10, 20000))})
        for _ in range(0 if i % 13 == 0 else int(rng.integers(0, 26))):  # > 20 predictions: truncated
            xy = rng.uniform(0, 500, (k, 2))
            res.append({"image_id": i, "category_id": 1, "score": float(rng.choice([0.5, rng.uniform()])),
                        "keypoints": np.column_stack([xy, rng.uniform(0, 1, k)]).ravel().tolist()})
    cats = [{"id": 1, "name": "person", "keypoints": [f"k{j}" for j in range(k)], "skeleton": []}]
    gt_file, res_file = tmp_path / "gt.json", tmp_path / "res.json"
    gt_file.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    res_file.write_text(json.dumps(res))
    return gt_file, res_file


@pytest.mark.parametrize("k", [17, 133])
def test_all_images_oks_identical_to_pycocotools(tmp_path, k):
    gt_file, res_file = _files(tmp_path, k, seed=k)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_file))
        coco_dt = coco_gt.loadRes(str(res_file))
        ref, ours = COCOeval(coco_gt, coco_dt, "keypoints"), _cocoeval_class()(coco_gt, coco_dt, "keypoints")
        for ev in (ref, ours):
            ev.params.kpt_oks_sigmas = np.linspace(0.03, 0.1, k)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
    compared = 0
    for key, r in ref.ious.items():
        if len(r):
            assert np.array_equal(ours.ious[key], r), key  # bit for bit
            assert np.array_equal(ours.computeOks(*key), r), key  # also when called on its own
            compared += 1
        else:
            assert len(ours.ious[key]) == 0
    assert compared >= 25
    assert np.array_equal(ours.stats, ref.stats)


# ----------------------------------------------------------------------------- the reader's bulk checks
def _state(ds: KeypointDataset) -> list:
    out: list = [[repr(p) for p in ds.problems]]
    for rec in ds.images:
        for inst in rec.instances:
            out.append((rec.file_name, inst.keypoints.tobytes(), inst.keypoints.shape,
                        None if inst.bbox is None else inst.bbox.tobytes(), inst.id, inst.area, inst.score,
                        inst.iscrowd, inst.category, inst.track_id, repr(inst.extra)))
    return out


def _odd_annotations(rng) -> dict:
    def kp(n=17, v=2):
        return np.column_stack([rng.uniform(0, 500, (n, 2)).round(2), np.full(n, v)]).ravel().tolist()

    def ann(i, **kw):
        return {"id": i, "image_id": 1 + i % 2, "category_id": 1, "keypoints": kp(), "bbox": [1, 2, 30, 40],
                "area": 500, "iscrowd": 0, **kw}

    anns = [ann(i) for i in range(1, 40)]
    odd = [kp() for _ in range(8)]
    odd[0][3] = float("nan")  # NaN x of a labelled point: skipped with a Problem
    odd[1][3], odd[1][5] = float("nan"), 0  # NaN x of an unlabelled point: read as 0
    odd[2][2], odd[2][5], odd[2][8] = 1.5, -1, 7  # v clipped to 0..2
    odd[3][4] = None
    odd[4][4] = "12.5"
    odd[5][4] = "abc"
    odd[6][2] = float("inf")
    odd[7][0] = 1e308 * 10
    anns += [ann(100 + j, keypoints=k) for j, k in enumerate(odd)]
    anns += [ann(200, keypoints=kp()[:-3]), ann(201, keypoints=[]), ann(202, keypoints=None),
             ann(203, keypoints=[[1, 2, 2]] * 51), ann(204, bbox=[1, 2, 3]), ann(205, bbox=[1, 2, float("nan"), 4]),
             ann(206, bbox=[[1, 2], [3, 4]]), ann(207, bbox=None), ann(208, image_id=99), "not an object",
             ann(209, score=0.7, track_id="t1", segmentation=[[1, 2, 3]], area=None), ann(210, keypoints=kp(v=0))]
    anns.insert(5, ann(300, keypoints=kp(133)))
    cat = {"id": 1, "name": "person", "keypoints": list(coco_format._coco17_names()), "skeleton": [[16, 14]]}
    images = [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
              {"id": 2, "file_name": "b.jpg", "width": 640, "height": 480}]
    return {"images": images, "annotations": anns, "categories": [cat]}


def _wholebody_annotations(rng) -> dict:
    d = _odd_annotations(rng)
    anns = [a for a in d["annotations"] if isinstance(a, dict)][:30]
    for j, a in enumerate(anns):
        for field, n in coco_format.WHOLEBODY_PARTS:
            a[field] = np.column_stack([rng.uniform(0, 500, (n, 2)), np.full(n, 2.0)]).ravel().tolist()
        a["face_valid"] = True
    anns[3]["face_kpts"] = anns[3]["face_kpts"][:-3]
    anns[4]["lefthand_kpts"][7] = float("nan")
    anns[5]["foot_kpts"] = []
    del anns[6]["righthand_kpts"]
    anns[7]["keypoints"] = np.column_stack([rng.uniform(0, 500, (133, 2)), np.full(133, 2.0)]).ravel().tolist()
    d["annotations"] = anns
    return d


@pytest.mark.parametrize("make", [_odd_annotations, _wholebody_annotations])
def test_bulk_checked_reading_equals_per_annotation_reading(monkeypatch, make):
    d = make(np.random.default_rng(0))
    fast = coco_format.coco_dict_to_dataset(copy.deepcopy(d), source="x.json")
    assert fast.num_instances >= 25 and len(fast.problems) >= 2
    with monkeypatch.context() as m:  # the per-annotation code alone, as the reference
        m.setattr(coco_format, "_checked_rows", lambda anns, field, k, finish: [None] * len(anns))
        plain = coco_format.coco_dict_to_dataset(copy.deepcopy(d), source="x.json")
    assert _state(fast) == _state(plain)
