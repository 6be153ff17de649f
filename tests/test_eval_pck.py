"""PCK / PCKh / AUC / EPE / swap rate and the GT-prediction pairing, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from posetune.data.presets import COCO17, MPII16
from posetune.data.records import ImageRecord, Instance, KeypointDataset
from posetune.data.spec import KeypointSpec
from posetune.errors import EvaluationError
from posetune.evaluation import evaluate, match_instances, oks_matrix
from posetune.evaluation.pck import auc, normalizers, pck

SPEC = KeypointSpec.from_names(["head", "left_paw", "right_paw", "tail"], name="toy", sigmas=[0.05] * 4)


def gt_instance(x0=0.0, y0=0.0, v=(2, 2, 2, 2), bbox=(0, 0, 100, 50), iid=None) -> Instance:
    pts = np.array([[10, 10], [30, 20], [60, 20], [90, 40]], float) + [x0, y0]
    return Instance(keypoints=np.c_[pts, v], bbox=None if bbox is None else np.add(bbox, [x0, y0, 0, 0]), id=iid)


def moved(inst: Instance, offsets, score=None, keypoint_scores=None, iid=None) -> Instance:
    kp = inst.keypoints.copy()
    kp[:, :2] += np.asarray(offsets, float)
    kp[:, 2] = 2
    return Instance(keypoints=kp, score=score, keypoint_scores=keypoint_scores, id=iid)


def dataset(*images: list[Instance], spec: KeypointSpec = SPEC) -> KeypointDataset:
    return KeypointDataset(spec=spec, images=[ImageRecord(f"img{i}.png", 200, 200, list(insts), id=i + 1)
                                              for i, insts in enumerate(images)])


def test_pck_epe_hand_computed_with_unlabelled_and_unmatched():
    # bbox 100 x 50 -> normaliser max(w, h) = 100 px: PCK@0.05 = error < 5 px, PCK@0.1 = error < 10 px
    g1 = gt_instance(v=(2, 2, 1, 0))  # tail not labelled: its (huge) error must not count
    g2 = gt_instance()  # in an image without prediction: all 4 keypoints wrong
    p1 = moved(g1, [[3, 4], [6, 8], [0, 0], [500, 500]])  # errors 5, 10, 0 (strict <: 5 is not < 5)
    out = evaluate(dataset([g1], [g2]), [[p1], []], metrics=("pck", "epe"))
    # labelled: 3 in g1 + 4 in g2 = 7; correct@0.05: only the 0 px one; correct@0.1: 5 px and 0 px
    assert out["PCK@0.05"] == pytest.approx(1 / 7)
    assert out["PCK@0.1"] == pytest.approx(2 / 7)
    assert out["EPE"] == pytest.approx((5 + 10 + 0) / 3)  # unmatched g2 is not in the distance mean
    kp = out["per_keypoint"]
    assert kp["head"]["PCK@0.1"] == pytest.approx(1 / 2) and kp["head"]["EPE"] == pytest.approx(5.0)
    assert kp["tail"]["PCK@0.1"] == 0.0 and kp["tail"]["labelled"] == 1  # only g2's tail, unmatched
    assert out["info"]["num_unmatched_gt"] == 1 and out["info"]["num_matched"] == 1
    assert out["AP"] is None and out["NME"] is None  # not asked for


def test_pck_average_keypoint_mean_is_mmpose_style():
    g1, g2 = gt_instance(v=(2, 2, 2, 0)), gt_instance()
    p1 = moved(g1, [[0, 0], [20, 0], [20, 0], [0, 0]])
    p2 = moved(g2, [[0, 0], [0, 0], [0, 0], [20, 0]])
    ds = dataset([g1], [g2])
    pooled = evaluate(ds, [[p1], [p2]], metrics=("pck",), pck_thresholds=(0.1,))
    macro = evaluate(ds, [[p1], [p2]], metrics=("pck",), pck_thresholds=(0.1,), pck_average="keypoint_mean")
    assert pooled["PCK@0.1"] == pytest.approx(4 / 7)  # correct: head x2, left/right paw of g2
    assert macro["PCK@0.1"] == pytest.approx(np.mean([1.0, 0.5, 0.5, 0.0]))
    # MMPose's keypoint_pck_accuracy written out: per-keypoint accuracy over valid points, then mean
    dist = np.array([[0, 20, 20, np.nan], [0, 0, 0, 20]]) / 100
    per_kp = [np.mean(col[~np.isnan(col)] < 0.1) for col in dist.T]
    assert macro["PCK@0.1"] == pytest.approx(np.mean(per_kp))


def test_auc_hand_computed_mmpose_pixel_thresholds():
    g = gt_instance()
    p = moved(g, [[0, 0], [1, 0], [10, 0], [40, 0]])
    out = evaluate(dataset([g]), [[p]], metrics=("auc",))
    # thresholds 0, 1.5, ..., 28.5 px: d=0 correct at 19 of 20, d=1 at 19, d=10 at 13 (10.5..28.5), d=40 never
    assert out["AUC"] == pytest.approx((19 + 19 + 13 + 0) / 80)
    perfect = evaluate(dataset([g]), [[moved(g, np.zeros((4, 2)))]], metrics=("auc",))
    assert perfect["AUC"] == pytest.approx(0.95)  # left Riemann sum from 0 (MMPose): (steps-1)/steps
    # normalised AUC: thresholds in units of the bbox normaliser (100 px) up to 0.5
    norm = evaluate(dataset([g]), [[p]], metrics=("auc",), auc_norm="bbox", auc_max=0.5, auc_steps=10)
    # thresholds 0,5,...,45 px: d=0 -> 9, d=1 -> 9, d=10 -> 7 (15..45), d=40 -> 1 (45)
    assert norm["AUC"] == pytest.approx((9 + 9 + 7 + 1) / 40)


def test_torso_and_head_normalisers():
    kp = np.zeros((17, 3))
    kp[5] = [100, 100, 2]  # left_shoulder
    kp[12] = [130, 140, 2]  # right_hip -> diagonal 50
    kp[6] = [60, 100, 2]  # right_shoulder
    kp[11] = [100, 160, 1]  # left_hip -> diagonal (60,100)-(100,160) = sqrt(40² + 60²), the longer one
    g = Instance(keypoints=kp, bbox=[50, 50, 100, 150])
    ds = dataset([g], spec=COCO17)
    m = match_instances(ds, [[]])
    assert normalizers(m, ds, "torso")[0] == pytest.approx(np.hypot(40, 60))
    assert normalizers(m, ds, "bbox")[0] == 150
    with pytest.raises(EvaluationError, match="head_top"):
        normalizers(m, ds, "head")

    mp = np.zeros((16, 3))
    mp[8] = [100, 100, 2]  # upper_neck
    mp[9] = [100, 70, 2]  # head_top: head segment 30 px
    mp[0] = [120, 300, 2]
    ds2 = dataset([Instance(keypoints=mp, bbox=[80, 60, 60, 250])], spec=MPII16)
    m2 = match_instances(ds2, [[]])
    assert normalizers(m2, ds2, "head")[0] == pytest.approx(30.0)
    boxed = Instance(keypoints=mp, bbox=[80, 60, 60, 250], extra={"head_box": [90, 60, 120, 100]})
    ds3 = dataset([boxed], spec=MPII16)
    assert normalizers(match_instances(ds3, [[]]), ds3, "head")[0] == pytest.approx(0.6 * 50.0)  # MPII SC_BIAS
    # PCKh@0.5 with the 30 px head segment: an error of 14 px counts, 16 px does not
    pred = Instance(keypoints=np.c_[mp[:, :2], np.full(16, 2)])
    pred.keypoints[9, 0] += 14  # head_top 14 px off
    pred.keypoints[0, 0] += 16  # right_ankle 16 px off
    out = evaluate(ds2, [[pred]], metrics=("pck",), pck_norm="head", pck_thresholds=(0.5,))
    assert out["per_keypoint"]["head_top"]["PCK@0.5"] == 1.0
    assert out["per_keypoint"]["right_ankle"]["PCK@0.5"] == 0.0


def test_torso_requires_named_points():
    ds = dataset([gt_instance()])
    with pytest.raises(EvaluationError, match="shoulder"):
        evaluate(ds, [[moved(gt_instance(), np.zeros((4, 2)))]], metrics=("pck",), pck_norm="torso")


def test_zero_normaliser_error_names_instance_or_skips():
    good = gt_instance(iid=5)
    flat = Instance(keypoints=[[10, 10, 2], [10, 10, 2], [0, 0, 0], [0, 0, 0]], id=9)  # no bbox, zero extent
    ds = dataset([good], [flat])
    preds = [[moved(good, np.zeros((4, 2)))], [moved(flat, np.zeros((4, 2)))]]
    with pytest.raises(EvaluationError) as e:
        evaluate(ds, preds, metrics=("pck",))
    assert "image 2 ('img1.png'), instance id 9" in str(e.value) and "zero" in str(e.value)
    out = evaluate(ds, preds, metrics=("pck",), on_zero_norm="skip")
    assert out["PCK@0.05"] == 1.0 and out["info"]["pck_skipped_instances"] == 1


def test_empty_predictions_give_zero_pck_not_a_crash():
    ds = dataset([gt_instance()], [gt_instance(), gt_instance(x0=50)])
    out = evaluate(ds, [[], []])
    assert out["PCK@0.05"] == 0.0 and out["PCK@0.1"] == 0.0 and out["AUC"] == 0.0
    assert out["EPE"] is None and out["RMSE"] is None and out["AP"] == 0.0
    assert any("no prediction could be paired" in n for n in out["info"]["notes"])


def test_swap_rate_counts_left_right_confusions():
    g1, g2 = gt_instance(), gt_instance(x0=0, y0=100)
    swapped = g1.keypoints[[0, 2, 1, 3]]
    p1 = Instance(keypoints=np.c_[swapped[:, :2], np.full(4, 2)])  # paws exchanged
    p2 = moved(g2, np.zeros((4, 2)))
    out = evaluate(dataset([g1, g2]), [[p1, p2]], metrics=("pck",), match="oks")
    assert SPEC.flip_pairs == ((1, 2),)
    assert out["swap_rate"] == pytest.approx(2 / 4)  # 2 of the 4 labelled paw points
    assert out["per_keypoint"]["left_paw"]["swap_rate"] == pytest.approx(0.5)
    assert out["per_keypoint"]["head"]["swap_rate"] is None  # not in a flip pair
    small = moved(g1, [[0, 0], [1, 0], [-1, 0], [0, 0]])  # within the margin: not a swap
    assert evaluate(dataset([g1]), [[small]], metrics=("pck",))["swap_rate"] == 0.0


def test_hungarian_pairs_people_by_oks_not_by_order():
    people = [gt_instance(x0=x, iid=i + 1) for i, x in enumerate((0, 100, 40))]
    preds = [moved(p, np.full((4, 2), 1.0)) for p in reversed(people)]  # other order, no ids
    out = evaluate(dataset(people), [preds], metrics=("epe",), match="oks")
    assert out["EPE"] == pytest.approx(np.sqrt(2))
    assert out["info"]["num_matched"] == 3 and out["info"]["matched_by_id"] == 0


def test_pairing_by_instance_id_for_top_down():
    a, b = gt_instance(iid=11), gt_instance(x0=5, iid=12)  # overlapping people
    pa = moved(a, np.full((4, 2), 3.0), iid=12)  # the prediction made from b's box, but close to a
    pb = moved(b, np.full((4, 2), 3.0), iid=11)
    by_id = evaluate(dataset([a, b]), [[pa, pb]], metrics=("epe",), match="auto")
    by_oks = evaluate(dataset([a, b]), [[pa, pb]], metrics=("epe",), match="oks")
    assert by_id["info"]["matched_by_id"] == 2
    assert by_oks["EPE"] == pytest.approx(np.hypot(3, 3))
    assert by_id["EPE"] > by_oks["EPE"]
    extra = moved(a, np.zeros((4, 2)))
    out = evaluate(dataset([a, b]), [[pa, pb, extra]], metrics=("epe",), match="id")
    assert out["info"]["num_unmatched_predictions"] == 1


def test_crowd_and_unlabelled_instances_are_not_evaluated():
    crowd = Instance(keypoints=np.zeros((4, 3)), bbox=[0, 0, 200, 200], iscrowd=True)
    empty = Instance(keypoints=np.zeros((4, 3)), bbox=[0, 0, 10, 10])
    g = gt_instance()
    out = evaluate(dataset([g, crowd, empty]), [[moved(g, np.zeros((4, 2)))]], metrics=("pck",))
    assert out["PCK@0.05"] == 1.0 and out["info"]["num_evaluated_instances"] == 1


def test_oks_matrix_matches_coco_formula():
    g = gt_instance(v=(2, 2, 0, 1))
    d = moved(g, [[3, 4], [0, 0], [100, 100], [6, 8]])
    oks = oks_matrix(g.keypoints[None], np.array([2000.0]), d.keypoints[None, :, :2], np.array([0.05] * 4))
    var = (2 * 0.05) ** 2
    e = np.array([25, 0, 100]) / var / 2000 / 2
    assert oks[0, 0] == pytest.approx(np.exp(-e).mean())


def test_bad_options_are_user_errors():
    ds = dataset([gt_instance()])
    p = [[moved(gt_instance(), np.zeros((4, 2)))]]
    for kwargs in ({"metrics": ("bogus",)}, {"pck_norm": "elbow"}, {"match": "nearest"}, {"pck_average": "x"},
                   {"on_zero_norm": "ignore"}):
        with pytest.raises(EvaluationError):
            evaluate(ds, p, **kwargs)
    with pytest.raises(EvaluationError, match="predictions for 2 images"):
        evaluate(ds, [[], []])
    m = match_instances(ds, p)
    with pytest.raises(EvaluationError):
        auc(m, np.ones(1), steps=0)
    assert pck(m, np.ones(1), [0.5])[0][0.5] == 1.0
