"""DeepLabCut-style "RMSE", with and without the likelihood cut-off.

DeepLabCut's ``evaluate_network`` reports "RMSE" as the **mean Euclidean distance** in pixels
over every (image, bodypart) with a label: its ``pairwisedistances`` takes
``sqrt(dx² + dy²)`` per point and ``np.nanmean`` over all of them; no square root of a mean
square is taken. "RMSE with p-cutoff" is the same mean over the points whose predicted
likelihood is ``>= pcutoff`` (points below it are left out, not counted as errors).

posetune reports ``RMSE`` and ``RMSE_pcutoff`` exactly as DeepLabCut defines them, so the
numbers compare with DeepLabCut's tables; ``RMSE`` therefore equals ``EPE`` on the same
points. The true root-mean-square distance ``sqrt(mean d²)`` is returned as
``root_mean_square`` by :func:`dlc_rmse` for those who need it.
"""

from __future__ import annotations

import numpy as np

from posetune.evaluation.matching import Matches
from posetune.evaluation.pck import mean_distance


def dlc_rmse(matches: Matches, pcutoff: float | None = 0.6) -> dict[str, object]:
    """DeepLabCut RMSE (mean distance), RMSE over points with likelihood >= ``pcutoff``, true RMS.

    Returns ``{'RMSE', 'RMSE_pcutoff', 'root_mean_square', 'per_keypoint': {'RMSE': (K,),
    'RMSE_pcutoff': (K,)}, 'kept_fraction'}``. ``RMSE_pcutoff`` is None when the predictions
    carry no keypoint scores (or ``pcutoff`` is None) or no point passes the cut-off;
    ``kept_fraction`` is the share of scored labelled points at or above it.
    """
    d = matches.distances()
    total, per_kp = mean_distance(d)
    rms = float(np.sqrt(np.nanmean(d**2))) if np.isfinite(d).any() else None
    out: dict[str, object] = {"RMSE": total, "root_mean_square": rms, "RMSE_pcutoff": None, "kept_fraction": None}
    per: dict[str, np.ndarray] = {"RMSE": per_kp, "RMSE_pcutoff": np.full(d.shape[1], np.nan)}
    scored = np.isfinite(d) & np.isfinite(matches.scores)
    if pcutoff is not None and scored.any():
        keep = scored & (matches.scores >= pcutoff)
        total_p, per_p = mean_distance(np.where(keep, d, np.nan))
        out["RMSE_pcutoff"] = total_p
        per["RMSE_pcutoff"] = per_p
        out["kept_fraction"] = float(keep.sum() / scored.sum())
    out["per_keypoint"] = per
    return out
