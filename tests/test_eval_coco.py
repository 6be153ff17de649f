"""COCO keypoint AP/AR: posetune's numbers equal pycocotools' COCOeval called directly on json files."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posetune.data.formats import read_dataset
from posetune.data.records import ImageRecord, Instance, KeypointDataset
from posetune.data.spec import KeypointSpec
from posetune.errors import EvaluationError
from posetune.evaluation import coco_keypoint_eval, coco_wholebody_eval, evaluate, oks_nms, read_predictions
from posetune.evaluation.coco import (AP_KEYS, MissingAreaError, _cocoeval_class, _load_results, instance_score,
                                      per_keypoint_oks)
from posetune.evaluation.matching import match_instances

COCO_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
               0.087, 0.087, 0.089, 0.089]


# ----------------------------------------------------------------------------- reference: plain pycocotools
def reference_stats(gt_file: Path, res_file: Path, sigmas=None) -> dict:
    """The standard pycocotools API on json files (nothing from posetune)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_file))
        coco_dt = coco_gt.loadRes(str(res_file))
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.array(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: (None if v == -1 else float(v)) for k, v in zip(AP_KEYS, ev.stats)}


def assert_same(ours: dict, ref: dict) -> None:
    for k in AP_KEYS:
        if ref[k] is None:
            assert ours[k] is None, k
        else:
            assert ours[k] == pytest.approx(ref[k], abs=1e-9), k


def perturbed_results(d: dict, rng, noise: float, drop: float = 0.0, fields=("keypoints",)) -> list:
    """GT annotations moved by Gaussian noise (px), with scores; a fraction dropped (missed people)."""
    res = []
    for a in d["annotations"]:
        if a.get("num_keypoints", 1) == 0 or rng.uniform() < drop:
            continue
        k = np.concatenate([np.asarray(a[f], float).reshape(-1, 3) for f in fields])
        k[:, :2] += rng.normal(0, noise, (len(k), 2))
        k[:, 2] = rng.uniform(0.05, 1.0, len(k))
        res.append({"image_id": a["image_id"], "category_id": 1, "keypoints": np.round(k, 3).ravel().tolist(),
                    "score": round(float(rng.uniform(0.1, 1.0)), 3)})
    return res


def ours_on_files(gt_file: Path, res_file: Path, **kw) -> dict:
    gt = read_dataset(gt_file)
    return coco_keypoint_eval(gt, read_predictions(res_file, gt), **kw)


# ----------------------------------------------------------------------------- the real COCO fixture
@pytest.mark.parametrize("noise,drop,seed", [(0.5, 0.0, 0), (3.0, 0.1, 1), (8.0, 0.2, 2), (14.0, 0.3, 3)])
def test_coco_fixture_equals_pycocotools(shared_data, tmp_path, noise, drop, seed):
    gt_file = shared_data / "mmpose_coco" / "coco" / "test_coco.json"
    d = json.loads(gt_file.read_text())
    rng = np.random.default_rng(seed)
    res = perturbed_results(d, rng, noise, drop)
    # a false positive and a duplicate with a lower score
    fp = np.asarray(res[0]["keypoints"]).reshape(-1, 3).copy()
    fp[:, :2] += 120
    res.append({"image_id": res[0]["image_id"], "category_id": 1, "keypoints": fp.ravel().tolist(), "score": 0.05})
    res.append(dict(res[1], score=0.01))
    res_file = tmp_path / "res.json"
    res_file.write_text(json.dumps(res))
    ours = ours_on_files(gt_file, res_file)
    ref = reference_stats(gt_file, res_file)
    assert_same(ours, ref)
    assert 0.0 < ours["AP"] <= 1.0
    if noise >= 3:
        assert ours["AP"] < 1.0


def test_perfect_prediction_gives_ap_1(shared_data, tmp_path):
    gt_file = shared_data / "mmpose_coco" / "coco" / "test_coco.json"
    d = json.loads(gt_file.read_text())
    res = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
           for a in d["annotations"] if a["num_keypoints"] > 0]
    res_file = tmp_path / "res.json"
    res_file.write_text(json.dumps(res))
    ours = ours_on_files(gt_file, res_file)
    assert ours["AP"] == 1.0 and ours["AR"] == 1.0 and ours["AP50"] == 1.0
    assert_same(ours, reference_stats(gt_file, res_file))


