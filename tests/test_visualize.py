"""Skeleton drawing and contact sheets (posetune.inference.visualize)."""

from __future__ import annotations

import numpy as np
import pytest

from posetune.data.records import Instance
from posetune.data.spec import KeypointSpec
from posetune.inference.visualize import default_radius, default_thickness, draw_grid, draw_instances

SPEC = KeypointSpec.from_names(["head", "left_hand", "right_hand", "tail"], name="toy",
                               skeleton=[(0, 1), (0, 2), (0, 3)])


def _dist_to_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0, 1)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def test_link_pixels_have_the_link_colour_and_nothing_else_is_drawn():
    img = np.zeros((120, 160, 3), np.uint8)
    kp = np.array([[40, 60, 2], [130, 60, 2], [0, 0, 0], [0, 0, 0]], float)
    drawn = draw_instances(img, [Instance(kp)], SPEC, radius=4, thickness=3, draw_boxes=False)
    link_color = SPEC.link_colors()[0]
    assert link_color == SPEC.colors[1]  # head (centre) - left_hand link takes the left colour
    # pixels on the line, away from the end points, are exactly the link colour
    for x in range(55, 116, 5):
        assert tuple(drawn[60, x]) == link_color
    # the end points have their keypoint colours
    assert tuple(drawn[60, 40]) == SPEC.colors[0]
    assert tuple(drawn[60, 130]) == SPEC.colors[1]
    # everything drawn lies within radius/thickness of that one link
    ys, xs = np.nonzero(drawn.any(axis=2))
    d = _dist_to_segment(np.c_[xs, ys].astype(float), np.array([40.0, 60.0]), np.array([130.0, 60.0]))
    assert d.max() <= 5.5
    # the unlabelled points (v=0) at (0, 0) and their links are not drawn
    assert not drawn[:20, :20].any()
    assert not img.any(), "the input image must not be modified"


def test_occluded_points_are_hollow_and_low_scores_skipped():
    img = np.zeros((100, 100, 3), np.uint8)
    kp = np.array([[20, 20, 2], [70, 70, 1], [80, 20, 2], [20, 80, 2]], float)
    drawn = draw_instances(img, Instance(kp), SPEC, radius=12, thickness=1, draw_boxes=False)
    ring = drawn[70, 82]  # on the circle of radius 12 around (70, 70)
    assert tuple(ring) == SPEC.colors[1]
    # inside the circle, off the head -> left_hand link that ends at its centre: not painted
    assert not drawn[73, 67].any(), "v=1 must be drawn hollow"
    assert tuple(drawn[20, 20]) == SPEC.colors[0]  # filled

    # an (N, K, 3) array with scores: the low-score point and its link vanish
    arr = np.array([[[20, 20, 0.9], [70, 70, 0.1], [80, 20, 0.8], [20, 80, 0.95]]])
    drawn = draw_instances(img, arr, SPEC, score_thr=0.3, radius=3, thickness=2)
    assert not drawn[65:76, 65:76].any()
    assert tuple(drawn[20, 50]) == SPEC.link_colors()[1]  # head - right_hand link
    # colour by confidence: a 0.95 point is green-ish, not its spec colour
    drawn = draw_instances(img, arr, SPEC, radius=3, thickness=1, color_by_confidence=True)
    r, g, b = drawn[80, 20]
    assert g == 255 and r < 60 and b == 0


def test_boxes_track_ids_and_names():
    img = np.zeros((200, 200, 3), np.uint8)
    inst = Instance(np.array([[60, 60, 2], [100, 100, 2], [120, 60, 2], [80, 140, 2]], float),
                    bbox=[40, 40, 120, 120])
    plain = draw_instances(img, [inst], SPEC, draw_boxes=False, thickness=1)
    boxed = draw_instances(img, [inst], SPEC, draw_boxes=True, thickness=1)
    assert not plain[100, 40].any() and boxed[100, 40].any()  # left edge of the box
    tracked = draw_instances(img, [inst], SPEC, track_ids=[7], thickness=1)
    assert (tracked != boxed).any()  # the "#7" label is drawn
    named = draw_instances(img, [inst], SPEC, draw_names=True, draw_boxes=False, thickness=1)
    assert (named != plain).sum() > 50  # names add text pixels
    with pytest.raises(ValueError):
        draw_instances(img, [inst], SPEC, track_ids=[1, 2])


def test_sizes_scale_with_image():
    assert default_radius((1080, 1920)) > default_radius((256, 256)) >= 2
    assert default_thickness((1080, 1920)) > default_thickness((256, 256)) >= 1
    kp = np.array([[[0.2, 0.2, 2], [0.8, 0.8, 2], [0.8, 0.2, 2], [0.2, 0.8, 2]]])
    small = draw_instances(np.zeros((100, 100, 3), np.uint8), kp * 100, SPEC, draw_boxes=False)
    big = draw_instances(np.zeros((1000, 1000, 3), np.uint8), kp * 1000, SPEC, draw_boxes=False)
    assert big.any(axis=2).sum() > 20 * small.any(axis=2).sum()


def test_grid_layout_and_titles():
    images = [np.full((h, w, 3), 50 * (i + 1), np.uint8) for i, (w, h) in
              enumerate([(64, 48), (32, 32), (80, 40), (40, 80), (64, 64)])]
    sheet = draw_grid(images, ncols=3, pad=4)
    cw, ch = 80, 80
    assert sheet.shape == (4 + 2 * (ch + 4), 4 + 3 * (cw + 4), 3)
    # first cell centre shows the first image's value, fifth cell (row 2, col 2) the fifth's
    assert tuple(sheet[4 + ch // 2, 4 + cw // 2]) == (50, 50, 50)
    assert tuple(sheet[4 + ch + 4 + ch // 2, 4 + (cw + 4) + cw // 2]) == (250, 250, 250)
    titled = draw_grid(images, ncols=3, titles=[f"img{i}" for i in range(5)])
    assert titled.shape[0] > sheet.shape[0]
    with pytest.raises(ValueError):
        draw_grid([], 3)
