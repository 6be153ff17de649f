"""The interface every keypoint model in posetune implements.

A model owns its input normalisation (so datasets hand it uint8 RGB and exported models
take raw pixels), its KeypointSpec and its Codec. Training, evaluation, prediction and
export only use this interface, so timm top-down models and imported MediaPipe networks
are interchangeable.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from posetune.codecs.base import Codec, Outputs
from posetune.data.spec import KeypointSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class KeypointModel(nn.Module):
    """Base class: ``forward(images) -> raw outputs``; ``predict(images) -> keypoints, scores``.

    Subclasses implement :meth:`forward_features`-free ``forward_normalized`` and
    :meth:`stages`; they set ``self.spec``, ``self.codec`` and call ``super().__init__``.
    """

    # TorchScript must not compile the property that reads the (Python) codec
    __jit_unused_properties__ = ["input_size"]

    def __init__(self, spec: KeypointSpec, codec: Codec, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD):
        super().__init__()
        self.spec = spec
        self.codec = codec
        self.register_buffer("pixel_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model input."""
        return self.codec.input_size

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [0, 255] or float [0, 1] RGB (B, 3, H, W) -> the network's input scale."""
        if images.dtype == torch.uint8:
            images = images.float().div_(255.0)
        return (images - self.pixel_mean) / self.pixel_std

    def forward(self, images: torch.Tensor) -> Outputs:
        return self.forward_normalized(self.normalize(images))

    def forward_normalized(self, x: torch.Tensor) -> Outputs:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images: torch.Tensor, flip_test: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints (B, K, 2) in input-frame pixels and scores (B, K)."""
        outputs = self(images)
        if flip_test:
            flipped = self(torch.flip(images, dims=[3]))
            back = self.codec.flip_back(flipped, self.spec.flip_index)
            outputs = self.codec.merge_flip(outputs, back)
        return self.codec.decode(outputs)

    def stages(self) -> list[tuple[str, nn.Module]]:
        """Named sub-modules from input to output (for freezing, gradual unfreezing and
        discriminative learning rates). The last one is the head."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Everything needed to rebuild the architecture (stored in checkpoints)."""
        raise NotImplementedError