def test_empty_predictions_give_ap_0_not_a_crash(shared_data, tmp_path):
    gt_file = shared_data / "mmpose_coco" / "coco" / "test_coco.json"
    res_file = tmp_path / "res.json"
    res_file.write_text("[]")
    ours = ours_on_files(gt_file, res_file)
    assert ours["AP"] == 0.0 and ours["AR"] == 0.0
    full = evaluate(read_dataset(gt_file), read_predictions(res_file, read_dataset(gt_file)))
    assert full["AP"] == 0.0 and full["PCK@0.05"] == 0.0 and full["EPE"] is None


@pytest.mark.parametrize("folder,name", [("mmpose_onehand10k/onehand10k", "test_onehand10k.json"),
                                         ("mmpose_animalpose/animalpose", "test_animalpose.json")])
def test_other_keypoint_sets_equal_pycocotools(shared_data, tmp_path, folder, name):
    gt_file = shared_data / folder / name
    d = json.loads(gt_file.read_text())
    gt = read_dataset(gt_file)
    k = gt.spec.num_keypoints
    assert k in (20, 21)
    sigmas = np.linspace(0.02, 0.09, k)
    # pycocotools needs 'num_keypoints' on every GT annotation (onehand10k's json has none)
    for a in d["annotations"]:
        a["num_keypoints"] = int((np.asarray(a["keypoints"]).reshape(-1, 3)[:, 2] > 0).sum())
    ref_gt = tmp_path / "gt.json"
    ref_gt.write_text(json.dumps(d))
    for seed, noise in ((0, 2.0), (1, 9.0)):
        res = perturbed_results(d, np.random.default_rng(seed), noise)
        res_file = tmp_path / f"res{seed}.json"
        res_file.write_text(json.dumps(res))
        ours = coco_keypoint_eval(gt, read_predictions(res_file, gt), sigmas=sigmas)
        assert_same(ours, reference_stats(ref_gt, res_file, sigmas))
        assert ours["AP"] is not None


# ----------------------------------------------------------------------------- generated cases
def generated_gt(rng, k: int, n_images: int = 6, crowd: bool = True) -> dict:
    images, anns = [], []
    aid = 100
    for i in range(1, n_images + 1):
        images.append({"id": i * 7, "file_name": f"im{i}.jpg", "width": 640, "height": 480})
        for p in range(int(rng.integers(1, 5))):  # several people per image
            w, h = rng.uniform(30, 200, 2)
            x0, y0 = rng.uniform(0, 400), rng.uniform(0, 250)
            xy = np.c_[rng.uniform(x0, x0 + w, k), rng.uniform(y0, y0 + h, k)]
            v = rng.choice([0, 1, 2], k, p=[0.25, 0.25, 0.5])  # missing keypoints
            kp = np.c_[np.where(v[:, None] > 0, xy, 0), v]
            anns.append({"id": aid, "image_id": i * 7, "category_id": 1, "iscrowd": 0, "keypoints": kp.ravel().tolist(),
                         "num_keypoints": int((v > 0).sum()), "bbox": [x0, y0, w, h], "area": 0.6 * w * h})
            aid += 1
        if crowd and i % 2 == 0:  # a crowd region: no keypoints, ignore region
            anns.append({"id": aid, "image_id": i * 7, "category_id": 1, "iscrowd": 1,
                         "keypoints": [0] * (3 * k), "num_keypoints": 0, "bbox": [10, 10, 300, 200],
                         "area": 40000.0})
            aid += 1
    names = [f"part{j}" for j in range(k)]
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "animal", "keypoints": names, "skeleton": []}]}


def generated_results(d: dict, rng, k: int) -> list:
    res = []
    for a in d["annotations"]:
        if a["iscrowd"]:
            # a detection inside the crowd region: matched to the ignore region, not a false positive
            xy = np.c_[rng.uniform(20, 300, k), rng.uniform(20, 200, k)]
            res.append({"image_id": a["image_id"], "category_id": 1,
                        "keypoints": np.c_[xy, np.ones(k)].ravel().tolist(), "score": 0.4})
            continue
        if rng.uniform() < 0.15:
            continue
        kp = np.asarray(a["keypoints"], float).reshape(-1, 3)
        xy = kp[:, :2] + rng.normal(0, rng.uniform(1, 12), (k, 2))
        res.append({"image_id": a["image_id"], "category_id": 1,
                    "keypoints": np.c_[xy, rng.uniform(0, 1, k)].ravel().tolist(),
                    "score": float(rng.uniform(0.2, 1))})
    return res


