"""MediaPipe Holistic with posetune's converted networks: pose -> hand and face crops -> 543 points.

:class:`HolisticPipeline` runs BlazePose (``pose_landmark_full``), then the hand landmark network
on a rotated crop around each wrist and the face mesh network on a rotated crop around the face,
and maps every landmark back to the image: 33 pose + 21 left-hand + 21 right-hand + 468 face
points in the order of :data:`posetune.data.presets.MEDIAPIPE_HOLISTIC543`.

Crops (:class:`Roi`). A region of interest is a square of side ``size`` (image pixels) centred at
``center`` and rotated by ``rotation`` radians with MediaPipe's convention: the crop's x axis
runs along ``(cos r, sin r)`` in the image (y down, so a positive angle turns clockwise on
screen) and the crop's "up" along ``(sin r, -cos r)``. :meth:`Roi.matrix` maps image pixels to
crop pixels (both with pixel centres at integers, like the rest of posetune); the landmark
networks' outputs are decoded in the crop and mapped back with the inverse matrix.

ROI rules (MediaPipe's own holistic graph runs extra detector/re-crop networks; these are the
geometric rules that replace them, chosen to match the crops the landmark networks were trained
on):

* **pose**: the given ``pose_box`` (x, y, w, h) as a square of side ``1.25 * max(w, h)`` around
  its centre, or the whole image padded to a square. With ``refine_pose`` (default) a second
  pass runs on BlazePose's tracking ROI computed from the first pass's two alignment landmarks
  (auxiliary points 33 = hips centre, 34 = body-extent point): centre at point 33, side
  ``2 * |p34 - p33| * 1.25``, rotated so that p33 -> p34 points up — MediaPipe's
  ``pose_landmarks_to_roi`` rule. The refined pass is used when the first pass found a person
  (presence >= ``min_pose_presence``).
* **hands**: from the pose's wrist, index and pinky landmarks of that side: the knuckle estimate
  ``m = (2 * index + pinky) / 3`` (MediaPipe's middle-finger estimate), rotation so that
  wrist -> m points up, centre ``wrist + hand_center * (m - wrist)``, side
  ``hand_scale * |m - wrist|`` (at least ``hand_min_size_frac`` of the pose crop). MediaPipe's
  holistic graph refines this crop with ``hand_recrop.tflite``, which the converter cannot run
  (it needs STRIDED_SLICE); instead ``hand_scale = 4.0`` and ``hand_center = 0.8`` were picked
  on the ten labelled COCO-WholeBody hands of posetune's test images (the result is flat between
  scales 3 and 5; on small hands the error is dominated by BlazePose's own wrist/finger error).
  A hand is skipped (score 0, coordinates 0) when its wrist visibility is below
  ``hand_min_visibility`` (MediaPipe's threshold: 0.1) or the pose was not found.
* **face**: rotation from the eye line (right eye -> left eye is the crop's x axis, as MediaPipe's
  face ROI), centre between the eye centre and the mouth centre moved ``face_shift`` of the
  side down the face, side ``face_scale * max(|ear_l - ear_r|, |eyes - mouth| * 2.2)`` — the
  1.5x-enlarged face detection box the face mesh network expects (checked on the same test
  images: scales 1.5-1.8 put the mesh's eye, nose, mouth and chin points within 0.02-0.06 of
  the face box from the 68-point labels). Skipped when the nose and eyes are all less visible
  than ``face_min_visibility``.

Scores: pose points get ``sigmoid`` of BlazePose's visibility logit; every hand / face point
gets its network's presence probability; skipped parts score 0 (and so do the pose points when
no person was found). The networks' native landmark outputs are read, so fine-tuned
:class:`MediaPipeModel` networks can be passed in (a new head of theirs is not used).

Person mask (``segmentation=True``): BlazePose's mask probability on the final pose crop,
mapped back to the whole image (0 outside the crop).

Handedness: the hand network's ``handedness`` output. MediaPipe labels it assuming a mirrored
(selfie) image; on an ordinary photo the raw value is the probability that the crop shows a
*right* hand (measured: an OneHand10K right hand gives 0.95, its mirror image 0.02).
:class:`HolisticResult` reports the raw value per hand crop, so for the ``right_hand`` crop a
value near 1 confirms the pose's side assignment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np
import torch

from posetune.config.schema import CodecConfig, MediaPipeConfig, ModelConfig
from posetune.data.presets import MEDIAPIPE_HOLISTIC543, MEDIAPIPE_POSE33
from posetune.data.spec import KeypointSpec
from posetune.data.transforms import apply_affine, invert_affine
from posetune.errors import ConfigError, InferenceError
from posetune.models.mediapipe.fetch import DEFAULT_VERSION
from posetune.models.mediapipe.models import VARIANTS, MediaPipeModel, build_mediapipe_model

#: the parts of a holistic result, in keypoint order
PARTS: tuple[str, ...] = ("pose", "left_hand", "right_hand", "face")
_P = MEDIAPIPE_POSE33.index
#: pose landmarks that place each hand: wrist, index, pinky
HAND_POINTS: dict[str, tuple[int, int, int]] = {
    "left_hand": (_P("left_wrist"), _P("left_index"), _P("left_pinky")),
    "right_hand": (_P("right_wrist"), _P("right_index"), _P("right_pinky")),
}
#: pose landmarks that place the face
FACE_POINTS = {name: _P(name) for name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "mouth_left",
                                            "mouth_right")}
#: BlazePose's auxiliary alignment points (hips centre, body-extent point) in its 39-point output
POSE_ALIGN = (33, 34)
#: margin of the pose crops (MediaPipe's RectTransformation scale for the pose ROI)
POSE_ROI_SCALE = 1.25


# ----------------------------------------------------------------------------- regions of interest
@dataclass(frozen=True)
class Roi:
    """A rotated square crop (see the module docstring): ``center`` (x, y) image pixels, ``size``
    (side, image pixels), ``rotation`` (radians, MediaPipe's convention). ``valid`` is False for
    a part that was not cropped (its points are zeros with score 0)."""

    center: tuple[float, float]
    size: float
    rotation: float = 0.0
    valid: bool = True

    def matrix(self, output_size: tuple[int, int]) -> np.ndarray:
        """(2, 3) affine: image pixels -> pixels of the ``output_size = (w, h)`` crop."""
        w, h = float(output_size[0]), float(output_size[1])
        cs, sn = math.cos(self.rotation), math.sin(self.rotation)
        a = np.array([[cs, sn], [-sn, cs]]) * np.array([[w / self.size], [h / self.size]])
        c = np.asarray(self.center, dtype=np.float64)
        m = np.empty((2, 3))
        m[:, :2] = a
        m[:, 2] = np.array([(w - 1.0) / 2.0, (h - 1.0) / 2.0]) - a @ c
        return m

    def corners(self) -> np.ndarray:
        """(4, 2) image coordinates of the crop's corners (top-left, top-right, bottom-right,
        bottom-left as seen in the crop)."""
        cs, sn = math.cos(self.rotation), math.sin(self.rotation)
        half = self.size / 2.0
        u, v = np.array([cs, sn]) * half, np.array([-sn, cs]) * half
        c = np.asarray(self.center, dtype=np.float64)
        return np.stack([c - u - v, c + u - v, c + u + v, c - u + v])

    def box(self) -> np.ndarray:
        """Axis-aligned (x, y, w, h) box around the crop."""
        p = self.corners()
        lo, hi = p.min(axis=0), p.max(axis=0)
        return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])

    def to_dict(self) -> dict[str, object]:
        return {"center": [float(v) for v in self.center], "size": float(self.size),
                "rotation": float(self.rotation), "valid": bool(self.valid)}


INVALID_ROI = Roi((0.0, 0.0), 1.0, 0.0, valid=False)


def rotation_up(start: np.ndarray, end: np.ndarray, target_deg: float = 90.0) -> float:
    """MediaPipe's ROI rotation: the angle that turns the vector ``start -> end`` to
    ``target_deg`` (90 = pointing up in the crop), normalised to [-pi, pi)."""
    d = np.asarray(end, dtype=np.float64) - np.asarray(start, dtype=np.float64)
    r = math.radians(target_deg) - math.atan2(-d[1], d[0])
    return (r + math.pi) % (2 * math.pi) - math.pi


def box_roi(box_xywh: Sequence[float], scale: float = POSE_ROI_SCALE) -> Roi:
    """Upright square ROI of side ``scale * max(w, h)`` around a box's centre."""
    x, y, w, h = (float(v) for v in box_xywh)
    return Roi((x + w / 2.0, y + h / 2.0), scale * max(w, h, 1.0))


