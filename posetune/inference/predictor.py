"""Top-down keypoint prediction on images, folders, videos and cameras.

:class:`Predictor` wraps a :class:`~posetune.models.base.KeypointModel` (a posetune checkpoint or a
built-in MediaPipe network, see :data:`BUILTIN_MODELS`) and runs it on crops around boxes:

* **where to crop** — boxes given by the caller (``(N, 4|5)`` xywh[, score], or a COCO detection
  file via :func:`~posetune.inference.detectors.boxes_from_coco_detections`); else the
  predictor's detector (e.g. :class:`~posetune.inference.detectors.MediaPipePoseDetector`); else
  the whole frame (the common single-subject lab / rehab recording). Each box is grown to the
  model's aspect ratio and padded (``bbox_padding``, 1.25), cropped with one affine warp
  (:func:`posetune.data.transforms.topdown_crop`, the evaluation crop of training), and the
  keypoints are mapped back to image pixels with the inverse warp;
* **rotation** (``rotate=True``, the default) — a subject who is lying or leaning is cropped turned
  upright, the way MediaPipe crops: the detector's boxes carry the body's rotation, and in video
  tracking the next crop takes it from the previous frame's hips and shoulders
  (:func:`~posetune.inference.detectors.body_rotation`; specs without them stay upright). Given
  boxes may carry it as a sixth column. Top-down networks are trained on upright people, so this
  is what keeps a patient on a mat or a fallen person readable;
* **batching** — the crops of many boxes / images / video frames go through the network in
  batches of ``batch_size`` on the chosen device;
* **several subjects** — predictions whose poses overlap (OKS above ``nms_thr``) are merged by
  :func:`posetune.evaluation.coco.oks_nms`; the instance score is the box score times the mean
  score of the keypoints at or above ``score_thr``.

Video (:meth:`Predictor.iter_video`, :meth:`Predictor.predict_video`) has three box modes:

* ``'track'`` (default, the BlazePose way): the first frame is cropped around the detector's boxes
  (or the whole frame); every next frame around the box of the subject's previous keypoints
  (:func:`~posetune.inference.detectors.box_from_keypoints`). A subject whose mean keypoint score
  falls below ``score_thr`` is *lost*: the same frame is predicted again from the detector's boxes
  (or the whole frame when there is no detector); so is a subject whose keypoints collapsed into a
  small part of its crop. With a detector, new subjects are also looked for
  every ``redetect_every`` frames. Frames depend on each other, so one frame is one batch.
* ``'frame'``: the whole frame, every frame (batched over ``batch_size`` frames).
* ``'detector'``: the detector on every frame (batched).

Boxes from a COCO detection file can be given for video too (``image_id`` = frame index).
Subjects get track ids from :class:`~posetune.inference.tracking.Tracker` when several can appear;
with one subject at most (no detector, no boxes) the id is always 0.

Faults: a video that breaks while decoding yields every frame before the fault, then raises
:class:`~posetune.errors.InferenceError` (``predict_video`` attaches the table of the good frames
as ``error.partial``, or returns it with ``on_error='stop'``).
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from posetune.data.spec import KeypointSpec
from posetune.errors import CheckpointError, ConfigError, DataError, InferenceError, ModelError
from posetune.inference.detectors import (DetectionBoxes, as_boxes, body_rotation, box_from_keypoints,
                                          box_iou_matrix, build_detector, enclosing_box, whole_frame)

from posetune.devices import resolve_device
from posetune.models.zoo import BUILTIN_MODELS, builtin_name

#: built-in multi-network pipelines (not a single KeypointModel)
PIPELINES: tuple[str, ...] = ("mediapipe-holistic",)
#: built-in models that come with a detector by default (people, palms, faces)
DEFAULT_DETECTORS: dict[str, str] = {"mediapipe-pose": "mediapipe", "mediapipe-holistic": "mediapipe",
                                     "mediapipe-hand": "mediapipe-palm", "mediapipe-hand-lite": "mediapipe-palm",
                                     "mediapipe-face": "mediapipe-face"}
BOX_MODES = ("track", "frame", "detector")
SMOOTHING_METHODS = ("one_euro", "savgol", "none")


def builtin_names() -> list[str]:
    """Every name :meth:`Predictor.from_checkpoint` knows besides checkpoint paths."""
    return list(BUILTIN_MODELS) + list(PIPELINES)


# ============================================================================ results
@dataclass
class PosePrediction:
    """One subject in one image: ``keypoints (K, 2)`` image pixels, ``scores (K,)``, the crop ``box``
    (xywh) with its ``box_score``, the instance ``score`` and the ``track_id`` (video)."""

    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray
    box_score: float = 1.0
    score: float = 0.0
    track_id: int | None = None
    category_id: int = 1

    @property
    def mean_score(self) -> float:
        """Mean keypoint score (the 'is the subject still there' test of video tracking)."""
        return float(np.mean(self.scores)) if len(self.scores) else 0.0

    def as_array(self) -> np.ndarray:
        """``(K, 3)`` x, y, score."""
        return np.c_[self.keypoints, self.scores]

    def to_instance(self):
        """The prediction as an :class:`~posetune.data.records.Instance` (scores in ``keypoint_scores``)."""
        from posetune.data.records import Instance

        kp = np.c_[self.keypoints, np.full(len(self.keypoints), 2.0)]
        return Instance(keypoints=kp, bbox=np.asarray(self.box, dtype=np.float64), score=float(self.score),
                        keypoint_scores=np.asarray(self.scores, dtype=np.float64), track_id=self.track_id)

    def to_coco(self, image_id: Any, **extra: Any) -> dict[str, Any]:
        """A COCO keypoint result: ``image_id``, ``category_id``, ``keypoints`` (x, y, score per point),
        ``score``, ``bbox``, ``box_score``, plus ``extra`` fields (file_name, frame, track_id ...)."""
        kp = np.c_[self.keypoints, self.scores].reshape(-1)
        rec: dict[str, Any] = {
            "image_id": image_id,
            "category_id": int(self.category_id),
            "keypoints": [round(float(v), 3) for v in kp],
            "score": round(float(self.score), 5),
            "bbox": [round(float(v), 2) for v in self.box],
            "box_score": round(float(self.box_score), 5),
        }
        if self.track_id is not None:
            rec["track_id"] = int(self.track_id)
        rec.update(extra)
        return rec


@dataclass
class FrameResult:
    """One processed video frame: ``index``, ``time`` (s), ``predictions``, the RGB ``image`` and,
    when drawing was asked for, ``drawn`` (the image with the skeletons)."""

    index: int
    time: float
    predictions: list[PosePrediction]
    image: np.ndarray
    drawn: np.ndarray | None = None


# ============================================================================ model loading
def load_predictor_model(source: str | os.PathLike, *, allow_unsafe: bool = False):
    """``(model, name)`` for a built-in name (:data:`BUILTIN_MODELS`) or a posetune checkpoint
    (path or URL). Unknown names and missing files raise a one-line error listing the built-ins."""
    from posetune.models.checkpoints import load_model

    from posetune.models.zoo import build_builtin

    name = str(source)
    choices = ", ".join(builtin_names())
    builtin = builtin_name(name)
    if builtin is not None:
        return build_builtin(builtin), builtin
    is_url = name.startswith(("http://", "https://", "file://"))
    if not is_url:
        path = Path(name).expanduser()
        if not path.exists():
            raise CheckpointError("no such checkpoint file or built-in model", where=name,
                                  hint=f"give a .ckpt written by `posetune train` or a built-in model: {choices}")
        if path.is_dir():
            ckpts = sorted(path.glob("*.ckpt")) + sorted(path.glob("checkpoints/*.ckpt"))
            best = [p for p in ckpts if p.stem.startswith("best")]
            if not (best or ckpts):
                raise CheckpointError("folder holds no .ckpt checkpoint", where=name,
                                      hint=f"give a .ckpt written by `posetune train` or a built-in model: {choices}")
            path = (best or ckpts)[0]
        name = str(path)
    try:
        return load_model(name, allow_unsafe=allow_unsafe), Path(name).stem
    except CheckpointError as e:
        if "not a posetune checkpoint" in e.what:
            hint = f"give a .ckpt written by `posetune train` or a built-in model: {choices}"
            raise CheckpointError(e.what, where=e.where, hint=hint) from None
        raise


# ============================================================================ helpers
def as_rgb_image(image: Any, where: str = "image") -> np.ndarray:
    """An RGB uint8 ``(H, W, 3)`` array from a path, a grey / RGB / RGBA array (uint8, or float in [0, 1])."""
    from posetune.data.images import load_image

    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        if arr.dtype.kind == "f" and arr.size and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DataError(f"an image is an RGB array (H, W, 3), got shape {np.shape(image)}", where=where,
                        hint="pass an RGB uint8 image or a path")
    return np.ascontiguousarray(arr)


def smooth_table(table, method: str | None, score_thr: float = 0.3, **params: float):
    """A copy of a :class:`~posetune.analysis.tracks.TrackTable` with every track smoothed
    (:func:`posetune.inference.smoothing.smooth_track`: ``one_euro`` or ``savgol``). Points the
    smoother cannot estimate (low scores, long gaps) keep their raw values; scores are unchanged."""
    from posetune.inference.smoothing import smooth_track

    if method in (None, "none") or table.num_frames == 0 or table.num_tracks == 0:
        return table
    if method not in SMOOTHING_METHODS:
        raise ConfigError(f"unknown smoothing '{method}'", where="--smooth",
                          hint=f"use one of: {', '.join(SMOOTHING_METHODS)}")
    dense = table.densify()
    xy = dense.xy.copy()
    times = dense.frame_times()
    for j in range(dense.num_tracks):
        sm = smooth_track(dense.xy[:, j], dense.scores[:, j], method, score_thr=score_thr, fps=dense.fps,
                          timestamps=times if times is not None and np.isfinite(times).all() else None, **params)
        xy[:, j] = np.where(np.isfinite(sm), sm, dense.xy[:, j])
    if dense.num_frames != table.num_frames:  # back to the original rows
        rows = np.searchsorted(dense.frames, table.frames)
        xy = xy[rows]
    info = dict(table.info, smoothing=method)
    return replace(table, xy=xy, info=info)


class _Prefetch:
    """Reads an iterator in a background thread (video decoding overlaps inference). Exceptions are
    re-raised in the consumer at their place in the stream."""

    _END = object()

    def __init__(self, iterator: Iterator[Any], size: int):
        self._q: queue.Queue = queue.Queue(maxsize=max(1, size))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iterator,), daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, iterator: Iterator[Any]) -> None:
        try:
            for item in iterator:
                if not self._put(("item", item)):
                    return
            self._put(("end", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put(("error", e))

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                kind, value = self._q.get()
                if kind == "item":
                    yield value
                elif kind == "end":
                    return
                else:
                    raise value
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def open_video(source: Any):
    """A frame source for :meth:`Predictor.iter_video`: a video file path
    (:class:`~posetune.inference.video.VideoReader`), a camera index (``0`` or ``'0'``, :func:`open_camera`),
    or an already opened reader (returned as is)."""
    from posetune.inference.video import VideoReader, open_camera

    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        return open_camera(int(source))
    if isinstance(source, str) and source.isdigit() and not Path(source).exists():
        return open_camera(int(source))
    if isinstance(source, (str, os.PathLike)):
        return VideoReader(source)
    if hasattr(source, "__iter__") and hasattr(source, "fps"):
        return source
    raise InferenceError(f"cannot read frames from a {type(source).__name__}",
                         hint="give a video path, a camera index or a VideoReader")


# ============================================================================ the predictor
class Predictor:
    """Top-down keypoint prediction with one model (see the module docstring).

    ``detector``: None (whole frame when no boxes are given), a detector name (``'mediapipe'``) or
    an object with ``boxes_batch(images) -> list of (N, 5) arrays``. ``bbox_padding`` grows every
    box before cropping, ``track_padding`` pads the box around the previous frame's keypoints,
    ``nms_thr`` is the OKS above which two predictions are one subject (1.0 turns merging off).
    ``rotate`` crops lying or leaning subjects turned upright (see the module docstring).
    """

    def __init__(self, model, *, device: str | torch.device | None = "cpu", flip_test: bool = False,
                 batch_size: int = 16, score_thr: float = 0.3, detector: Any = None, bbox_padding: float = 1.25,
                 track_padding: float = 0.1, nms_thr: float = 0.9, redetect_every: int = 30,
                 min_track_size: float = 16.0, rotate: bool = True, name: str | None = None):
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}", where="--batch-size")
        if not 0.0 <= score_thr <= 1.0:
            raise ConfigError(f"score threshold must be in [0, 1], got {score_thr}", where="--score-thr")
        self.device = resolve_device(device)
        self.model = self._prepare(model)
        self.flip_test = bool(flip_test)
        self.batch_size = int(batch_size)
        self.score_thr = float(score_thr)
        self.bbox_padding = float(bbox_padding)
        self.track_padding = float(track_padding)
        self.nms_thr = float(nms_thr)
        self.redetect_every = int(redetect_every)
        self.min_track_size = float(min_track_size)
        self.rotate = bool(rotate)
        self.name = name or type(model).__name__
        if isinstance(detector, str):
            detector = None if detector == "none" else build_detector(detector, device=self.device)
        self.detector = detector
        #: work done so far: crops through the network, images through the detector
        self.stats = {"crops": 0, "detector_images": 0}

    def _prepare(self, model: Any) -> Any:
        return model.to(self.device).eval()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, path_or_name: str | os.PathLike, device: str | torch.device | None = "cpu",
                        flip_test: bool = False, batch_size: int = 16, score_thr: float = 0.3, *,
                        detector: Any = "auto", allow_unsafe: bool = False, **kwargs: Any) -> "Predictor":
        """A predictor for a posetune checkpoint (``.ckpt`` from ``posetune train``, a run folder or
        URL) or a built-in model: ``mediapipe-pose`` (BlazePose full, 33 landmarks, with MediaPipe's
        person detector by default), ``mediapipe-hand`` (palm detector), ``mediapipe-face`` (face
        detector), ``mediapipe-holistic``
        (pose + both hands + face mesh, 543 points, :class:`HolisticPredictor`). ``detector='auto'``
        picks the model's default detector (none for checkpoints: whole frame or given boxes)."""
        key = str(path_or_name).strip().lower().replace("_", "-")
        if detector == "auto":
            detector = DEFAULT_DETECTORS.get(builtin_name(key) or key)
        if key in PIPELINES:
            from posetune.models.mediapipe.holistic import HolisticPipeline

            pipe = HolisticPipeline(device=str(resolve_device(device)))
            return HolisticPredictor(pipe, device=device, batch_size=batch_size, score_thr=score_thr,
                                     detector=detector, name=key, **kwargs)
        model, name = load_predictor_model(path_or_name, allow_unsafe=allow_unsafe)
        return cls(model, device=device, flip_test=flip_test, batch_size=batch_size, score_thr=score_thr,
                   detector=detector, name=name, **kwargs)

    @property
    def spec(self) -> KeypointSpec:
        return self.model.spec

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.model.codec.input_size)  # type: ignore[return-value]

    # ------------------------------------------------------------------ core: crops -> keypoints
    def _forward(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B, h, w, 3)`` uint8 crops -> keypoints ``(B, K, 2)`` input px, scores ``(B, K)``."""
        kps, scs = [], []
        self.stats["crops"] += len(crops)
        with torch.inference_mode():
            for i in range(0, len(crops), self.batch_size):
                x = torch.from_numpy(crops[i:i + self.batch_size])
                if self.device.type == "cuda":
                    x = x.pin_memory().to(self.device, non_blocking=True)
                x = x.permute(0, 3, 1, 2).contiguous()
                kp, sc = self.model.predict(x, flip_test=self.flip_test)
                kps.append(kp.float().cpu().numpy())
                scs.append(sc.float().cpu().numpy())
        return np.concatenate(kps).astype(np.float64), np.concatenate(scs).astype(np.float64)

    def predict_boxes(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray],
                      categories: Sequence[np.ndarray | None] | None = None) -> list[list[PosePrediction]]:
        """Predictions for the ``(N_i, 5)`` boxes of each RGB image, all crops batched together;
        overlapping poses merged by OKS-NMS."""
        from posetune.data.transforms import apply_affine, invert_affine, topdown_crop

        size = self.input_size
        use_udp = bool(getattr(self.model.codec, "use_udp", False))
        crops, warps, owner = [], [], []
        for i, (img, bx) in enumerate(zip(images, boxes)):
            for b in bx:
                angle = float(b[5]) if len(b) > 5 else 0.0
                crop, m = topdown_crop(img, b[:4], size, use_udp=use_udp, padding=self.bbox_padding, rotation=angle)
                crops.append(crop)
                warps.append(m)
                owner.append(i)
        out: list[list[PosePrediction]] = [[] for _ in images]
        if not crops:
            return out
        kp, sc = self._forward(np.stack(crops))
        counters = [0] * len(images)
        for n, i in enumerate(owner):
            j = counters[i]
            counters[i] += 1
            box = boxes[i][j]
            cat = 1
            if categories is not None and categories[i] is not None and len(categories[i]) > j:
                cat = int(categories[i][j])
            xy = apply_affine(kp[n], invert_affine(warps[n]))
            s = sc[n]
            good = s >= self.score_thr
            kp_score = float(s[good].mean()) if good.any() else 0.0
            angle = float(box[5]) if len(box) > 5 else 0.0
            out[i].append(PosePrediction(xy, s, enclosing_box(box, angle), float(box[4]),
                                         float(box[4]) * kp_score, None, cat))
        return [self._nms(p) for p in out]

    def _nms(self, preds: list[PosePrediction]) -> list[PosePrediction]:
        if len(preds) < 2 or self.nms_thr >= 1.0:
            return preds
        from posetune.evaluation.coco import oks_nms

        keep = oks_nms([p.to_instance() for p in preds], thr=self.nms_thr, sigmas=self.spec.sigmas_array,
                       scores=[p.score for p in preds])
        return [preds[i] for i in sorted(keep)]

    # ------------------------------------------------------------------ images
    def default_boxes(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``(N, 5)`` boxes per image when none are given: the detector's, else the whole frame."""
        if self.detector is not None:
            self.stats["detector_images"] += len(images)
            if self.rotate and getattr(self.detector, "gives_rotation", False):
                found = self.detector.boxes_batch(list(images), rotated=True)
            else:
                found = self.detector.boxes_batch(list(images))
            return [as_boxes(b, "detector") for b in found]
        return [whole_frame(img.shape[1], img.shape[0]) for img in images]

    def _resolve_boxes(self, images: Sequence[np.ndarray], sources: Sequence[Any], boxes: Any
                       ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        n = len(images)
        cats: list[np.ndarray | None] = [None] * n
        if boxes is None or (isinstance(boxes, str) and boxes in ("auto", "default")):
            return self.default_boxes(images), cats
        if isinstance(boxes, str) and boxes == "frame":
            return [whole_frame(img.shape[1], img.shape[0]) for img in images], cats
        if isinstance(boxes, str) and boxes == "detector":
            if self.detector is None:
                raise ConfigError("box mode 'detector' needs a detector", where="--detector",
                                  hint="choose a detector (e.g. --detector mediapipe) or give boxes")
            return self.default_boxes(images), cats
        if isinstance(boxes, DetectionBoxes):
            out = []
            for i, src in enumerate(sources):
                if not isinstance(src, (str, os.PathLike)):
                    raise ConfigError("boxes from a detection file need image paths to match the images",
                                      where=str(boxes.source), hint="pass file paths, or give the boxes as arrays")
                found = boxes.lookup(file_name=src)
                out.append(np.zeros((0, 5)) if found is None else found[1])
                cats[i] = None if found is None else found[2]
            return out, cats
        if isinstance(boxes, str):
            raise ConfigError(f"unknown box source '{boxes}'", where="boxes",
                              hint="give box arrays, a DetectionBoxes, 'frame' or 'detector'")
        if len(boxes) != n:
            raise ConfigError(f"{len(boxes)} box lists for {n} images", where="boxes",
                              hint="give one (N, 4|5) box array per image")
        return [self.default_boxes([img])[0] if b is None else as_boxes(b) for img, b in zip(images, boxes)], cats

    def predict(self, image: Any, boxes: Any = None) -> list[PosePrediction]:
        """Predictions for one image (path or RGB array). ``boxes``: ``(N, 4|5)`` xywh[, score],
        a :class:`~posetune.inference.detectors.DetectionBoxes`, ``'frame'``, ``'detector'`` or None
        (the detector when the predictor has one, else the whole frame)."""
        shared = boxes is None or isinstance(boxes, (str, DetectionBoxes))
        return self.predict_batch([image], boxes if shared else [boxes])[0]

    def predict_batch(self, images: Sequence[Any], boxes: Any = None) -> list[list[PosePrediction]]:
        """Predictions for several images; ``boxes`` is one entry per image (None: default boxes),
        or one of the shared forms of :meth:`predict`."""
        arrays = [as_rgb_image(img, where=str(img) if isinstance(img, (str, os.PathLike)) else f"image {i}")
                  for i, img in enumerate(images)]
        box_lists, cats = self._resolve_boxes(arrays, list(images), boxes)
        return self.predict_boxes(arrays, box_lists, cats)

    def draw(self, image: np.ndarray, predictions: Sequence[PosePrediction], **kwargs: Any) -> np.ndarray:
        """The image with the predicted skeletons, boxes and track ids
        (:func:`posetune.inference.visualize.draw_instances`)."""
        from posetune.inference.visualize import draw_instances

        kwargs.setdefault("score_thr", self.score_thr)
        return draw_instances(image, [p.to_instance() for p in predictions], self.spec, **kwargs)

    # ------------------------------------------------------------------ video
    def _video_boxes(self, boxes: Any) -> tuple[str, DetectionBoxes | None]:
        if isinstance(boxes, DetectionBoxes):
            return "given", boxes
        if isinstance(boxes, (str, os.PathLike)) and str(boxes) not in BOX_MODES:
            if Path(boxes).suffix.lower() == ".json":
                from posetune.inference.detectors import boxes_from_coco_detections

                return "given", boxes_from_coco_detections(boxes, self.score_thr)
        mode = str(boxes)
        if mode not in BOX_MODES:
            raise ConfigError(f"unknown video box mode '{boxes}'", where="--box-mode",
                              hint=f"use one of: {', '.join(BOX_MODES)}, or a COCO detections json")
        if mode == "detector" and self.detector is None:
            raise ConfigError("box mode 'detector' needs a detector", where="--detector",
                              hint="choose a detector (e.g. --detector mediapipe) or use --box-mode track/frame")
        return mode, None

    def iter_video(self, source: Any, *, boxes: Any = "track", max_frames: int | None = None, draw: bool = False,
                   realtime: bool | None = None, prefetch: bool = True) -> Iterator[FrameResult]:
        """Process a video file, camera or reader frame by frame, yielding a :class:`FrameResult` per
        frame in order (see the module docstring for the box modes). ``realtime`` (default: True for
        cameras) processes every frame as soon as it arrives instead of batching frames; ``prefetch``
        decodes file frames in a background thread. A reader passed in is not closed."""
        mode, given = self._video_boxes(boxes)
        reader = open_video(source)
        owned = reader is not source
        from posetune.inference.video import CameraReader

        if realtime is None:
            realtime = isinstance(reader, CameraReader)
        frames: Iterable[Any] = iter(reader)
        if max_frames is not None:
            if max_frames < 1:
                raise ConfigError(f"max frames must be >= 1, got {max_frames}", where="--max-frames")
            frames = itertools.islice(frames, int(max_frames))
        fetch = None
        if prefetch and not realtime:
            fetch = _Prefetch(iter(frames), 2 * self.batch_size)
            frames = iter(fetch)
        multi = self.detector is not None or given is not None
        tracker = None
        if multi:
            from posetune.inference.tracking import Tracker

            tracker = Tracker(self.spec, kp_thr=self.score_thr)
        try:
            if mode == "track":
                results = self._track_frames(frames)
            else:
                results = self._batched_frames(frames, mode, given, 1 if realtime else self.batch_size)
            for fr, preds in results:
                if tracker is not None:
                    ids = tracker.update([p.as_array() for p in preds], frame=fr.index)
                    for p, t in zip(preds, ids):
                        p.track_id = int(t)
                else:
                    for p in preds:
                        p.track_id = 0
                drawn = self.draw(fr.image, preds) if draw else None
                yield FrameResult(fr.index, fr.time, preds, fr.image, drawn)
        finally:
            if fetch is not None:
                fetch.close()
            if owned:
                reader.close()

    def _batched_frames(self, frames: Iterable[Any], mode: str, given: DetectionBoxes | None,
                        chunk: int) -> Iterator[tuple[Any, list[PosePrediction]]]:
        it = iter(frames)
        done = False
        while not done:
            batch: list[Any] = []
            fault: BaseException | None = None
            try:  # a fault while filling a batch must not lose the frames read before it
                while len(batch) < chunk:
                    batch.append(next(it))
            except StopIteration:
                done = True
            except InferenceError as e:
                fault, done = e, True
            if not batch:
                if fault is not None:
                    raise fault
                return
            images = [f.image for f in batch]
            cats: list[np.ndarray | None] = [None] * len(batch)
            if mode == "given":
                box_lists = []
                for i, f in enumerate(batch):
                    found = given.lookup(image_id=f.index)  # type: ignore[union-attr]
                    box_lists.append(np.zeros((0, 5)) if found is None else found[1])
                    cats[i] = None if found is None else found[2]
            elif mode == "detector":
                box_lists = self.default_boxes(images)
            else:
                box_lists = [whole_frame(img.shape[1], img.shape[0]) for img in images]
            yield from zip(batch, self.predict_boxes(images, box_lists, cats))
            if fault is not None:
                raise fault

    def _track_frames(self, frames: Iterable[Any]) -> Iterator[tuple[Any, list[PosePrediction]]]:
        tracked: list[np.ndarray] = []  # (5,) boxes from the previous frame's keypoints
        last_detect = None
        for f in frames:
            img = f.image
            good: list[PosePrediction] = []
            lost: list[PosePrediction] = []
            if tracked:
                for p in self.predict_boxes([img], [np.asarray(tracked)])[0]:
                    (good if self._still_there(p) else lost).append(p)
            periodic = (self.detector is not None and self.redetect_every > 0 and last_detect is not None
                        and f.index - last_detect >= self.redetect_every)
            new: list[PosePrediction] = []
            if lost or not tracked or periodic:
                if self.detector is not None:
                    cand = self.default_boxes([img])[0]
                    last_detect = f.index
                elif not good:
                    cand = whole_frame(img.shape[1], img.shape[0])
                else:
                    cand = np.zeros((0, 5))
                if len(cand) and good:  # skip subjects already followed (their keypoints fill the box)
                    held = []
                    for p in good:
                        b = box_from_keypoints(p.keypoints, p.scores, 0.0, self.score_thr)
                        held.append(p.box if b is None else b)
                    cand = cand[box_iou_matrix(cand, np.array(held), mode="min").max(axis=1) < 0.5]
                if len(cand):
                    new = self.predict_boxes([img], [cand])[0]
            preds = good + new if (good or new) else lost
            preds = self._nms(preds)
            tracked = []
            for p in preds:
                if self._still_there(p):
                    angle = body_rotation(self.spec, p.keypoints, p.scores, self.score_thr) if self.rotate else None
                    b = box_from_keypoints(p.keypoints, p.scores, self.track_padding, self.score_thr,
                                           min_size=self.min_track_size, rotation=angle or 0.0)
                    if b is not None:
                        tracked.append(np.r_[b, p.box_score, angle or 0.0])
            yield f, preds

    #: a tracked subject whose confident keypoints span less than this part of its crop box has
    #: collapsed (a network shown too little of the subject puts every point in one place)
    COLLAPSED_EXTENT = 0.2

    def _still_there(self, p: PosePrediction) -> bool:
        """Tracking test: mean keypoint score >= ``score_thr`` and keypoints that still fill the crop."""
        if p.mean_score < self.score_thr:
            return False
        sure = p.scores >= self.score_thr
        if sure.sum() < 2:
            return False
        extent = np.ptp(p.keypoints[sure], axis=0).max()
        return bool(extent >= self.COLLAPSED_EXTENT * max(p.box[2], p.box[3]))

    def predict_video(self, source: Any, *, boxes: Any = "track", smooth: str | None = None,
                      max_frames: int | None = None, progress: bool = False, on_error: str = "raise",
                      smooth_params: dict[str, float] | None = None):
        """Keypoint tracks of a video (or camera) as a :class:`~posetune.analysis.tracks.TrackTable`
        (``smooth``: None / 'none', 'one_euro' or 'savgol', applied to each track afterwards).

        On a decoding fault: ``on_error='raise'`` raises the InferenceError with the table of the
        frames before the fault in ``error.partial``; ``'stop'`` returns that table with the message
        in ``table.info['error']``."""
        from posetune.analysis.tracks import TrackTableBuilder

        if on_error not in ("raise", "stop"):
            raise ValueError("on_error must be 'raise' or 'stop'")
        if smooth not in (None, *SMOOTHING_METHODS):
            raise ConfigError(f"unknown smoothing '{smooth}'", where="smooth",
                              hint=f"use one of: {', '.join(SMOOTHING_METHODS)}")
        reader = open_video(source)
        total = getattr(reader, "frame_count", 0) or None
        if max_frames is not None and total:
            total = min(total, max_frames)
        fps = float(reader.fps) if getattr(reader, "fps", None) else None
        builder = TrackTableBuilder(self.spec, fps=fps, source=getattr(reader, "path", None))
        error: InferenceError | None = None
        try:
            with FrameProgress(total, "predicting", enabled=progress) as bar:
                for fr in self.iter_video(reader, boxes=boxes, max_frames=max_frames):
                    builder.add_frame(fr.index, fr.time)
                    for p in fr.predictions:
                        builder.add(fr.index, int(p.track_id or 0), p.as_array(), time=fr.time)
                    bar.advance()
        except InferenceError as e:
            error = e
        finally:
            if reader is not source:
                reader.close()
        table = smooth_table(builder.build(), smooth, self.score_thr, **(smooth_params or {}))
        table.info.update({"model": self.name, "box_mode": str(boxes)})
        if error is not None:
            if on_error == "raise":
                error.partial = table  # type: ignore[attr-defined]
                raise error
            table.info["error"] = str(error)
        return table


# ============================================================================ progress
class FrameProgress:
    """A rich progress bar with frames (or images) per second, on stderr; no-op when disabled."""

    def __init__(self, total: int | None, description: str, *, enabled: bool = True, unit: str = "frames"):
        self.total = total
        self.description = description
        self.enabled = enabled
        self.unit = unit
        self.count = 0
        self._progress = None
        self._task = None
        self._t0 = 0.0

    def __enter__(self) -> "FrameProgress":
        import time

        self._t0 = time.perf_counter()
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            unit = self.unit

            class _Rate(TextColumn):
                def render(self, task):  # type: ignore[override]
                    from rich.text import Text

                    speed = task.completed / task.elapsed if task.elapsed else None
                    return Text(f"{speed:.1f} {unit}/s" if speed else f"– {unit}/s", style="cyan")

            cols: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(""),
                               TimeElapsedColumn()]
            self._progress = Progress(*cols, console=Console(stderr=True), transient=False)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self

    def advance(self, n: int = 1) -> None:
        self.count += n
        if self._progress is not None:
            self._progress.update(self._task, advance=n)

    @property
    def rate(self) -> float:
        """Items per second since the start."""
        import time

        dt = time.perf_counter() - self._t0
        return self.count / dt if dt > 0 else 0.0

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