@pytest.mark.parametrize("k,seed", [(4, 0), (4, 1), (17, 2), (9, 3)])
def test_generated_crowd_missing_multi_person_equal_pycocotools(tmp_path, k, seed):
    rng = np.random.default_rng(seed)
    d = generated_gt(rng, k)
    res = generated_results(d, rng, k)
    gt_file, res_file = tmp_path / "gt.json", tmp_path / "res.json"
    gt_file.write_text(json.dumps(d))
    res_file.write_text(json.dumps(res))
    sigmas = [0.03, 0.05, 0.08, 0.1] if k == 4 else (COCO_SIGMAS if k == 17 else None)
    gt = read_dataset(gt_file)
    assert any(inst.iscrowd for _, inst in gt.iter_instances())
    ours = coco_keypoint_eval(gt, read_predictions(res_file, gt), sigmas=sigmas)
    # pycocotools' default sigmas are COCO's 17: the reference gets ours for other counts
    ref_sigmas = sigmas if sigmas is not None else list(gt.spec.sigmas)
    assert_same(ours, reference_stats(gt_file, res_file, ref_sigmas))


def test_custom_sigmas_change_the_result(tmp_path):
    rng = np.random.default_rng(5)
    d = generated_gt(rng, 4, crowd=False)
    res = generated_results(d, rng, 4)
    gt_file, res_file = tmp_path / "gt.json", tmp_path / "res.json"
    gt_file.write_text(json.dumps(d))
    res_file.write_text(json.dumps(res))
    gt = read_dataset(gt_file)
    pred = read_predictions(res_file, gt)
    tight = coco_keypoint_eval(gt, pred, sigmas=[0.01] * 4)
    loose = coco_keypoint_eval(gt, pred, sigmas=[0.2] * 4)
    assert tight["AP"] < loose["AP"]
    with pytest.raises(EvaluationError, match="3 OKS sigmas for 4 keypoints"):
        coco_keypoint_eval(gt, pred, sigmas=[0.1] * 3)


def test_vectorised_oks_and_load_results_identical_to_pycocotools(tmp_path):
    rng = np.random.default_rng(11)
    d = generated_gt(rng, 17, n_images=25)
    res = generated_results(d, rng, 17)
    gt_file, res_file = tmp_path / "gt.json", tmp_path / "res.json"
    gt_file.write_text(json.dumps(d))
    res_file.write_text(json.dumps(res))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_file))
        ref_dt = coco_gt.loadRes(str(res_file))
        our_dt = _load_results(coco_gt, json.loads(res_file.read_text()), None)
        for ann_id, ann in ref_dt.anns.items():
            ours = our_dt.anns[ann_id]
            assert ours["area"] == ann["area"] and list(ours["bbox"]) == list(ann["bbox"])
        e_ref = COCOeval(coco_gt, ref_dt, "keypoints")
        e_ours = _cocoeval_class()(coco_gt, ref_dt, "keypoints")
        e_ref.evaluate()
        e_ours.evaluate()
    compared = 0
    for key, ref in e_ref.ious.items():
        if len(ref):
            assert np.array_equal(e_ours.ious[key], ref), key  # bit for bit
            compared += 1
        else:
            assert len(e_ours.ious[key]) == 0
    assert compared >= 20


# ----------------------------------------------------------------------------- rescoring and OKS-NMS
def _two_person_gt() -> KeypointDataset:
    spec = KeypointSpec.from_names(["a", "b", "c"], sigmas=[0.05, 0.05, 0.05])
    g1 = Instance(keypoints=[[10, 10, 2], [20, 10, 2], [15, 30, 2]], bbox=[5, 5, 20, 30], area=400.0, id=1)
    g2 = Instance(keypoints=[[100, 10, 2], [110, 10, 2], [105, 30, 2]], bbox=[95, 5, 20, 30], area=400.0, id=2)
    return KeypointDataset(spec=spec, images=[ImageRecord("x.jpg", 200, 100, [g1, g2], id=1)])


def test_rescore_modes_follow_mmpose():
    inst = Instance(keypoints=np.zeros((4, 3)), score=0.5, keypoint_scores=[0.9, 0.1, 0.5, 0.3])
    assert instance_score(inst, "none") == 0.5
    assert instance_score(inst, "keypoint_mean", 0.2) == pytest.approx((0.9 + 0.5 + 0.3) / 3)
    assert instance_score(inst, "instance_x_keypoint", 0.2) == pytest.approx(0.5 * (0.9 + 0.5 + 0.3) / 3)
    assert instance_score(Instance(keypoints=np.zeros((2, 3)), keypoint_scores=[0.1, 0.1]), "keypoint_mean") == 0.0
    with pytest.raises(EvaluationError, match="rescore"):
        instance_score(inst, "bogus")  # type: ignore[arg-type]