def image_roi(width: int, height: int) -> Roi:
    """The whole image padded to a square (upright)."""
    return Roi(((width - 1) / 2.0, (height - 1) / 2.0), float(max(width, height)))


def pose_tracking_roi(aux: np.ndarray, scale: float = POSE_ROI_SCALE) -> Roi:
    """BlazePose's ROI from its two alignment points ``aux`` (2, 2) image pixels (hips centre,
    body-extent point): centre at the first, side ``2 * distance * scale``, rotated upright."""
    c, e = np.asarray(aux, dtype=np.float64)[:2, :2]
    size = 2.0 * float(np.linalg.norm(e - c)) * scale
    if not np.isfinite(size) or size < 1.0:
        return INVALID_ROI
    return Roi((float(c[0]), float(c[1])), size, rotation_up(c, e))


# ----------------------------------------------------------------------------- results
@dataclass
class HolisticResult:
    """The 543 holistic points of one person (order of :data:`MEDIAPIPE_HOLISTIC543`).

    ``keypoints`` (543, 2) image pixels (pixel centres at integers); ``scores`` (543,) in [0, 1];
    ``rois`` the crop of each part (``pose``, ``left_hand``, ``right_hand``, ``face``);
    ``boxes`` (x, y, w, h) around each part's points (zeros for a skipped part, and for the
    pose when no person was found);
    ``presence`` each network's presence probability (0 for a skipped part); ``handedness``
    the hand network's raw right-hand probability per hand crop (MediaPipe's mirrored
    convention, see the module docstring; NaN for a skipped hand); ``segmentation`` the
    person mask probability (H, W) float32 when requested.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    rois: dict[str, Roi]
    boxes: dict[str, np.ndarray]
    presence: dict[str, float]
    handedness: dict[str, float] = field(default_factory=dict)
    segmentation: np.ndarray | None = None
    spec: KeypointSpec = MEDIAPIPE_HOLISTIC543

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints and scores of one part (``pose``, ``left_hand``, ``right_hand``, ``face``)."""
        idx = np.asarray(dict(self.spec.parts)[name])
        return self.keypoints[idx], self.scores[idx]

    def as_array(self) -> np.ndarray:
        """(543, 3) x, y, score."""
        return np.concatenate([self.keypoints, self.scores[:, None]], axis=1)