class HolisticPredictor(Predictor):
    """:class:`Predictor` over MediaPipe's holistic pipeline: for each person box, BlazePose, then
    rotated hand and face crops from its landmarks, then the hand and face networks — 33 + 2x21 +
    468 points (:data:`posetune.data.presets.MEDIAPIPE_HOLISTIC543`) in image coordinates.
    Boxes, detector, video tracking, drawing and outputs work as for any model."""

    def _prepare(self, model: Any) -> Any:
        return model  # a HolisticPipeline: its networks are already on the device

    @property
    def input_size(self) -> tuple[int, int]:
        return (256, 256)

    def predict_boxes(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray],
                      categories: Sequence[np.ndarray | None] | None = None) -> list[list[PosePrediction]]:
        flat_images, flat_boxes, owner = [], [], []
        for i, (img, bx) in enumerate(zip(images, boxes)):
            for b in bx:
                flat_images.append(img)
                flat_boxes.append(np.asarray(b[:4], dtype=np.float64))
                owner.append((i, np.asarray(b, dtype=np.float64)))
        out: list[list[PosePrediction]] = [[] for _ in images]
        if not flat_images:
            return out
        self.stats["crops"] += len(flat_images)
        results = []
        for start in range(0, len(flat_images), self.batch_size):
            results += self.model.predict_batch(flat_images[start:start + self.batch_size],
                                                flat_boxes[start:start + self.batch_size])
        for (i, box), r in zip(owner, results):
            good = r.scores >= self.score_thr
            kp_score = float(r.scores[good].mean()) if good.any() else 0.0
            box_score = float(box[4]) if len(box) > 4 else 1.0
            out[i].append(PosePrediction(np.asarray(r.keypoints, dtype=np.float64),
                                         np.asarray(r.scores, dtype=np.float64), box[:4], box_score,
                                         box_score * kp_score, None, 1))
        return [self._nms(p) for p in out]


__all__ = ["HolisticPredictor", "BUILTIN_MODELS", "BOX_MODES", "SMOOTHING_METHODS", "FrameProgress", "FrameResult", "PosePrediction",
           "Predictor", "as_rgb_image", "builtin_names", "load_predictor_model", "open_video", "resolve_device",
           "smooth_table"]
