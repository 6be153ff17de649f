"""Choosing representative frames of a keypoint track (for reports and contact sheets).

:func:`select_keyframes` picks the ``n`` most *different* poses of a track by farthest-point
sampling in a normalised pose space: every pose is centred on the mean of its good keypoints
and divided by its RMS radius, so position and size in the image do not matter; the distance
between two poses is the mean distance of the keypoints good in both. The first keyframe is the
first frame with a usable pose; each next one is the frame farthest from all keyframes chosen so
far (ties: the earliest frame). Optionally the frames at the minimum and maximum of an angle
series are added (:func:`extreme_frames`), which is what the range-of-motion report shows.
Everything is deterministic.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import numpy as np

from posetune.inference.smoothing import DEFAULT_SCORE_THR, valid_mask


def normalised_poses(xy: np.ndarray, scores: np.ndarray | None = None, score_thr: float = DEFAULT_SCORE_THR,
                     min_points: int = 3) -> np.ndarray:
    """``(T, K, 2)`` poses centred and scaled to unit RMS radius; NaN for bad points / frames.

    A frame with fewer than ``min_points`` good keypoints (or zero spread) is all NaN.
    """
    xy = np.asarray(xy, dtype=np.float64)
    ok = valid_mask(xy, scores, score_thr)
    p = np.where(ok[..., None], xy, np.nan)
    with _quiet():
        center = np.nanmean(p, axis=1, keepdims=True)
        d = p - center
        radius = np.sqrt(np.nanmean((d ** 2).sum(-1), axis=1))
    good = (ok.sum(axis=1) >= min_points) & np.isfinite(radius) & (radius > 1e-9)
    out = np.full_like(p, np.nan)
    out[good] = d[good] / radius[good, None, None]
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's 'mean of empty slice' warnings (all-NaN rows are expected here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def pose_distance_to(poses: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``(T,)`` mean keypoint distance of every normalised pose to ``ref`` (K, 2); NaN if none shared."""
    diff = np.linalg.norm(poses - ref[None], axis=-1)
    with _quiet():
        return np.nanmean(diff, axis=1)


def select_keyframes(xy: np.ndarray, scores: np.ndarray | None, n: int, *, angles: np.ndarray | None = None,
                     score_thr: float = DEFAULT_SCORE_THR) -> list[int]:
    """Row indices of up to ``n`` keyframes (sorted), plus the extremes of ``angles`` if given.

    ``xy`` is ``(T, K, 2)``, ``scores`` ``(T, K)`` or None. See the module docstring.
    """
    poses = normalised_poses(xy, scores, score_thr)
    usable = np.flatnonzero(np.isfinite(poses).any(axis=(1, 2)))
    chosen: list[int] = []
    if n > 0 and len(usable):
        chosen.append(int(usable[0]))
        min_dist = np.full(len(poses), np.inf)
        while len(chosen) < min(n, len(usable)):
            d = pose_distance_to(poses, poses[chosen[-1]])
            min_dist = np.fmin(min_dist, np.where(np.isfinite(d), d, np.inf))
            cand = np.where(np.isin(np.arange(len(poses)), usable), min_dist, -np.inf)
            cand[chosen] = -np.inf
            best = int(np.argmax(cand))  # first index among equals
            if not np.isfinite(cand[best]) or cand[best] <= 0:
                break  # all remaining poses equal a chosen one (or share no keypoint with it)
            chosen.append(best)
    if angles is not None:
        chosen.extend(i for i in extreme_frames(angles) if i is not None)
    return sorted(set(chosen))


def extreme_frames(series: np.ndarray) -> tuple[int | None, int | None]:
    """Row indices of the minimum and maximum of ``series`` ignoring NaN (first occurrence), or None."""
    s = np.asarray(series, dtype=np.float64)
    if not np.isfinite(s).any():
        return None, None
    return int(np.nanargmin(s)), int(np.nanargmax(s))
