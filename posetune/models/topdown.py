"""Top-down keypoint model: one cropped subject in, keypoints of that subject out.

``TopDownModel = normalise -> backbone (timm features_only, or the plain CNN) -> head``. The
head's output is what the codec decodes (heatmaps, SimCC logits or normalised coordinates).
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from posetune.codecs.base import Codec, Outputs
from posetune.data.spec import KeypointSpec
from posetune.errors import ModelError
from posetune.models.backbones import backbone_stages
from posetune.models.base import IMAGENET_MEAN, IMAGENET_STD, KeypointModel


class TopDownModel(KeypointModel):
    """Backbone + head (see :mod:`posetune.models.heads`), built by
    :func:`posetune.models.build.build_model`.

    ``config`` is the :class:`~posetune.config.schema.ModelConfig` (as a dict, with the codec's
    ``heatmap_size`` resolved) that rebuilds this architecture; :meth:`describe` returns it with
    the spec.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, spec: KeypointSpec, codec: Codec,
                 config: dict[str, Any] | None = None, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD):
        super().__init__(spec, codec, mean=mean, std=std)
        self.backbone = backbone
        self.head = head
        self.config = dict(config or {})

    def forward_normalized(self, x):  # type: ignore[override]
        return self.head(self.backbone(x)[-1])

    def stages(self) -> list[tuple[str, nn.Module]]:
        """``backbone.<stage>`` from the stem to the deepest stage used, then ``head``.

        E.g. resnet: ``backbone.stem`` (conv1, bn1), ``backbone.layer1`` ... ``backbone.layer4``,
        ``head``; convnext: ``backbone.stem``, ``backbone.stages.0`` ...; HRNet: ``backbone.stem``,
        ``backbone.stage1`` ... ``backbone.stage4``. Every parameter is in exactly one stage.
        """
        return [(f"backbone.{name}", m) for name, m in backbone_stages(self.backbone)] + [("head", self.head)]

    def describe(self) -> dict[str, Any]:
        """``{'type': 'topdown', 'config': ModelConfig dict, 'spec': KeypointSpec dict}``; see
        :func:`posetune.models.build.build_from_description`."""
        return {"type": "topdown", "config": dict(self.config), "spec": self.spec.to_dict()}


def keypoint_index_map(old: Sequence[str], new: Sequence[str]) -> list[int | None]:
    """For each name in ``new`` the index of the same name in ``old`` (None if absent)."""
    where = {n: i for i, n in enumerate(old)}
    return [where.get(n) for n in new]


def adapt_head(model: KeypointModel, new_spec: KeypointSpec) -> KeypointModel:
    """Switch ``model`` to the keypoint set ``new_spec`` in place and return it.

    Only the head's per-keypoint layer(s) are replaced; keypoints whose names exist in both the
    old and the new spec keep their trained rows/channels, the others start from a fresh
    initialisation. Everything else (backbone, upsampling layers, codec) is kept.
    """
    head = getattr(model, "head", None)
    if head is None or not hasattr(head, "resize_keypoints"):
        raise ModelError(f"{type(model).__name__} has no resizable head",
                         hint="only posetune top-down models can change their keypoint set this way")
    index_map = keypoint_index_map(model.spec.keypoints, new_spec.keypoints)
    head.resize_keypoints(index_map)
    model.spec = new_spec
    return model


__all__ = ["TopDownModel", "adapt_head", "keypoint_index_map", "Outputs"]
