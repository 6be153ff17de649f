"""MediaPipe's palm and face detectors: where the hand and face landmark models crop.

Both are single-shot detectors converted from the ``.tflite`` files of the mediapipe wheel, run
like the person detector (:class:`~posetune.inference.detectors.MediaPipeSSDDetector`: letterboxed
square input, SSD anchors with strides 8, 16, 16, 16, weighted NMS at IoU 0.3, score 0.5):

* :class:`MediaPipePalmDetector` — ``palm_detection_full.tflite``, 192x192 input in [0, 1], 2016
  anchors, a palm box and 7 palm keypoints (0 the wrist, 2 the middle finger's knuckle). The hand
  ROI is MediaPipe's ``palm_detection_detection_to_roi``: rotated so that wrist -> middle knuckle
  points up, moved half the palm box's height towards the fingers, made square on its longer
  side and scaled 2.6 times.
* :class:`MediaPipeFaceDetector` — ``face_detection_full_range_sparse.tflite`` (faces up to about
  5 m away, small in the frame), 192x192 input in [-1, 1], one 48x48 anchor grid (stride 4, 2304
  anchors), score 0.6; :class:`MediaPipeNearFaceDetector` — ``face_detection_short_range.tflite``
  (faces within about 2 m, the selfie case), 128x128 input, 896 anchors. Both give a face box and
  6 keypoints (0 and 1 the eyes, as seen from the image left to right). The face ROI is
  ``face_detection_front_detection_to_roi``: rotated so the eye line is level, square on its
  longer side, scaled 1.5 times.

Rotations are degrees counter-clockwise as displayed (0: the hand pointing up, the face upright).
Each detection's ``roi`` is that ROI divided by the predictor's crop padding (1.25), so the
:class:`~posetune.inference.predictor.Predictor`'s default padding crops exactly MediaPipe's
region; ``box`` is the upright box around it, for crops without rotation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posetune.inference.detectors import MediaPipeSSDDetector, enclosing_box, vector_rotation

#: the predictor's default crop padding, taken out of the ROIs below (it puts it back)
CROP_PADDING = 1.25


@dataclass
class PartDetection:
    """A hand or face found by a part detector, in image pixels: ``score``, ``keypoints`` (the
    detector's own points), ``detection_box`` (its xywh box), ``roi`` (xywh in the part's upright
    frame, before the crop padding), ``rotation`` (degrees) and ``image_size`` (width, height)."""

    score: float
    keypoints: np.ndarray
    detection_box: np.ndarray
    roi: np.ndarray
    rotation: float
    image_size: tuple[int, int]

    @property
    def box(self) -> np.ndarray:
        """The upright xywh box around the rotated ROI."""
        return enclosing_box(self.roi, self.rotation)


def part_roi(box: np.ndarray, rotation: float, scale: float, shift_up: float = 0.0) -> np.ndarray:
    """MediaPipe's ``RectTransformationCalculator`` for a detection: the xywh square (in the part's
    upright frame, centred on its centre, divided by :data:`CROP_PADDING`) of a detection box
    ``box`` turned by ``rotation``: moved ``shift_up`` times the box height along the part's up
    direction, square on the longer side, scaled by ``scale``."""
    x, y, w, h = (float(v) for v in box[:4])
    t = np.radians(rotation)
    up = np.array([-np.sin(t), -np.cos(t)])  # the part's up direction in the image (y down)
    centre = np.array([x + w / 2, y + h / 2]) + shift_up * h * up
    side = max(w, h) * scale / CROP_PADDING
    return np.array([centre[0] - side / 2, centre[1] - side / 2, side, side])


class MediaPipePalmDetector(MediaPipeSSDDetector):
    """Hands (see the module docstring); default detector of ``mediapipe-hand``."""

    MODEL = "palm_detection_full"
    INPUT_SIZE = 192
    STRIDES = (8, 16, 16, 16)
    NUM_KEYPOINTS = 7
    INPUT_RANGE = (0.0, 1.0)
    ROI_SCALE = 2.6
    ROI_SHIFT_UP = 0.5

    def _make(self, score: float, keypoints: np.ndarray, box: np.ndarray, image_size: tuple[int, int]
              ) -> PartDetection:
        rotation = vector_rotation(keypoints[0], keypoints[2], 90.0)
        return PartDetection(score, keypoints, box, part_roi(box, rotation, self.ROI_SCALE, self.ROI_SHIFT_UP),
                             rotation, image_size)


class MediaPipeFaceDetector(MediaPipeSSDDetector):
    """Faces near and far (full-range model, see the module docstring); default detector of
    ``mediapipe-face``."""

    MODEL = "face_detection_full_range_sparse"
    INPUT_SIZE = 192
    STRIDES = (4,)
    INTERPOLATED_ANCHOR = 0.0
    NUM_KEYPOINTS = 6
    INPUT_RANGE = (-1.0, 1.0)
    ROI_SCALE = 1.5

    def __init__(self, *, score_thr: float = 0.6, **kwargs):
        super().__init__(score_thr=score_thr, **kwargs)

    def _make(self, score: float, keypoints: np.ndarray, box: np.ndarray, image_size: tuple[int, int]
              ) -> PartDetection:
        rotation = vector_rotation(keypoints[0], keypoints[1], 0.0)
        return PartDetection(score, keypoints, box, part_roi(box, rotation, self.ROI_SCALE), rotation, image_size)


class MediaPipeNearFaceDetector(MediaPipeFaceDetector):
    """Faces within about 2 m (short-range model, see the module docstring)."""

    MODEL = "face_detection_short_range"
    INPUT_SIZE = 128
    STRIDES = (8, 16, 16, 16)
    INTERPOLATED_ANCHOR = 1.0

    def __init__(self, *, score_thr: float = 0.5, **kwargs):
        super().__init__(score_thr=score_thr, **kwargs)
