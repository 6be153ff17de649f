"""Heads: backbone feature map -> what the codec decodes.

========== ============================================== =====================================
type       layers                                         output
========== ============================================== =====================================
deconv     SimpleBaseline: n x (4x4 deconv s2, BN, ReLU)  heatmaps (B, K, H/s, W/s), s = r / 2^n
           then a 1x1 conv to K
heatmap    HRNet: optional 3x3 conv-BN-ReLU, 1x1 conv     heatmaps at the feature's stride (4)
simcc      1x1 conv to K, flatten the spatial grid,       (x_logits (B, K, W*split),
           Linear -> hidden, ReLU, then one Linear         y_logits (B, K, H*split))
           per axis (SimCC / RTMPose-lite)
regression global average pool, Linear -> hidden, ReLU,   (B, K, 2) normalised coordinates
           dropout, Linear -> 2K
cnn        same as regression on the plain CNN backbone,  (B, K, 2)
           but pooling to a 4x4 grid so position survives
========== ============================================== =====================================

Module names follow MMPose (``deconv_layers``, ``final_layer``) so MMPose checkpoints load by
name. Every head knows which of its layers have one output row per keypoint
(:meth:`KeypointHead.keypoint_layers`), so the keypoint set can be changed while keeping the
rows of keypoints that exist in both sets (:meth:`KeypointHead.resize_keypoints`).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

#: deconv kernel -> (padding, output_padding) so that each layer exactly doubles the size
DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


def _init_heatmap_conv(layer: nn.Conv2d) -> None:
    nn.init.normal_(layer.weight, std=0.001)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def copy_keypoint_rows(new: torch.Tensor, old: torch.Tensor, index_map: Sequence[int | None], group: int,
                       dim: int = 0) -> int:
    """Copy rows of keypoint ``index_map[i]`` of ``old`` into keypoint ``i`` of ``new`` (in place).

    A keypoint owns ``group`` consecutive rows along ``dim`` (1 for heatmap channels, 2 for x/y
    regression outputs). Returns the number of keypoints copied.
    """
    n = 0
    with torch.no_grad():
        for i, j in enumerate(index_map):
            if j is None:
                continue
            new.narrow(dim, i * group, group).copy_(old.narrow(dim, j * group, group))
            n += 1
    return n


class KeypointHead(nn.Module):
    """Base of posetune's heads: knows its keypoint count (``num_keypoints``, set by subclasses)
    and its per-keypoint layers. (No class-level annotations: TorchScript would choke on them.)"""

    def keypoint_layers(self) -> dict[str, int]:
        """Attribute name -> rows per keypoint, for layers whose outputs are per keypoint."""
        raise NotImplementedError

    def init_keypoint_layer(self, layer: nn.Module) -> None:
        """Initialise a freshly built per-keypoint layer (default: PyTorch's own init)."""

    def _new_layer(self, old: nn.Module, out_rows: int) -> nn.Module:
        if isinstance(old, nn.Conv2d):
            layer = nn.Conv2d(old.in_channels, out_rows, old.kernel_size, old.stride, old.padding,
                              bias=old.bias is not None)
        elif isinstance(old, nn.Linear):
            layer = nn.Linear(old.in_features, out_rows, bias=old.bias is not None)
        else:  # pragma: no cover - heads only use Conv2d / Linear keypoint layers
            raise TypeError(f"cannot resize {type(old).__name__}")
        self.init_keypoint_layer(layer)
        return layer.to(device=old.weight.device, dtype=old.weight.dtype)

    def resize_keypoints(self, index_map: Sequence[int | None]) -> int:
        """Rebuild the per-keypoint layers for ``len(index_map)`` keypoints.

        New keypoint ``i`` keeps the trained rows of old keypoint ``index_map[i]`` (None: freshly
        initialised). Returns the number of keypoints whose rows were copied.
        """
        copied = 0
        for attr, group in self.keypoint_layers().items():
            old = getattr(self, attr)
            new = self._new_layer(old, len(index_map) * group)
            copied = copy_keypoint_rows(new.weight, old.weight, index_map, group)
            if old.bias is not None:
                copy_keypoint_rows(new.bias, old.bias, index_map, group)
            setattr(self, attr, new)
        self.num_keypoints = len(index_map)
        return copied


def _deconv_stack(in_channels: int, num_layers: int, channels: int, kernel: int) -> tuple[nn.Module, int]:
    if num_layers == 0:
        return nn.Identity(), in_channels
    if kernel not in DECONV_PADDING:
        raise ValueError(f"deconv kernel must be one of {sorted(DECONV_PADDING)}, got {kernel}")
    padding, output_padding = DECONV_PADDING[kernel]
    layers: list[nn.Module] = []
    c = in_channels
    for _ in range(num_layers):
        deconv = nn.ConvTranspose2d(c, channels, kernel, stride=2, padding=padding, output_padding=output_padding,
                                    bias=False)
        nn.init.normal_(deconv.weight, std=0.001)
        layers += [deconv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        c = channels
    return nn.Sequential(*layers), c


class _HeatmapConvHead(KeypointHead):
    """Heads whose last layer is a 1x1 conv to K heatmaps, ``final_layer`` (MMPose's name),
    initialised with std 0.001 as in SimpleBaseline / HRNet."""

    def keypoint_layers(self) -> dict[str, int]:
        return {"final_layer": 1}

    def init_keypoint_layer(self, layer: nn.Module) -> None:
        _init_heatmap_conv(layer)


class DeconvHead(_HeatmapConvHead):
    """SimpleBaseline head (Xiao et al. 2018): ``num_layers`` stride-2 deconvolutions, each
    followed by BN and ReLU, then a 1x1 conv to K heatmaps. Upsamples by ``2 ** num_layers``."""

    def __init__(self, in_channels: int, num_keypoints: int, num_layers: int = 3, channels: int = 256,
                 kernel: int = 4):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.upsample = 2 ** num_layers
        self.deconv_layers, c = _deconv_stack(in_channels, num_layers, channels, kernel)
        self.final_layer = nn.Conv2d(c, num_keypoints, 1)
        self.init_keypoint_layer(self.final_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.deconv_layers(x))


class HeatmapHead(_HeatmapConvHead):
    """HRNet head: heatmaps straight from the stride-4 feature by a 1x1 conv, optionally after
    one 3x3 conv-BN-ReLU (``extra_conv``)."""

    def __init__(self, in_channels: int, num_keypoints: int, extra_conv: bool = False):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.upsample = 1
        if extra_conv:
            self.conv_layers: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False), nn.BatchNorm2d(in_channels),
                nn.ReLU(inplace=True))
        else:
            self.conv_layers = nn.Identity()
        self.final_layer = nn.Conv2d(in_channels, num_keypoints, 1)
        self.init_keypoint_layer(self.final_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.conv_layers(x))


