"""Backbones: any timm model with ``features_only=True``, plus the plain CNN baseline.

A backbone returns a list holding one feature map (the one the head consumes). Which feature
that is depends on the head: heads that upsample or pool (deconv, SimCC, regression) take the
last, stride-32 feature; the HRNet-style 1x1 ``heatmap`` head takes the stride-4 feature.
For HRNet the raw high-resolution branch is used (timm's ``feature_location=''``), not the
channel-increased classification features.

:func:`backbone_stages` splits a backbone into named stages (stem, layer1, ...) from the
feature taps timm reports, for freezing, gradual unfreezing and per-stage learning rates.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from posetune.config.schema import BackboneConfig
from posetune.errors import ModelError, NetworkError

log = logging.getLogger(__name__)

#: timm names of the backbones posetune's presets use (any other timm name works too).
KNOWN_BACKBONES = (
    "hrnet_w18_small", "hrnet_w18_small_v2", "hrnet_w32", "hrnet_w48",
    "resnet18", "resnet50", "mobilenetv2_100", "mobilenetv3_large_100",
    "convnext_atto", "convnext_tiny",
)


@dataclass(frozen=True)
class FeatureTap:
    """One feature map a backbone can return."""

    index: int
    channels: int
    reduction: int
    module: str


@dataclass
class BackboneInfo:
    """What the head builder needs to know about a built backbone."""

    name: str
    out_index: int
    channels: int
    reduction: int
    taps: tuple[FeatureTap, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def max_reduction(self) -> int:
        return max(t.reduction for t in self.taps)


def is_hrnet(name: str) -> bool:
    return name.split(".")[0].startswith("hrnet")


def _arch(name: str) -> str:
    """timm architecture part of ``arch.pretrained_tag``."""
    return name.split(".")[0]


def check_timm_name(name: str) -> None:
    """Raise a ModelError naming ``model.backbone.name`` with close matches if timm lacks ``name``."""
    import timm

    if name.startswith(("hf-hub:", "hf_hub:")):
        return
    if timm.is_model(_arch(name)):
        return
    names = timm.list_models()
    close = difflib.get_close_matches(_arch(name), names, n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models() for the names timm knows"
    raise ModelError(f"unknown backbone '{name}'", where="model.backbone.name", hint=hint)


def _timm_kwargs(cfg: BackboneConfig) -> dict[str, Any]:
    kwargs = dict(cfg.kwargs)
    if cfg.drop_path_rate:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    if is_hrnet(cfg.name):
        kwargs.setdefault("feature_location", "")
    return kwargs


def probe_taps(cfg: BackboneConfig) -> tuple[FeatureTap, ...]:
    """All feature taps of a timm backbone, read from a parameter-free (meta device) build."""
    import timm

    check_timm_name(cfg.name)
    try:
        with torch.device("meta"):
            model = timm.create_model(cfg.name, features_only=True, pretrained=False, **_timm_kwargs(cfg))
    except (TypeError, RuntimeError, ValueError, AssertionError) as e:
        raise ModelError(f"timm cannot build '{cfg.name}' as a feature extractor ({e})",
                         where="model.backbone.name",
                         hint="pick a convolutional backbone that supports features_only "
                              "(e.g. resnet50, hrnet_w32, convnext_tiny) or fix model.backbone.kwargs") from None
    return tuple(FeatureTap(i, int(d["num_chs"]), int(d["reduction"]), str(d["module"]))
                 for i, d in enumerate(model.feature_info.info))


def choose_out_index(taps: tuple[FeatureTap, ...], head_type: str, out_index: int | None, name: str) -> int:
    """Index of the feature the head consumes (see the module docstring)."""
    n = len(taps)
    if out_index is not None:
        if not -n <= out_index < n:
            raise ModelError(f"out_index {out_index} is out of range: '{name}' has {n} feature maps "
                             f"(strides {[t.reduction for t in taps]})", where="model.backbone.out_index",
                             hint=f"use an index in 0..{n - 1}, or leave it empty to choose by head type")
        return out_index % n
    if head_type == "heatmap":
        for t in taps:
            if t.reduction == 4:
                return t.index
        raise ModelError(f"the 'heatmap' head needs a stride-4 feature map but '{name}' has strides "
                         f"{[t.reduction for t in taps]}", where="model.head.type",
                         hint="use head type 'deconv' (upsamples the last feature map) or set model.backbone.out_index")
    return n - 1


def _pretrained_mean_std(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from posetune.models.base import IMAGENET_MEAN, IMAGENET_STD

    pcfg = getattr(model, "pretrained_cfg", None) or {}
    mean = tuple(float(v) for v in pcfg.get("mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in pcfg.get("std", IMAGENET_STD))
    if len(mean) != 3 or len(std) != 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return mean, std


def create_timm_backbone(cfg: BackboneConfig, head_type: str,
                         taps: tuple[FeatureTap, ...] | None = None) -> nn.Module:
    """Build the timm feature extractor for ``cfg`` and the tap ``head_type`` needs.

    The result is timm's own ``features_only`` module (so its parameter names are timm's and timm
    state dicts load by name), built with ``out_indices=(tap,)`` so that it returns ``[feature]``;
    :class:`BackboneInfo` is attached as ``posetune_info``.

    ``cfg.pretrained``: ``False``; ``True`` (timm's own weights, downloaded by timm/huggingface);
    or a path / ``file://`` / ``https://`` URL of a state dict loaded into the backbone.
    ``taps`` (from :func:`probe_taps`) saves probing the architecture again.
    """
    import timm

    taps = taps or probe_taps(cfg)
    idx = choose_out_index(taps, head_type, cfg.out_index, cfg.name)
    kwargs = _timm_kwargs(cfg)
    kwargs["out_indices"] = (idx,)
    use_timm_weights = cfg.pretrained is True
    try:
        body = timm.create_model(cfg.name, features_only=True, pretrained=use_timm_weights, **kwargs)
    except (OSError, ConnectionError, TimeoutError) as e:
        raise NetworkError(f"cannot download timm's pretrained weights for '{cfg.name}' ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200]})", where="model.backbone.pretrained",
                           hint="you are offline or behind a firewall: download the weights elsewhere and set "
                                "model.backbone.pretrained to the local file's path") from None
    except (TypeError, RuntimeError, ValueError, AssertionError) as e:
        raise ModelError(f"timm cannot build '{cfg.name}' ({e})", where="model.backbone",
                         hint="check model.backbone.name and model.backbone.kwargs") from None
    prune_unused(body, idx)
    mean, std = _pretrained_mean_std(body)
    tap = taps[idx]
    info = BackboneInfo(name=cfg.name, out_index=idx, channels=tap.channels, reduction=tap.reduction, taps=taps,
                        mean=mean, std=std)
    body.posetune_info = info
    if isinstance(cfg.pretrained, str) and cfg.pretrained.strip():
        from posetune.models.checkpoints import load_backbone_weights

        report = load_backbone_weights(body, cfg.pretrained, sha256=cfg.pretrained_sha256)
        body.posetune_load_report = report
        log.info("model.backbone.pretrained: %s", report.summary())
    return body


def prune_unused(body: nn.Module, out_index: int) -> None:
    """Drop layers whose outputs the chosen feature does not need (saves compute, and leaves no
    parameter without a gradient, which distributed training would trip over).

    timm's FeatureListNet already stops at the last tap. Two feature classes compute more:

    * EfficientNet/MobileNet features run every block: the blocks after the tap are cut off;
    * HRNet's last module fuses all branches into every resolution: only the fuse layers of the
      chosen branch are kept (the others become a cheap pass-through whose output is unused).
      This is also exactly the layout of MMPose's HRNet (``multiscale_output=False`` for the
      stride-4 branch), so MMPose checkpoints match key for key.
    """
    stage_idx = getattr(body, "_stage_out_idx", None)
    if isinstance(stage_idx, dict) and getattr(body, "feature_hooks", 1) is None and isinstance(
            getattr(body, "blocks", None), nn.Sequential) and stage_idx:
        body.blocks = body.blocks[:max(stage_idx)]
        return
    stage4 = getattr(body, "stage4", None)
    if type(body).__name__ == "HighResolutionNetFeatures" and isinstance(stage4, nn.Sequential) and out_index >= 1:
        last = stage4[-1]
        fuse = getattr(last, "fuse_layers", None)
        if isinstance(fuse, nn.ModuleList):
            for i in range(len(fuse)):
                if i != out_index - 1:
                    fuse[i] = nn.ModuleList([nn.Identity()])


# ----------------------------------------------------------------------------- plain CNN baseline
class PlainCNN(nn.Module):
    """The classic first keypoint model's feature extractor: four conv blocks
    (3x3 conv-BN-ReLU twice, then 2x2 max-pool), 32-64-128-256 channels, stride 16.

    Used by head type ``cnn``; no timm model and no pretrained weights (``model.backbone`` is
    ignored). Returns ``[feature]`` like the timm backbones.
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        blocks = []
        c_in = 3
        for c in channels:
            blocks.append(nn.Sequential(
                nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ))
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        from posetune.models.base import IMAGENET_MEAN, IMAGENET_STD

        reduction = 2 ** len(channels)
        tap = FeatureTap(0, c_in, reduction, "blocks")
        self.posetune_info = BackboneInfo(name="cnn", out_index=0, channels=c_in, reduction=reduction, taps=(tap,),
                                 mean=IMAGENET_MEAN, std=IMAGENET_STD)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.blocks(x)]


