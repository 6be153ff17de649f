"""Codecs: encode -> decode round trips, flip-back exactness, target weights, config building."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posetune.codecs.build import CODECS, build_codec
from posetune.codecs.heatmap import MSRAHeatmap, UDPHeatmap, decode_heatmaps, gaussian_heatmaps
from posetune.codecs.regression import RegressionCodec
from posetune.codecs.simcc import SimCCCodec
from posetune.config.schema import CodecConfig
from posetune.data.presets import PRESETS
from posetune.errors import ConfigError

IN = (192, 256)  # (W, H)
HM = (48, 64)
FLIP = PRESETS["coco17"].flip_index


def random_keypoints(n: int, size=IN, seed: int = 0) -> np.ndarray:
    """Keypoints uniformly over the whole input extent [-0.5, W - 0.5] x [-0.5, H - 0.5]."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-0.5, size[0] - 0.5, n), rng.uniform(-0.5, size[1] - 0.5, n)], axis=1)


def batch(enc: dict[str, np.ndarray], key: str) -> torch.Tensor:
    return torch.from_numpy(enc[key])[None]


def outputs_of(codec, enc: dict[str, np.ndarray]):
    """What a perfect network would output for one encoded instance (batch of 1)."""
    if isinstance(codec, SimCCCodec):
        # logits whose softmax(beta * logits) is the target distribution
        return tuple(torch.log(batch(enc, k).clamp_min(1e-12)) / codec.beta for k in ("simcc_x", "simcc_y"))
    if isinstance(codec, RegressionCodec):
        return batch(enc, "keypoints_norm")
    return batch(enc, "heatmaps")


def assert_close(a: torch.Tensor, b, atol: float = 1e-5) -> None:
    """Element-wise closeness (torch.testing.assert_close costs seconds on first use)."""
    b = torch.as_tensor(b, dtype=a.dtype)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert (a - b).abs().max().item() <= atol, (a - b).abs().max().item()


def roundtrip_error(codec, kp: np.ndarray) -> np.ndarray:
    enc = codec.encode(kp, np.ones(len(kp)))
    assert (enc["keypoint_weights"] == 1).all()
    dec, scores = codec.decode(outputs_of(codec, enc))
    assert dec.shape == (1, len(kp), 2) and scores.shape == (1, len(kp))
    return np.abs(dec[0].numpy().astype(np.float64) - kp)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("cls", [UDPHeatmap, MSRAHeatmap])
def test_dark_roundtrip_is_subpixel_everywhere(cls):
    """DARK recovers unrounded Gaussian centres to 0.01 input px, borders included."""
    kp = random_keypoints(2000)
    err = roundtrip_error(cls(IN, HM, sigma=2.0, dark=True), kp)
    assert err.max() <= 0.01, err.max()


@pytest.mark.parametrize("cls", [UDPHeatmap, MSRAHeatmap])
def test_plain_argmax_roundtrip_within_quarter_stride(cls):
    codec = cls(IN, HM, sigma=2.0, dark=False)
    kp = random_keypoints(2000, seed=1)
    err = roundtrip_error(codec, kp)
    scale = np.array(IN, float) / np.array(HM) if cls is MSRAHeatmap else (np.array(IN) - 1.0) / (np.array(HM) - 1)
    hm_pos = codec.to_heatmap(kp)
    interior = ((hm_pos > 0.5) & (hm_pos < np.array(HM) - 1.5)).all(axis=1)  # argmax not on the border row/col
    assert (err[interior] <= scale / 4 + 1e-3).all(), (err[interior] / scale).max()
    assert (err <= scale / 2 + 1e-3).all()
    # the quarter shift really helps: without it the mean error would be ~ stride / 4
    assert err[interior].mean() < 0.6 * scale.mean() / 4


@settings(max_examples=25, deadline=None)
@given(w=st.integers(16, 320), h=st.integers(16, 320), stride=st.integers(1, 8),
       sigma=st.floats(1.0, 3.0), kernel=st.sampled_from([1, 3, 5, 11]), udp=st.booleans())