class SimCCHead(KeypointHead):
    """SimCC head, kept simple: a 1x1 conv gives one feature map per keypoint; each map is
    flattened (``feature_size`` = w x h cells), mapped to ``hidden_dim`` by a shared Linear + ReLU,
    then one Linear per axis gives the x logits (``x_bins`` = W*split) and y logits
    (``y_bins`` = H*split). (RTMPose puts a gated attention unit where the hidden layer is.)"""

    def __init__(self, in_channels: int, num_keypoints: int, feature_size: tuple[int, int], x_bins: int,
                 y_bins: int, hidden_dim: int = 256, dropout: float = 0.0):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.feature_size = (int(feature_size[0]), int(feature_size[1]))
        self.final_layer = nn.Conv2d(in_channels, num_keypoints, 1)
        self.mlp = nn.Sequential(nn.Linear(self.feature_size[0] * self.feature_size[1], hidden_dim),
                                 nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.cls_x = nn.Linear(hidden_dim, x_bins)
        self.cls_y = nn.Linear(hidden_dim, y_bins)

    def keypoint_layers(self) -> dict[str, int]:
        return {"final_layer": 1}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.final_layer(x)
        h = self.mlp(y.flatten(2))
        return self.cls_x(h), self.cls_y(h)


class RegressionHead(KeypointHead):
    """Direct coordinate regression: pool to ``pool_size`` x ``pool_size`` (1 = global average),
    flatten, Linear -> ``hidden_dim``, ReLU, dropout, Linear -> 2K, reshaped to (B, K, 2).

    ``sigmoid=True`` squashes the outputs into (0, 1) (the regression codec's normalised
    coordinates: 0 and 1 are the input's edges); otherwise they are returned raw."""

    def __init__(self, in_channels: int, num_keypoints: int, hidden_dim: int = 256, dropout: float = 0.0,
                 pool_size: int = 1, sigmoid: bool = False):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.sigmoid = sigmoid
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.mlp = nn.Sequential(nn.Linear(in_channels * pool_size * pool_size, hidden_dim), nn.ReLU(inplace=True),
                                 nn.Dropout(dropout))
        self.fc = nn.Linear(hidden_dim, num_keypoints * 2)
        self.init_keypoint_layer(self.fc)

    def keypoint_layers(self) -> dict[str, int]:
        return {"fc": 2}

    def init_keypoint_layer(self, layer: nn.Module) -> None:
        # every keypoint starts at the crop centre: 0.5 raw, or 0.5 after the sigmoid
        nn.init.normal_(layer.weight, std=0.001)
        nn.init.constant_(layer.bias, 0.0 if self.sigmoid else 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(self.mlp(self.pool(x).flatten(1))).view(x.shape[0], self.num_keypoints, 2)
        return out.sigmoid() if self.sigmoid else out
