"""Joint angles from 2-D keypoints, with named clinical presets that work across keypoint specs.

Geometry (all vectorised over leading axes, degrees, NaN where undefined):

* :func:`joint_angle` — the interior angle at B formed by A-B-C, in [0, 180]
  (a straight limb is 180, a right angle 90).
* :func:`segment_angle` — the signed angle of the segment ``p_from -> p_to`` to the image
  vertical or horizontal. ``'vertical'``: 0 when ``p_to`` is straight *above* ``p_from``,
  positive when it leans towards the image *right* (clockwise on screen), in (-180, 180].
  ``'horizontal'``: 0 when pointing to the image right, positive when pointing *up*
  (counter-clockwise on screen). Image y grows downwards; both conventions are as seen on screen.

**Presets** (:data:`ANGLES`) look keypoints up by *name* (case-insensitive, ``-``/space =
``_``), so the same preset works for COCO-17, COCO-WholeBody, MPII-16, MediaPipe pose-33 and
custom specs using those names. ``left``/``right`` are the subject's sides. Conventions:

===============  ============================================  ====================================================
preset           points                                        value
===============  ============================================  ====================================================
*_elbow          shoulder-elbow-wrist                          flexion = 180 - interior; 0 = straight arm
*_knee           hip-knee-ankle                                flexion = 180 - interior; 0 = straight leg
*_hip            shoulder-hip-knee                             flexion = 180 - interior; 0 = thigh in line with
                                                               trunk (unsigned: extension also reads positive)
*_shoulder       elbow-shoulder-hip                            interior angle between upper arm and trunk;
                                                               0 = arm along the trunk, 90 = horizontal, 180 =
                                                               overhead (flexion in a side view, abduction in a
                                                               front view)
*_ankle          knee-ankle, heel-foot_index (or big_toe)      90 - angle(shank, foot); 0 = foot perpendicular to
                                                               shank, + dorsiflexion, - plantarflexion
trunk_tilt       mid-hip -> mid-shoulder (MPII: pelvis ->      signed angle to vertical; 0 = upright, + = top
                 thorax)                                       leans to the image right
neck_tilt        mid-shoulder -> mid-ear (else nose; MPII:     signed angle to vertical; 0 = head straight above
                 thorax -> head_top)                           the shoulders, + = leaning to the image right
===============  ============================================  ====================================================

**2-D caveat.** These are angles of the keypoints *projected on the image*. They equal the
clinical angle only when the movement happens in a plane facing the camera (a side view for
flexion/extension, a front view for abduction and lateral tilt); rotation out of that plane
shortens segments and changes the angle. Compare sessions filmed from the same viewpoint.

A frame where any point an angle needs has a score below ``score_thr`` (or is NaN) gives NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from posetune.data.spec import KeypointSpec
from posetune.errors import ConfigError, DataError

AngleKind = Literal["flexion", "interior", "ankle", "tilt"]
Point = tuple[str, ...]  # one keypoint name, or several whose mean is the point


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


# ---------------------------------------------------------------------- geometry
def vector_angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Unsigned angle between vectors ``u`` and ``v`` (..., 2) in degrees [0, 180]; NaN for zero length."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    cross = u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]
    dot = (u * v).sum(axis=-1)
    ang = np.degrees(np.arctan2(np.abs(cross), dot))
    zero = (np.linalg.norm(u, axis=-1) < 1e-9) | (np.linalg.norm(v, axis=-1) < 1e-9)
    return np.where(zero, np.nan, ang)


def joint_angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Interior angle at ``b`` of A-B-C in degrees [0, 180] (arrays of shape (..., 2))."""
    b = np.asarray(b, dtype=np.float64)
    return vector_angle(np.asarray(a, dtype=np.float64) - b, np.asarray(c, dtype=np.float64) - b)


