"""Normalised mean error (NME) for faces and hands.

``NME = mean over labelled, predicted keypoints of ‖pred − gt‖ / norm`` (pooled over all points
of all instances, as MMPose's ``keypoint_nme``; with every point labelled this equals the usual
mean over images of the per-image mean). ``norm`` per instance:

* ``'interocular'`` — distance between the ground-truth outer eye corners: WFLW (98 points)
  indices 60 and 72, 300-W / iBUG (68 points) 36 and 45, MediaPipe face mesh (468) 33 and 263;
  other specs by name: ``left_eye_outer``/``right_eye_outer`` (MediaPipe pose), else
  ``left_eye``/``right_eye`` (COCO: eye centres, i.e. inter-pupil). Both points must be labelled.
* ``'bbox'`` — ``sqrt(w·h)`` of the ground-truth box (tight keypoint box when none).
* ``'bbox_diag'`` — ``sqrt(w² + h²)`` of that box.
* ``'auto'`` — interocular for face keypoint sets (68/98/468 points or a spec named like a face),
  ``bbox`` for hand sets (21 points or a spec named like a hand); for other sets (bodies,
  animals) NME does not apply and :func:`resolve_nme_norm` returns None.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from posetune.data.spec import KeypointSpec
from posetune.errors import EvaluationError
from posetune.evaluation.matching import Matches
from posetune.evaluation.pck import _find_pairs, mean_distance

NmeNorm = Literal["auto", "interocular", "bbox", "bbox_diag"]
NME_NORMS: tuple[str, ...] = ("auto", "interocular", "bbox", "bbox_diag")

#: outer eye corners by keypoint count (0-based)
OUTER_EYE_BY_COUNT: dict[int, tuple[int, int]] = {98: (60, 72), 68: (36, 45), 468: (33, 263)}
_EYE_NAMES = (("lefteyeouter", "righteyeouter"), ("lefteye", "righteye"))


def _is_face(spec: KeypointSpec) -> bool:
    name = spec.name.lower()
    return spec.num_keypoints in OUTER_EYE_BY_COUNT or any(t in name for t in ("face", "wflw", "300w", "cofw", "aflw"))


def _is_hand(spec: KeypointSpec) -> bool:
    return spec.num_keypoints == 21 or "hand" in spec.name.lower()


def resolve_nme_norm(spec: KeypointSpec, norm: NmeNorm = "auto") -> str | None:
    """The concrete normalisation for ``norm`` on ``spec`` (None: NME does not apply)."""
    if norm not in NME_NORMS:
        raise EvaluationError(f"unknown NME normalisation '{norm}'", hint=f"use one of: {', '.join(NME_NORMS)}")
    if norm != "auto":
        return norm
    if _is_face(spec):
        return "interocular"
    if _is_hand(spec):
        return "bbox"
    return None


def eye_indices(spec: KeypointSpec) -> tuple[int, int]:
    """Indices of the two points whose distance is the inter-ocular normaliser."""
    if spec.num_keypoints in OUTER_EYE_BY_COUNT:
        return OUTER_EYE_BY_COUNT[spec.num_keypoints]
    pairs = _find_pairs(spec, _EYE_NAMES)
    if not pairs:
        raise EvaluationError(f"keypoint spec '{spec.name}' has no eye corners for the inter-ocular distance",
                              hint="use nme_norm='bbox' (CLI --nme-norm bbox), or name the points left_eye/right_eye")
    return pairs[0]


def nme_normalizers(matches: Matches, spec: KeypointSpec, norm: str) -> np.ndarray:
    """(N,) per-instance NME normaliser for a resolved ``norm`` (NaN where undefined)."""
    if norm == "interocular":
        a, b = eye_indices(spec)
        ok = (matches.gt[:, a, 2] > 0) & (matches.gt[:, b, 2] > 0)
        return np.where(ok, np.linalg.norm(matches.gt[:, a, :2] - matches.gt[:, b, :2], axis=-1), np.nan)
    w, h = matches.boxes[:, 2], matches.boxes[:, 3]
    if norm == "bbox":
        return np.sqrt(w * h)
    if norm == "bbox_diag":
        return np.hypot(w, h)
    raise EvaluationError(f"unknown NME normalisation '{norm}'", hint=f"use one of: {', '.join(NME_NORMS)}")


def nme(matches: Matches, norm_values: np.ndarray, *, valid: np.ndarray | None = None
        ) -> tuple[float | None, np.ndarray]:
    """(NME over all counted points, (K,) per keypoint). ``valid`` masks instances."""
    valid = np.ones(matches.num_instances, dtype=bool) if valid is None else valid
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = matches.distances() / norm_values[:, None]
    rel = np.where(valid[:, None] & np.isfinite(rel), rel, np.nan)
    return mean_distance(rel)