def test_dark_roundtrip_any_geometry(w, h, stride, sigma, kernel, udp):
    size = (max(3, w // stride), max(3, h // stride))
    codec = (UDPHeatmap if udp else MSRAHeatmap)((w, h), size, sigma=sigma, dark=True, dark_kernel=kernel)
    kp = random_keypoints(100, (w, h), seed=w * 1000 + h)
    per_px = np.array([w, h], float) / np.array(size)
    assert (roundtrip_error(codec, kp) <= 0.01 * per_px + 1e-4).all()


@pytest.mark.parametrize("split", [2.0, 3.0, 1.5])
def test_simcc_roundtrip_within_half_bin(split):
    codec = SimCCCodec((191, 256), split_ratio=split)
    err = roundtrip_error(codec, random_keypoints(2000, (191, 256), seed=2))
    bin_px = 1.0 / codec.ratio
    assert (err <= 0.5 * bin_px + 1e-4).all()
    assert (err <= 1.0 / split + 1e-3).all()


def test_regression_roundtrip_exact():
    codec = RegressionCodec(IN)
    kp = random_keypoints(2000, seed=3)
    enc = codec.encode(kp, np.ones(len(kp)))
    assert enc["keypoints_norm"].min() >= 0 and enc["keypoints_norm"].max() <= 1
    np.testing.assert_allclose(enc["keypoints_norm"], (kp + 0.5) / np.array(IN), atol=1e-7)
    assert roundtrip_error(codec, kp).max() <= 1e-4


# ----------------------------------------------------------------------------- flip test
def flipped_instance(kp: np.ndarray, width: int) -> np.ndarray:
    """Keypoints of the horizontally flipped input: mirror x, swap left/right."""
    out = kp[FLIP].copy()
    out[:, 0] = width - 1 - out[:, 0]
    return out


CODEC_CASES = {
    "msra": lambda: MSRAHeatmap(IN, HM, 2.0, dark=False),
    "msra_dark": lambda: MSRAHeatmap(IN, HM, 2.0, dark=True),
    "udp_dark": lambda: UDPHeatmap(IN, HM, 2.0, dark=True),
    "simcc": lambda: SimCCCodec(IN, 2.0),
    "regression": lambda: RegressionCodec(IN),
}


def stack_outputs(outs: list):
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outs))
    return torch.cat(outs)


@pytest.mark.parametrize("case", list(CODEC_CASES))
def test_flip_back_maps_flipped_outputs_onto_original(case):
    """Outputs of the flipped input, flipped back, equal the original outputs (no shift), and
    decoding the flip-test average gives the true keypoints without bias."""
    codec = CODEC_CASES[case]()
    tol = {"msra": 2.01, "simcc": 0.26}.get(case, 0.01)  # plain MSRA: stride / 2 on border rows
    bias_tol = {"msra": 0.1, "simcc": 0.05}.get(case, 0.002)
    kps = [random_keypoints(17, seed=100 + i) for i in range(24)]
    out = stack_outputs([outputs_of(codec, codec.encode(kp, np.ones(17))) for kp in kps])
    out_flipped_input = stack_outputs([outputs_of(codec, codec.encode(flipped_instance(kp, IN[0]), np.ones(17)))
                                       for kp in kps])
    back = codec.flip_back(out_flipped_input, FLIP)
    for a, b in zip(out if isinstance(out, tuple) else (out,), back if isinstance(back, tuple) else (back,)):
        assert_close(b, a)
    dec, _ = codec.decode(codec.merge_flip(out, back))
    errs = (dec.numpy() - np.stack(kps)).reshape(-1, 2)
    assert np.abs(errs).max() <= tol
    assert np.abs(errs.mean(axis=0)).max() < bias_tol
    # without the left/right swap the flip test would be wrong
    wrong = codec.flip_back(out_flipped_input, np.arange(17))
    dec_wrong, _ = codec.decode(codec.merge_flip(out, wrong))
    assert np.abs(dec_wrong.numpy() - np.stack(kps)).max() > 5


def test_msra_flip_test_of_a_single_point_is_exact():
    """MSRA's pixel-centre mapping makes flip-back a pure mirror: with MMPose's ``x / stride``
    the flipped-back peak would sit (stride - 1) / stride heatmap px (3 input px) off."""
    codec = MSRAHeatmap(IN, HM, 2.0, dark=True)
    kp = np.array([[60.3, 100.0]] * 17)
    back = codec.flip_back(batch(codec.encode(flipped_instance(kp, IN[0]), np.ones(17)), "heatmaps"), FLIP)
    dec, _ = codec.decode(back)
    np.testing.assert_allclose(dec[0].numpy(), kp, atol=0.01)


