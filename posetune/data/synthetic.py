"""Procedural keypoint data for the demo and the tests (no external files).

Two kinds of subjects, drawn with OpenCV (anti-aliased, sub-pixel) on textured backgrounds:

* ``coco17``: a front-facing human figure from a random plausible 2-D pose — shaded limbs,
  torso, neck, head with hair, eyes, nose, mouth and ears, hands and shoes — with the COCO-17
  keypoints at their anatomical places. Points covered by another body part (a forearm over
  a hip, the far ear when the head turns) get visibility 1, the rest 2.
* ``mouse4``: a top-view mouse (ellipse body, head, ears, tail) on an open-field floor with the
  DeepLabCut-style keypoints snout, leftear, rightear, tailbase.

Everything is deterministic per seed: image ``i`` is drawn from ``default_rng([seed, i])``,
so the first images are the same whatever ``n_images`` is.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from posetune.data.presets import COCO17, MOUSE4
from posetune.data.records import ImageRecord, Instance, KeypointDataset
from posetune.data.spec import KeypointSpec
from posetune.errors import DataError

#: Top-view mouse with the four DeepLabCut open-field body parts.
SYNTHETIC_SPECS: dict[str, KeypointSpec] = {"coco17": COCO17, "mouse4": MOUSE4}
STYLES = ("figure", "plain")

_SHIFT = 4  # OpenCV fixed-point bits: drawing at 1/16 pixel precision
_ONE = 1 << _SHIFT

SKIN_TONES = ((255, 224, 196), (241, 194, 150), (224, 172, 125), (198, 140, 95), (160, 105, 70),
              (115, 75, 50), (88, 57, 39))
HAIR_COLORS = ((25, 20, 18), (60, 40, 25), (110, 75, 40), (180, 140, 80), (140, 60, 30), (120, 120, 120))
MOUSE_COLORS = ((38, 36, 36), (120, 92, 64), (232, 228, 222), (135, 132, 128))

# part ids (per person) for the occlusion map
_TORSO, _HEAD, _NECK = 1, 2, 3
_LUARM, _LFARM, _RUARM, _RFARM, _LTHIGH, _LSHIN, _RTHIGH, _RSHIN = 4, 5, 6, 7, 8, 9, 10, 11
_OWNERS = {
    "nose": {_HEAD}, "left_eye": {_HEAD}, "right_eye": {_HEAD}, "left_ear": {_HEAD}, "right_ear": {_HEAD},
    "left_shoulder": {_TORSO, _LUARM, _NECK}, "right_shoulder": {_TORSO, _RUARM, _NECK},
    "left_elbow": {_LUARM, _LFARM}, "right_elbow": {_RUARM, _RFARM},
    "left_wrist": {_LFARM}, "right_wrist": {_RFARM},
    "left_hip": {_TORSO, _LTHIGH}, "right_hip": {_TORSO, _RTHIGH},
    "left_knee": {_LTHIGH, _LSHIN}, "right_knee": {_RTHIGH, _RSHIN},
    "left_ankle": {_LSHIN}, "right_ankle": {_RSHIN},
}
_PARTS_PER_SUBJECT = 16


# ----------------------------------------------------------------------------- small helpers
def _rot(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _unit(angle: float) -> np.ndarray:
    """Direction at ``angle`` from straight down (+y), turning towards +x for positive angles."""
    return np.array([math.sin(angle), math.cos(angle)])


def _fx(pts: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(pts, dtype=np.float64) * _ONE).astype(np.int32)


def _color(c: np.ndarray | tuple, f: float = 1.0) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(np.asarray(c, dtype=np.float64) * f, 0, 255))


def _lighter(c: np.ndarray | tuple, amount: float) -> tuple[int, int, int]:
    c = np.asarray(c, dtype=np.float64)
    return _color(c + (255.0 - c) * amount)


_RING = np.stack([np.cos(np.linspace(0.0, 2.0 * np.pi, 32, endpoint=False)),
                  np.sin(np.linspace(0.0, 2.0 * np.pi, 32, endpoint=False))], axis=1)


def _capsule_polygon(p0: np.ndarray, p1: np.ndarray, r0: float, r1: float) -> np.ndarray:
    """Convex outline of two circles (radii r0, r1) joined by tangents: a tapered limb."""
    pts = np.concatenate([p0 + r0 * _RING, p1 + r1 * _RING]).astype(np.float32)
    return cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)


def _ellipse_polygon(center: np.ndarray, axes: tuple[float, float], angle_deg: float) -> np.ndarray:
    pts = _RING * np.array([axes[0], axes[1]])
    return pts @ _rot(math.radians(angle_deg)).T + center


class _Canvas:
    """The RGB image plus an integer map of which subject part owns each pixel."""

    def __init__(self, image: np.ndarray, light: np.ndarray):
        self.image = image
        self.labels = np.zeros(image.shape[:2], np.int32)
        self.light = light  # unit vector towards the light, image frame

    def poly(self, pts: np.ndarray, color: tuple, label: int | None = None,
             mask: np.ndarray | None = None) -> None:
        p = _fx(pts)
        cv2.fillConvexPoly(self.image, p, color, cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.fillConvexPoly(self.labels, p, int(label), cv2.LINE_8, _SHIFT)
        if mask is not None:
            cv2.fillConvexPoly(mask, p, 1, cv2.LINE_8, _SHIFT)

    def shaded_limb(self, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, color: tuple, label: int,
                    mask: np.ndarray) -> None:
        """A limb with a dark rim, its base colour and a highlight offset towards the light."""
        self.poly(_capsule_polygon(p0, p1, r0 + 0.8, r1 + 0.8), _color(color, 0.55), label, mask)
        self.poly(_capsule_polygon(p0, p1, r0, r1), _color(color))
        axis = p1 - p0
        n = np.array([-axis[1], axis[0]]) / (np.linalg.norm(axis) + 1e-9)
        side = 1.0 if float(n @ self.light) > 0 else -1.0
        off = n * side * 0.35
        self.poly(_capsule_polygon(p0 + off * r0, p1 + off * r1, r0 * 0.4, r1 * 0.4), _lighter(color, 0.28))


# ----------------------------------------------------------------------------- backgrounds
def _background(rng: np.random.Generator, w: int, h: int, style: str, floor_like: bool = False) -> np.ndarray:
    """Gradient + low-frequency texture + clutter shapes (``style='plain'``: flat grey)."""
    if style == "plain":
        return np.full((h, w, 3), 128, np.uint8)
    if floor_like:
        base = rng.choice([rng.uniform(170, 235), rng.uniform(40, 90)])
        c1 = np.clip(base + rng.normal(0, 10, 3), 0, 255)
        c2 = np.clip(c1 + rng.normal(0, 18, 3), 0, 255)
    else:
        c1 = rng.uniform(20, 235, 3)
        c2 = rng.uniform(20, 235, 3)
    ang = rng.uniform(0, 2 * np.pi)
    gx = (np.arange(w, dtype=np.float32) / max(w - 1, 1) - 0.5) * math.cos(ang)
    gy = (np.arange(h, dtype=np.float32) / max(h - 1, 1) - 0.5) * math.sin(ang)
    t = np.clip(gy[:, None] + gx[None, :] + 0.5, 0, 1)[..., None]
    img = c1.astype(np.float32) + (c2 - c1).astype(np.float32) * t
    cells = int(rng.integers(3, 12))
    noise = rng.standard_normal((cells, cells, 3), dtype=np.float32)
    img += cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC) * np.float32(rng.uniform(6, 22))
    img += rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(rng.uniform(1, 5))  # fine grain
    if not floor_like and rng.random() < 0.5:  # a floor / horizon
        y0 = int(h * rng.uniform(0.55, 0.85))
        img[y0:] = img[y0:] * 0.6 + rng.uniform(30, 200, 3).astype(np.float32) * 0.4
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 9))):
        layer = img.copy()
        col = _color(rng.uniform(20, 235, 3))
        kind = rng.integers(0, 4)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        s = rng.uniform(0.05, 0.3) * min(w, h)
        if kind == 0:
            half = np.array([s * rng.uniform(0.3, 1.5), s * rng.uniform(0.3, 1.5)])
            corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
            pts = corners @ _rot(rng.uniform(-0.4, 0.4)).T + (cx, cy)
            cv2.fillConvexPoly(layer, _fx(pts), col, cv2.LINE_AA, _SHIFT)
        elif kind == 1:
            cv2.circle(layer, _fx((cx, cy)).tolist(), int(s * _ONE / 2), col, -1, cv2.LINE_AA, _SHIFT)
        elif kind == 2:
            p1 = (cx + rng.uniform(-1, 1) * s * 2, cy + rng.uniform(-1, 1) * s * 2)
            cv2.line(layer, _fx((cx, cy)).tolist(), _fx(p1).tolist(), col, int(rng.integers(1, 5)), cv2.LINE_AA,
                     _SHIFT)
        else:
            cv2.ellipse(layer, _fx((cx, cy)).tolist(), (int(s * _ONE / 2), int(s * _ONE / 4)),
                        float(rng.uniform(0, 180)), 0, 360, col, -1, cv2.LINE_AA, _SHIFT)
        alpha = rng.uniform(0.4, 1.0)
        img = cv2.addWeighted(layer, alpha, img, 1 - alpha, 0)
    return img


def _finish(rng: np.random.Generator, img: np.ndarray, style: str) -> np.ndarray:
    """Camera effects: brightness/contrast, optional blur and sensor noise."""
    if style == "plain":
        return img
    gain, bias = rng.uniform(0.85, 1.15), rng.uniform(-15, 15)
    out = img.astype(np.float32) * np.float32(gain) + np.float32(128.0 * (1 - gain) + bias)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.2))
    if rng.random() < 0.5:
        out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(rng.uniform(1.5, 6))
    return np.clip(out, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- human figure
def _human_pose(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict]:
    """Joints of a front-facing figure, unit = body height, pelvis at the origin, y down.

    The person faces the camera, so their left side is at +x. Returns the joint positions
    (COCO-17 names plus helpers) and drawing parameters (radii, yaw).
    """
    yaw = rng.uniform(-0.6, 0.6)  # head turn; the body turns half as much
    cw = math.cos(0.5 * yaw)
    spine = rng.uniform(-0.15, 0.15)
    up = -_unit(spine)  # pelvis -> neck direction
    side = np.array([-up[1], up[0]])  # the person's left: +x when upright
    j: dict[str, np.ndarray] = {}
    j["pelvis"] = np.zeros(2)
    j["neck"] = up * 0.30
    j["left_shoulder"] = j["neck"] + side * 0.115 * cw - up * 0.025
    j["right_shoulder"] = j["neck"] - side * 0.115 * cw - up * 0.025
    j["left_hip"] = side * 0.085 * cw
    j["right_hip"] = -side * 0.085 * cw
    tilt = spine + rng.uniform(-0.2, 0.2)
    head_up = -_unit(tilt)
    head_side = np.array([-head_up[1], head_up[0]])
    j["head"] = j["neck"] + head_up * 0.105
    rx, ry = 0.052, 0.066
    for s, name in ((1, "left"), (-1, "right")):
        sd = side * s
        down = -up
        a = rng.uniform(-0.25, 2.6)  # abduction: 0 = hanging down, pi/2 = horizontal, > = raised
        d1 = down * math.cos(a) + sd * math.sin(a)
        j[f"{name}_elbow"] = j[f"{name}_shoulder"] + d1 * 0.165
        bend = rng.uniform(0.0, 2.2) * (1 if rng.random() < 0.7 else -0.4)
        d2 = _rot(-s * bend) @ d1  # flex towards the body / up
        j[f"{name}_wrist"] = j[f"{name}_elbow"] + d2 * 0.145
        j[f"{name}_hand"] = j[f"{name}_wrist"] + d2 * 0.035
        al = rng.uniform(-0.08, 0.45) if rng.random() < 0.85 else rng.uniform(0.45, 1.1)
        fore = rng.uniform(0.75, 1.0) if rng.random() < 0.8 else rng.uniform(0.45, 0.75)  # lifted knee
        t1 = _unit(s * al)
        j[f"{name}_knee"] = j[f"{name}_hip"] + t1 * 0.245 * fore
        t2 = _unit(s * (al + rng.uniform(-0.5, 0.35)))
        j[f"{name}_ankle"] = j[f"{name}_knee"] + t2 * 0.235
        j[f"{name}_foot"] = j[f"{name}_ankle"] + np.array([s * 0.012, 0.022])
    # face features on a sphere: azimuth 0 faces the camera, + towards the person's left (+x)
    R = np.stack([head_side, -head_up], axis=1)  # head frame (x side, y down) -> body frame
    features = {"nose": (0.0, 0.28), "left_eye": (0.42, -0.08), "right_eye": (-0.42, -0.08),
                "left_ear": (math.pi / 2, 0.05), "right_ear": (-math.pi / 2, 0.05)}
    facing: dict[str, float] = {}
    for name, (az, el) in features.items():
        local = np.array([rx * math.sin(az + yaw), ry * el])
        j[name] = j["head"] + R @ local
        facing[name] = math.cos(az + yaw)
    params = {"yaw": yaw, "rx": rx, "ry": ry, "head_angle": math.degrees(math.atan2(head_side[1], head_side[0])),
              "facing": facing, "R_head": R}
    return j, params


def _draw_human(canvas: _Canvas, rng: np.random.Generator, joints: dict[str, np.ndarray], p: dict, scale: float,
                label_base: int, mask: np.ndarray) -> None:
    """Paint one figure back to front; ``joints`` are already in image pixels."""
    u = scale  # pixels per body height
    skin = np.asarray(SKIN_TONES[rng.integers(len(SKIN_TONES))], float) + rng.normal(0, 6, 3)
    shirt = rng.uniform(20, 235, 3)
    trousers = rng.uniform(15, 160, 3) if rng.random() < 0.7 else rng.uniform(15, 235, 3)
    hair = np.asarray(HAIR_COLORS[rng.integers(len(HAIR_COLORS))], float)
    shoes = rng.uniform(10, 90, 3)
    long_sleeves = rng.random() < 0.5
    shorts = rng.random() < 0.25
    L = label_base

    # legs (behind the torso)
    for name, thigh, shin in (("right", _RTHIGH, _RSHIN), ("left", _LTHIGH, _LSHIN)):
        hip, knee, ankle = joints[f"{name}_hip"], joints[f"{name}_knee"], joints[f"{name}_ankle"]
        canvas.shaded_limb(hip, knee, 0.052 * u, 0.038 * u, _color(trousers), L + thigh, mask)
        canvas.shaded_limb(knee, ankle, 0.037 * u, 0.027 * u, _color(skin if shorts else trousers), L + shin, mask)
        foot = joints[f"{name}_foot"]
        canvas.poly(_ellipse_polygon(foot, (0.04 * u, 0.022 * u), rng.uniform(-15, 15)), _color(shoes), L + shin,
                    mask)
    # torso: hull of shoulder / waist / hip circles
    ls, rs, lh, rh = (joints[k] for k in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    waist_l, waist_r = 0.5 * (ls + lh), 0.5 * (rs + rh)
    pts = np.concatenate([_capsule_polygon(ls, rs, 0.045 * u, 0.045 * u),
                          _capsule_polygon(waist_l, waist_r, 0.035 * u, 0.035 * u),
                          _capsule_polygon(lh, rh, 0.055 * u, 0.055 * u)]).astype(np.float32)
    hull = cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)
    canvas.poly(hull, _color(shirt, 0.6), L + _TORSO, mask)
    centre = hull.mean(axis=0)
    canvas.poly(centre + (hull - centre) * 0.95, _color(shirt))
    canvas.poly(centre + canvas.light * 0.06 * u + (hull - centre) * 0.45, _lighter(shirt, 0.18))
    belt = _capsule_polygon(lh, rh, 0.03 * u, 0.03 * u)
    canvas.poly(belt, _color(trousers, 0.8))
    # neck and head
    canvas.shaded_limb(joints["neck"] - (joints["head"] - joints["neck"]) * 0.2, joints["head"], 0.028 * u,
                       0.03 * u, _color(skin), L + _NECK, mask)
    rx, ry = p["rx"] * u, p["ry"] * u
    head, R = joints["head"], p["R_head"]
    for ear in ("left_ear", "right_ear"):
        if p["facing"][ear] > -0.25:
            canvas.poly(_ellipse_polygon(joints[ear], (0.14 * rx + 1, 0.26 * ry + 1), p["head_angle"]),
                        _color(skin, 0.85), L + _HEAD, mask)
    canvas.poly(_ellipse_polygon(head, (rx + 1, ry + 1), p["head_angle"]), _color(skin, 0.6), L + _HEAD, mask)
    canvas.poly(_ellipse_polygon(head, (rx, ry), p["head_angle"]), _color(skin))
    canvas.poly(_ellipse_polygon(head + R @ np.array([0.0, -0.45 * ry]), (rx * 1.04, ry * 0.62), p["head_angle"]),
                _color(hair), L + _HEAD, mask)
    lx = 1.0 if canvas.light[0] >= 0 else -1.0
    canvas.poly(_ellipse_polygon(head + R @ np.array([0.25 * rx * lx, 0.1 * ry]),
                                 (rx * 0.35, ry * 0.45), p["head_angle"]), _lighter(skin, 0.12))
    er = max(0.9, 0.12 * rx)
    for eye in ("left_eye", "right_eye"):
        canvas.poly(_ellipse_polygon(joints[eye], (er * 1.5, er), p["head_angle"]), (245, 245, 245))
        canvas.poly(_ellipse_polygon(joints[eye], (er * 0.8, er * 0.8), p["head_angle"]), (30, 25, 20))
    canvas.poly(_ellipse_polygon(joints["nose"], (er * 0.9, er * 1.2), p["head_angle"]), _color(skin, 0.7))
    mouth = joints["nose"] + R @ np.array([0.0, 0.3 * ry])
    canvas.poly(_ellipse_polygon(mouth, (0.28 * rx, 0.06 * ry + 0.5), p["head_angle"]), (150, 50, 50))
    # arms (in front of the torso)
    sleeve = _color(shirt)
    for name, upper, fore in (("right", _RUARM, _RFARM), ("left", _LUARM, _LFARM)):
        sh, el, wr, hand = (joints[f"{name}_{k}"] for k in ("shoulder", "elbow", "wrist", "hand"))
        canvas.shaded_limb(sh, el, 0.036 * u, 0.029 * u, sleeve, L + upper, mask)
        canvas.shaded_limb(el, wr, 0.028 * u, 0.021 * u, sleeve if long_sleeves else _color(skin), L + fore, mask)
        canvas.shaded_limb(wr, hand, 0.022 * u, 0.026 * u, _color(skin), L + fore, mask)


def _place(rng: np.random.Generator, extent_lo: np.ndarray, extent_hi: np.ndarray, box: tuple[float, ...],
           scale_range: tuple[float, float]) -> tuple[float, np.ndarray]:
    """Scale and offset so that the unit-frame extent fits inside ``box`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    size = extent_hi - extent_lo
    fit = min((x1 - x0) / size[0], (y1 - y0) / size[1])
    scale = fit * rng.uniform(*scale_range)
    lo = np.array([x0, y0]) - extent_lo * scale
    hi = np.array([x1, y1]) - extent_hi * scale
    offset = np.array([rng.uniform(lo[0], max(lo[0], hi[0])), rng.uniform(lo[1], max(lo[1], hi[1]))])
    return scale, offset


def _bbox_from_mask(mask: np.ndarray, margin: float = 0.04) -> np.ndarray | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    h, w = mask.shape
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    m = margin * max(x1 - x0, y1 - y0) + 1.0
    x0, y0 = max(0.0, x0 - m), max(0.0, y0 - m)
    x1, y1 = min(float(w), x1 + m), min(float(h), y1 + m)
    return np.array([x0, y0, x1 - x0, y1 - y0])


def _keypoint_array(points: dict[str, np.ndarray], spec: KeypointSpec, vis: dict[str, int], w: int, h: int
                    ) -> np.ndarray:
    kp = np.zeros((spec.num_keypoints, 3))
    for i, name in enumerate(spec.keypoints):
        x, y = points[name]
        inside = -0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5
        kp[i] = (x, y, vis.get(name, 2)) if inside else (0.0, 0.0, 0.0)
    return kp


def _render_humans(rng: np.random.Generator, canvas: _Canvas, n: int) -> list[Instance]:
    h, w = canvas.image.shape[:2]
    instances = []
    subjects = []
    slot_w = w / n
    for k in range(n):
        joints, params = _human_pose(rng)
        angle = rng.uniform(-0.35, 0.35) if rng.random() < 0.8 else rng.uniform(-1.0, 1.0)
        Rg = _rot(angle)
        joints = {name: Rg @ p for name, p in joints.items()}
        params["R_head"] = Rg @ params["R_head"]
        params["head_angle"] += math.degrees(angle)
        pts = np.stack(list(joints.values()))
        pad = 0.08
        lo, hi = pts.min(axis=0) - pad, pts.max(axis=0) + pad
        box = (k * slot_w + 1, 1.0, (k + 1) * slot_w - 1, h - 1.0)
        scale, offset = _place(rng, lo, hi, box, (0.6, 0.97) if n == 1 else (0.75, 1.0))
        joints = {name: p * scale + offset for name, p in joints.items()}
        subjects.append((joints, params, scale))
    order = rng.permutation(n)  # later subjects occlude earlier ones
    masks = {}
    for k in order:
        joints, params, scale = subjects[k]
        mask = np.zeros((h, w), np.uint8)
        _draw_human(canvas, rng, joints, params, scale, (k + 1) * _PARTS_PER_SUBJECT, mask)
        masks[k] = mask
    for k in range(n):
        joints, params, _ = subjects[k]
        base = (k + 1) * _PARTS_PER_SUBJECT
        vis = {}
        for name in COCO17.keypoints:
            x, y = joints[name]
            xi, yi = int(round(x)), int(round(y))
            v = 2
            if 0 <= xi < w and 0 <= yi < h:
                label = int(canvas.labels[yi, xi])
                owners = {base + o for o in _OWNERS[name]}
                if label not in owners:
                    v = 1
            if name in params["facing"] and params["facing"][name] <= -0.25:
                v = 1  # ear on the far side of the head
            vis[name] = v
        kp = _keypoint_array(joints, COCO17, vis, w, h)
        instances.append(Instance(keypoints=kp, bbox=_bbox_from_mask(masks[k]), category="person"))
    return instances


# ----------------------------------------------------------------------------- mouse (top view)
def _render_mice(rng: np.random.Generator, canvas: _Canvas, n: int) -> list[Instance]:
    h, w = canvas.image.shape[:2]
    instances = []
    slot_w = w / n
    for k in range(n):
        mask = np.zeros((h, w), np.uint8)
        length = rng.uniform(0.22, 0.34) * min(slot_w * 1.6, h)
        theta = rng.uniform(0, 2 * np.pi)
        f = np.array([math.cos(theta), math.sin(theta)])  # heading, image frame (y down)
        left = np.array([f[1], -f[0]])  # the mouse's left, seen from above
        reach = 0.75 * length
        cx = rng.uniform(k * slot_w + reach, max(k * slot_w + reach, (k + 1) * slot_w - reach))
        cy = rng.uniform(reach, max(reach, h - reach))
        c = np.array([cx, cy])
        fur = np.asarray(MOUSE_COLORS[rng.integers(len(MOUSE_COLORS))], float) + rng.normal(0, 8, 3)
        pink = np.array([225.0, 160.0, 165.0]) + rng.normal(0, 8, 3)
        ang = math.degrees(theta)
        tailbase = c - f * 0.40 * length
        # tail: a wavy tapering polyline from the tail base
        bend = rng.uniform(-1.2, 1.2)
        tail = [tailbase]
        d = -f
        for i in range(10):
            d = _rot(bend * 0.12 + rng.normal(0, 0.05)) @ d
            tail.append(tail[-1] + d * 0.085 * length)
        for i in range(len(tail) - 1):
            r = max(0.6, 0.035 * length * (1 - i / len(tail)))
            canvas.poly(_capsule_polygon(tail[i], tail[i + 1], r, r * 0.9), _color(pink, 0.85), None, mask)
        body = _ellipse_polygon(c, (0.42 * length, 0.22 * length), ang)
        canvas.poly(body, _color(fur, 0.6), (k + 1) * _PARTS_PER_SUBJECT, mask)
        canvas.poly(_ellipse_polygon(c, (0.41 * length, 0.21 * length), ang), _color(fur))
        canvas.poly(_ellipse_polygon(c + canvas.light * 0.05 * length, (0.3 * length, 0.1 * length), ang),
                    _lighter(fur, 0.2))
        head_c = c + f * 0.42 * length
        ear_c = {"leftear": head_c - f * 0.05 * length + left * 0.12 * length,
                 "rightear": head_c - f * 0.05 * length - left * 0.12 * length}
        for e in ear_c.values():
            canvas.poly(_ellipse_polygon(e, (0.06 * length, 0.07 * length), ang), _color(fur, 0.8), None, mask)
            canvas.poly(_ellipse_polygon(e, (0.035 * length, 0.045 * length), ang), _color(pink))
        head = _ellipse_polygon(head_c + f * 0.04 * length, (0.16 * length, 0.11 * length), ang)
        canvas.poly(head, _color(fur, 0.9), (k + 1) * _PARTS_PER_SUBJECT, mask)
        snout = head_c + f * 0.17 * length
        canvas.poly(_ellipse_polygon(snout, (0.03 * length, 0.025 * length), ang), _color(pink, 0.9))
        for s in (1, -1):
            eye = head_c + f * 0.07 * length + s * left * 0.07 * length
            canvas.poly(_ellipse_polygon(eye, (0.018 * length + 0.5, 0.018 * length + 0.5), ang), (10, 10, 10))
        points = {"snout": snout, "leftear": ear_c["leftear"], "rightear": ear_c["rightear"], "tailbase": tailbase}
        kp = _keypoint_array(points, MOUSE4, {}, w, h)
        instances.append(Instance(keypoints=kp, bbox=_bbox_from_mask(mask), category="mouse"))
    return instances


# ----------------------------------------------------------------------------- public API
def _resolve_spec(spec: str | KeypointSpec) -> KeypointSpec:
    name = spec.name if isinstance(spec, KeypointSpec) else str(spec).lower().replace("-", "_")
    name = {"coco": "coco17", "coco_17": "coco17", "mouse": "mouse4"}.get(name, name)
    if name not in SYNTHETIC_SPECS:
        raise DataError(f"no synthetic generator for keypoint spec '{spec}'",
                        hint=f"use one of: {', '.join(SYNTHETIC_SPECS)}")
    return SYNTHETIC_SPECS[name]


def render_synthetic_sample(rng: np.random.Generator, spec: str | KeypointSpec = "coco17",
                            size: tuple[int, int] = (256, 256), subjects: int = 1, style: str = "figure"
                            ) -> tuple[np.ndarray, list[Instance]]:
    """One synthetic RGB image (``size`` = (width, height)) and its labelled instances."""
    spec_obj = _resolve_spec(spec)
    if style not in STYLES:
        raise DataError(f"unknown synthetic style '{style}'", hint=f"use one of: {', '.join(STYLES)}")
    w, h = int(size[0]), int(size[1])
    if w < 32 or h < 32:
        raise DataError(f"synthetic image size {w}x{h} is too small", hint="use at least 32x32 pixels")
    if subjects < 1:
        raise DataError("people_per_image must be at least 1")
    is_mouse = spec_obj is MOUSE4
    img = _background(rng, w, h, style, floor_like=is_mouse)
    light_angle = rng.uniform(-math.pi, 0) if not is_mouse else rng.uniform(0, 2 * math.pi)
    canvas = _Canvas(img, np.array([math.cos(light_angle), math.sin(light_angle)]))
    instances = _render_mice(rng, canvas, subjects) if is_mouse else _render_humans(rng, canvas, subjects)
    return _finish(rng, canvas.image, style), instances


def synthetic_dataset(n_images: int = 64, spec: str | KeypointSpec = "coco17", size: tuple[int, int] = (256, 256),
                      seed: int = 0, people_per_image: int = 1, style: str = "figure"
                      ) -> tuple[KeypointDataset, list[np.ndarray]]:
    """The synthetic dataset in memory: records (file names ``images/000000.png``...) and images."""
    spec_obj = _resolve_spec(spec)
    if n_images < 1:
        raise DataError(f"n_images must be at least 1, got {n_images}")
    images, records = [], []
    next_id = 1
    for i in range(n_images):
        rng = np.random.default_rng([int(seed), i])
        img, instances = render_synthetic_sample(rng, spec_obj, size, people_per_image, style)
        for inst in instances:
            inst.id, next_id = next_id, next_id + 1
            inst.area = float(inst.bbox[2] * inst.bbox[3]) if inst.bbox is not None else None
        records.append(ImageRecord(file_name=f"images/{i:06d}.png", width=img.shape[1], height=img.shape[0],
                                   instances=instances, id=i + 1))
        images.append(img)
    category = "mouse" if spec_obj is MOUSE4 else "person"
    ds = KeypointDataset(spec=spec_obj, images=records, categories=[category], format="coco",
                         info={"info": {"description": f"posetune synthetic {spec_obj.name} (seed {seed})"}})
    return ds, images


def make_synthetic_dataset(out_dir: str | Path, n_images: int = 64, spec: str | KeypointSpec = "coco17",
                           size: tuple[int, int] = (256, 256), seed: int = 0, people_per_image: int = 1,
                           style: str = "figure") -> Path:
    """Write ``n_images`` PNGs under ``out_dir/images`` and their COCO labels ``out_dir/annotations.json``.

    ``spec`` is ``'coco17'`` (human figures) or ``'mouse4'`` (top-view mice); ``size`` is
    (width, height); ``style='plain'`` draws on a flat grey background without camera effects.
    Returns the path of the COCO json.
    """
    from posetune.data.formats import write_dataset
    from posetune.data.images import save_image

    out = Path(out_dir)
    ds, images = synthetic_dataset(n_images, spec, size, seed, people_per_image, style)
    for rec, img in zip(ds.images, images):
        save_image(out / rec.file_name, img)
    ds.root = out
    json_path = out / "annotations.json"
    write_dataset(ds, json_path, "coco")
    ds.source = json_path
    return json_path
