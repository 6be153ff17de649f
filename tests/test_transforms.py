"""Top-down crop geometry and keypoint-aware augmentation (posetune.data.transforms)."""

from __future__ import annotations

import numpy as np
import pytest

from posetune.config.schema import AugmentConfig
from posetune.data.presets import COCO17
from posetune.data.spec import KeypointSpec
from posetune.data.transforms import (
    TopDownTransform,
    apply_affine,
    bbox_to_center_scale,
    color_jitter,
    compose_affine,
    get_warp_matrix,
    invert_affine,
    lower_body_mask,
    warp_image,
)

INPUT = (48, 64)  # (w, h)
TOY = KeypointSpec.from_names(["head", "left_hand", "right_hand"], name="toy3")
COLORS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.float64)

# a geometry-only config: every photometric op off
GEOM = dict(color_jitter_prob=0.0, blur_prob=0.0, noise_prob=0.0, occlusion_prob=0.0, half_body_prob=0.0)
NO_AUG = dict(GEOM, flip_prob=0.0, scale=(1.0, 1.0), shift=0.0, rotate=0.0, shear=0.0)


def _transform(spec: KeypointSpec = TOY, use_udp: bool = False, train: bool = True, **cfg) -> TopDownTransform:
    return TopDownTransform(AugmentConfig(**cfg), INPUT, spec=spec, use_udp=use_udp, train=train)