def test_rescore_changes_ranking_like_rescored_file(tmp_path):
    gt = _two_person_gt()
    good = Instance(keypoints=[[10, 10, 2], [20, 10, 2], [15, 30, 2]], score=0.3, keypoint_scores=[0.9, 0.9, 0.9])
    bad = Instance(keypoints=[[40, 10, 2], [50, 10, 2], [45, 30, 2]], score=0.9, keypoint_scores=[0.1, 0.25, 0.25])
    pred = [[bad, good]]
    plain = coco_keypoint_eval(gt, pred)
    rescored = coco_keypoint_eval(gt, pred, rescore="instance_x_keypoint")
    # the same numbers as pycocotools on a file holding the re-scored results
    gt_dict_file = tmp_path / "gt.json"
    from posetune.evaluation.coco import coco_ground_truth

    gt_dict_file.write_text(json.dumps(coco_ground_truth(gt)))
    for scores, ours in (((0.9, 0.3), plain), ((0.9 * 0.25, 0.3 * 0.9), rescored)):
        res = [{"image_id": 1, "category_id": 1, "score": s,
                "keypoints": np.c_[p.keypoints[:, :2], p.keypoint_scores].ravel().tolist()}
               for p, s in zip((bad, good), scores)]
        res_file = tmp_path / "r.json"
        res_file.write_text(json.dumps(res))
        assert_same(ours, reference_stats(gt_dict_file, res_file, [0.05] * 3))
    assert rescored["AP"] > plain["AP"]


def test_oks_nms_removes_duplicates_keeps_best():
    base = np.array([[10, 10, 2], [20, 10, 2], [15, 30, 2]], float)
    a = Instance(keypoints=base + [0.5, 0.5, 0], score=0.9, area=400.0)  # near-duplicate, lower score
    b = Instance(keypoints=base, score=0.95, area=400.0)
    c = Instance(keypoints=base + [80, 0, 0], score=0.5, area=400.0)  # another person
    assert oks_nms([a, b, c], thr=0.9, sigmas=[0.05] * 3) == [1, 2]
    assert oks_nms([a, b, c], thr=1.0, sigmas=[0.05] * 3) == [0, 1, 2]
    assert oks_nms([], 0.9) == []
    gt = _two_person_gt()
    dup_eval = coco_keypoint_eval(gt, [[a, b, c]])
    nms_eval = coco_keypoint_eval(gt, [[a, b, c]], oks_nms_thr=0.9)
    assert nms_eval["AP"] >= dup_eval["AP"]
    assert nms_eval == coco_keypoint_eval(gt, [[b, c]])


# ----------------------------------------------------------------------------- areas, per keypoint, whole body
def test_missing_area_and_box_is_reported_not_guessed():
    spec = KeypointSpec.from_names(["a", "b"])
    gt = KeypointDataset(spec=spec, images=[ImageRecord("f.png", 10, 10, [Instance(keypoints=[[1, 1, 2], [5, 5, 2]],
                                                                                    id=3)], id=1)])
    pred = [[Instance(keypoints=[[1, 1, 2], [5, 5, 2]])]]
    with pytest.raises(MissingAreaError, match=r"image 1 \('f.png'\), instance 3"):
        coco_keypoint_eval(gt, pred)
    out = evaluate(gt, pred)
    assert out["AP"] is None and any("COCO AP not computed" in n for n in out["info"]["notes"])
    assert out["EPE"] == 0.0 and out["PCK@0.05"] == 1.0


def test_bbox_area_factor_used_without_area():
    spec = KeypointSpec.from_names(["a", "b"], sigmas=[0.1, 0.1])
    gt = KeypointDataset(spec=spec, images=[ImageRecord("f.png", 100, 100, [
        Instance(keypoints=[[10, 10, 2], [50, 50, 2]], bbox=[0, 0, 60, 60], id=1)], id=1)])
    pred = [[Instance(keypoints=[[14, 10, 2], [50, 54, 2]], score=1.0)]]
    full = coco_keypoint_eval(gt, pred)
    shrunk = coco_keypoint_eval(gt, pred, bbox_area_factor=0.05)
    assert full["AP"] > shrunk["AP"]