# ----------------------------------------------------------------------------- weights
@pytest.mark.parametrize("name", ["msra", "udp", "simcc", "regression"])
def test_invisible_and_outside_keypoints_get_weight_zero(name):
    codec = build_codec(CodecConfig(type=name, input_size=IN))
    W, H = IN
    kp = np.array([[10, 10], [10, 10], [np.nan, 5], [-0.6, 50], [W - 0.4, 50], [50, H], [-0.5, -0.5],
                   [W - 0.5, H - 0.5], [20, 30]], dtype=float)
    weights = np.array([1, 0, 1, 1, 1, 1, 1, 1, 2.0])
    enc = codec.encode(kp, weights)
    np.testing.assert_array_equal(enc["keypoint_weights"], [1, 0, 0, 0, 0, 0, 1, 1, 2])
    for key, arr in enc.items():
        assert arr.dtype == np.float32 and np.isfinite(arr).all(), key
        if key != "keypoint_weights":
            assert (arr[enc["keypoint_weights"] == 0] == 0).all(), key  # no target for dropped points
        if key not in ("keypoint_weights", "keypoints_norm"):
            assert (np.abs(arr[enc["keypoint_weights"] > 0]).reshape(4, -1).sum(axis=1) > 0).all(), key


def test_gaussian_completely_outside_heatmap_gets_weight_zero():
    hm, w = gaussian_heatmaps(np.array([[-7.0, 5.0], [5.0, 70.5], [-5.9, 5.0], [47.0, 63.0]]), np.ones(4), HM, 2.0)
    np.testing.assert_array_equal(w, [0, 0, 1, 1])
    assert hm[:2].max() == 0 and hm[2].max() > 0


def test_heatmap_target_shape_and_values():
    codec = UDPHeatmap(IN, HM, sigma=2.0)
    scale = (np.array(IN) - 1.0) / (np.array(HM) - 1)
    kp = np.array([[10 * scale[0], 20 * scale[1]]])  # exactly on heatmap pixel (10, 20)
    hm = codec.encode(kp, np.ones(1))["heatmaps"][0]
    assert hm.shape == (64, 48)
    assert hm[20, 10] == pytest.approx(1.0)
    assert hm[20, 11] == pytest.approx(np.exp(-1 / 8), rel=1e-5)
    assert hm[21, 11] == pytest.approx(np.exp(-2 / 8), rel=1e-5)
    assert hm[20, 16] > 0 and hm[20, 17] == 0  # cut at 3 sigma


def test_simcc_targets_are_distributions_with_label_smoothing():
    codec = SimCCCodec(IN, 2.0, label_smoothing=0.1)
    assert codec.bins == (384, 512)
    assert codec.sigma == pytest.approx((4.9, 4.9 * np.sqrt(256 / 192)))
    enc = codec.encode(np.array([[50.0, 60.0]]), np.ones(1))
    for key, n in (("simcc_x", 384), ("simcc_y", 512)):
        row = enc[key][0]
        assert row.shape == (n,) and row.sum() == pytest.approx(1.0, abs=1e-5)
        assert row.min() == pytest.approx(0.1 / n, rel=1e-3)
    assert int(np.argmax(enc["simcc_x"][0])) == int(round((50 + 0.5) * 2 - 0.5))


# ----------------------------------------------------------------------------- decoding details
def test_quarter_shift_and_scores_on_hand_made_heatmap():
    hm = torch.zeros(1, 2, 5, 6)
    hm[0, 0, 2, 3] = 0.9
    hm[0, 0, 2, 4] = 0.5  # right neighbour higher than left -> +0.25
    hm[0, 0, 1, 3] = 0.2  # upper neighbour higher than lower -> -0.25
    hm[0, 1, 0, 0] = 0.7  # corner peak: no shift
    hm[0, 1, 0, 1] = 0.3
    xy, scores = decode_heatmaps(hm)
    assert_close(xy[0], torch.tensor([[3.25, 1.75], [0.0, 0.0]]))
    assert_close(scores[0], torch.tensor([0.9, 0.7]))