def _points_box(points: np.ndarray) -> np.ndarray:
    lo, hi = points.min(axis=0), points.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


# ----------------------------------------------------------------------------- the pipeline
def _build(variant: str, version: str) -> MediaPipeModel:
    mp = MediaPipeConfig(variant=variant, version=version)  # type: ignore[arg-type]
    cfg = ModelConfig(type="mediapipe", mediapipe=mp,
                      codec=CodecConfig(type="mediapipe", input_size=VARIANTS[variant].input_size))
    return build_mediapipe_model(cfg)


class HolisticPipeline:
    """Pose -> hands + face (see the module docstring).

    ``pose_model`` / ``hand_model`` / ``face_model`` may be given (e.g. fine-tuned
    :class:`MediaPipeModel`s with their native keypoint sets); by default the pretrained networks
    of MediaPipe ``version`` are loaded from the cache (fetched on first use). The tuning
    constants are keyword arguments; the defaults are the documented rules.
    """

    def __init__(self, version: str = DEFAULT_VERSION, device: str | torch.device = "cpu", *,
                 hand_variant: str = "hand_full", pose_model: MediaPipeModel | None = None,
                 hand_model: MediaPipeModel | None = None, face_model: MediaPipeModel | None = None,
                 refine_pose: bool = True, min_pose_presence: float = 0.5, hand_min_visibility: float = 0.1,
                 hand_scale: float = 4.0, hand_center: float = 0.8, hand_min_size_frac: float = 0.02,
                 face_min_visibility: float = 0.1, face_scale: float = 1.5, face_shift: float = 0.0):
        if hand_variant not in ("hand_full", "hand_lite"):
            raise ConfigError(f"unknown hand network '{hand_variant}'", where="hand_variant",
                              hint="use hand_full or hand_lite")
        self.device = torch.device(device)
        self.version = version
        self.pose = (pose_model or _build("pose_full", version)).eval().to(self.device)
        self.hand = (hand_model or _build(hand_variant, version)).eval().to(self.device)
        self.face = (face_model or _build("face", version)).eval().to(self.device)
        for name, m, variant in (("pose_model", self.pose, "pose_full"), ("hand_model", self.hand, "hand"),
                                 ("face_model", self.face, "face")):
            if not m.variant.name.startswith(variant):
                raise InferenceError(f"{name} is a MediaPipe '{m.variant.name}' network",
                                     where="HolisticPipeline", hint=f"pass a '{variant}' network")
        self.refine_pose = bool(refine_pose)
        self.min_pose_presence = float(min_pose_presence)
        self.hand_min_visibility = float(hand_min_visibility)
        self.hand_scale = float(hand_scale)
        self.hand_center = float(hand_center)
        self.hand_min_size_frac = float(hand_min_size_frac)
        self.face_min_visibility = float(face_min_visibility)
        self.face_scale = float(face_scale)
        self.face_shift = float(face_shift)
        self.spec = MEDIAPIPE_HOLISTIC543

    # --- network runs (batched) --------------------------------------------------------
    def _crops(self, images: Sequence[np.ndarray], rois: Sequence[Roi],
               size: tuple[int, int]) -> tuple[torch.Tensor, list[np.ndarray]]:
        mats = [r.matrix(size) for r in rois]
        crops = [cv2.warpAffine(im, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=(0, 0, 0)) for im, m in zip(images, mats)]
        x = torch.from_numpy(np.ascontiguousarray(np.stack(crops))).permute(0, 3, 1, 2).to(self.device)
        return x, mats

    @staticmethod
    def _to_image(points: torch.Tensor, mats: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        """MediaPipe crop pixels (edge-based, (B, P, >=2)) -> image pixels (B, P, 2)."""
        px = points[..., :2].detach().double().cpu().numpy() - 0.5  # pixel centres at integers
        return np.stack([apply_affine(p, invert_affine(m)) for p, m in zip(px, mats)])

    @torch.no_grad()
    def _run_pose(self, images: Sequence[np.ndarray], rois: Sequence[Roi],
                  segmentation: bool) -> dict[str, list]:
        m = self.pose
        size = m.variant.input_size
        x, mats = self._crops(images, rois, size)
        names = [m.variant.landmarks, m.logit_tensor] + ([m.variant.extras["segmentation"]] if segmentation else [])
        outs = m.net.run(m.normalize(x), outputs=names)
        lm = outs[0].reshape(len(rois), m.variant.points, m.variant.values)
        out: dict[str, list] = {
            "points": list(self._to_image(lm, mats, size)),
            "visibility": list(torch.sigmoid(lm[..., 3]).double().cpu().numpy()),
            "presence": list(torch.sigmoid(outs[1].reshape(-1)).double().cpu().numpy()),
            "mats": mats,
        }
        if segmentation:
            out["segmentation"] = list(torch.sigmoid(outs[2][:, 0]).float().cpu().numpy())
        return out

    @torch.no_grad()
    def run_part(self, part: str, images: Sequence[np.ndarray],
                 rois: Sequence[Roi]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Run the ``hand`` or ``face`` network on one ROI per image (e.g. hand crops from another
        detector): image-frame points (N, 21 | 468, 2), presence (N,) and, for hands, the raw
        handedness (N,) (None for faces)."""
        if part not in ("hand", "face"):
            raise InferenceError(f"unknown part '{part}'", where="HolisticPipeline.run_part",
                                 hint="use 'hand' or 'face'")
        if len(images) != len(rois):
            raise InferenceError(f"{len(rois)} ROIs for {len(images)} images", where="HolisticPipeline.run_part",
                                 hint="give one ROI per image")
        model = self.hand if part == "hand" else self.face
        size = model.variant.input_size
        x, mats = self._crops(images, rois, size)
        names = [model.variant.landmarks, model.logit_tensor]
        hand = "handedness" in model.variant.extras
        if hand:
            names.append(model.variant.extras["handedness"])
        outs = model.net.run(model.normalize(x), outputs=names)
        lm = outs[0].reshape(len(rois), model.variant.points, model.variant.values)
        presence = torch.sigmoid(outs[1].reshape(-1)).double().cpu().numpy()
        handed = outs[2].reshape(-1).double().cpu().numpy() if hand else None
        return self._to_image(lm, mats, size)[:, :model.variant.spec.num_keypoints], presence, handed

    # --- ROI rules -------------------------------------------------------------------
    def hand_roi(self, pose_points: np.ndarray, visibility: np.ndarray, side: str, pose_roi: Roi) -> Roi:
        """The crop of ``side`` (``left_hand`` / ``right_hand``) from the pose's image-frame
        landmarks (33, 2) and visibilities (33,) (module docstring)."""
        wi, ii, pi = HAND_POINTS[side]
        if visibility[wi] < self.hand_min_visibility:
            return INVALID_ROI
        wrist = pose_points[wi]
        knuckles = (2.0 * pose_points[ii] + pose_points[pi]) / 3.0
        length = float(np.linalg.norm(knuckles - wrist))
        if not np.isfinite(length):
            return INVALID_ROI
        size = max(self.hand_scale * length, self.hand_min_size_frac * pose_roi.size, 4.0)
        center = wrist + self.hand_center * (knuckles - wrist)
        return Roi((float(center[0]), float(center[1])), size, rotation_up(wrist, knuckles))

    def face_roi(self, pose_points: np.ndarray, visibility: np.ndarray) -> Roi:
        """The crop of the face from the pose's image-frame landmarks (module docstring)."""
        p = {k: pose_points[i] for k, i in FACE_POINTS.items()}
        if max(visibility[FACE_POINTS[k]] for k in ("nose", "left_eye", "right_eye")) < self.face_min_visibility:
            return INVALID_ROI
        eyes = (p["left_eye"] + p["right_eye"]) / 2.0
        mouth = (p["mouth_left"] + p["mouth_right"]) / 2.0
        rotation = rotation_up(p["right_eye"], p["left_eye"], 0.0)
        width = float(np.linalg.norm(p["left_ear"] - p["right_ear"]))
        height = float(np.linalg.norm(mouth - eyes)) * 2.2
        size = self.face_scale * max(width, height)
        if not np.isfinite(size) or size < 4.0:
            return INVALID_ROI
        down = np.array([-math.sin(rotation), math.cos(rotation)])
        center = (eyes + mouth) / 2.0 + self.face_shift * size * down
        return Roi((float(center[0]), float(center[1])), size, rotation)

    # --- public API --------------------------------------------------------------------
    def predict(self, image: np.ndarray, pose_box: Sequence[float] | None = None,
                segmentation: bool = False) -> HolisticResult:
        """The 543 points of the person in ``pose_box`` (x, y, w, h; default: the whole image) of
        an RGB uint8 image (H, W, 3). ``segmentation`` adds the person mask (H, W)."""
        return self.predict_batch([image], None if pose_box is None else [pose_box], segmentation)[0]

    def predict_batch(self, images: Sequence[np.ndarray], pose_boxes: Sequence[Sequence[float] | None] | None = None,
                      segmentation: bool = False) -> list[HolisticResult]:
        """:meth:`predict` for several (image, box) pairs; each network runs once per stage on
        the whole batch. The same image may appear several times (one entry per person)."""
        images = [self._check_image(im, i) for i, im in enumerate(images)]
        if pose_boxes is None:
            pose_boxes = [None] * len(images)
        if len(pose_boxes) != len(images):
            raise InferenceError(f"{len(pose_boxes)} boxes for {len(images)} images", where="pose_boxes",
                                 hint="give one box (or None) per image")
        if not images:
            return []
        rois = [image_roi(im.shape[1], im.shape[0]) if b is None else self._box(b, i)
                for i, (im, b) in enumerate(zip(images, pose_boxes))]
        n = len(images)
        pose = self._run_pose(images, rois, segmentation and not self.refine_pose)
        if self.refine_pose:
            refined = [pose_tracking_roi(pose["points"][i][list(POSE_ALIGN)])
                       if pose["presence"][i] >= self.min_pose_presence else INVALID_ROI for i in range(n)]
            # a second pass where the first found a person; the others keep their first pass (run
            # again only when their mask is wanted)
            todo = [i for i in range(n) if refined[i].valid or segmentation]
            again = [refined[i] if refined[i].valid else rois[i] for i in todo]
            if todo:
                second = self._run_pose([images[i] for i in todo], again, segmentation)
                for j, i in enumerate(todo):
                    for key, value in second.items():
                        pose.setdefault(key, [None] * n)[i] = value[j]
                    rois[i] = again[j]
        found = [pose["presence"][i] >= self.min_pose_presence for i in range(n)]
        hand_rois = {side: [self.hand_roi(pose["points"][i][:33], pose["visibility"][i][:33], side, rois[i])
                            if found[i] else INVALID_ROI for i in range(n)] for side in HAND_POINTS}
        face_rois = [self.face_roi(pose["points"][i][:33], pose["visibility"][i][:33]) if found[i] else INVALID_ROI
                     for i in range(n)]
        hands = self._run_rois("hand", images, hand_rois["left_hand"] + hand_rois["right_hand"], 21)
        face = self._run_rois("face", images, face_rois, 468)
        results = []
        for i in range(n):
            left = (hands[0][i], hands[1][i], hands[2][i])
            right = (hands[0][n + i], hands[1][n + i], hands[2][n + i])
            results.append(self._result(images[i], pose, i, rois[i], hand_rois["left_hand"][i], left,
                                        hand_rois["right_hand"][i], right, face_rois[i],
                                        (face[0][i], face[1][i]), segmentation))
        return results

    def _run_rois(self, part: str, images: Sequence[np.ndarray], rois: list[Roi],
                  k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points (N, k, 2), presence (N,), handedness (N,) for every ROI (zeros / NaN when invalid)."""
        count = len(rois)
        points = np.zeros((count, k, 2))
        presence = np.zeros(count)
        handed = np.full(count, np.nan)
        todo = [j for j, r in enumerate(rois) if r.valid]
        if todo:
            imgs = [images[j % len(images)] for j in todo]
            p, pr, hd = self.run_part(part, imgs, [rois[j] for j in todo])
            points[todo] = p
            presence[todo] = pr
            if hd is not None:
                handed[todo] = hd
        return points, presence, handed

    def _result(self, image: np.ndarray, pose: dict, i: int, pose_roi: Roi, left_roi: Roi, left: tuple,
                right_roi: Roi, right: tuple, face_roi: Roi, face: tuple, segmentation: bool) -> HolisticResult:
        pose_xy = pose["points"][i][:33]
        found = pose["presence"][i] >= self.min_pose_presence
        pose_sc = pose["visibility"][i][:33] if found else np.zeros(33)
        parts_xy = [pose_xy, left[0], right[0], face[0]]
        parts_sc = [pose_sc, np.full(21, left[1]), np.full(21, right[1]), np.full(468, face[1])]
        keypoints = np.concatenate(parts_xy).astype(np.float64)
        scores = np.concatenate(parts_sc).astype(np.float64)
        rois = {"pose": pose_roi, "left_hand": left_roi, "right_hand": right_roi, "face": face_roi}
        presence = {"pose": float(pose["presence"][i]), "left_hand": float(left[1]), "right_hand": float(right[1]),
                    "face": float(face[1])}
        cropped = {"pose": bool(found), "left_hand": left_roi.valid, "right_hand": right_roi.valid,
                   "face": face_roi.valid}
        boxes = {name: (_points_box(xy) if cropped[name] else np.zeros(4)) for name, xy in zip(PARTS, parts_xy)}
        mask = None
        if segmentation:
            h, w = image.shape[:2]
            mask = cv2.warpAffine(pose["segmentation"][i], invert_affine(pose["mats"][i]), (w, h),
                                  flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        return HolisticResult(keypoints=keypoints, scores=scores, rois=rois, boxes=boxes, presence=presence,
                              handedness={"left_hand": float(left[2]), "right_hand": float(right[2])},
                              segmentation=mask)

    @staticmethod
    def _check_image(image: np.ndarray, i: int) -> np.ndarray:
        a = np.asarray(image)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or min(a.shape[:2]) < 1:
            raise InferenceError(f"image {i} must be RGB uint8 (H, W, 3), got {a.dtype} {tuple(a.shape)}",
                                 where="HolisticPipeline.predict", hint="load images with posetune.data.images."
                                                                        "load_image")
        return np.ascontiguousarray(a)

    @staticmethod
    def _box(box: Sequence[float], i: int) -> Roi:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
        if b.size != 4 or not np.isfinite(b).all() or b[2] <= 0 or b[3] <= 0:
            raise InferenceError(f"pose box {i} must be 4 finite numbers x, y, w, h with w, h > 0, got {box}",
                                 where="pose_boxes", hint="pass the person's box in image pixels, or None")
        return box_roi(b)
