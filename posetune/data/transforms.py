"""Keypoint-aware top-down transforms: box -> affine crop, geometric and photometric augmentation.

Conventions (the same everywhere in posetune, see :mod:`posetune.codecs.base`):

* integer coordinates are pixel *centres*; a horizontal flip of an image of width ``W`` maps
  ``x`` to ``W - 1 - x``; sizes are ``(w, h)``;
* a crop is described by a box ``center`` / ``scale`` (the box width and height in image
  pixels, already grown to the input aspect ratio and padded) and a warp matrix ``M`` (2, 3)
  that maps image pixels to input-frame pixels (``apply_affine(points, M)``);
* positive rotations turn the image content counter-clockwise as displayed (y pointing down),
  like :func:`cv2.getRotationMatrix2D`.

Two crop conventions (:func:`get_warp_matrix`):

* **standard** (MSRA / SimpleBaseline, ``use_udp=False``): the box ``[c - s/2, c + s/2]`` maps
  to ``[0, w]`` and its centre to ``w / 2``. Under the pixel-centre convention the input's
  pixels span ``[-0.5, w - 0.5]``, so this frame is shifted by half a pixel and scaled by
  ``w / (w - 1)`` against the box — the small bias UDP removes.
* **UDP** (unbiased data processing, Huang et al. 2020, ``use_udp=True``): the box maps to
  ``[0, w - 1]`` and its centre to ``(w - 1) / 2``: the box edges land on the centres of the
  first and last input pixels, so flipping the crop is the exact mirror ``x -> w - 1 - x`` and
  decoding with the matching heatmap scale ``(w - 1) / (W_hm - 1)`` is unbiased.

Codecs tell which one they need with their ``use_udp`` class attribute.

Implementation notes. Geometry is one affine matrix per sample (scale, shift, rotation, shear
and horizontal flip composed together), applied with a single ``cv2.warpAffine`` (bilinear,
constant black border) whose cost depends only on the output size. Photometric operations run
on the small crop with OpenCV lookup tables and numpy: measured on one core for a 256x192
crop, OpenCV/numpy colour jitter takes ~0.6 ms and a Gaussian blur ~0.2 ms, against ~8 ms and
~4 ms for the ``torchvision.transforms.v2.functional`` equivalents on uint8 tensors.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from posetune.config.schema import AugmentConfig
from posetune.data.records import Instance
from posetune.data.spec import KeypointSpec

Size = tuple[int, int]

#: keypoint-name fragments that put a keypoint in the *lower* half of the body (half-body crops)
LOWER_BODY_WORDS = ("hip", "knee", "ankle", "heel", "foot", "feet", "toe", "leg", "thigh", "shin", "calf")
_LOWER_RE = re.compile("|".join(LOWER_BODY_WORDS), re.I)


# ============================================================================ geometry
def bbox_to_center_scale(bbox_xywh: np.ndarray | Sequence[float], aspect_ratio: float,
                         padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Centre and size (px) of the crop box for ``x, y, w, h`` boxes (``(4,)`` or ``(N, 4)``).

    The shorter side is grown so that ``w / h == aspect_ratio`` (the input's width / height),
    then both sides are multiplied by ``padding``.
    """
    b = np.asarray(bbox_xywh, dtype=np.float64)
    x, y, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    center = np.stack([x + 0.5 * w, y + 0.5 * h], axis=-1)
    wide = w > aspect_ratio * h
    new_w = np.where(wide, w, h * aspect_ratio)
    new_h = np.where(wide, w / aspect_ratio, h)
    scale = np.stack([new_w, new_h], axis=-1) * padding
    return center, scale


def _to3x3(m: np.ndarray) -> np.ndarray:
    out = np.eye(3)
    out[:2] = m
    return out


