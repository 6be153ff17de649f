"""SimCC codec: keypoints as two 1-D classifications, one over x bins and one over y bins.

Each input pixel is split into ``split_ratio`` bins: ``bins = round(input_size * split_ratio)``
per axis (``ratio = bins / input_size``, equal to ``split_ratio`` whenever that is a whole
number of bins). With pixel centres at integers, bin ``b``'s centre is at input coordinate
``(b + 0.5) / ratio - 0.5`` — the same pixel-centre-consistent mapping as the MSRA heatmap, so a
horizontal flip ``x -> W - 1 - x`` is exactly a reversal of the x bins.

Targets (:meth:`SimCCCodec.encode`): ``simcc_x`` (K, Wbins) and ``simcc_y`` (K, Hbins), each row a
probability distribution — a Gaussian of standard deviation ``sigma`` bins at the unrounded
keypoint position, normalised to sum 1, mixed with ``label_smoothing`` of the uniform
distribution — plus ``keypoint_weights`` (K,). Rows of keypoints with weight 0 are all zero.

Default ``sigma`` (bins, per axis): ``4.9 * sqrt(size / 192) * split_ratio / 2``, i.e.
``(4.9, 5.66)`` for a 192x256 input at split 2 and ``(6.0, 6.93)`` for 288x384, the RTMPose
numbers. Note RTMPose feeds max-1 Gaussians through ``softmax(beta * target)`` (its
``label_softmax``), which makes the distribution it trains towards about ``sqrt(beta)`` times
narrower; posetune trains towards the normalised Gaussian itself (original SimCC), so set
``model.codec.simcc_sigma`` to about ``(1.55, 1.79)`` to mimic RTMPose's sharper targets.

Network outputs: a tuple ``(x_logits (B, K, Wbins), y_logits (B, K, Hbins))``; the model's
distribution is ``softmax(beta * logits)`` (``beta`` = ``loss.simcc_beta``, 10 by default).
Decoding: argmax per axis mapped back to pixels (error at most half a bin, ``0.5 / ratio``
input pixels). Score: the *minimum* over the two axes of the peak probability divided by the
peak of an ideal target distribution, clipped to [0, 1] (1 = as confident as the targets).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from posetune.codecs.base import Codec, Outputs
from posetune.codecs.heatmap import inside_input


def default_simcc_sigma(input_size: tuple[int, int], split_ratio: float) -> tuple[float, float]:
    """RTMPose-like label sigma in bins: ``4.9 * sqrt(size / 192) * split_ratio / 2`` per axis."""
    return tuple(4.9 * math.sqrt(s / 192.0) * split_ratio / 2.0 for s in input_size)  # type: ignore[return-value]


class SimCCCodec(Codec):
    """1-D classification per axis (see module docstring)."""

    name = "simcc"
    use_udp = False
    output_kind = "simcc"

    def __init__(self, input_size: tuple[int, int], split_ratio: float = 2.0,
                 sigma: tuple[float, float] | None = None, label_smoothing: float = 0.0, beta: float = 10.0):
        super().__init__(input_size)
        if split_ratio <= 0:
            raise ValueError(f"split_ratio must be positive, got {split_ratio}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.split_ratio = float(split_ratio)
        self.bins = tuple(max(1, int(round(s * self.split_ratio))) for s in self.input_size)
        self.ratio = np.array(self.bins, dtype=np.float64) / np.array(self.input_size, dtype=np.float64)
        self.sigma_is_default = sigma is None
        self.sigma = tuple(float(s) for s in (sigma or default_simcc_sigma(self.input_size, self.split_ratio)))
        if min(self.sigma) <= 0:
            raise ValueError(f"simcc sigma must be positive, got {self.sigma}")
        self.label_smoothing = float(label_smoothing)
        self.beta = float(beta)
        # peak of an ideal target row (keypoint on a bin centre in the middle): score normaliser
        self._peaks = tuple(float(self._labels(np.array([[n // 2]], dtype=np.float64), n, s).max())
                            for n, s in zip(self.bins, self.sigma))

    def _labels(self, centres: np.ndarray, n: int, sigma: float) -> np.ndarray:
        """Normalised Gaussian rows (K, n) at bin positions ``centres`` (K, 1)."""
        d = np.arange(n, dtype=np.float64)[None, :] - centres
        g = np.exp(-(d * d) / (2.0 * sigma * sigma))
        g /= np.maximum(g.sum(axis=1, keepdims=True), 1e-300)
        if self.label_smoothing > 0:
            g = (1.0 - self.label_smoothing) * g + self.label_smoothing / n
        return g

    def encode(self, keypoints: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
        """``simcc_x`` (K, Wbins), ``simcc_y`` (K, Hbins), ``keypoint_weights`` (K,)."""
        w = inside_input(keypoints, weights, self.input_size)
        kp = np.where(w[:, None] > 0, np.asarray(keypoints, dtype=np.float64)[:, :2], 0.0)
        centres = (kp + 0.5) * self.ratio - 0.5
        on = (w > 0)[:, None]
        out = {}
        for axis, key in ((0, "simcc_x"), (1, "simcc_y")):
            rows = self._labels(centres[:, axis:axis + 1], self.bins[axis], self.sigma[axis])
            out[key] = (rows * on).astype(np.float32)
        out["keypoint_weights"] = w.astype(np.float32)
        return out

    def _split(self, outputs: Outputs) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(outputs, (tuple, list)) or len(outputs) != 2:
            raise ValueError("SimCC outputs must be a tuple (x_logits (B, K, Wbins), y_logits (B, K, Hbins))")
        x, y = (torch.as_tensor(o) for o in outputs)
        if x.ndim != 3 or y.ndim != 3 or x.shape[-1] != self.bins[0] or y.shape[-1] != self.bins[1]:
            raise ValueError(f"SimCC outputs must have {self.bins[0]} x bins and {self.bins[1]} y bins, "
                             f"got shapes {tuple(x.shape)} and {tuple(y.shape)}")
        return x, y

    def decode(self, outputs: Outputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_logits, y_logits) -> keypoints (B, K, 2) input-frame pixels, scores (B, K)."""
        x_logits, y_logits = self._split(outputs)
        coords, scores = [], []
        for axis, logits in enumerate((x_logits, y_logits)):
            prob = torch.softmax(logits.float() * self.beta, dim=-1)
            peak, idx = prob.max(dim=-1)
            coords.append((idx.float() + 0.5) / float(self.ratio[axis]) - 0.5)
            scores.append((peak / self._peaks[axis]).clamp(0.0, 1.0))
        return torch.stack(coords, dim=-1), torch.minimum(scores[0], scores[1])

    def flip_back(self, outputs: Outputs, flip_index: np.ndarray | list[int]) -> Outputs:
        """Reverse the x bins and swap left/right channels of both axes."""
        x, y = self._split(outputs)
        idx = torch.as_tensor(np.asarray(flip_index, dtype=np.int64), device=x.device)
        return (torch.flip(x, dims=[-1]).index_select(1, idx), y.index_select(1, idx))

    def describe(self) -> dict[str, Any]:
        """Fields of :class:`posetune.config.schema.CodecConfig` that rebuild this codec."""
        return {"type": self.name, "input_size": list(self.input_size), "simcc_split_ratio": self.split_ratio,
                "simcc_sigma": None if self.sigma_is_default else list(self.sigma),
                "label_smoothing": self.label_smoothing}
