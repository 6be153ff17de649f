"""Multi-task fine-tuning of BlazePose: keypoints + person mask.

BlazePose (``pose_landmark_full``) computes a person segmentation mask next to its landmarks.
With ``model.mediapipe.segmentation_weight: w`` (> 0, variant ``pose_full``) that output trains
too:

* **model** (:class:`MediaPipeMultiTask`): in training mode ``model(images)`` returns
  ``{"keypoints": (B, K, 3), "segmentation": (B, 1, 256, 256) logits}``; in eval mode the plain
  keypoint tensor, exactly as :class:`MediaPipeModel` (so validation decoding, prediction and
  export are unchanged);
* **targets** (:class:`PersonMaskCodec`): besides the landmark targets, ``mask`` (256, 256)
  uint8 0/1 and ``mask_weight`` (scalar) for the instance, made in the crop's input frame by
  :meth:`PersonMaskCodec.encode_mask`, which :class:`~posetune.data.datamodule.TopDownDataset`
  calls with the instance and the crop's warp (including flips and rotations) for every codec
  that has it;
* **loss** (:class:`MultiTaskLoss`, made by :func:`posetune.engine.losses.build_loss` when the
  codec has a ``segmentation_weight`` > 0): the keypoint loss plus ``w`` times the mean binary
  cross-entropy of the mask logits, reported as the ``mask_bce`` part.

Mask source (:func:`person_mask`): the instance's COCO ``segmentation`` (polygons or RLE, kept by
the COCO reader in ``Instance.extra['coco']['segmentation']``), drawn in the input frame. Without
one, ``fallback="shape"`` (default) draws the ellipse inscribed in the instance's box together
with the convex hull of its labelled keypoints — a coarse person shape — and
``fallback="ignore"`` gives an empty mask with ``mask_weight`` 0 (no mask loss for that sample).

The target is this instance only: other people inside the crop count as background, which
teaches the network to segment the person the crop is centred on (MediaPipe's use of the mask).

Choosing the weight. BlazePose's mask logits are large (|logit| ~ 10-1000: its sigmoid is
nearly binary), so every mislabelled pixel costs tens to hundreds in the BCE: on COCO crops the
pretrained network starts at a mask BCE of ~2-15 against a keypoint ``l1`` of ~0.03. The
decoder-only layers learn at the same pace whatever the weight (Adam), while the shared layers
follow the larger gradient, so small weights (0.01-0.1) keep the keypoints improving; measured
on four COCO crops, Adam lr 1e-5, weight 0.1: ``l1`` 0.029 -> 0.025 and BCE 6.4 -> 2.1 in
five steps (lr 1e-4 first disturbs the keypoints with or without the mask term). Validation
runs in eval mode, so ``val_loss`` is the keypoint loss alone.

With ``segmentation_weight: 0`` (the default) nothing here is used: the model, targets and loss
are those of :class:`MediaPipeModel`.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posetune.codecs.base import Outputs
from posetune.data.records import Instance
from posetune.data.transforms import apply_affine
from posetune.errors import ModelError
from posetune.models.mediapipe.models import MediaPipeLandmarkCodec, MediaPipeModel

#: sub-pixel bits for cv2.fillPoly (coordinates in 1/16 pixel)
_SHIFT = 4
FALLBACKS = ("shape", "ignore")


# ----------------------------------------------------------------------------- masks
def coco_segmentation(inst: Instance) -> Any | None:
    """The instance's COCO ``segmentation`` (polygon list or RLE dict), or None."""
    coco = inst.extra.get("coco") if isinstance(inst.extra, dict) else None
    seg = coco.get("segmentation") if isinstance(coco, dict) else None
    if isinstance(seg, list) and any(isinstance(p, (list, tuple)) and len(p) >= 6 for p in seg):
        return seg
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        return seg
    return None


