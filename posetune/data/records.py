"""The one in-memory record type every label reader produces and every writer consumes.

Conventions (the COCO ones, so that evaluation and conversion never guess):

* keypoints are ``(K, 3)`` float64 arrays ``x, y, v`` in image pixels, with the COCO
  visibility flag ``v``: 0 = not labelled, 1 = labelled but occluded, 2 = labelled and visible.
  Coordinates of unlabelled points are kept as read (usually 0, 0) and must be ignored.
* ``bbox`` is ``x, y, w, h`` in pixels (top-left corner, width, height).
* ``ImageRecord.file_name`` is a POSIX path relative to ``KeypointDataset.root`` (or absolute).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np

from posetune.data.spec import KeypointSpec


@dataclass
class Instance:
    """One labelled subject (person, animal, hand, face) in one image."""

    keypoints: np.ndarray
    bbox: np.ndarray | None = None
    category: str | None = None
    track_id: str | int | None = None
    iscrowd: bool = False
    id: int | None = None
    score: float | None = None
    keypoint_scores: np.ndarray | None = None
    area: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float64)
        if kp.ndim == 2 and kp.shape[1] == 2:
            # x, y only: every point with finite coordinates counts as labelled and visible
            v = np.where(np.isfinite(kp).all(axis=1), 2.0, 0.0)
            kp = np.concatenate([np.nan_to_num(kp), v[:, None]], axis=1)
        if kp.ndim != 2 or kp.shape[1] != 3:
            raise ValueError(f"keypoints must be (K, 3) or (K, 2), got shape {kp.shape}")
        self.keypoints = kp
        if self.bbox is not None:
            self.bbox = np.asarray(self.bbox, dtype=np.float64).reshape(4)
        if self.keypoint_scores is not None:
            self.keypoint_scores = np.asarray(self.keypoint_scores, dtype=np.float64).reshape(-1)

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def labelled(self) -> np.ndarray:
        """Boolean mask of labelled keypoints (v > 0)."""
        return self.keypoints[:, 2] > 0

    @property
    def visible(self) -> np.ndarray:
        """Boolean mask of labelled *and visible* keypoints (v == 2)."""
        return self.keypoints[:, 2] >= 2

    @property
    def num_labelled(self) -> int:
        return int(self.labelled.sum())

    def keypoint_bbox(self, padding: float = 0.0) -> np.ndarray | None:
        """Tight xywh box around the labelled keypoints, grown by ``padding`` × size on each side."""
        pts = self.keypoints[self.labelled, :2]
        if len(pts) == 0:
            return None
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        w, h = x1 - x0, y1 - y0
        return np.array([x0 - padding * w, y0 - padding * h, w * (1 + 2 * padding), h * (1 + 2 * padding)])

    def box(self, padding: float = 0.1) -> np.ndarray | None:
        """The labelled bbox, or one around the keypoints when the label has none."""
        if self.bbox is not None and self.bbox[2] > 0 and self.bbox[3] > 0:
            return self.bbox
        return self.keypoint_bbox(padding)

    def copy(self) -> "Instance":
        return copy.deepcopy(self)


@dataclass
class ImageRecord:
    """One image and the instances labelled in it."""

    file_name: str
    width: int | None = None
    height: int | None = None
    instances: list[Instance] = field(default_factory=list)
    id: int | None = None
    group: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_instances(self) -> int:
        return len(self.instances)


@dataclass
class Problem:
    """Something wrong found while reading or checking labels, with its place."""

    code: str
    message: str
    where: str
    severity: Literal["error", "warning"] = "error"
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}"
        return f"{text} — {self.hint}" if self.hint else text


@dataclass
class KeypointDataset:
    """A keypoint dataset in memory: images with instances, plus the KeypointSpec.

    ``root`` is the folder image ``file_name``s are relative to. ``source`` is the label file
    or folder it was read from, ``format`` the reader's name. ``problems`` collects the soft
    errors found while reading (records that were skipped or repaired).
    """

    spec: KeypointSpec
    images: list[ImageRecord] = field(default_factory=list)
    root: Path | None = None
    source: Path | None = None
    format: str | None = None
    categories: list[str] = field(default_factory=lambda: ["person"])
    problems: list[Problem] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_images(self) -> int:
        return len(self.images)

    @property
    def num_instances(self) -> int:
        return sum(len(im.instances) for im in self.images)

    def iter_instances(self) -> Iterator[tuple[ImageRecord, Instance]]:
        for im in self.images:
            for inst in im.instances:
                yield im, inst

    def image_path(self, record: ImageRecord) -> Path:
        p = Path(record.file_name)
        if p.is_absolute() or self.root is None:
            return p
        return Path(self.root) / p

    def keypoint_array(self) -> np.ndarray:
        """All instances' keypoints stacked, shape ``(N, K, 3)``."""
        arrays = [inst.keypoints for _, inst in self.iter_instances()]
        if not arrays:
            return np.zeros((0, self.spec.num_keypoints, 3))
        return np.stack(arrays)

    def subset(self, indices: list[int] | np.ndarray) -> "KeypointDataset":
        """A dataset sharing spec/root with only the images at ``indices`` (deep copies)."""
        return KeypointDataset(spec=self.spec, images=[copy.deepcopy(self.images[i]) for i in indices],
                               root=self.root, source=self.source, format=self.format,
                               categories=list(self.categories), info=dict(self.info))

    def with_images(self, images: list[ImageRecord]) -> "KeypointDataset":
        return KeypointDataset(spec=self.spec, images=images, root=self.root, source=self.source, format=self.format,
                               categories=list(self.categories), info=dict(self.info))

    def ensure_ids(self) -> None:
        """Give every image and instance a unique positive integer id (keeping existing unique ones)."""
        used: set[int] = set()
        for im in self.images:
            if im.id is None or im.id in used:
                im.id = None
            else:
                used.add(im.id)
        next_id = max(used, default=0) + 1
        for im in self.images:
            if im.id is None:
                im.id, next_id = next_id, next_id + 1
        used = set()
        for _, inst in self.iter_instances():
            if inst.id is None or inst.id in used:
                inst.id = None
            else:
                used.add(inst.id)
        next_id = max(used, default=0) + 1
        for _, inst in self.iter_instances():
            if inst.id is None:
                inst.id, next_id = next_id, next_id + 1

    def summary(self) -> dict[str, Any]:
        kps = self.keypoint_array()
        return {
            "images": self.num_images,
            "instances": self.num_instances,
            "keypoints": self.spec.num_keypoints,
            "labelled_per_keypoint": (kps[..., 2] > 0).sum(axis=0).astype(int).tolist() if len(kps) else [],
            "visible_per_keypoint": (kps[..., 2] >= 2).sum(axis=0).astype(int).tolist() if len(kps) else [],
        }