def get_warp_matrix(center: np.ndarray | Sequence[float], scale: np.ndarray | Sequence[float], rot_deg: float,
                    output_size: Size, shift: np.ndarray | Sequence[float] = (0.0, 0.0),
                    shear_deg: float | Sequence[float] = 0.0, use_udp: bool = False,
                    inv: bool = False) -> np.ndarray:
    """Affine (2, 3) matrix mapping image pixels to the ``output_size = (w, h)`` crop.

    The crop box is centred at ``center + shift * scale`` (``shift`` is a fraction of the box
    size) and is ``scale = (w_box, h_box)`` pixels large. The content is rotated by
    ``rot_deg`` (counter-clockwise as displayed) and sheared by ``shear_deg`` (x shear, or a
    pair ``(x, y)``) about the box centre. ``use_udp`` selects the UDP convention (box ->
    ``[0, w - 1]``) instead of the standard one (box -> ``[0, w]``); see the module docstring.
    ``inv=True`` returns the inverse (input frame -> image).
    """
    center = np.asarray(center, dtype=np.float64).reshape(2)
    scale = np.asarray(scale, dtype=np.float64).reshape(2)
    shift = np.asarray(shift, dtype=np.float64).reshape(2)
    w, h = float(output_size[0]), float(output_size[1])
    c = center + shift * scale
    if use_udp:
        sx, sy = (w - 1.0) / scale[0], (h - 1.0) / scale[1]
        out_c = np.array([(w - 1.0) / 2.0, (h - 1.0) / 2.0])
    else:
        sx, sy = w / scale[0], h / scale[1]
        out_c = np.array([w / 2.0, h / 2.0])
    t = math.radians(float(rot_deg))
    cs, sn = math.cos(t), math.sin(t)
    rot = np.array([[cs, sn], [-sn, cs]])  # counter-clockwise on screen (y down)
    shear = np.atleast_1d(np.asarray(shear_deg, dtype=np.float64))
    shx = math.tan(math.radians(float(shear[0])))
    shy = math.tan(math.radians(float(shear[1]))) if shear.size > 1 else 0.0
    sh = np.array([[1.0, shx], [shy, 1.0]])
    a = np.diag([sx, sy]) @ sh @ rot
    m = np.empty((2, 3))
    m[:, :2] = a
    m[:, 2] = out_c - a @ c
    return invert_affine(m) if inv else m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix (float64)."""
    m = np.asarray(m, dtype=np.float64)
    a_inv = np.linalg.inv(m[:, :2])
    out = np.empty((2, 3))
    out[:, :2] = a_inv
    out[:, 2] = -a_inv @ m[:, 2]
    return out


def compose_affine(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """The affine that applies ``first`` and then ``then`` (both (2, 3))."""
    return (_to3x3(then) @ _to3x3(first))[:2]


def apply_affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to points ``(..., 2)`` (extra columns are ignored)."""
    p = np.asarray(points, dtype=np.float64)[..., :2]
    m = np.asarray(m, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]


def hflip_matrix(image_width: int) -> np.ndarray:
    """Affine of a horizontal image flip: ``x -> W - 1 - x``."""
    return np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0]])


def warp_image(image: np.ndarray, m: np.ndarray, output_size: Size, border_value: int = 0) -> np.ndarray:
    """Warp ``image`` with the image->output affine ``m`` (bilinear, constant border)."""
    return cv2.warpAffine(image, np.asarray(m, dtype=np.float64), (int(output_size[0]), int(output_size[1])),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(border_value,) * 3)


