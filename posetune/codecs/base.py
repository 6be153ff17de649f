"""Codec interface: keypoints in model-input pixels <-> training targets / network outputs.

Coordinates convention (everywhere in posetune): integer coordinates are pixel *centres*;
a horizontal flip of an image of width W maps x to ``W - 1 - x``.

A codec works in the model-input frame (the top-down crop, ``input_size = (w, h)``); the
crop's affine matrix maps between image and input frames (see posetune.data.transforms).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

Outputs = Any  # a Tensor, or a tuple of Tensors (SimCC: (x_logits, y_logits))


class Codec(ABC):
    #: short name used in configs
    name: str = ""
    #: True when crops must use the unbiased (UDP) affine convention
    use_udp: bool = False

    def __init__(self, input_size: tuple[int, int]):
        self.input_size = (int(input_size[0]), int(input_size[1]))

    @abstractmethod
    def encode(self, keypoints: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Targets for one instance.

        ``keypoints``: (K, 2) float, input-frame pixels; ``weights``: (K,) float, 0 for keypoints
        that are unlabelled or fall outside the input. Returns float32 arrays; always includes
        ``keypoint_weights`` (K,) (zeroed further where the codec cannot represent a point).
        """

    @abstractmethod
    def decode(self, outputs: Outputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched network outputs -> (keypoints (B, K, 2) input-frame pixels, scores (B, K))."""

    @abstractmethod
    def flip_back(self, outputs: Outputs, flip_index: np.ndarray | list[int]) -> Outputs:
        """Map outputs computed on a horizontally flipped input back to the unflipped frame
        (mirror the spatial axis and swap left/right channels with ``flip_index``)."""

    def merge_flip(self, outputs: Outputs, flipped_back: Outputs) -> Outputs:
        """Combine outputs of the image and of its flipped copy (flip test): the mean."""
        if isinstance(outputs, (tuple, list)):
            return type(outputs)((a + b) / 2 for a, b in zip(outputs, flipped_back))
        return (outputs + flipped_back) / 2

    def describe(self) -> dict[str, Any]:
        """Settings needed to rebuild this codec (stored in checkpoints)."""
        return {"type": self.name, "input_size": list(self.input_size)}