def segment_angle(p_from: np.ndarray, p_to: np.ndarray,
                  reference: Literal["vertical", "horizontal"] = "vertical") -> np.ndarray:
    """Signed angle (degrees, (-180, 180]) of segment ``p_from -> p_to`` to the image vertical/horizontal.

    See the module docstring for the sign conventions (as seen on screen, y down).
    """
    d = np.asarray(p_to, dtype=np.float64) - np.asarray(p_from, dtype=np.float64)
    dx, dy = d[..., 0], d[..., 1]
    if reference == "vertical":
        ang = np.degrees(np.arctan2(dx, -dy))
    elif reference == "horizontal":
        ang = np.degrees(np.arctan2(-dy, dx))
    else:
        raise ValueError("reference must be 'vertical' or 'horizontal'")
    ang = np.where(ang <= -180.0, ang + 360.0, ang)
    return np.where(np.hypot(dx, dy) < 1e-9, np.nan, ang)


# ---------------------------------------------------------------------- presets
@dataclass(frozen=True)
class AngleDef:
    """A named angle: how to compute it and which keypoints it needs (alternatives in order)."""

    name: str
    title: str
    kind: AngleKind
    variants: tuple[tuple[Point, ...], ...]
    convention: str

    def needed(self, variant: int = 0) -> list[str]:
        return [n for p in self.variants[variant] for n in p]


def _side(side: str) -> dict[str, AngleDef]:
    s = side
    S = side.capitalize()
    return {
        f"{s}_elbow": AngleDef(f"{s}_elbow", f"{S} elbow flexion", "flexion",
                               (((f"{s}_shoulder",), (f"{s}_elbow",), (f"{s}_wrist",)),),
                               "180 - interior shoulder-elbow-wrist angle; 0 = straight arm"),
        f"{s}_knee": AngleDef(f"{s}_knee", f"{S} knee flexion", "flexion",
                              (((f"{s}_hip",), (f"{s}_knee",), (f"{s}_ankle",)),),
                              "180 - interior hip-knee-ankle angle; 0 = straight leg"),
        f"{s}_hip": AngleDef(f"{s}_hip", f"{S} hip flexion", "flexion",
                             (((f"{s}_shoulder",), (f"{s}_hip",), (f"{s}_knee",)),),
                             "180 - interior shoulder-hip-knee angle; 0 = thigh in line with the trunk "
                             "(unsigned: extension also reads positive)"),
        f"{s}_shoulder": AngleDef(f"{s}_shoulder", f"{S} shoulder flexion/abduction", "interior",
                                  (((f"{s}_elbow",), (f"{s}_shoulder",), (f"{s}_hip",)),),
                                  "interior elbow-shoulder-hip angle; 0 = arm along the trunk, 90 = horizontal, "
                                  "180 = overhead (flexion in a side view, abduction in a front view)"),
        f"{s}_ankle": AngleDef(f"{s}_ankle", f"{S} ankle dorsiflexion", "ankle",
                               (((f"{s}_knee",), (f"{s}_ankle",), (f"{s}_heel",), (f"{s}_foot_index",)),
                                ((f"{s}_knee",), (f"{s}_ankle",), (f"{s}_heel",), (f"{s}_big_toe",))),
                               "90 - angle between shank (ankle->knee) and foot (heel->toe); "
                               "0 = foot perpendicular to shank, + dorsiflexion, - plantarflexion"),
    }


ANGLES: dict[str, AngleDef] = {
    **_side("left"),
    **_side("right"),
    "trunk_tilt": AngleDef("trunk_tilt", "Trunk lateral tilt", "tilt",
                           ((("left_hip", "right_hip"), ("left_shoulder", "right_shoulder")),
                            (("pelvis",), ("thorax",))),
                           "mid-hip -> mid-shoulder vs vertical; 0 = upright, + = leaning to the image right"),
    "neck_tilt": AngleDef("neck_tilt", "Neck tilt", "tilt",
                          ((("left_shoulder", "right_shoulder"), ("left_ear", "right_ear")),
                           (("left_shoulder", "right_shoulder"), ("nose",)),
                           (("thorax",), ("head_top",)),
                           (("upper_neck",), ("head_top",))),
                          "mid-shoulder -> head (mid-ear, else nose) vs vertical; 0 = head above the shoulders, "
                          "+ = leaning to the image right"),
}
ALIASES = {"trunk": "trunk_tilt", "neck": "neck_tilt", "trunk_lateral_tilt": "trunk_tilt"}


