"""Drawing keypoint labels and predictions: skeletons, boxes, names, track ids, contact sheets.

Pure OpenCV / numpy, RGB uint8 in and out. Used by ``posetune data show``, prediction and the
comparison reports. Colours come from the :class:`~posetune.data.spec.KeypointSpec`
(``spec.colors`` for points, ``spec.link_colors()`` for links), which are RGB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from posetune.data.records import Instance
from posetune.data.spec import KeypointSpec

BOX_COLOR = (255, 215, 0)
TEXT_COLOR = (255, 255, 255)
_TRACK_PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
)


@dataclass
class _Pose:
    """One subject to draw, normalised from an Instance or an array."""

    xy: np.ndarray  # (K, 2)
    vis: np.ndarray | None  # (K,) COCO flags 0/1/2, or None
    scores: np.ndarray | None  # (K,) confidences, or None
    bbox: np.ndarray | None  # xywh
    track_id: Any = None


def _is_flag_column(col: np.ndarray) -> bool:
    finite = col[np.isfinite(col)]
    return bool(np.isin(finite, (0.0, 1.0, 2.0)).all())


def _pose_from_array(arr: np.ndarray) -> _Pose:
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise ValueError(f"keypoints must be (K, 2) or (K, 3), got shape {arr.shape}")
    if arr.shape[1] == 2:
        return _Pose(arr.copy(), None, None, None)
    third = arr[:, 2]
    if _is_flag_column(third):
        return _Pose(arr[:, :2].copy(), third.copy(), None, None)
    return _Pose(arr[:, :2].copy(), None, third.copy(), None)


def _poses(items: Any) -> list[_Pose]:
    """Instances / arrays -> list of _Pose. See :func:`draw_instances` for the accepted forms."""
    if items is None:
        return []
    if isinstance(items, Instance):
        items = [items]
    elif isinstance(items, np.ndarray):
        if items.ndim == 2:
            items = [items]
        elif items.ndim != 3:
            raise ValueError(f"keypoint array must be (K, 2|3) or (N, K, 2|3), got shape {items.shape}")
    out = []
    for it in items:
        if isinstance(it, Instance):
            out.append(_Pose(it.keypoints[:, :2].copy(), it.keypoints[:, 2].copy(),
                             None if it.keypoint_scores is None else np.asarray(it.keypoint_scores, float),
                             it.bbox, it.track_id))
        else:
            out.append(_pose_from_array(np.asarray(it)))
    return out


def default_radius(shape: Sequence[int]) -> int:
    """Keypoint radius in pixels for an image of ``shape`` (H, W, ...)."""
    return max(2, int(round(min(shape[0], shape[1]) / 120)))


def default_thickness(shape: Sequence[int]) -> int:
    """Link line thickness in pixels for an image of ``shape`` (H, W, ...)."""
    return max(1, int(round(min(shape[0], shape[1]) / 200)))


def _confidence_color(c: float) -> tuple[int, int, int]:
    """Red (0) -> yellow (0.5) -> green (1)."""
    c = float(np.clip(c, 0.0, 1.0))
    if c < 0.5:
        return (255, int(round(510 * c)), 0)
    return (int(round(510 * (1.0 - c))), 255, 0)


def _track_color(track_id: Any) -> tuple[int, int, int]:
    key = track_id if isinstance(track_id, int) else sum(ord(ch) * (i + 1) for i, ch in enumerate(str(track_id)))
    return _TRACK_PALETTE[int(key) % len(_TRACK_PALETTE)]


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _put_label(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color: tuple[int, int, int],
               background: tuple[int, int, int] | None = None) -> None:
    """Text with a dark outline (or a filled background box) so it reads on any image."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    th = max(1, int(round(scale * 2)))
    if background is not None:
        (w, h), base = cv2.getTextSize(text, font, scale, th)
        x, y = org
        cv2.rectangle(img, (x, y - h - base), (x + w + 2, y + 1), background, -1)
        cv2.putText(img, text, (x + 1, y - base // 2), font, scale, color, th, cv2.LINE_AA)
        return
    cv2.putText(img, text, org, font, scale, (0, 0, 0), th + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, font, scale, color, th, cv2.LINE_AA)


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img * (255.0 if img.dtype.kind == "f" and img.max(initial=0) <= 1.0 else 1.0), 0, 255)
        img = img.astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {np.asarray(image).shape}")
    return np.ascontiguousarray(img).copy()


def draw_instances(
    image_rgb: np.ndarray,
    instances_or_arrays: Any,
    spec: KeypointSpec,
    *,
    score_thr: float = 0.3,
    draw_names: bool = False,
    draw_boxes: bool = True,
    track_ids: Sequence[Any] | None = None,
    radius: int | None = None,
    thickness: int | None = None,
    color_by_confidence: bool = False,
) -> np.ndarray:
    """Draw skeletons (and boxes, names, track ids) on a copy of ``image_rgb``.

    ``instances_or_arrays`` is one :class:`Instance`, a list of them, a keypoint array
    ``(K, 2|3)`` / ``(N, K, 2|3)`` or a list of such arrays. In an array's third column,
    values that are all COCO flags (0, 1, 2) are read as visibility; anything else as a
    confidence score. An Instance's ``keypoint_scores``, when set, are scores too.

    Rules: points with visibility 0, a non-finite coordinate or a score below ``score_thr``
    are not drawn (nor their links); visibility 1 (labelled, occluded) is drawn as a hollow
    circle. Links use ``spec.link_colors()``, points ``spec.colors`` (or a red→green ramp of
    the score when ``color_by_confidence``). Boxes come from ``Instance.bbox``; ``track_ids``
    (one per instance, or the instances' own ``track_id``) are written at the box corner or
    above the top-most point. Radius and thickness scale with the image size unless given.
    Returns a new RGB uint8 image; the input is not modified.
    """
    img = _as_rgb_uint8(image_rgb)
    poses = _poses(instances_or_arrays)
    if track_ids is not None:
        if len(track_ids) != len(poses):
            raise ValueError(f"{len(track_ids)} track ids for {len(poses)} instances")
        for p, t in zip(poses, track_ids):
            p.track_id = t
    r = int(radius) if radius is not None else default_radius(img.shape)
    if radius is None and spec.num_keypoints > 100:  # dense sets (face mesh, whole body): small dots
        r = max(1, r // 3)
    t = int(thickness) if thickness is not None else default_thickness(img.shape)
    font_scale = max(0.3, min(img.shape[:2]) / 900)
    link_colors = spec.link_colors()
    k_spec = spec.num_keypoints

    for pose in poses:
        k = pose.xy.shape[0]
        ok = np.isfinite(pose.xy).all(axis=1)
        if pose.vis is not None:
            ok &= pose.vis > 0
        if pose.scores is not None and len(pose.scores) == k:
            ok &= np.nan_to_num(pose.scores, nan=-1.0) >= score_thr
        hollow = (pose.vis == 1) if pose.vis is not None else np.zeros(k, bool)

        box_color = _track_color(pose.track_id) if pose.track_id is not None else BOX_COLOR
        if draw_boxes and pose.bbox is not None and np.isfinite(pose.bbox).all() and pose.bbox[2] > 0:
            x, y, w, h = pose.bbox
            cv2.rectangle(img, _pt((x, y)), _pt((x + w, y + h)), box_color, max(1, t), cv2.LINE_AA)

        for (a, b), color in zip(spec.skeleton, link_colors):
            if a < k and b < k and ok[a] and ok[b]:
                cv2.line(img, _pt(pose.xy[a]), _pt(pose.xy[b]), tuple(int(c) for c in color), t, cv2.LINE_AA)

        for i in np.flatnonzero(ok):
            if color_by_confidence:
                conf = pose.scores[i] if pose.scores is not None else (1.0 if not hollow[i] else 0.5)
                color = _confidence_color(conf)
            else:
                color = tuple(int(c) for c in spec.colors[i]) if i < k_spec else TEXT_COLOR
            if hollow[i]:
                cv2.circle(img, _pt(pose.xy[i]), r, color, max(1, r // 2), cv2.LINE_AA)
            else:
                cv2.circle(img, _pt(pose.xy[i]), r, color, -1, cv2.LINE_AA)
            if draw_names and i < k_spec:
                px, py = _pt(pose.xy[i])
                _put_label(img, spec.keypoints[i], (px + r + 1, py - r - 1), font_scale * 0.8, color)

        if pose.track_id is not None:
            if pose.bbox is not None and np.isfinite(pose.bbox).all():
                org = _pt(pose.bbox[:2])
            elif ok.any():
                pts = pose.xy[ok]
                org = _pt((pts[:, 0].min(), pts[:, 1].min() - 2 * r))
            else:
                continue
            org = (max(0, org[0]), max(int(20 * font_scale), org[1]))
            _put_label(img, f"#{pose.track_id}", org, font_scale, (0, 0, 0), background=box_color)
    return img


def _fit(image: np.ndarray, w: int, h: int, bg: tuple[int, int, int]) -> np.ndarray:
    """Scale ``image`` to fit inside w x h keeping its aspect, centred on a ``bg`` canvas."""
    img = _as_rgb_uint8(image)
    ih, iw = img.shape[:2]
    s = min(w / iw, h / ih)
    nw, nh = max(1, int(round(iw * s))), max(1, int(round(ih * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(img, (nw, nh), interpolation=interp)
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = bg
    y0, x0 = (h - nh) // 2, (w - nw) // 2
    canvas[y0:y0 + nh, x0:x0 + nw] = resized
    return canvas


def draw_grid(images: Sequence[np.ndarray], ncols: int, titles: Sequence[str] | None = None, *,
              cell_size: tuple[int, int] | None = None, max_cell: int = 384, pad: int = 4,
              background: tuple[int, int, int] = (32, 32, 32)) -> np.ndarray:
    """A contact sheet: ``images`` in a grid of ``ncols`` columns, each letterboxed into a cell.

    The cell is ``cell_size`` (w, h) or the largest image size capped at ``max_cell`` pixels.
    ``titles`` (one per image) are written in a strip above each cell, shortened from the left
    to fit. Returns an RGB uint8 image.
    """
    if len(images) == 0:
        raise ValueError("draw_grid needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    ncols = max(1, min(int(ncols), len(images)))
    nrows = (len(images) + ncols - 1) // ncols
    if cell_size is None:
        cw = max(np.asarray(im).shape[1] for im in images)
        ch = max(np.asarray(im).shape[0] for im in images)
        s = min(1.0, max_cell / max(cw, ch))
        cw, ch = max(1, int(cw * s)), max(1, int(ch * s))
    else:
        cw, ch = int(cell_size[0]), int(cell_size[1])
    font_scale = 0.4
    title_h = 0
    if titles is not None:
        (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        title_h = th + base + 6
    sheet = np.empty((pad + nrows * (ch + title_h + pad), pad + ncols * (cw + pad), 3), np.uint8)
    sheet[:] = background
    for i, im in enumerate(images):
        row, col = divmod(i, ncols)
        x = pad + col * (cw + pad)
        y = pad + row * (ch + title_h + pad)
        if titles is not None:
            text = str(titles[i])
            while len(text) > 1 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0] > cw:
                text = text[1:]
            cv2.putText(sheet, text, (x, y + title_h - 5), cv2.FONT_HERSHEY_SIMPLEX, font_scale, TEXT_COLOR, 1,
                        cv2.LINE_AA)
        sheet[y + title_h:y + title_h + ch, x:x + cw] = _fit(im, cw, ch, background)
    return sheet
