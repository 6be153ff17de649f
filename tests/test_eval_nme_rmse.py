"""DeepLabCut RMSE (with p-cutoff) and NME, by hand and against the published definitions on real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from posetune.data.formats import read_dataset
from posetune.data.presets import COCO17
from posetune.data.records import ImageRecord, Instance, KeypointDataset
from posetune.data.spec import KeypointSpec
from posetune.errors import EvaluationError
from posetune.evaluation import evaluate
from posetune.evaluation.nme import eye_indices, resolve_nme_norm

DLC_CSV = ("dlc_openfield", "openfield-Pranav-2018-10-30", "labeled-data", "m4s1", "CollectedData_Pranav.csv")


def noisy_copy(gt: KeypointDataset, rng, sigma: float, with_scores: bool = True) -> KeypointDataset:
    """Predictions: every GT instance moved by Gaussian noise, likelihoods uniform in [0, 1)."""
    images = []
    for rec in gt.images:
        insts = []
        for inst in rec.instances:
            kp = inst.keypoints.copy()
            kp[:, :2] += rng.normal(0, sigma, (len(kp), 2))
            kp[:, 2] = 2
            scores = rng.uniform(0, 1, len(kp)) if with_scores else None
            insts.append(Instance(keypoints=kp, keypoint_scores=scores, score=1.0))
        images.append(ImageRecord(rec.file_name, rec.width, rec.height, insts))
    return KeypointDataset(spec=gt.spec, images=images, root=gt.root)


# ----------------------------------------------------------------------------- RMSE
def test_dlc_rmse_hand_computed():
    spec = KeypointSpec.from_names(["snout", "leftear", "rightear"])
    g = Instance(keypoints=[[10, 10, 2], [20, 20, 2], [30, 30, 2]], bbox=[0, 0, 50, 50])
    p = Instance(keypoints=[[13, 14, 2], [26, 28, 2], [30, 30, 2]], keypoint_scores=[0.9, 0.5, 0.6])
    ds = KeypointDataset(spec=spec, images=[ImageRecord("a.png", 64, 64, [g])])
    out = evaluate(ds, [[p]], metrics=("rmse",), rmse_pcutoff=0.6)
    assert out["RMSE"] == pytest.approx((5 + 10 + 0) / 3)  # DeepLabCut: mean distance
    assert out["RMSE_pcutoff"] == pytest.approx((5 + 0) / 2)  # 0.5 < 0.6 left out; 0.6 kept (>=)
    assert out["info"]["root_mean_square"] == pytest.approx(np.sqrt((25 + 100 + 0) / 3))
    assert out["info"]["pcutoff_kept_fraction"] == pytest.approx(2 / 3)
    assert out["per_keypoint"]["leftear"]["RMSE"] == pytest.approx(10) and out["per_keypoint"]["leftear"][
        "RMSE_pcutoff"] is None
    no_scores = evaluate(ds, [[Instance(keypoints=p.keypoints)]], metrics=("rmse",))
    assert no_scores["RMSE"] == out["RMSE"] and no_scores["RMSE_pcutoff"] is None
    assert any("no keypoint scores" in n for n in no_scores["info"]["notes"])


def test_dlc_rmse_equals_deeplabcut_definition_on_real_project(shared_data):
    csv = shared_data.joinpath(*DLC_CSV)
    gt = read_dataset(csv)
    assert gt.num_images == 116 and gt.spec.keypoints == ("snout", "leftear", "rightear", "tailbase")
    pred = noisy_copy(gt, np.random.default_rng(0), 4.0)
    ours = evaluate(gt, pred, metrics=("rmse", "epe"), rmse_pcutoff=0.6)

    # DeepLabCut's evaluate_network: (scorer, bodypart, x/y) frames; RMSE = sqrt(dx² + dy²) per point,
    # nanmean over all images and bodyparts; p-cutoff keeps likelihood >= pcutoff
    labels = pd.read_csv(csv, header=[0, 1, 2], index_col=0)["Pranav"]
    by_name = {rec.file_name: rec for rec in pred.images}
    rows = []
    for name in labels.index:
        inst = by_name[name].instances[0] if by_name[name].instances else None
        row = {}
        for j, bp in enumerate(gt.spec.keypoints):
            row[(bp, "x")], row[(bp, "y")] = inst.keypoints[j, :2] if inst is not None else (np.nan, np.nan)
            row[(bp, "likelihood")] = inst.keypoint_scores[j] if inst is not None else np.nan
        rows.append(row)
    machine = pd.DataFrame(rows, index=labels.index)
    machine.columns = pd.MultiIndex.from_tuples(machine.columns)
    sq = (labels - machine[labels.columns]) ** 2
    rmse = np.sqrt(sq.xs("x", level=1, axis=1) + sq.xs("y", level=1, axis=1))
    mask = machine.xs("likelihood", level=1, axis=1) >= 0.6
    assert ours["RMSE"] == pytest.approx(np.nanmean(rmse.values.flatten()), rel=1e-12)
    assert ours["RMSE_pcutoff"] == pytest.approx(np.nanmean(rmse[mask].values.flatten()), rel=1e-12)
    assert ours["EPE"] == pytest.approx(ours["RMSE"], rel=1e-12)
    assert ours["AP"] is None  # not requested; DLC labels have no boxes anyway


# ----------------------------------------------------------------------------- NME
def test_nme_wflw_interocular_outer_eye_corners(shared_data):
    gt = read_dataset(shared_data / "mmpose_wflw" / "wflw" / "test_wflw.json")
    assert gt.spec.num_keypoints == 98 and resolve_nme_norm(gt.spec) == "interocular"
    assert eye_indices(gt.spec) == (60, 72)
    pred = noisy_copy(gt, np.random.default_rng(1), 1.5)
    out = evaluate(gt, pred, metrics=("nme",))
    errs = []
    for g, p in zip(gt.images, pred.images):
        for gi, pi in zip(g.instances, p.instances):  # one face per instance, same order
            iod = np.linalg.norm(gi.keypoints[60, :2] - gi.keypoints[72, :2])
            errs.append(np.linalg.norm(pi.keypoints[:, :2] - gi.keypoints[:, :2], axis=1) / iod)
    assert out["NME"] == pytest.approx(np.mean(np.concatenate(errs)), rel=1e-12)
    assert out["info"]["nme_norm"] == "interocular"
    assert 0 < out["NME"] < 0.2


def test_nme_hands_use_box_size(shared_data):
    gt = read_dataset(shared_data / "mmpose_onehand10k" / "onehand10k" / "test_onehand10k.json")
    assert resolve_nme_norm(gt.spec) == "bbox"
    pred = noisy_copy(gt, np.random.default_rng(2), 3.0)
    errs, diag_errs = [], []
    for g, p in zip(gt.images, pred.images):
        for gi, pi in zip(g.instances, p.instances):
            lab = gi.keypoints[:, 2] > 0
            d = np.linalg.norm(pi.keypoints[lab, :2] - gi.keypoints[lab, :2], axis=1)
            w, h = gi.bbox[2:]
            errs.append(d / np.sqrt(w * h))
            diag_errs.append(d / np.hypot(w, h))
    out = evaluate(gt, pred, metrics=("nme",))
    assert out["NME"] == pytest.approx(np.mean(np.concatenate(errs)), rel=1e-12)
    diag = evaluate(gt, pred, metrics=("nme",), nme_norm="bbox_diag")
    assert diag["NME"] == pytest.approx(np.mean(np.concatenate(diag_errs)), rel=1e-12)


def test_nme_68_points_and_named_eyes():
    spec68 = KeypointSpec.from_names([f"p{i}" for i in range(68)], name="300w")
    assert eye_indices(spec68) == (36, 45)
    kp = np.c_[np.arange(68.0), np.zeros(68), np.full(68, 2)]
    kp[36, :2], kp[45, :2] = [0, 0], [40, 0]  # inter-ocular 40 px
    g = Instance(keypoints=kp, bbox=[0, 0, 70, 10])
    p = Instance(keypoints=np.c_[kp[:, :2] + [2, 0], np.full(68, 2)])
    ds = KeypointDataset(spec=spec68, images=[ImageRecord("f.png", 100, 100, [g])])
    assert evaluate(ds, [[p]], metrics=("nme",))["NME"] == pytest.approx(2 / 40)
    assert eye_indices(COCO17) == (1, 2)  # left_eye / right_eye by name


def test_nme_does_not_apply_to_bodies_unless_forced():
    kp = np.zeros((17, 3))
    kp[:, :2] = np.c_[np.linspace(10, 90, 17), np.linspace(5, 95, 17)]
    kp[:, 2] = 2
    g = Instance(keypoints=kp, bbox=[0, 0, 100, 100])
    p = Instance(keypoints=np.c_[kp[:, :2] + [0, 3], np.full(17, 2)])
    ds = KeypointDataset(spec=COCO17, images=[ImageRecord("b.png", 100, 100, [g])])
    auto = evaluate(ds, [[p]], metrics=("nme",))
    assert auto["NME"] is None and auto["info"]["nme_norm"] is None
    assert any("NME not computed" in n for n in auto["info"]["notes"])
    iod = np.linalg.norm(kp[1, :2] - kp[2, :2])
    forced = evaluate(ds, [[p]], metrics=("nme",), nme_norm="interocular")
    assert forced["NME"] == pytest.approx(3 / iod)


def test_nme_zero_interocular_names_instance_or_skips():
    spec = KeypointSpec.from_names([f"p{i}" for i in range(68)], name="300w")
    kp = np.c_[np.arange(68.0), np.zeros(68), np.full(68, 2)]
    ok = Instance(keypoints=kp.copy(), id=1)
    bad = kp.copy()
    bad[45, 2] = 0  # right outer eye corner not labelled
    ds = KeypointDataset(spec=spec, images=[ImageRecord("f.png", 100, 100, [ok, Instance(keypoints=bad, id=2)],
                                                         id=4)])
    preds = [[Instance(keypoints=kp.copy()), Instance(keypoints=bad.copy())]]
    with pytest.raises(EvaluationError, match=r"image 4 \('f.png'\), instance id 2"):
        evaluate(ds, preds, metrics=("nme",), match="id")
    preds = [[Instance(keypoints=kp.copy(), id=1), Instance(keypoints=np.c_[bad[:, :2], np.full(68, 2)], id=2)]]
    out = evaluate(ds, preds, metrics=("nme",), on_zero_norm="skip")
    assert out["NME"] == 0.0 and out["info"]["nme_skipped_instances"] == 1
    with pytest.raises(EvaluationError, match="unknown NME normalisation 'eyes'"):
        evaluate(ds, preds, metrics=("nme",), nme_norm="eyes")  # type: ignore[arg-type]