def test_per_keypoint_oks_hand_computed():
    gt = _two_person_gt()
    pred = [[Instance(keypoints=[[13, 14, 2], [20, 10, 2], [15, 30, 0]]),
             Instance(keypoints=[[100, 10, 2], [110, 10, 2], [105, 30, 2]])]]
    m = match_instances(gt, pred)
    oks = per_keypoint_oks(m, [0.05] * 3)
    var = (2 * 0.05) ** 2
    expected_a = (np.exp(-25 / var / 400 / 2) + 1.0) / 2
    assert oks[0] == pytest.approx(expected_a, rel=1e-6)
    assert oks[1] == pytest.approx(1.0)
    assert oks[2] == pytest.approx(0.5)  # the first person's third point is not predicted: scores 0


def test_wholebody_per_part_follows_xtcocotools_protocol(shared_data, tmp_path):
    gt_file = shared_data / "mmpose_coco" / "coco" / "test_coco_wholebody.json"
    d = json.loads(gt_file.read_text())
    gt = read_dataset(gt_file)
    assert gt.spec.num_keypoints == 133
    rng = np.random.default_rng(4)
    fields = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")
    res = perturbed_results(d, rng, 4.0, drop=0.1, fields=fields)
    for r in res[::3]:  # some predictions without a left hand (all scores 0): dropped for that part
        kp = np.asarray(r["keypoints"]).reshape(-1, 3)
        kp[91:112, 2] = 0
        r["keypoints"] = kp.ravel().tolist()
    res_file = tmp_path / "res.json"
    res_file.write_text(json.dumps(res))
    ours = coco_wholebody_eval(gt, read_predictions(res_file, gt))
    assert set(ours) == {"body", "foot", "face", "lefthand", "righthand", "wholebody"}
    sig = np.asarray(gt.spec.sigmas)
    for part, idx in [*gt.spec.parts, ("wholebody", tuple(range(133)))]:
        idx = np.asarray(idx)
        # the protocol written out with plain pycocotools: part keypoints and sigmas, the person's area,
        # GT ignored without labelled part points, predictions without positive part scores dropped,
        # prediction areas from the 17 body points (what xtcocotools' loadRes computes)
        part_gt = {"images": d["images"], "categories": d["categories"], "annotations": []}
        for a in d["annotations"]:
            kp = np.concatenate([np.asarray(a[f], float).reshape(-1, 3) for f in fields])[idx]
            part_gt["annotations"].append(dict(id=a["id"], image_id=a["image_id"], category_id=1, iscrowd=a["iscrowd"],
                                               bbox=a["bbox"], area=a["area"], keypoints=kp.ravel().tolist(),
                                               num_keypoints=int((kp[:, 2] > 0).sum())))
        part_res, body_areas = [], []
        for r in res:
            kp = np.asarray(r["keypoints"]).reshape(-1, 3)
            if not (kp[idx, 2] > 0).any():
                continue
            part_res.append(dict(r, keypoints=kp[idx].ravel().tolist()))
            body = kp[:17]
            body_areas.append((body[:, 0].max() - body[:, 0].min()) * (body[:, 1].max() - body[:, 1].min()))
        (tmp_path / "pgt.json").write_text(json.dumps(part_gt))
        (tmp_path / "pres.json").write_text(json.dumps(part_res))
        with contextlib.redirect_stdout(io.StringIO()):
            cg = COCO(str(tmp_path / "pgt.json"))
            cd = cg.loadRes(str(tmp_path / "pres.json"))
            for n, area in enumerate(body_areas):
                cd.anns[n + 1]["area"] = area
            ev = COCOeval(cg, cd, "keypoints")
            ev.params.kpt_oks_sigmas = sig[idx]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        assert_same(ours[part], {k: (None if v == -1 else float(v)) for k, v in zip(AP_KEYS, ev.stats)})
    assert ours["body"]["AP"] > 0.5
    full = evaluate(gt, read_predictions(res_file, gt), metrics=("coco",), per_keypoint=False)
    assert full["parts"]["lefthand"] == ours["lefthand"]


def test_ground_truth_file_as_label_format_predictions_scores_perfectly(shared_data):
    """A label file read as predictions: empty annotations (no labelled point) are not predictions."""
    gt_file = shared_data / "mmpose_coco" / "coco" / "test_coco_wholebody.json"
    gt = read_dataset(gt_file)
    assert any(inst.num_labelled == 0 for _, inst in gt.iter_instances())
    out = evaluate(gt, read_predictions(gt_file, gt), metrics=("coco", "pck", "epe"))
    assert out["AP"] == 1.0 and all(p["AP"] == 1.0 for p in out["parts"].values())
    assert out["PCK@0.05"] == 1.0 and out["EPE"] == 0.0 and out["info"]["num_unmatched_gt"] == 0