def topdown_crop(image: np.ndarray, bbox_xywh: np.ndarray | Sequence[float], input_size: Size,
                 use_udp: bool = False, padding: float = 1.25, rotation: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The deterministic crop used for evaluation and prediction: ``(crop, M image->input)``.

    ``rotation`` is the subject's tilt in degrees, counter-clockwise as displayed (0: upright);
    the crop turns the content back by it so the subject stands upright in the crop, and
    ``bbox_xywh`` is then the box in the subject's upright frame, centred on its centre.
    """
    center, scale = bbox_to_center_scale(bbox_xywh, input_size[0] / input_size[1], padding)
    m = get_warp_matrix(center, scale, -float(rotation), input_size, use_udp=use_udp)
    return warp_image(image, m, input_size), m


def usable_box(inst: Instance, padding: float = 0.1) -> np.ndarray | None:
    """The instance's box (labelled, or around its labelled keypoints), or None when there is
    none or it has no extent."""
    box = inst.box(padding)
    if box is None or not np.isfinite(box).all() or box[2] < 0 or box[3] < 0 or max(box[2], box[3]) <= 0:
        return None
    return box


def inside_input(points: np.ndarray, input_size: Size) -> np.ndarray:
    """Mask of points inside the input's pixel area ``[-0.5, w - 0.5] x [-0.5, h - 0.5]`` (the
    image extent under the pixel-centre convention, symmetric under flips; as in the codecs)."""
    p = np.asarray(points, dtype=np.float64)
    w, h = input_size
    with np.errstate(invalid="ignore"):
        return ((p[..., 0] >= -0.5) & (p[..., 0] <= w - 0.5) & (p[..., 1] >= -0.5) & (p[..., 1] <= h - 0.5)
                & np.isfinite(p).all(axis=-1))


# ============================================================================ half-body
def lower_body_mask(spec: KeypointSpec) -> np.ndarray:
    """Which keypoints belong to the lower body, for half-body crops.

    Decided by name (hip, knee, ankle, heel, foot, toe, leg, ...); when the names do not tell
    (none or all of them match) the second half of the spec order counts as lower body.
    """
    k = spec.num_keypoints
    mask = np.array([bool(_LOWER_RE.search(n)) for n in spec.keypoints], dtype=bool)
    if mask.all() or not mask.any():
        mask = np.arange(k) >= (k + 1) // 2
    return mask


def half_body_box(keypoints: np.ndarray, labelled: np.ndarray, lower: np.ndarray, rng: np.random.Generator,
                  min_total: int, min_half: int = 2) -> np.ndarray | None:
    """A tight xywh box around the labelled keypoints of one random body half, or None.

    Needs ``min_total`` labelled keypoints overall and ``min_half`` in the chosen half; the
    half is drawn at random among the halves that qualify.
    """
    if labelled.sum() < min_total:
        return None
    halves = [m for m in (labelled & ~lower, labelled & lower) if m.sum() >= min_half]
    if not halves:
        return None
    sel = halves[int(rng.integers(len(halves)))]
    pts = keypoints[sel, :2]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    if x1 - x0 <= 0 and y1 - y0 <= 0:
        return None
    return np.array([x0, y0, x1 - x0, y1 - y0])


# ============================================================================ photometric
def color_jitter(image: np.ndarray, brightness: float, contrast: float, saturation: float,
                 hue: float) -> np.ndarray:
    """Colour-jitter an RGB uint8 image with factors (1 = unchanged) and a hue shift (turns).

    Brightness multiplies the values; contrast blends with the mean grey level (both folded
    into one lookup table); saturation scales the HSV saturation; hue rotates the HSV hue by
    ``hue`` of a full turn.
    """
    out = image
    if brightness != 1.0 or contrast != 1.0:
        mean = float(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).mean()) * brightness
        lut = np.arange(256, dtype=np.float32) * (brightness * contrast) + (1.0 - contrast) * mean
        out = cv2.LUT(out, np.clip(np.rint(lut), 0, 255).astype(np.uint8))
    if saturation != 1.0 or hue != 0.0:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV_FULL)  # H in 0..255 for a full turn
        if hue != 0.0:
            lut_h = ((np.arange(256) + int(round(hue * 256))) % 256).astype(np.uint8)
            hsv[..., 0] = cv2.LUT(hsv[..., 0], lut_h)
        if saturation != 1.0:
            lut_s = np.clip(np.rint(np.arange(256) * saturation), 0, 255).astype(np.uint8)
            hsv[..., 1] = cv2.LUT(hsv[..., 1], lut_s)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    return out


def gaussian_noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Add zero-mean Gaussian noise of ``std`` grey levels."""
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    noise *= std
    noise += image
    return np.clip(noise, 0, 255, out=noise).astype(np.uint8)


