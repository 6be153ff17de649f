"""Regression codec: keypoints as normalised coordinates.

With pixel centres at integers the input image spans ``[-0.5, W - 0.5]``; the codec maps that
extent to [0, 1]: ``x_norm = (x + 0.5) / W``, ``y_norm = (y + 0.5) / H`` (decode inverts it
exactly). A horizontal flip ``x -> W - 1 - x`` is ``x_norm -> 1 - x_norm``.

Targets (:meth:`RegressionCodec.encode`): ``keypoints_norm`` (K, 2) (zeros where the weight is 0)
and ``keypoint_weights`` (K,). Network outputs: a Tensor (B, K, 2) of normalised coordinates, or
(B, K, 3) whose third channel is a confidence logit: scores are ``sigmoid`` of it, else 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from posetune.codecs.base import Codec, Outputs
from posetune.codecs.heatmap import inside_input


class RegressionCodec(Codec):
    """Normalised-coordinate regression (see module docstring)."""

    name = "regression"
    use_udp = False
    output_kind = "regression"

    def _size(self, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.input_size, dtype=like.dtype, device=like.device)

    def encode(self, keypoints: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
        """``keypoints_norm`` (K, 2) in [0, 1] and ``keypoint_weights`` (K,)."""
        w = inside_input(keypoints, weights, self.input_size)
        kp = np.where(w[:, None] > 0, np.asarray(keypoints, dtype=np.float64)[:, :2], 0.0)
        norm = (kp + 0.5) / np.array(self.input_size, dtype=np.float64)
        norm = np.where(w[:, None] > 0, norm, 0.0)
        return {"keypoints_norm": norm.astype(np.float32), "keypoint_weights": w.astype(np.float32)}

    def _check(self, outputs: Outputs) -> torch.Tensor:
        out = torch.as_tensor(outputs)
        if out.ndim != 3 or out.shape[-1] not in (2, 3):
            raise ValueError(f"regression outputs must be (B, K, 2) or (B, K, 3), got {tuple(out.shape)}")
        return out

    def decode(self, outputs: Outputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, 2|3) -> keypoints (B, K, 2) input-frame pixels, scores (B, K)."""
        out = self._check(outputs).float()
        kp = out[..., :2] * self._size(out) - 0.5
        scores = torch.sigmoid(out[..., 2]) if out.shape[-1] == 3 else torch.ones_like(out[..., 0])
        return kp, scores

    def flip_back(self, outputs: Outputs, flip_index: np.ndarray | list[int]) -> Outputs:
        """``x_norm -> 1 - x_norm`` and swap left/right keypoints (the score channel is kept)."""
        out = self._check(outputs)
        idx = torch.as_tensor(np.asarray(flip_index, dtype=np.int64), device=out.device)
        out = out.index_select(1, idx)
        return torch.cat([1.0 - out[..., :1], out[..., 1:]], dim=-1)

    def describe(self) -> dict[str, Any]:
        """Fields of :class:`posetune.config.schema.CodecConfig` that rebuild this codec."""
        return {"type": self.name, "input_size": list(self.input_size)}