def angle_definition(name: str) -> AngleDef:
    """The preset called ``name`` (ConfigError listing the presets when unknown)."""
    key = _norm(name)
    key = ALIASES.get(key, key)
    if key not in ANGLES:
        raise ConfigError(f"unknown joint angle '{name}'",
                          hint=f"choose from: {', '.join(ANGLES)}")
    return ANGLES[key]


def _lookup(spec: KeypointSpec) -> dict[str, int]:
    return {_norm(n): i for i, n in enumerate(spec.keypoints)}


def _variant(defn: AngleDef, spec: KeypointSpec) -> tuple[int, ...] | None:
    idx = _lookup(spec)
    for var in defn.variants:
        names = [n for p in var for n in p]
        if all(n in idx for n in names):
            return tuple(idx[n] for n in names)
    return None


def available_angles(spec: KeypointSpec) -> list[str]:
    """Names of the presets that ``spec`` has the keypoints for."""
    return [name for name, d in ANGLES.items() if _variant(d, spec) is not None]


def resolve_angle(name: str, spec: KeypointSpec) -> tuple[AngleDef, list[list[int]]]:
    """The preset and, for each of its points, the keypoint indices to average.

    Raises DataError naming the joint and the keypoints the spec lacks.
    """
    defn = angle_definition(name)
    idx = _lookup(spec)
    for var in defn.variants:
        if all(n in idx for p in var for n in p):
            return defn, [[idx[n] for n in p] for p in var]
    first = defn.variants[0]
    missing = [n for p in first for n in p if n not in idx]
    alts = ""
    if len(defn.variants) > 1:
        alts = " (or alternatively " + "; ".join(
            ", ".join(n for p in v for n in p) for v in defn.variants[1:]) + ")"
    avail = available_angles(spec)
    raise DataError(f"joint '{defn.name}' needs keypoint(s) {', '.join(missing)}{alts}, "
                    f"which keypoint spec '{spec.name}' does not have",
                    hint=f"angles available for this spec: {', '.join(avail) or 'none'}")


def compute_angle(name: str, xy: np.ndarray, spec: KeypointSpec, scores: np.ndarray | None = None,
                  score_thr: float = 0.3) -> np.ndarray:
    """The preset angle ``name`` for keypoints ``xy`` (``(T, K, 2)`` -> ``(T,)``, ``(K, 2)`` -> scalar array).

    Points with a score below ``score_thr`` (or NaN coordinates) make that frame NaN.
    """
    defn, points = resolve_angle(name, spec)
    arr = np.asarray(xy, dtype=np.float64)
    single = arr.ndim == 2
    if single:
        arr = arr[None]
        scores = None if scores is None else np.asarray(scores, dtype=np.float64)[None]
    if arr.ndim != 3 or arr.shape[1:] != (spec.num_keypoints, 2):
        raise ValueError(f"xy must be (T, {spec.num_keypoints}, 2), got {np.shape(xy)}")
    pts = arr.copy()
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64)
        pts[~(np.nan_to_num(s, nan=-1.0) >= score_thr)] = np.nan
    p = [pts[:, ids].mean(axis=1) for ids in points]  # NaN propagates: a midpoint needs all its points
    if defn.kind == "flexion":
        out = 180.0 - joint_angle(p[0], p[1], p[2])
    elif defn.kind == "interior":
        out = joint_angle(p[0], p[1], p[2])
    elif defn.kind == "ankle":
        out = 90.0 - vector_angle(p[0] - p[1], p[3] - p[2])
    else:  # tilt
        out = segment_angle(p[0], p[1], "vertical")
    return out[0] if single else out


def compute_angles(names: Sequence[str], xy: np.ndarray, spec: KeypointSpec, scores: np.ndarray | None = None,
                   score_thr: float = 0.3) -> dict[str, np.ndarray]:
    """``{preset name: angle series}`` for several presets (all validated before computing)."""
    defs = [resolve_angle(n, spec)[0] for n in names]
    return {d.name: compute_angle(d.name, xy, spec, scores, score_thr) for d in defs}
