"""Train / val / test splits that keep frames of one video (or folder) together.

:func:`split_dataset` is deterministic for a seed. With ``by='image'`` every image is its own
group; with ``by='folder'`` images are grouped by the parent folder of their ``file_name``;
with ``by='video'`` by ``ImageRecord.group`` (set by readers that know the video, e.g.
DeepLabCut) falling back to the folder. A group never straddles two splits, so validation
frames are never near-duplicates of training frames.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import PurePosixPath
from typing import Literal

import numpy as np

from posetune.data.records import ImageRecord, KeypointDataset
from posetune.errors import DataError

SplitBy = Literal["image", "video", "folder"]
SPLIT_BY = ("image", "video", "folder")
_TRIALS = 64  # random group orders tried; the best-balanced one is kept


def _folder(rec: ImageRecord) -> str:
    return str(PurePosixPath(str(rec.file_name).replace("\\", "/")).parent)


def group_key(rec: ImageRecord, index: int, by: str) -> str:
    """The group an image belongs to for a split ``by`` image, video or folder."""
    if by == "image":
        return f"#{index}"
    if by == "folder":
        return _folder(rec)
    if by == "video":
        return str(rec.group) if rec.group not in (None, "") else _folder(rec)
    raise DataError(f"unknown split grouping '{by}'", hint=f"use one of: {', '.join(SPLIT_BY)}")


def _assign(sizes: np.ndarray, targets: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Greedy: groups in ``order`` go to the split with the largest remaining deficit."""
    counts = np.zeros(len(targets))
    closed = np.where(targets > 0, 0.0, -np.inf)  # a split with a zero fraction never gets a group
    out = np.empty(len(sizes), int)
    for g in order:
        s = int(np.argmax(targets - counts + closed))
        out[g] = s
        counts[s] += sizes[g]
    return out


def _ensure_non_empty(assign: np.ndarray, sizes: np.ndarray, fracs: np.ndarray) -> np.ndarray:
    """Move the smallest group of the fullest split into any wanted split left empty."""
    assign = assign.copy()
    n_splits = len(fracs)
    for s in range(n_splits):
        if fracs[s] <= 0 or (assign == s).any():
            continue
        donors = [d for d in range(n_splits) if (assign == d).sum() > 1]
        donor = max(donors, key=lambda d: sizes[assign == d].sum())
        members = np.flatnonzero(assign == donor)
        assign[members[np.argmin(sizes[members])]] = s
    return assign


def split_dataset(ds: KeypointDataset, val: float = 0.2, test: float = 0.0, seed: int = 0,
                  by: SplitBy = "image") -> dict[str, KeypointDataset]:
    """Split ``ds`` into ``{'train', 'val'}`` (plus ``'test'`` when ``test > 0``).

    Sizes (in images) are as close to the fractions as the groups allow: many random group
    orders (from ``seed``) are assigned greedily to the split furthest below its target and the
    best-balanced assignment is kept. Every split with a non-zero fraction gets at least one
    group. Raises DataError for fractions out of range (``val + test >= 1``) or when there are
    fewer groups than non-empty splits. Images keep their order inside each split.
    """
    for name, frac in (("val", val), ("test", test)):
        if not (0.0 <= float(frac) < 1.0):
            raise DataError(f"--{name} must be a fraction in [0, 1), got {frac}",
                            hint="e.g. --val 0.2 --test 0.1")
    if val + test >= 1.0:
        raise DataError(f"val + test = {val + test:g} leaves nothing to train on",
                        hint="keep val + test below 1, e.g. --val 0.2 --test 0.1")
    if by not in SPLIT_BY:
        raise DataError(f"unknown split grouping '{by}'", hint=f"use one of: {', '.join(SPLIT_BY)}")
    names = ["train", "val"] + (["test"] if test > 0 else [])
    fracs = np.array([1.0 - val - test, val] + ([test] if test > 0 else []))
    wanted = [n for n, f in zip(names, fracs) if f > 0]

    groups: "OrderedDict[str, list[int]]" = OrderedDict()
    for i, rec in enumerate(ds.images):
        groups.setdefault(group_key(rec, i, by), []).append(i)
    n_images = len(ds.images)
    if len(groups) < len(wanted):
        unit = "image" if by == "image" else f"{by} group"
        raise DataError(
            f"cannot split {n_images} image(s) in {len(groups)} {unit}(s) into {len(wanted)} non-empty splits "
            f"({', '.join(wanted)})", where=ds.source,
            hint="label more images, use --by image, or lower --val/--test" if by != "image"
            else "label more images or lower --val/--test")

    members = list(groups.values())
    sizes = np.array([len(m) for m in members], dtype=np.float64)
    rng = np.random.default_rng(seed)
    if by == "image" or (sizes == 1).all():
        # exact integer targets: round the small splits, give the rest to train
        targets = np.round(fracs * n_images)
        for s in range(1, len(fracs)):
            if fracs[s] > 0:
                targets[s] = max(targets[s], 1)
        targets[0] = n_images - targets[1:].sum()
        if targets[0] < 1:
            raise DataError(f"{n_images} image(s) are too few for val={val:g}, test={test:g}",
                            where=ds.source, hint="label more images or lower --val/--test")
        best = _assign(sizes, targets, rng.permutation(len(members)))
    else:
        targets = fracs * n_images
        best, best_cost = None, np.inf
        for _ in range(_TRIALS):
            assign = _ensure_non_empty(_assign(sizes, targets, rng.permutation(len(members))), sizes, fracs)
            counts = np.bincount(assign, weights=sizes, minlength=len(fracs))
            empty = sum(1 for s in range(len(fracs)) if fracs[s] > 0 and counts[s] == 0)
            cost = empty * 1e9 + float(((counts - targets) ** 2).sum())
            if cost < best_cost:
                best, best_cost = assign, cost
    out: dict[str, KeypointDataset] = {}
    for s, name in enumerate(names):
        idx = sorted(i for g, m in enumerate(members) if best[g] == s for i in m)
        out[name] = ds.subset(idx)
    return out