def _fill(mask: np.ndarray, polygons: Sequence[np.ndarray]) -> None:
    """Fill the union of ``polygons``, one fillPoly call each: a single call XORs overlapping
    polygons (COCO lists a person's separate parts as separate polygons, and they may overlap)."""
    for p in polygons:
        if len(p) >= 3 and np.isfinite(p).all():
            pts = np.round(np.asarray(p) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)
            cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=_SHIFT)


def person_mask(inst: Instance, warp: np.ndarray, size: tuple[int, int], image_size: tuple[int, int],
                fallback: str = "shape") -> tuple[np.ndarray, float]:
    """The instance's person mask in the crop: ``(mask (h, w) uint8 0/1, weight)``.

    ``warp`` (2, 3) maps image pixels to the ``size = (w, h)`` input frame; ``image_size`` is the
    source image's (W, H) (for RLE masks). Source and fallback: see the module docstring.
    """
    w, h = int(size[0]), int(size[1])
    mask = np.zeros((h, w), dtype=np.uint8)
    warp = np.asarray(warp, dtype=np.float64)
    seg = coco_segmentation(inst)
    if isinstance(seg, list):
        polys = [apply_affine(np.asarray(p, dtype=np.float64).reshape(-1, 2), warp) for p in seg if len(p) >= 6]
        _fill(mask, polys)
        return mask, 1.0
    if isinstance(seg, dict):
        from pycocotools import mask as mask_utils

        rle = seg
        if isinstance(seg["counts"], list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(seg, int(seg["size"][0]), int(seg["size"][1]))
        full = mask_utils.decode(rle).astype(np.float32)
        out = cv2.warpAffine(full, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0.0)
        return (out >= 0.5).astype(np.uint8), 1.0
    if fallback == "ignore":
        return mask, 0.0
    polys = []
    if inst.bbox is not None and np.all(np.isfinite(inst.bbox)):
        x, y, bw, bh = (float(v) for v in inst.bbox)
        t = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
        ellipse = np.stack([x + bw / 2 * (1 + np.cos(t)), y + bh / 2 * (1 + np.sin(t))], axis=1)
        polys.append(apply_affine(ellipse, warp))
    kp = np.asarray(inst.keypoints, dtype=np.float64)
    labelled = kp[(kp[:, 2] > 0) & np.isfinite(kp[:, :2]).all(axis=1), :2] if kp.size else np.zeros((0, 2))
    if len(labelled) >= 3:
        hull = cv2.convexHull(apply_affine(labelled, warp).astype(np.float32)).reshape(-1, 2)
        polys.append(hull.astype(np.float64))
    _fill(mask, polys)
    return mask, (1.0 if polys else 0.0)


def mask_bce(logits: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy of mask logits (B, 1, h, w) or (B, h, w) against 0/1 masks
    (B, h, w), each sample weighted by ``weight`` (B,) (default 1); 0 when all weights are 0."""
    logits = logits.float().reshape(mask.shape[0], -1)
    target = mask.to(logits).reshape(mask.shape[0], -1)
    if logits.shape != target.shape:
        raise ModelError(f"mask logits {tuple(logits.shape)} do not match the mask target {tuple(target.shape)}",
                         where="model.mediapipe.segmentation_weight",
                         hint="the mask target must have the network's segmentation size")
    per_sample = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=1)
    if weight is None:
        return per_sample.mean()
    w = weight.to(per_sample).reshape(-1)
    return (per_sample * w).sum() / w.sum().clamp_min(1.0)


# ----------------------------------------------------------------------------- codec, model, loss
class PersonMaskCodec(MediaPipeLandmarkCodec):
    """:class:`MediaPipeLandmarkCodec` that also encodes the person mask (:meth:`encode_mask`)
    and carries the mask loss weight for :func:`posetune.engine.losses.build_loss`."""

    def __init__(self, input_size: tuple[int, int], values: int = 5, score: str = "visibility", *,
                 segmentation_weight: float = 1.0, mask_size: tuple[int, int] | None = None,
                 fallback: str = "shape"):
        super().__init__(input_size, values, score)
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
        self.segmentation_weight = float(segmentation_weight)
        self.mask_size = tuple(int(v) for v in (mask_size or input_size))
        self.fallback = fallback

    def encode_mask(self, inst: Instance, warp: np.ndarray, image_size: tuple[int, int]) -> dict[str, np.ndarray]:
        """``mask`` (h, w) uint8 and ``mask_weight`` () float32 for ``inst`` cropped by ``warp``
        (image -> input frame; the mask is drawn at ``mask_size``)."""
        w_in, h_in = self.input_size
        w_m, h_m = self.mask_size
        scale = np.diag([w_m / w_in, h_m / h_in])
        m = np.asarray(warp, dtype=np.float64)
        warp_m = np.concatenate([scale @ m[:, :2], (scale @ (m[:, 2] + 0.5) - 0.5)[:, None]], axis=1)
        mask, weight = person_mask(inst, warp_m, self.mask_size, image_size, self.fallback)
        return {"mask": mask, "mask_weight": np.float32(weight)}


class MediaPipeMultiTask(MediaPipeModel):
    """BlazePose trained on keypoints and the person mask (module docstring). Built by
    :func:`~posetune.models.mediapipe.models.build_mediapipe_model` when
    ``model.mediapipe.segmentation_weight`` > 0."""

    def __init__(self, *args: Any, segmentation_weight: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if "segmentation" not in self.variant.extras:
            raise ModelError(f"the MediaPipe '{self.variant.name}' network has no segmentation output",
                             where="model.mediapipe.segmentation_weight",
                             hint="use variant pose_full, or set segmentation_weight: 0")
        self.segmentation_tensor = self.variant.extras["segmentation"]
        self.codec = PersonMaskCodec(self.variant.input_size, self.variant.values, self.codec.score,
                                     segmentation_weight=segmentation_weight,
                                     mask_size=tuple(self.net.shape_of(self.segmentation_tensor)[:1:-1]))
        self.segmentation_weight = float(segmentation_weight)

    def forward_normalized(self, x: torch.Tensor) -> Outputs:  # type: ignore[override]
        """Eval mode: (B, K, 3) as :class:`MediaPipeModel`. Training mode: ``{"keypoints",
        "segmentation"}`` (mask logits (B, 1, h, w))."""
        if not self.training:
            return super().forward_normalized(x)
        self._check_input(x)
        outs = self.net.run(x, outputs=self._main + [self.segmentation_tensor])
        features = outs[2] if self.new_head is not None else None
        return {"keypoints": self._keypoints(outs[0], outs[1], features), "segmentation": outs[-1]}


class MultiTaskLoss(nn.Module):
    """``keypoint_loss(outputs["keypoints"]) + weight * mask_bce(outputs["segmentation"])``.

    Plain keypoint outputs (eval mode) get the keypoint loss alone. ``parts`` adds ``mask_bce``
    (before its weight) when the mask term is computed.
    """

    def __init__(self, keypoint_loss: nn.Module, weight: float):
        super().__init__()
        self.keypoint_loss = keypoint_loss
        self.weight = float(weight)

    def forward(self, outputs: Outputs, targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        seg = None
        if isinstance(outputs, dict):
            seg = outputs.get("segmentation")
            outputs = outputs["keypoints"]
        loss, parts = self.keypoint_loss(outputs, targets)
        if seg is not None and self.weight > 0:
            if "mask" not in targets:
                raise ModelError("the batch has no 'mask' targets for the segmentation loss",
                                 where="model.mediapipe.segmentation_weight",
                                 hint="train with posetune's datamodule (it encodes masks with the model's codec)")
            bce = mask_bce(seg, targets["mask"], targets.get("mask_weight"))
            loss = loss + self.weight * bce
            parts = {**parts, "mask_bce": float(bce.detach())}
        return loss, parts

    def extra_repr(self) -> str:
        return f"+ {self.weight:g}*mask_bce"
