"""`posetune metrics ...` end to end, and reading prediction files (good and bad)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posetune.cli.main import main
from posetune.data.formats import read_dataset, write_dataset
from posetune.errors import EvaluationError
from posetune.evaluation import STABLE_KEYS, read_predictions, results_to_dataset


def run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture()
def coco_case(shared_data, tmp_path):
    gt_file = shared_data / "mmpose_coco" / "coco" / "test_coco.json"
    d = json.loads(gt_file.read_text())
    rng = np.random.default_rng(0)
    res = []
    for a in d["annotations"]:
        if a["num_keypoints"] == 0:
            continue
        k = np.asarray(a["keypoints"], float).reshape(-1, 3)
        k[:, :2] += rng.normal(0, 4, (17, 2))
        k[:, 2] = rng.uniform(0.1, 1, 17)
        res.append({"image_id": a["image_id"], "category_id": 1, "keypoints": k.ravel().tolist(),
                    "score": float(rng.uniform(0.3, 1))})
    res_file = tmp_path / "results.json"
    res_file.write_text(json.dumps(res))
    return gt_file, res_file, res


def test_metrics_coco_json_equals_pycocotools(coco_case, capsys):
    gt_file, res_file, _ = coco_case
    code, out, err = run(["metrics", "coco", "--gt", str(gt_file), "--pred", str(res_file), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert set(STABLE_KEYS) <= set(result)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_file))
        ev = COCOeval(coco_gt, coco_gt.loadRes(str(res_file)), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    for key, ref in zip(("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"), ev.stats):
        assert result[key] == pytest.approx(ref, abs=1e-9)
    assert result["PCK@0.05"] is None  # not asked for by `metrics coco`


def test_metrics_coco_table_and_options(coco_case, capsys, tmp_path):
    gt_file, res_file, _ = coco_case
    code, out, err = run(["metrics", "coco", "--gt", str(gt_file), "--pred", str(res_file), "--rescore",
                          "instance_x_keypoint", "--oks-nms", "0.9", "--per-keypoint", "--out",
                          str(tmp_path / "m.json")], capsys)
    assert code == 0, err
    assert "COCO keypoints" in out and "AP50" in out and "left_knee" in out and "OKS" in out
    assert "4 images" in err
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["info"]["rescore"] == "instance_x_keypoint" and saved["info"]["oks_nms_thr"] == 0.9
    assert 0 < saved["per_keypoint"]["nose"]["OKS"] <= 1


def test_metrics_all_pck_rmse(coco_case, capsys):
    gt_file, res_file, _ = coco_case
    code, out, err = run(["metrics", "all", "--gt", str(gt_file), "--pred", str(res_file), "--thr", "0.05,0.2",
                          "--json", "--per-keypoint"], capsys)
    assert code == 0, err
    r = json.loads(out)
    assert r["AP"] > 0.3 and r["PCK@0.2"] >= r["PCK@0.1"] >= r["PCK@0.05"] > 0
    assert r["RMSE"] == pytest.approx(r["EPE"]) and r["RMSE_pcutoff"] is not None
    assert r["NME"] is None and r["per_keypoint"]["left_ankle"]["labelled"] > 0
    code, out, err = run(["metrics", "pck", "--gt", str(gt_file), "--pred", str(res_file), "--norm", "torso",
                          "--thr", "0.2"], capsys)
    assert code == 0 and "PCK (torso)" in out and "PCK@0.2" in out
    code, out, _ = run(["metrics", "rmse", "--gt", str(gt_file), "--pred", str(res_file), "--pcutoff", "0.9",
                        "--json"], capsys)
    r = json.loads(out)
    assert code == 0 and r["info"]["rmse_pcutoff"] == 0.9 and r["RMSE_pcutoff"] is not None


def test_metrics_nme_wflw(shared_data, tmp_path, capsys):
    gt_file = shared_data / "mmpose_wflw" / "wflw" / "test_wflw.json"
    d = json.loads(gt_file.read_text())
    res = [{"image_id": a["image_id"], "category_id": 1, "score": 1.0,
            "keypoints": (np.asarray(a["keypoints"], float).reshape(-1, 3) + [1.0, -1.0, 0]).ravel().tolist()}
           for a in d["annotations"]]
    res_file = tmp_path / "r.json"
    res_file.write_text(json.dumps(res))
    code, out, err = run(["metrics", "nme", "--gt", str(gt_file), "--pred", str(res_file), "--json"], capsys)
    assert code == 0, err
    r = json.loads(out)
    iods = [np.linalg.norm(np.subtract(np.reshape(a["keypoints"], (-1, 3))[60, :2],
                                       np.reshape(a["keypoints"], (-1, 3))[72, :2])) for a in d["annotations"]]
    assert r["NME"] == pytest.approx(np.mean([np.sqrt(2) / i for i in iods]), rel=1e-9)


def test_label_format_predictions_matched_by_file_name(shared_data, tmp_path, capsys):
    """DeepLabCut labels as GT; predictions written as a COCO label file elsewhere: paired by file name."""
    csv = shared_data / "dlc_openfield" / "openfield-Pranav-2018-10-30" / "labeled-data" / "m4s1" / \
        "CollectedData_Pranav.csv"
    gt = read_dataset(csv)
    pred = gt.subset(list(range(gt.num_images))[::-1])  # other image order
    for _, inst in pred.iter_instances():
        inst.keypoints[:, 0] += 3.0
        inst.keypoints[:, 1] -= 4.0
    write_dataset(pred, tmp_path / "out" / "pred.json", "coco")
    code, out, err = run(["metrics", "rmse", "--gt", str(csv), "--pred", str(tmp_path / "out" / "pred.json"),
                          "--json"], capsys)
    assert code == 0, err
    r = json.loads(out)
    assert r["RMSE"] == pytest.approx(5.0) and r["RMSE_pcutoff"] is None
    assert r["info"]["num_matched"] == sum(1 for _, i in gt.iter_instances() if i.num_labelled)
    # COCO results cannot refer to DeepLabCut images (they have no ids): a clear error, exit 2
    res = tmp_path / "r.json"
    res.write_text(json.dumps([{"image_id": 1, "keypoints": [0] * 12, "score": 1}]))
    code, _, err = run(["metrics", "rmse", "--gt", str(csv), "--pred", str(res)], capsys)
    assert code == 2 and "no unique ids" in err and "Traceback" not in err


@pytest.mark.parametrize("mutate,needle", [
    (lambda r: r[2].update(keypoints=r[2]["keypoints"][:-3]),
     "record 2 (image_id 40083): 'keypoints' has 16 keypoints"),
    (lambda r: r[1].update(image_id=123456), "record 1 (image_id 123456): unknown image_id"),
    (lambda r: r[3]["keypoints"].__setitem__(4, float("nan")), "record 3 (image_id 196141): 'keypoints' has NaN/inf"),
    (lambda r: r[0].update(score="high"), "record 0 (image_id 785): 'score' is 'high'"),
    (lambda r: r.__setitem__(0, [1, 2, 3]), "record 0 is a list"),
])
def test_bad_prediction_files_are_one_line_errors(coco_case, tmp_path, capsys, mutate, needle):
    gt_file, _, res = coco_case
    res = json.loads(json.dumps(res))
    mutate(res)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(res))  # json.dumps writes NaN as a literal, as numpy-based writers do
    code, out, err = run(["metrics", "coco", "--gt", str(gt_file), "--pred", str(bad)], capsys)
    assert code == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "—" in err  # every message carries a hint


def test_bad_arguments_are_one_line_errors(coco_case, tmp_path, capsys):
    gt_file, res_file, _ = coco_case
    for args, needle in ((["--sigmas", "0.1,abc"], "--sigmas"), (["--sigmas", "0.1,0.2"], "2 OKS sigmas"),
                         (["--rescore", "best"], "rescore")):
        code, _, err = run(["metrics", "coco", "--gt", str(gt_file), "--pred", str(res_file), *args], capsys)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run(["metrics", "pck", "--gt", str(gt_file), "--pred", str(res_file), "--norm", "head"], capsys)
    assert code == 2 and "head_top" in err
    code, _, err = run(["metrics", "coco", "--gt", str(gt_file), "--pred", str(tmp_path / "nope.json")], capsys)
    assert code == 2 and "not found" in err


def test_results_reader_api(shared_data):
    gt = read_dataset(shared_data / "mmpose_coco" / "coco" / "test_coco.json")
    k = gt.spec.num_keypoints
    res = [{"image_id": 785, "category_id": 1, "keypoints": list(np.arange(3 * k, dtype=float)), "score": 0.7, "id": 9},
           {"image_id": 785, "keypoints": [1.0] * (3 * k), "keypoint_scores": [0.5] * k}]
    pred = results_to_dataset(res, gt, where="r.json")
    assert [len(im.instances) for im in pred.images] == [2, 0, 0, 0]
    first, second = pred.images[0].instances
    assert first.id == 9 and first.score == 0.7 and first.keypoint_scores[1] == 5.0
    assert (first.keypoints[:, 2] == 2).all() and first.keypoints[1, 0] == 3.0
    assert second.score == 1.0 and second.keypoint_scores[0] == 0.5
    with pytest.raises(EvaluationError, match="json list"):
        results_to_dataset({"annotations": []}, gt)
    with pytest.raises(EvaluationError, match="'keypoint_scores' has 3 values"):
        results_to_dataset([dict(res[0], keypoint_scores=[1, 2, 3])], gt)


def test_read_predictions_reorders_named_keypoints(shared_data, tmp_path):
    gt_file = shared_data / "mmpose_animalpose" / "animalpose" / "test_animalpose.json"
    gt = read_dataset(gt_file)
    d = json.loads(gt_file.read_text())
    names = d["categories"][0]["keypoints"]
    order = list(range(len(names)))[::-1]
    d["categories"][0]["keypoints"] = [names[i] for i in order]
    d["categories"][0].pop("skeleton", None)
    for a in d["annotations"]:
        a["keypoints"] = np.asarray(a["keypoints"]).reshape(-1, 3)[order].ravel().tolist()
    p = tmp_path / "pred.json"
    p.write_text(json.dumps(d))
    pred = read_predictions(p, gt)
    for g, q in zip(gt.images, pred.images):
        for gi, qi in zip(g.instances, q.instances):
            lab = gi.keypoints[:, 2] > 0
            assert np.allclose(gi.keypoints[lab, :2], qi.keypoints[lab, :2])