# ----------------------------------------------------------------------------- stages
_HRNET_GROUPS = (
    ("stem", ("conv1", "bn1", "act1", "conv2", "bn2", "act2")),
    ("stage1", ("layer1",)),
    ("stage2", ("transition1", "stage2")),
    ("stage3", ("transition2", "stage3")),
    ("stage4", ("transition3", "stage4")),
)


def _has_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters())


def _group(modules: list[nn.Module]) -> nn.Module:
    return modules[0] if len(modules) == 1 else nn.ModuleList(modules)


def _hrnet_stages(body: nn.Module) -> list[tuple[str, nn.Module]]:
    out = []
    for name, children in _HRNET_GROUPS:
        mods = [getattr(body, c) for c in children if isinstance(getattr(body, c, None), nn.Module)]
        mods = [m for m in mods if _has_params(m)]
        if mods:
            out.append((name, _group(mods)))
    rest = [m for n, m in body.named_children()
            if not any(n in ch for _, ch in _HRNET_GROUPS) and _has_params(m)]
    if rest:  # e.g. incre_modules when feature_location='incre' is forced through kwargs
        out.append(("neck", _group(rest)))
    return out


def _tap_stages(body: nn.Module, taps: tuple[FeatureTap, ...]) -> list[tuple[str, nn.Module]]:
    """Walk modules in registration order, closing a stage at every feature tap.

    timm's FeatureListNet flattens ``stages.0`` into ``stages_0``, so both spellings match.
    """
    tap_of: dict[str, FeatureTap] = {}
    for t in taps:
        tap_of[t.module] = t
        tap_of[t.module.replace(".", "_")] = t
    prefixes = set(tap_of)

    def walk(module: nn.Module, prefix: str):
        for name, child in module.named_children():
            path = prefix + name
            if any(p.startswith(path + ".") for p in prefixes):
                yield from walk(child, path + ".")
            else:
                yield path, child

    stages: list[tuple[str, nn.Module]] = []
    pending: list[nn.Module] = []
    for path, child in walk(body, ""):
        tap = tap_of.get(path)
        tap_has_params = _has_params(child)
        if tap_has_params:
            pending.append(child)
        if tap is None or not pending:
            continue
        if not stages and tap.reduction <= 2:
            stages.append(("stem", _group(pending)))
        elif not stages and tap_has_params and len(pending) > 1:
            stages.append(("stem", _group(pending[:-1])))
            stages.append((tap.module, pending[-1]))
        else:
            stages.append((tap.module, _group(pending)))
        pending = []
    if pending:
        if stages:
            name, last = stages[-1]
            stages[-1] = (name, _group([last, *pending]))
        else:
            stages.append(("body", _group(pending)))
    return stages


def _covers_exactly(module: nn.Module, stages: list[tuple[str, nn.Module]]) -> bool:
    want = {id(p) for p in module.parameters()}
    got: list[int] = [id(p) for _, m in stages for p in m.parameters()]
    return len(got) == len(set(got)) and set(got) == want


def backbone_stages(backbone: nn.Module) -> list[tuple[str, nn.Module]]:
    """Named stages of a backbone from input to output (names without the ``backbone.`` prefix).

    Every parameter belongs to exactly one stage; when the structure is not understood the whole
    backbone is one stage ``body``.
    """
    if isinstance(backbone, PlainCNN):
        return [(f"block{i + 1}", m) for i, m in enumerate(backbone.blocks)]
    body = backbone
    info = getattr(backbone, "posetune_info", None)
    if info is not None and is_hrnet(info.name):
        stages = _hrnet_stages(body)
    elif info is not None:
        stages = _tap_stages(body, info.taps)
    else:
        stages = [(n, m) for n, m in body.named_children() if _has_params(m)]
    if not stages or not _covers_exactly(body, stages):
        return [("body", body)]
    return stages