def occlude(image: np.ndarray, keypoints: np.ndarray, weights: np.ndarray, num_patches: int,
            size_range: tuple[float, float], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paint ``num_patches`` rectangles of random colour or noise, each centred on a random
    labelled keypoint inside the image (or anywhere when there is none).

    Returns the painted image (a copy) and the patches as ``(n, 4)`` ``x0, y0, x1, y1`` (int,
    exclusive end). Keypoints under a patch keep their labels and weights: the network has to
    infer occluded joints from context, which is what makes the augmentation useful.
    """
    out = image.copy()
    h, w = image.shape[:2]
    candidates = np.flatnonzero(weights > 0)
    boxes = []
    for _ in range(num_patches):
        pw = max(1, int(round(rng.uniform(*size_range) * w)))
        ph = max(1, int(round(rng.uniform(*size_range) * h)))
        if len(candidates):
            cx, cy = keypoints[candidates[int(rng.integers(len(candidates)))]]
            cx += rng.uniform(-0.5, 0.5) * pw
            cy += rng.uniform(-0.5, 0.5) * ph
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        x0, y0 = int(np.clip(round(cx - pw / 2), 0, w - 1)), int(np.clip(round(cy - ph / 2), 0, h - 1))
        x1, y1 = min(w, x0 + pw), min(h, y0 + ph)
        if rng.random() < 0.5:
            out[y0:y1, x0:x1] = rng.integers(0, 256, size=3, dtype=np.uint8)
        else:
            out[y0:y1, x0:x1] = rng.integers(0, 256, size=(y1 - y0, x1 - x0, 3), dtype=np.uint8)
        boxes.append((x0, y0, x1, y1))
    return out, np.array(boxes, dtype=np.int64).reshape(-1, 4)


# ============================================================================ the transform
@dataclass
class TopDownSample:
    """The result of :class:`TopDownTransform` for one instance.

    ``warp`` maps image pixels to input pixels *including* a horizontal flip when ``flipped``;
    in that case keypoint channels were also permuted with ``spec.flip_index``. To map input
    -frame predictions back to the image: ``apply_affine(pred, invert_affine(warp))`` and, if
    ``flipped``, re-index with ``flip_index``. ``center``/``scale``/``rotation`` describe the
    final crop box in the (unflipped) image.
    """

    image: np.ndarray  # (h, w, 3) uint8 RGB
    keypoints: np.ndarray  # (K, 2) float64, input-frame px
    weights: np.ndarray  # (K,) float32: 1 labelled and inside the input, else 0
    warp: np.ndarray  # (2, 3) float64, image -> input
    center: np.ndarray  # (2,)
    scale: np.ndarray  # (2,)
    rotation: float = 0.0
    flipped: bool = False
    half_body: bool = False
    occlusions: np.ndarray | None = None  # (n, 4) painted patches x0, y0, x1, y1


class TopDownTransform:
    """Top-down crop of one instance with keypoint-aware augmentation.

    Built from an :class:`AugmentConfig`. With ``train=False``, ``cfg.enabled=False`` or
    ``cfg.strength == 0`` it is the deterministic crop (box -> input, nothing random).
    Otherwise, in this order: half-body box (``half_body_prob``), random scale (``cfg.scale``,
    uniform; a factor > 1 grows the box so the subject looks smaller), shift (uniform,
    ``±cfg.shift`` of the box size), rotation (uniform ``±cfg.rotate`` deg with
    ``rotate_prob``), shear (uniform ``±cfg.shear`` deg on x and y), horizontal flip
    (``flip_prob``, only if ``spec.can_flip``) — all composed into one affine and one warp —
    then occlusion patches (``occlusion_prob``), colour jitter (``color_jitter_prob``), blur
    (``blur_prob``, sigma 0.1..2 px) and Gaussian noise (``noise_prob``, std 2..10 grey levels).

    Half-body crops need ``half_body_min_keypoints`` labelled points (default
    ``max(4, min(8, K // 2))``) and at least 2 in the chosen half; the new box is the tight box
    of that half, grown to the input aspect and padded by ``half_body_padding`` (1.5).

    ``cfg.strength`` multiplies every magnitude: the scale range's distance from 1, shift,
    rotation, shear, colour amounts, blur sigma, noise std and occlusion patch size
    (``strength=2`` doubles them; probabilities are not changed).
    """

    def __init__(self, cfg: AugmentConfig | None, input_size: Size, *, spec: KeypointSpec, use_udp: bool = False,
                 train: bool = True, bbox_padding: float = 1.25, half_body_padding: float = 1.5,
                 half_body_min_keypoints: int | None = None, occlusion_size: tuple[float, float] = (0.08, 0.25)):
        self.cfg = cfg if cfg is not None else AugmentConfig(enabled=False)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.aspect_ratio = self.input_size[0] / self.input_size[1]
        self.spec = spec
        self.use_udp = bool(use_udp)
        self.train = bool(train)
        self.bbox_padding = float(bbox_padding)
        self.half_body_padding = float(half_body_padding)
        k = spec.num_keypoints
        self.half_body_min_keypoints = (half_body_min_keypoints if half_body_min_keypoints is not None
                                        else max(4, min(8, k // 2)))
        self.occlusion_size = occlusion_size
        self.flip_index = spec.flip_index
        self.lower_body = lower_body_mask(spec)

    @property
    def augment(self) -> bool:
        """True when this transform draws random augmentations."""
        return self.train and self.cfg.enabled and self.cfg.strength > 0

    def __call__(self, image: np.ndarray, keypoints: np.ndarray, bbox_xywh: np.ndarray | Sequence[float],
                 rng: np.random.Generator | None = None) -> TopDownSample:
        """Crop ``image`` (RGB uint8 (H, W, 3)) around ``bbox_xywh``.

        ``keypoints`` is ``(K, 3)`` ``x, y, v`` in image pixels (v > 0 = labelled) or ``(K, 2)``
        (all labelled). ``rng`` is required when augmenting.
        """
        kp = np.asarray(keypoints, dtype=np.float64)
        labelled = kp[:, 2] > 0 if kp.shape[1] >= 3 else np.ones(len(kp), dtype=bool)
        xy = kp[:, :2]
        center, scale = bbox_to_center_scale(bbox_xywh, self.aspect_ratio, self.bbox_padding)
        rot, shear, shift, flipped, half = 0.0, (0.0, 0.0), np.zeros(2), False, False
        aug = self.augment
        if aug:
            if rng is None:
                raise ValueError("TopDownTransform needs a numpy Generator (rng) when augmenting")
            c, s = self.cfg, self.cfg.strength
            if c.half_body_prob > 0 and rng.random() < c.half_body_prob:
                box = half_body_box(kp, labelled, self.lower_body, rng, self.half_body_min_keypoints)
                if box is not None:
                    center, scale = bbox_to_center_scale(box, self.aspect_ratio, self.half_body_padding)
                    half = True
            lo, hi = (1.0 + s * (v - 1.0) for v in c.scale)
            scale = scale * max(0.05, rng.uniform(min(lo, hi), max(lo, hi)))
            shift = rng.uniform(-1.0, 1.0, size=2) * (c.shift * s)
            if c.rotate > 0 and rng.random() < c.rotate_prob:
                rot = float(rng.uniform(-1.0, 1.0) * min(180.0, c.rotate * s))
            if c.shear > 0:
                shear = tuple(rng.uniform(-1.0, 1.0, size=2) * min(60.0, c.shear * s))
            flipped = bool(self.spec.can_flip and c.flip_prob > 0 and rng.random() < c.flip_prob)
        box_center = center + shift * scale
        width = image.shape[1]
        if flipped:
            # crop the mirrored image around the mirrored box: one matrix, one warp
            fc = np.array([width - 1.0 - box_center[0], box_center[1]])
            m = compose_affine(hflip_matrix(width), get_warp_matrix(fc, scale, rot, self.input_size,
                                                                     shear_deg=shear, use_udp=self.use_udp))
        else:
            m = get_warp_matrix(box_center, scale, rot, self.input_size, shear_deg=shear, use_udp=self.use_udp)
        crop = warp_image(image, m, self.input_size)
        out_kp = apply_affine(xy, m)
        weights = (labelled & inside_input(out_kp, self.input_size)).astype(np.float32)
        if flipped:
            out_kp = out_kp[self.flip_index]
            weights = weights[self.flip_index]
        occlusions = None
        if aug:
            crop, occlusions = self._photometric(crop, out_kp, weights, rng)
        return TopDownSample(image=crop, keypoints=out_kp, weights=weights, warp=m, center=box_center,
                             scale=scale, rotation=rot, flipped=flipped, half_body=half, occlusions=occlusions)

    def _photometric(self, crop: np.ndarray, kp: np.ndarray, weights: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        c, s = self.cfg, self.cfg.strength
        occlusions = None
        if c.occlusion_prob > 0 and rng.random() < c.occlusion_prob:
            n = int(rng.integers(1, c.occlusion_max_patches + 1))
            lo, hi = (min(0.9, v * s) for v in self.occlusion_size)
            crop, occlusions = occlude(crop, kp, weights, n, (lo, hi), rng)
        if c.color_jitter_prob > 0 and rng.random() < c.color_jitter_prob:
            def factor(amount: float) -> float:
                return max(0.0, 1.0 + rng.uniform(-1.0, 1.0) * amount * s)

            b, ct, sat = factor(c.brightness), factor(c.contrast), factor(c.saturation)
            hue = float(rng.uniform(-1.0, 1.0) * min(0.5, c.hue * s))
            crop = color_jitter(crop, b, ct, sat, hue)
        if c.blur_prob > 0 and rng.random() < c.blur_prob:
            sigma = float(rng.uniform(0.1, 2.0) * s)
            if sigma > 0.05:
                crop = cv2.GaussianBlur(crop, (0, 0), sigma)
        if c.noise_prob > 0 and rng.random() < c.noise_prob:
            crop = gaussian_noise(crop, float(rng.uniform(2.0, 10.0) * s), rng)
        return crop, occlusions
