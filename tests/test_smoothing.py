"""Temporal smoothing: jitter goes down, real motion (a 50 px step) stays, gaps are respected."""

from __future__ import annotations

import numpy as np
import pytest

from posetune.inference.smoothing import fill_short_gaps, jitter, smooth_track

METHODS = [("one_euro", {}), ("savgol", {})]


def _noisy_track(t=120, k=3, sigma=2.0, seed=0, step_at=None):
    rng = np.random.default_rng(seed)
    clean = np.zeros((t, k, 2))
    clean[..., 0] = 100 + 10 * np.arange(k)
    clean[..., 1] = 200
    if step_at is not None:
        clean[step_at:, :, 0] += 50
    return clean, clean + rng.normal(0, sigma, clean.shape), np.full((t, k), 0.9)


def test_jitter_metric():
    t = np.arange(10.0)
    line = np.stack([t, 2 * t], axis=1)[:, None, :]  # constant velocity: zero acceleration
    assert jitter(line) == 0.0
    zigzag = np.zeros((7, 1, 2))
    zigzag[1::2, 0, 0] = 1.0  # 0 1 0 1 0 1 0 -> second differences of norm 2
    assert jitter(zigzag) == pytest.approx(2.0)
    zigzag[0, 0, :] = np.nan  # NaNs are ignored, not propagated
    assert jitter(zigzag) == pytest.approx(2.0)
    assert np.isnan(jitter(np.full((4, 1, 2), np.nan)))


@pytest.mark.parametrize("method,params", METHODS)
def test_smoothing_reduces_jitter(method, params):
    clean, noisy, scores = _noisy_track()
    out = smooth_track(noisy, scores, method, fps=30, **params)
    assert out.shape == noisy.shape and np.isfinite(out).all()
    assert jitter(noisy) / jitter(out) > 4.0
    # and it stays close to the truth
    assert np.abs(out - clean).mean() < np.abs(noisy - clean).mean()


@pytest.mark.parametrize("method,params", METHODS)
def test_step_is_preserved(method, params):
    clean, noisy, scores = _noisy_track(step_at=60)
    out = smooth_track(noisy, scores, method, fps=30, **params)
    before = out[40:58, :, 0].mean(axis=0) - clean[40:58, :, 0].mean(axis=0)
    after = out[65:90, :, 0].mean(axis=0) - clean[65:90, :, 0].mean(axis=0)
    assert np.abs(before).max() < 1.5 and np.abs(after).max() < 1.5
    # the jump has happened within a few frames: 5 frames after the step most of the 50 px are there
    assert (out[65, :, 0] - out[55, :, 0]).min() > 45


@pytest.mark.parametrize("method,params", METHODS)
def test_low_confidence_frames_are_gaps(method, params):
    clean, noisy, scores = _noisy_track(t=80, k=2)
    bad = noisy.copy()
    bad[30:34, 0] += 300.0  # wild outliers with low scores must not leak into the output
    scores[30:34, 0] = 0.05
    bad[50:70, 1] = np.nan  # a long gap (20 frames > max_gap) stays NaN
    out = smooth_track(bad, scores, method, fps=30, max_gap=10, **params)
    assert np.isfinite(out[30:34, 0]).all()  # short gap: interpolated
    assert np.abs(out[30:34, 0] - clean[30:34, 0]).max() < 5.0
    assert np.isnan(out[50:70, 1]).all()
    assert np.isfinite(out[:50, 1]).all() and np.isfinite(out[70:, 1]).all()
    # a gap at the start cannot be interpolated
    scores2 = np.full((80, 2), 0.9)
    scores2[:3] = 0.0
    assert np.isnan(smooth_track(noisy, scores2, method, **params)[:3]).all()


def test_fill_short_gaps_and_none_method():
    v = np.array([0.0, np.nan, np.nan, 3.0, np.nan, np.nan, np.nan, np.nan, 8.0])
    ok = np.isfinite(v)
    np.testing.assert_allclose(fill_short_gaps(v, ok, 2)[:4], [0, 1, 2, 3])
    assert np.isnan(fill_short_gaps(v, ok, 2)[4:8]).all()
    np.testing.assert_allclose(fill_short_gaps(v, ok, 4), np.arange(9.0))
    xy = np.c_[v, v][:, None, :]
    out = smooth_track(xy, None, "none", max_gap=2)
    np.testing.assert_allclose(out[:4, 0, 0], [0, 1, 2, 3])


def test_one_euro_uses_timestamps():
    """The same samples at a lower frame rate are smoothed less (bigger dt -> bigger alpha)."""
    _, noisy, scores = _noisy_track(t=60, k=1)
    fast = smooth_track(noisy, scores, "one_euro", fps=120)
    slow = smooth_track(noisy, scores, "one_euro", timestamps=np.arange(60) / 10.0)
    assert jitter(fast) < jitter(slow)


def test_bad_parameters():
    xy = np.zeros((5, 1, 2))
    with pytest.raises(ValueError, match="unknown smoothing method"):
        smooth_track(xy, None, "kalman")
    with pytest.raises(ValueError, match="window"):
        smooth_track(xy, None, "one_euro", window=5)