# ----------------------------------------------------------------------------- geometry
def test_bbox_to_center_scale_grows_short_side_and_pads():
    c, s = bbox_to_center_scale([10, 20, 30, 30], aspect_ratio=0.75, padding=1.25)
    np.testing.assert_allclose(c, [25, 35])
    np.testing.assert_allclose(s, [30 * 1.25, 40 * 1.25])  # taller: h = w / 0.75
    c, s = bbox_to_center_scale(np.array([[0, 0, 10, 40]]), aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(s, [[30, 40]])  # wider: w = h * 0.75
    assert c.shape == (1, 2)


@pytest.mark.parametrize("use_udp", [False, True])
def test_warp_inverse_round_trip(use_udp):
    rng = np.random.default_rng(0)
    for _ in range(20):
        center, scale = rng.uniform(50, 300, 2), rng.uniform(20, 200, 2)
        m = get_warp_matrix(center, scale, rng.uniform(-180, 180), INPUT, shift=rng.uniform(-0.2, 0.2, 2),
                            shear_deg=tuple(rng.uniform(-20, 20, 2)), use_udp=use_udp)
        inv = invert_affine(m)
        pts = rng.uniform(-100, 400, (30, 2))
        np.testing.assert_allclose(apply_affine(apply_affine(pts, m), inv), pts, atol=1e-9)
        np.testing.assert_allclose(compose_affine(m, inv), [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    m = get_warp_matrix([100, 80], [60, 80], 30, INPUT, shift=(0.1, -0.05), shear_deg=10, use_udp=use_udp)
    np.testing.assert_allclose(get_warp_matrix([100, 80], [60, 80], 30, INPUT, shift=(0.1, -0.05), shear_deg=10,
                                               use_udp=use_udp, inv=True), invert_affine(m), atol=1e-12)


def test_standard_and_udp_conventions_differ_as_documented():
    w, h = INPUT
    center, scale = np.array([100.0, 80.0]), np.array([60.0, 80.0])
    corners = np.array([center - scale / 2, center + scale / 2, center])
    std = apply_affine(corners, get_warp_matrix(center, scale, 0, INPUT, use_udp=False))
    udp = apply_affine(corners, get_warp_matrix(center, scale, 0, INPUT, use_udp=True))
    # standard: box -> [0, w] x [0, h], centre -> (w/2, h/2)
    np.testing.assert_allclose(std, [[0, 0], [w, h], [w / 2, h / 2]], atol=1e-12)
    # UDP: box -> [0, w-1] x [0, h-1], centre -> ((w-1)/2, (h-1)/2)
    np.testing.assert_allclose(udp, [[0, 0], [w - 1, h - 1], [(w - 1) / 2, (h - 1) / 2]], atol=1e-12)


def test_rotation_by_90_degrees_turns_content_counter_clockwise():
    center, scale = np.array([100.0, 80.0]), np.array([48.0, 64.0])  # 1 image px = 1 input px
    m = get_warp_matrix(center, scale, 90, INPUT, use_udp=False)
    oc = np.array([INPUT[0] / 2, INPUT[1] / 2])
    # a point 10 px right of the centre ends 10 px *above* the output centre; one below ends right
    np.testing.assert_allclose(apply_affine([[110, 80], [100, 90]], m), [oc + [0, -10], oc + [10, 0]], atol=1e-9)
    # and the pixels go with it (cv2.warpAffine agrees with apply_affine)
    img = np.zeros((160, 200, 3), np.uint8)
    img[80, 110] = 255
    crop = warp_image(img, m, INPUT)
    y, x = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    assert abs(x - (oc[0])) <= 0.5 and abs(y - (oc[1] - 10)) <= 0.5


# ----------------------------------------------------------------------------- keypoints <-> pixels
def _dot_image(kp: np.ndarray, size=(320, 240), sigma=2.5) -> np.ndarray:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3))
    for p, c in zip(kp, COLORS):
        img += np.exp(-((xx - p[0]) ** 2 + (yy - p[1]) ** 2) / (2 * sigma ** 2))[..., None] * c
    return np.clip(img, 0, 255).astype(np.uint8)


def _dot_centroid(crop: np.ndarray, channel: int, near: np.ndarray, r: int = 6) -> np.ndarray | None:
    h, w = crop.shape[:2]
    x0, y0 = int(round(near[0])) - r, int(round(near[1])) - r
    xs, ys = slice(max(0, x0), min(w, x0 + 2 * r + 1)), slice(max(0, y0), min(h, y0 + 2 * r + 1))
    win = crop[ys, xs, channel].astype(np.float64)
    win = np.where(win > 0.4 * win.max(), win, 0) if win.max() > 0 else win
    if win.sum() < 200:
        return None
    yy, xx = np.mgrid[ys, xs]
    return np.array([(xx * win).sum() / win.sum(), (yy * win).sum() / win.sum()])


@pytest.mark.parametrize("use_udp", [False, True])
def test_augmented_keypoints_follow_the_augmented_pixels(use_udp):
    """Bright dots drawn at the keypoints end where the transformed keypoints say, with the
    left/right identity (colour) swapped exactly when the sample was flipped."""
    kp = np.array([[160, 80, 2], [195, 125, 2], [125, 125, 2]], dtype=np.float64)
    img = _dot_image(kp)
    tf = _transform(use_udp=use_udp, **GEOM, flip_prob=0.5, scale=(0.7, 1.3), shift=0.1, rotate=40,
                    rotate_prob=1.0, shear=12)
    seen_flip = seen_plain = 0
    checked = 0
    for seed in range(16):
        s = tf(img, kp, [110, 60, 100, 100], np.random.default_rng(seed))
        assert s.image.shape == (INPUT[1], INPUT[0], 3) and s.image.dtype == np.uint8
        seen_flip += s.flipped
        seen_plain += not s.flipped
        for i in range(3):
            if s.weights[i] == 0:
                continue
            src = TOY.flip_index[i] if s.flipped else i
            found = _dot_centroid(s.image, int(np.argmax(COLORS[src])), s.keypoints[i])
            assert found is not None, (seed, i)
            assert np.linalg.norm(found - s.keypoints[i]) < 1.0, (seed, i, found, s.keypoints[i])
            checked += 1
        # the warp maps image points to the reported keypoints (before the channel permutation)
        back = apply_affine(s.keypoints, invert_affine(s.warp))
        order = TOY.flip_index if s.flipped else np.arange(3)
        np.testing.assert_allclose(back, kp[order, :2], atol=1e-9)
    assert seen_flip and seen_plain and checked >= 30


def test_flip_swaps_left_right_and_mirrors_x():
    kp = np.array([[160, 80, 2], [130, 120, 2], [190, 120, 2]], dtype=np.float64)  # left hand on the image left
    img = _dot_image(kp)
    box = [112, 56, 96, 128]  # 2 image px per input px: scale (96, 128) for a 48x64 input
    plain = _transform(use_udp=True, train=False)(img, kp, box)
    flipped = _transform(use_udp=True, **NO_AUG | {"flip_prob": 1.0})(img, kp, box, np.random.default_rng(0))
    assert flipped.flipped
    w = INPUT[0]
    # left_hand (index 1) was on the left of the crop; after the flip the *right_hand* channel
    # holds it, at the mirrored x (UDP crops mirror exactly: x -> w - 1 - x)
    assert plain.keypoints[1, 0] < w / 2
    np.testing.assert_allclose(flipped.keypoints[2], [w - 1 - plain.keypoints[1, 0], plain.keypoints[1, 1]], atol=1e-9)
    np.testing.assert_allclose(flipped.keypoints[1], [w - 1 - plain.keypoints[2, 0], plain.keypoints[2, 1]], atol=1e-9)
    np.testing.assert_allclose(flipped.keypoints[0, 0], w - 1 - plain.keypoints[0, 0], atol=1e-9)
    # the flip costs no extra warp but the pixels are mirrored too
    diff = np.abs(flipped.image.astype(int) - plain.image[:, ::-1].astype(int))
    assert diff.max() <= 2
    # a spec that cannot flip never flips
    noflip = KeypointSpec(name="noflip", keypoints=TOY.keypoints, can_flip=False)
    s = _transform(spec=noflip, **NO_AUG | {"flip_prob": 1.0})(img, kp, box, np.random.default_rng(0))
    assert not s.flipped


def test_keypoints_outside_the_crop_or_unlabelled_get_weight_zero():
    kp = np.array([[160, 80, 2], [400, 120, 2], [150, 100, 0]], dtype=np.float64)
    s = _transform(train=False)(np.zeros((240, 320, 3), np.uint8), kp, [130, 60, 60, 80])
    np.testing.assert_array_equal(s.weights, [1, 0, 0])
    assert s.weights.dtype == np.float32


def test_strength_zero_and_eval_give_the_deterministic_crop():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    kp = np.array([[160, 80, 2], [195, 125, 2], [125, 125, 1]], dtype=np.float64)
    box = [110, 60, 100, 100]
    ref = _transform(train=False)(img, kp, box)
    everything = dict(flip_prob=1.0, rotate_prob=1.0, shear=20, half_body_prob=1.0, color_jitter_prob=1.0,
                      blur_prob=1.0, noise_prob=1.0, occlusion_prob=1.0)
    for tf in (_transform(strength=0.0, **everything), _transform(enabled=False, **everything),
               _transform(train=False, **everything)):
        assert not tf.augment
        s = tf(img, kp, box, np.random.default_rng(1))
        np.testing.assert_array_equal(s.image, ref.image)
        np.testing.assert_allclose(s.keypoints, ref.keypoints)
        assert not s.flipped and s.rotation == 0
    # but with strength > 0 the same settings change the sample
    s = _transform(strength=1.0, **everything)(img, kp, box, np.random.default_rng(1))
    assert s.flipped and not np.array_equal(s.image, ref.image)


def test_same_rng_same_sample_different_rng_different_sample():
    img = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    kp = np.array([[160, 80, 2], [195, 125, 2], [125, 125, 2]], dtype=np.float64)
    tf = _transform(shear=10, blur_prob=0.5, noise_prob=0.5, occlusion_prob=0.5)
    a = tf(img, kp, [110, 60, 100, 100], np.random.default_rng([5, 1, 2]))
    b = tf(img, kp, [110, 60, 100, 100], np.random.default_rng([5, 1, 2]))
    c = tf(img, kp, [110, 60, 100, 100], np.random.default_rng([5, 2, 2]))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert not np.array_equal(a.warp, c.warp)


def test_strength_scales_the_magnitudes():
    kp = np.array([[160, 80, 2], [195, 125, 2], [125, 125, 2]], dtype=np.float64)
    img = np.zeros((240, 320, 3), np.uint8)

    def spread(strength: float) -> tuple[float, float]:
        tf = _transform(strength=strength, **GEOM, flip_prob=0.0, rotate_prob=1.0)
        samples = [tf(img, kp, [110, 60, 100, 100], np.random.default_rng(i)) for i in range(60)]
        return (max(abs(s.rotation) for s in samples), max(abs(np.log(s.scale[0] / 125.0)) for s in samples))

    rot_half, sc_half = spread(0.5)
    rot_full, sc_full = spread(1.0)
    assert rot_half <= 15.0 + 1e-9 and rot_full > 20.0
    assert sc_half < sc_full


# ----------------------------------------------------------------------------- half-body, occlusion, colour
def test_lower_body_by_name_or_by_order():
    np.testing.assert_array_equal(np.flatnonzero(lower_body_mask(COCO17)), np.arange(11, 17))
    hand = KeypointSpec.from_names([f"p{i}" for i in range(5)], name="hand5")
    np.testing.assert_array_equal(lower_body_mask(hand), [False, False, False, True, True])


def _person() -> np.ndarray:
    """A standing COCO-17 person, head at the top, feet at the bottom."""
    xy = np.array([[100, 40], [95, 35], [105, 35], [90, 38], [110, 38], [80, 70], [120, 70], [75, 100], [125, 100],
                   [72, 125], [128, 125], [88, 140], [112, 140], [86, 185], [114, 185], [85, 230], [115, 230]],
                  dtype=np.float64)
    return np.c_[xy, np.full(17, 2.0)]


def test_half_body_crops_around_the_chosen_half():
    kp = _person()
    lower = lower_body_mask(COCO17)
    tf = TopDownTransform(AugmentConfig(**NO_AUG | {"half_body_prob": 1.0}), INPUT, spec=COCO17)
    halves = set()
    for seed in range(12):
        s = tf(np.zeros((260, 200, 3), np.uint8), kp, [60, 20, 80, 220], np.random.default_rng(seed))
        assert s.half_body
        inside = s.weights > 0
        half = "upper" if s.center[1] < 120 else "lower"
        halves.add(half)
        chosen = kp[~lower] if half == "upper" else kp[lower]
        lo, hi = chosen[:, :2].min(0), chosen[:, :2].max(0)
        exp_c, exp_s = bbox_to_center_scale([*lo, *(hi - lo)], INPUT[0] / INPUT[1], padding=1.5)
        np.testing.assert_allclose(s.center, exp_c)
        np.testing.assert_allclose(s.scale, exp_s)
        # the chosen half is in the crop, the far end of the other half is not
        assert inside[~lower].all() if half == "upper" else inside[lower].all()
        assert not inside[[15, 16]].any() if half == "upper" else not inside[0]
    assert halves == {"upper", "lower"}
    # too few labelled points: the full box is kept
    few = kp.copy()
    few[3:, 2] = 0
    s = tf(np.zeros((260, 200, 3), np.uint8), few, [60, 20, 80, 220], np.random.default_rng(0))
    assert not s.half_body


def test_occlusion_paints_patches_over_keypoints_and_keeps_labels():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    kp = np.array([[160, 80, 2], [195, 125, 2], [125, 125, 2]], dtype=np.float64)
    box = [110, 60, 100, 100]
    ref = _transform(train=False)(img, kp, box)
    tf = _transform(**NO_AUG | {"occlusion_prob": 1.0, "occlusion_max_patches": 3})
    counts = set()
    for seed in range(10):
        s = tf(img, kp, box, np.random.default_rng(seed))
        assert s.occlusions is not None and 1 <= len(s.occlusions) <= 3
        counts.add(len(s.occlusions))
        painted = np.zeros(s.image.shape[:2], bool)
        for x0, y0, x1, y1 in s.occlusions:
            painted[y0:y1, x0:x1] = True
            near = [(x0 - 1 <= p[0] <= x1 and y0 - 1 <= p[1] <= y1) for p in s.keypoints]
            assert any(near), "every patch covers a keypoint"
        changed = (s.image != ref.image).any(axis=2)
        assert changed[painted].mean() > 0.8 and not changed[~painted].any()
        np.testing.assert_array_equal(s.weights, ref.weights)
        np.testing.assert_allclose(s.keypoints, ref.keypoints)
    assert len(counts) > 1


def test_photometric_ops_change_pixels_not_geometry():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    kp = np.array([[160, 80, 2], [195, 125, 2], [125, 125, 2]], dtype=np.float64)
    ref = _transform(train=False)(img, kp, [110, 60, 100, 100])
    for op in ("color_jitter_prob", "blur_prob", "noise_prob"):
        s = _transform(**NO_AUG | {op: 1.0})(img, kp, [110, 60, 100, 100], np.random.default_rng(0))
        np.testing.assert_allclose(s.keypoints, ref.keypoints)
        assert np.abs(s.image.astype(int) - ref.image.astype(int)).mean() > 1.0, op


def test_color_jitter_identity_and_hue_rotation():
    img = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(color_jitter(img, 1.0, 1.0, 1.0, 0.0), img)
    np.testing.assert_array_equal(color_jitter(img, 1.0, 0.0, 1.0, 0.0).std(axis=(0, 1)) < 1.0, [True] * 3)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    turned = color_jitter(red, 1.0, 1.0, 1.0, 1 / 3)  # a third of a turn: red -> green
    assert turned[0, 0, 1] > 240 and turned[0, 0, 0] < 15 and turned[0, 0, 2] < 15
    assert color_jitter(img, 1.5, 1.0, 1.0, 0.0).mean() > img.mean() + 20


# ----------------------------------------------------------------------------- posetune data show --augment
def test_cli_show_augment_draws_reproducible_crop_strips(shared_data, tmp_path, capsys):
    from posetune.cli.main import main
    from posetune.data.images import load_image

    labels = shared_data / "mmpose_coco" / "coco" / "test_coco.json"
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model:\n  codec:\n    input_size: [96, 128]\ndata:\n  augment:\n    rotate_prob: 1.0\n")

    def show(out, seed):
        with pytest.raises(SystemExit) as e:
            main(["data", "show", str(labels), "--out", str(out), "--augment", "--n", "2", "--variants", "3",
                  "--config", str(cfg), "--seed", str(seed)])
        assert e.value.code == 0
        return sorted(out.glob("0*.png")), load_image(out / "grid.png")

    strips, grid = show(tmp_path / "a", 0)
    assert "drew 2 of 14 instances with 3 augmented crops each (96x128)" in capsys.readouterr().out
    assert len(strips) == 2
    strip = load_image(strips[0])
    assert strip.shape[1] >= 4 * 96 and 128 <= strip.shape[0] < 2 * 128  # one row: crop + 3 variants
    _, again = show(tmp_path / "b", 0)
    _, other = show(tmp_path / "c", 1)
    np.testing.assert_array_equal(grid, again)
    assert grid.shape != other.shape or (grid != other).any()