def test_batched_decode_matches_per_instance_and_handles_noise():
    codec = UDPHeatmap(IN, HM, 2.0, dark=True)
    rng = np.random.default_rng(5)
    hms = torch.stack([batch(codec.encode(random_keypoints(17, seed=s), np.ones(17)), "heatmaps")[0]
                       for s in range(6)])
    hms = hms + 0.05 * torch.from_numpy(rng.standard_normal(hms.shape).astype(np.float32))
    hms[5] = 0  # empty maps must not produce NaNs
    kp, scores = codec.decode(hms)
    assert torch.isfinite(kp).all() and kp.shape == (6, 17, 2)
    for i in range(6):
        kpi, si = codec.decode(hms[i:i + 1])
        assert_close(kpi[0], kp[i])
        assert_close(si[0], scores[i])
    argmax, _ = UDPHeatmap(IN, HM, 2.0, dark=False).decode(hms)
    scale = (IN[0] - 1) / (HM[0] - 1)
    assert ((kp - argmax).abs() <= 1.26 * scale).all()  # DARK stays within a pixel of the argmax


def test_simcc_and_regression_scores():
    codec = SimCCCodec(IN, 2.0)
    enc = codec.encode(np.array([[50.0, 60.0], [100.0, 30.0]]), np.ones(2))
    _, sharp = codec.decode(outputs_of(codec, enc))
    assert torch.allclose(sharp, torch.ones(1, 2), atol=0.02)
    flat = (torch.zeros(1, 2, 384), torch.zeros(1, 2, 512))
    _, low = codec.decode(flat)
    assert (low < 0.05).all()
    reg = RegressionCodec(IN)
    out = torch.tensor([[[0.5, 0.5, 0.0], [0.25, 0.75, 20.0]]])
    kp, sc = reg.decode(out)
    assert_close(kp[0, 0], torch.tensor([95.5, 127.5]))
    assert_close(sc[0], torch.tensor([0.5, 1.0]))
    assert_close(reg.decode(out[..., :2])[1], torch.ones(1, 2))


def test_encode_is_cheap():
    codec = UDPHeatmap(IN, HM, 2.0, dark=True)
    kp, w = random_keypoints(17), np.ones(17)
    codec.encode(kp, w)
    t0 = time.perf_counter()
    for _ in range(50):
        codec.encode(kp, w)
    assert (time.perf_counter() - t0) / 50 < 0.005  # ~0.15 ms here; generous for busy machines


# ----------------------------------------------------------------------------- building
@pytest.mark.parametrize("cfg", [
    CodecConfig(type="msra", input_size=(192, 256), sigma=3.0, dark=True, dark_kernel=7),
    CodecConfig(type="udp", input_size=(288, 384), heatmap_size=(72, 96), dark=True),
    CodecConfig(type="simcc", input_size=(192, 256), simcc_split_ratio=3.0, simcc_sigma=(5.0, 6.0),
                label_smoothing=0.05),
    CodecConfig(type="simcc"),
    CodecConfig(type="regression", input_size=(128, 128)),
])
def test_build_codec_and_describe_roundtrip(cfg):
    codec = build_codec(cfg)
    assert isinstance(codec, CODECS[cfg.type]) and codec.name == cfg.type
    assert codec.use_udp == (cfg.type == "udp")
    again = build_codec(CodecConfig(**codec.describe()))
    assert again.describe() == codec.describe()
    if cfg.type in ("msra", "udp"):
        expect = cfg.heatmap_size or (cfg.input_size[0] // 4, cfg.input_size[1] // 4)
        assert codec.heatmap_size == tuple(expect)


def test_build_codec_errors_name_the_config_key():
    with pytest.raises(ConfigError, match="model.type: mediapipe"):
        build_codec(CodecConfig(type="mediapipe"))
    with pytest.raises(ConfigError, match="model.codec.dark_kernel"):
        build_codec(CodecConfig(type="msra", dark_kernel=4))
    with pytest.raises(ConfigError, match="model.codec.heatmap_size"):
        build_codec(CodecConfig(type="udp", heatmap_size=(1, 16)))
    with pytest.raises(ConfigError, match="model.codec.simcc_sigma"):
        build_codec(CodecConfig(type="simcc", simcc_sigma=(0.0, 1.0)))
