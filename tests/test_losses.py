"""Losses: each term against hand-computed values, weighting, OHKM, expressions, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posetune.codecs.heatmap import MSRAHeatmap, UDPHeatmap
from posetune.codecs.regression import RegressionCodec
from posetune.codecs.simcc import SimCCCodec
from posetune.config.schema import LossConfig
from posetune.data.spec import KeypointSpec
from posetune.engine.losses import KeypointLoss, build_loss, parse_loss_expression
from posetune.errors import ConfigError, ModelError

SPEC3 = KeypointSpec.from_names(["nose", "left_eye", "right_eye"])
HEAT = MSRAHeatmap((16, 12), (4, 3))
SIMCC = SimCCCodec((4, 3), split_ratio=1.0)
REG = RegressionCodec((16, 16))


def loss_of(expr: str, codec, outputs, targets, spec=SPEC3, **cfg):
    module = build_loss(LossConfig(type=expr, **cfg), codec, spec)
    return module(outputs, targets)


def heat_case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(2, 3, 3, 4, generator=g)
    tgt = torch.rand(2, 3, 3, 4, generator=g)
    w = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.5]])
    return pred, {"heatmaps": tgt, "keypoint_weights": w}


def reg_case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(2, 3, 2, generator=g)
    tgt = torch.rand(2, 3, 2, generator=g)
    w = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.5]])
    return pred, {"keypoints_norm": tgt, "keypoint_weights": w}


def simcc_case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    px, py = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 3, generator=g)
    tx = torch.softmax(torch.randn(2, 3, 4, generator=g), -1)
    ty = torch.softmax(torch.randn(2, 3, 3, generator=g), -1)
    w = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.5]])
    return (px, py), {"simcc_x": tx, "simcc_y": ty, "keypoint_weights": w}


# ----------------------------------------------------------------------------- hand-computed values
def test_heatmap_mse_is_weighted_plain_mean():
    pred = torch.zeros(1, 2, 1, 2)
    tgt = torch.tensor([[[[1.0, 3.0]], [[2.0, 2.0]]]])
    w = torch.tensor([[1.0, 0.5]])
    loss, parts = loss_of("mse", HEAT, pred, {"heatmaps": tgt, "keypoint_weights": w},
                          spec=KeypointSpec.from_names(["a", "b"]))
    # (1*1 + 1*9 + 0.5*4 + 0.5*4) / 4
    assert loss.item() == pytest.approx(14 / 4)
    assert parts == {"mse": pytest.approx(3.5)}


def test_l1_smooth_l1_and_adaptive_wing_by_hand():
    pred = torch.tensor([[[[0.0, 0.2]]]])
    tgt = torch.tensor([[[[1.0, 0.0]]]])
    targets = {"heatmaps": tgt, "keypoint_weights": torch.ones(1, 1)}
    spec = KeypointSpec.from_names(["a"])
    assert loss_of("l1", HEAT, pred, targets, spec)[0].item() == pytest.approx((1.0 + 0.2) / 2)
    # beta 0.5: |1| >= beta -> 1 - 0.25; |0.2| < beta -> 0.5 * 0.04 / 0.5
    sl1 = loss_of("smooth_l1", HEAT, pred, targets, spec, smooth_l1_beta=0.5)[0].item()
    assert sl1 == pytest.approx((0.75 + 0.04) / 2)
    # adaptive wing, alpha 2.1 omega 14 epsilon 1 theta 0.5
    def awing(y, yhat):
        d, p = abs(y - yhat), 2.1 - y
        if d < 0.5:
            return 14 * math.log1p(d ** p)
        a = 14 * (1 / (1 + 0.5 ** p)) * p * 0.5 ** (p - 1)
        c = 0.5 * a - 14 * math.log1p(0.5 ** p)
        return a * d - c
    aw = loss_of("adaptive_wing", HEAT, pred, targets, spec)[0].item()
    assert aw == pytest.approx((awing(1.0, 0.0) + awing(0.0, 0.2)) / 2, rel=1e-5)


def test_wing_by_hand():
    pred = torch.tensor([[[0.0, 0.0]]])
    tgt = torch.tensor([[[1.0, 12.0]]])  # |e| = 1 (log part) and 12 >= w (linear part)
    targets = {"keypoints_norm": tgt, "keypoint_weights": torch.ones(1, 1)}
    got = loss_of("wing", REG, pred, targets, KeypointSpec.from_names(["a"]), wing_w=10.0, wing_epsilon=2.0)[0]
    c = 10 - 10 * math.log(1 + 10 / 2)
    assert got.item() == pytest.approx((10 * math.log(1 + 1 / 2) + (12 - c)) / 2, rel=1e-6)


def test_kl_and_soft_ce_by_hand():
    logits = (torch.tensor([[[0.0, math.log(3.0)]]]), torch.tensor([[[0.0, 0.0]]]))
    tx, ty = torch.tensor([[[0.5, 0.5]]]), torch.tensor([[[1.0, 0.0]]])
    targets = {"simcc_x": tx, "simcc_y": ty, "keypoint_weights": torch.ones(1, 1)}
    codec = SimCCCodec((2, 2), split_ratio=1.0)
    spec = KeypointSpec.from_names(["a"])
    # beta 1: p_x = (1/4, 3/4), p_y = (1/2, 1/2)
    kl_x = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    kl_y = 1.0 * math.log(1.0 / 0.5)
    got = loss_of("kl", codec, logits, targets, spec, simcc_beta=1.0)[0].item()
    assert got == pytest.approx(kl_x + kl_y, rel=1e-6)
    ce = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75)) - math.log(0.5)
    assert loss_of("soft_ce", codec, logits, targets, spec, simcc_beta=1.0)[0].item() == pytest.approx(ce, rel=1e-6)
    # beta scales the logits before the softmax
    b2 = loss_of("kl", codec, (logits[0] / 2, logits[1]), targets, spec, simcc_beta=2.0)[0].item()
    assert b2 == pytest.approx(got, rel=1e-6)


def test_ohkm_averages_the_topk_hardest_weighted_keypoints():
    spec = KeypointSpec.from_names([f"k{i}" for i in range(4)])
    pred = torch.zeros(2, 4, 1, 1)
    tgt = torch.tensor([1.0, 3.0, 2.0, 4.0, 2.0, 1.0, 5.0, 0.5]).view(2, 4, 1, 1)
    w = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])  # sample 0's worst point is invisible
    loss, parts = loss_of("ohkm", HEAT, pred, {"heatmaps": tgt, "keypoint_weights": w}, spec, ohkm_topk=2)
    # sample 0: squared errors 1, 9, 4, (16 -> 0) -> top2 9, 4; sample 1: 4, 1, 25, .25 -> 25, 4
    assert loss.item() == pytest.approx(((9 + 4) / 2 + (25 + 4) / 2) / 2)
    # topk larger than K means all keypoints
    all_k = loss_of("ohkm", HEAT, pred, {"heatmaps": tgt, "keypoint_weights": w}, spec, ohkm_topk=8)[0]
    mse = loss_of("mse", HEAT, pred, {"heatmaps": tgt, "keypoint_weights": w}, spec)[0]
    assert all_k.item() == pytest.approx(mse.item())


# ----------------------------------------------------------------------------- weighting
CASES = [
    ("mse", HEAT, heat_case), ("ohkm", HEAT, heat_case), ("l1", HEAT, heat_case), ("smooth_l1", HEAT, heat_case),
    ("adaptive_wing", HEAT, heat_case), ("mse", REG, reg_case), ("l1", REG, reg_case), ("wing", REG, reg_case),
    ("smooth_l1", REG, reg_case), ("ohkm", REG, reg_case), ("kl", SIMCC, simcc_case), ("soft_ce", SIMCC, simcc_case),
]


@pytest.mark.parametrize("term,codec,case", CASES)
def test_invisible_keypoints_do_not_change_the_loss_and_gradients_flow(term, codec, case):
    outputs, targets = case()
    base, _ = loss_of(term, codec, outputs, targets, ohkm_topk=2)
    changed = tuple(o.clone() for o in outputs) if isinstance(outputs, tuple) else outputs.clone()
    for o in changed if isinstance(changed, tuple) else (changed,):
        o[0, 1] += 5.0  # keypoint 1 of sample 0 has weight 0
    assert loss_of(term, codec, changed, targets, ohkm_topk=2)[0].item() == pytest.approx(base.item(), rel=1e-6)
    # ... but it counts when target weights are off
    unweighted = loss_of(term, codec, changed, targets, ohkm_topk=2, use_target_weight=False)[0].item()
    assert unweighted != pytest.approx(base.item(), rel=1e-3)
    # gradients reach every visible prediction and are finite
    leaves = [o.clone().requires_grad_(True) for o in (outputs if isinstance(outputs, tuple) else (outputs,))]
    loss, _ = loss_of(term, codec, tuple(leaves) if isinstance(outputs, tuple) else leaves[0], targets)
    loss.backward()
    for leaf in leaves:
        assert torch.isfinite(leaf.grad).all()
        assert leaf.grad[0, 1].abs().sum() == 0 and leaf.grad[0, 0].abs().sum() > 0


def test_keypoint_weights_from_config_list_and_dict():
    pred, targets = heat_case()
    base = build_loss(LossConfig(type="mse"), HEAT, SPEC3)(pred, targets)[0]
    w2 = {**targets, "keypoint_weights": targets["keypoint_weights"] * torch.tensor([2.0, 1.0, 0.0])}
    expect = build_loss(LossConfig(type="mse"), HEAT, SPEC3)(pred, w2)[0]
    by_list = loss_of("mse", HEAT, pred, targets, keypoint_weights=[2.0, 1.0, 0.0])[0]
    by_name = loss_of("mse", HEAT, pred, targets, keypoint_weights={"nose": 2.0, "right_eye": 0.0})[0]
    assert by_list.item() == pytest.approx(expect.item()) and by_name.item() == pytest.approx(expect.item())
    assert by_list.item() != pytest.approx(base.item())


def test_keypoint_weights_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"loss\.keypoint_weights.*'tail'.*nose, left_eye, right_eye"):
        build_loss(LossConfig(keypoint_weights={"tail": 2.0}), HEAT, SPEC3)
    with pytest.raises(ConfigError, match=r"loss\.keypoint_weights.*2 weights for 3 keypoints"):
        build_loss(LossConfig(keypoint_weights=[1.0, 2.0]), HEAT, SPEC3)
    with pytest.raises(ConfigError, match=r"loss\.keypoint_weights"):
        build_loss(LossConfig(keypoint_weights=[1.0, -2.0, 1.0]), HEAT, SPEC3)


# ----------------------------------------------------------------------------- expressions
def test_weighted_combination_equals_weighted_sum_of_terms():
    pred, targets = heat_case(3)
    mse = loss_of("mse", HEAT, pred, targets)[0].item()
    l1 = loss_of("l1", HEAT, pred, targets)[0].item()
    ohkm = loss_of("ohkm", HEAT, pred, targets, ohkm_topk=2)[0].item()
    loss, parts = loss_of("0.7*mse + 0.3*l1", HEAT, pred, targets)
    assert loss.item() == pytest.approx(0.7 * mse + 0.3 * l1)
    assert parts == {"mse": pytest.approx(mse), "l1": pytest.approx(l1)}
    loss, parts = loss_of("ohkm+1e-1*mse", HEAT, pred, targets, ohkm_topk=2)
    assert loss.item() == pytest.approx(ohkm + 0.1 * mse)
    assert set(parts) == {"ohkm", "mse"}
    preds, stargets = simcc_case()
    assert loss_of("0.5*kl + kl*0.5", SIMCC, preds, stargets)[0].item() == pytest.approx(
        loss_of("kl", SIMCC, preds, stargets)[0].item())


def test_parse_loss_expression():
    assert parse_loss_expression("0.7*mse + 0.3*l1") == [(0.7, "mse"), (0.3, "l1")]
    assert parse_loss_expression("kl") == [(1.0, "kl")]
    assert parse_loss_expression("Smooth-L1*2+.5 * wing") == [(2.0, "smooth_l1"), (0.5, "wing")]
    assert parse_loss_expression("mse+mse") == [(2.0, "mse")]
    assert parse_loss_expression("1e-3*mse") == [(1e-3, "mse")]


@pytest.mark.parametrize("expr,msg", [
    ("foo", r"loss\.type: unknown loss term 'foo'.*valid terms: mse, heatmap_mse, ohkm"),
    ("0.5*", r"loss\.type: cannot read"),
    ("mse - l1", r"loss\.type: cannot read .* \('-'\)"),
    ("__import__('os')", r"loss\.type"),
    ("", r"loss\.type: the loss expression is empty"),
    ("2 mse", r"loss\.type: cannot read"),
])
def test_bad_expressions_raise_config_error(expr, msg):
    with pytest.raises(ConfigError, match=msg):
        build_loss(LossConfig(type=expr), HEAT, SPEC3)


@pytest.mark.parametrize("expr,codec,msg", [
    ("kl", HEAT, r"'kl' needs simcc outputs but the 'msra' codec gives heatmap outputs.*mse"),
    ("wing", UDPHeatmap((16, 12), (4, 3)), r"'wing' needs regression outputs"),
    ("adaptive_wing", REG, r"'adaptive_wing' needs heatmap outputs.*wing"),
    ("0.5*mse + 0.5*soft_ce", REG, r"'soft_ce' needs simcc outputs"),
    ("mse", SIMCC, r"terms for simcc outputs: kl, soft_ce"),
])
def test_terms_that_do_not_fit_the_codec(expr, codec, msg):
    with pytest.raises(ConfigError, match=msg):
        build_loss(LossConfig(type=expr), codec, SPEC3)


def test_auto_picks_the_codec_loss():
    assert build_loss(LossConfig(), HEAT, SPEC3).terms == [(1.0, "mse")]
    assert build_loss(LossConfig(), UDPHeatmap((16, 12), (4, 3)), SPEC3).terms == [(1.0, "mse")]
    assert build_loss(LossConfig(), SIMCC, SPEC3).terms == [(1.0, "kl")]
    assert build_loss(LossConfig(type="AUTO"), REG, SPEC3).terms == [(1.0, "smooth_l1")]


# ----------------------------------------------------------------------------- with real codec targets
def collate(encs: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.stack([e[k] for e in encs])) for k in encs[0]}


@pytest.mark.parametrize("codec", [MSRAHeatmap((48, 64)), SimCCCodec((48, 64), label_smoothing=0.01),
                                   RegressionCodec((48, 64))])
def test_perfect_outputs_minimise_the_auto_loss(codec):
    rng = np.random.default_rng(0)
    kps = [rng.uniform(0, 40, (3, 2)) for _ in range(2)]
    targets = collate([codec.encode(kp, np.array([1.0, 0.0, 1.0])) for kp in kps])
    loss = build_loss(LossConfig(), codec, SPEC3)
    if isinstance(codec, SimCCCodec):
        perfect = tuple(torch.log(targets[k].clamp_min(1e-12)) / codec.beta for k in ("simcc_x", "simcc_y"))
        worse = (perfect[0].roll(3, -1), perfect[1])
    else:
        perfect = targets["heatmaps" if isinstance(codec, MSRAHeatmap) else "keypoints_norm"]
        worse = perfect + 0.1
    assert loss(perfect, targets)[0].item() == pytest.approx(0.0, abs=1e-6)
    assert loss(worse, targets)[0].item() > 1e-4


def test_output_shape_mismatch_is_a_model_error():
    pred, targets = heat_case()
    with pytest.raises(ModelError, match="model.codec"):
        build_loss(LossConfig(), HEAT, SPEC3)(pred[:, :, :2], targets)
    with pytest.raises(ModelError, match="model.head.type"):
        build_loss(LossConfig(), SIMCC, SPEC3)(pred, simcc_case()[1])


def test_module_is_an_nn_module_with_readable_repr():
    module = build_loss(LossConfig(type="0.7*mse + 0.3*l1"), HEAT, SPEC3)
    assert isinstance(module, KeypointLoss) and isinstance(module, torch.nn.Module)
    assert "0.7*mse + 0.3*l1" in repr(module)
