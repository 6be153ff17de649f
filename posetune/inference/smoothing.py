"""Temporal smoothing of keypoint tracks: One-Euro filter and Savitzky–Golay, with gap handling.

A track is ``xy`` of shape ``(T, K, 2)`` (frames, keypoints, x/y in pixels) with optional
``scores`` ``(T, K)``. A point is **missing** in a frame when its score is below ``score_thr``
or a coordinate is not finite. Missing points are never used as filter input. In the output,
a run of missing frames of length ``<= max_gap`` that has good frames on both sides is filled by
linear interpolation between the smoothed values around it; longer runs, and runs at the start
or end of the track, stay NaN.

* ``method='one_euro'`` — the One-Euro filter (Casiez, Roussel & Vogel, CHI 2012), run causally
  per keypoint coordinate. ``min_cutoff`` (Hz) sets the smoothing at rest, ``beta`` how fast
  the cutoff rises with speed (pixels/s), ``d_cutoff`` (Hz) the cutoff of the speed estimate.
  Time steps come from ``timestamps`` (seconds, one per frame) or ``fps``; after a missing run
  the filter continues with the real elapsed time, and after a run longer than ``max_gap`` it
  restarts from the next good value.
* ``method='savgol'`` — Savitzky–Golay (:func:`scipy.signal.savgol_filter`, ``window`` frames,
  ``polyorder``), centred, non-causal. Short missing runs are first bridged by linear
  interpolation so that the filter sees an evenly sampled signal; long runs split the track
  into segments filtered separately (segments shorter than ``polyorder + 2`` frames are kept raw).

:func:`jitter` measures the mean norm of the frame-to-frame acceleration (second difference).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

DEFAULT_SCORE_THR = 0.3
DEFAULT_MAX_GAP = 10


def valid_mask(xy: np.ndarray, scores: np.ndarray | None = None, score_thr: float = DEFAULT_SCORE_THR) -> np.ndarray:
    """``(T, K)`` True where the point has finite coordinates and a score >= ``score_thr``."""
    xy = np.asarray(xy, dtype=np.float64)
    ok = np.isfinite(xy).all(axis=-1)
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != ok.shape:
            raise ValueError(f"scores shape {s.shape} does not match keypoints {xy.shape}")
        ok &= np.nan_to_num(s, nan=-np.inf) >= score_thr
    return ok


def fill_short_gaps(values: np.ndarray, ok: np.ndarray, max_gap: int) -> np.ndarray:
    """Linearly interpolate ``values`` (T, ...) over runs of ``~ok`` (T,) of length <= ``max_gap``.

    Runs bounded by good frames on both sides are filled; other missing frames become NaN.
    Returns a new float array.
    """
    v = np.array(values, dtype=np.float64, copy=True)
    ok = np.asarray(ok, dtype=bool)
    v[~ok] = np.nan
    good = np.flatnonzero(ok)
    if len(good) < 2:
        return v
    gaps = np.diff(good) - 1
    for g_idx in np.flatnonzero((gaps > 0) & (gaps <= max_gap)):
        a, b = good[g_idx], good[g_idx + 1]
        w = (np.arange(a + 1, b) - a) / (b - a)
        w = w.reshape((-1,) + (1,) * (v.ndim - 1))
        v[a + 1:b] = (1 - w) * v[a] + w * v[b]
    return v


def _times(n: int, fps: float | None, timestamps: np.ndarray | None) -> np.ndarray:
    if timestamps is not None:
        t = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if len(t) != n:
            raise ValueError(f"{len(t)} timestamps for {n} frames")
        return t
    return np.arange(n, dtype=np.float64) / float(fps or 30.0)


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


def one_euro(values: np.ndarray, ok: np.ndarray, times: np.ndarray, *, min_cutoff: float = 1.0, beta: float = 0.01,
             d_cutoff: float = 1.0, max_gap: int = DEFAULT_MAX_GAP) -> np.ndarray:
    """One-Euro filter over ``values`` (T, D) with per-column validity ``ok`` (T, D).

    Missing samples are skipped (no state update); their output is NaN (callers fill short gaps).
    """
    v = np.asarray(values, dtype=np.float64)
    t_count, d = v.shape
    out = np.full_like(v, np.nan)
    x_hat = np.full(d, np.nan)
    dx_hat = np.zeros(d)
    t_last = np.full(d, np.nan)
    missing_run = np.zeros(d, dtype=int)
    for t in range(t_count):
        m = ok[t]
        missing_run[~m] += 1
        restart = m & (np.isnan(x_hat) | (missing_run > max_gap))
        x_hat[restart] = v[t, restart]
        dx_hat[restart] = 0.0
        t_last[restart] = times[t]
        upd = m & ~restart
        if upd.any():
            dt = times[t] - t_last[upd]
            dt = np.where(dt > 0, dt, 1e-6)
            dx = (v[t, upd] - x_hat[upd]) / dt
            a_d = _alpha(d_cutoff, dt)
            dx_hat[upd] = a_d * dx + (1 - a_d) * dx_hat[upd]
            cutoff = min_cutoff + beta * np.abs(dx_hat[upd])
            a = _alpha(cutoff, dt)
            x_hat[upd] = a * v[t, upd] + (1 - a) * x_hat[upd]
            t_last[upd] = times[t]
        missing_run[m] = 0
        out[t, m] = x_hat[m]
    return out


def savgol(values: np.ndarray, ok: np.ndarray, *, window: int = 9, polyorder: int = 2,
           max_gap: int = DEFAULT_MAX_GAP) -> np.ndarray:
    """Savitzky–Golay over ``values`` (T, D) with validity ``ok`` (T, D); missing output is NaN."""
    from scipy.signal import savgol_filter

    v = np.asarray(values, dtype=np.float64)
    out = np.full_like(v, np.nan)
    for j in range(v.shape[1]):
        filled = fill_short_gaps(v[:, j], ok[:, j], max_gap)
        finite = np.isfinite(filled)
        # contiguous finite segments
        edges = np.flatnonzero(np.diff(np.r_[0, finite.astype(np.int8), 0]))
        for s, e in zip(edges[::2], edges[1::2]):
            seg = filled[s:e]
            n = e - s
            win = min(int(window), n if n % 2 == 1 else n - 1)
            if win <= polyorder:
                out[s:e, j] = seg
                continue
            out[s:e, j] = savgol_filter(seg, win, polyorder, mode="interp")
    out[~ok] = np.nan  # gaps are refilled from the smoothed values by the caller
    return out


def smooth_track(xy: np.ndarray, scores: np.ndarray | None = None,
                 method: Literal["one_euro", "savgol", "none"] = "one_euro", *, score_thr: float = DEFAULT_SCORE_THR,
                 max_gap: int = DEFAULT_MAX_GAP, fps: float | None = None, timestamps: np.ndarray | None = None,
                 **params: float) -> np.ndarray:
    """Smoothed copy of a ``(T, K, 2)`` keypoint track (see the module docstring for gaps).

    ``params`` go to the method: ``min_cutoff``, ``beta``, ``d_cutoff`` for ``'one_euro'``;
    ``window``, ``polyorder`` for ``'savgol'``. ``'none'`` only applies the gap rules.
    Returns a float64 ``(T, K, 2)`` array with NaN where nothing could be estimated.
    """
    arr = np.asarray(xy, dtype=np.float64)
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[:, None, :]
        scores = None if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1, 1)
    if arr.ndim != 3 or arr.shape[-1] != 2:
        raise ValueError(f"xy must be (T, K, 2), got shape {np.shape(xy)}")
    t_count, k = arr.shape[:2]
    ok_tk = valid_mask(arr, scores, score_thr)
    flat = arr.reshape(t_count, k * 2)
    ok = np.repeat(ok_tk, 2, axis=1)
    if method == "one_euro":
        allowed = {"min_cutoff", "beta", "d_cutoff"}
        _check_params(params, allowed, method)
        sm = one_euro(flat, ok, _times(t_count, fps, timestamps), max_gap=max_gap, **params)
    elif method == "savgol":
        _check_params(params, {"window", "polyorder"}, method)
        sm = savgol(flat, ok, max_gap=max_gap, **{k_: int(v) for k_, v in params.items()})
    elif method in ("none", None):
        _check_params(params, set(), "none")
        sm = np.where(ok, flat, np.nan)
    else:
        raise ValueError(f"unknown smoothing method {method!r}; use 'one_euro', 'savgol' or 'none'")
    out = np.empty_like(sm)
    for j in range(sm.shape[1]):
        out[:, j] = fill_short_gaps(sm[:, j], ok[:, j], max_gap)
    out = out.reshape(t_count, k, 2)
    return out[:, 0, :] if squeeze else out


def _check_params(params: dict, allowed: set[str], method: str) -> None:
    bad = sorted(set(params) - allowed)
    if bad:
        raise ValueError(f"unknown parameter(s) {bad} for smoothing method '{method}'; "
                         f"allowed: {sorted(allowed) or 'none'}")


def jitter(xy: np.ndarray) -> float:
    """Mean norm of the second difference over frames (axis 0), ignoring NaNs; NaN if none.

    ``xy`` is ``(T, ..., D)``: the norm is taken over the last axis, the mean over the rest.
    """
    a = np.asarray(xy, dtype=np.float64)
    if a.shape[0] < 3:
        return float("nan")
    acc = a[2:] - 2 * a[1:-1] + a[:-2]
    norm = np.linalg.norm(acc, axis=-1)
    finite = norm[np.isfinite(norm)]
    return float(finite.mean()) if finite.size else float("nan")
