"""Build a keypoint model from the ``model`` config section and a KeypointSpec.

Checks that need no weights (backbone name, head/codec pairing, input and heatmap sizes) run
before any network is built or downloaded, and each error names the config key to change.
Weights named by ``model.load_from`` are *not* loaded here: call
:func:`posetune.models.checkpoints.load_weights` (the training engine does).
"""

from __future__ import annotations

from typing import Any

from posetune.config.schema import ModelConfig
from posetune.data.spec import KeypointSpec
from posetune.errors import ModelError
from posetune.models.base import KeypointModel

#: head type -> codec types it can feed
HEAD_CODECS: dict[str, tuple[str, ...]] = {
    "deconv": ("msra", "udp"),
    "heatmap": ("msra", "udp"),
    "simcc": ("simcc",),
    "regression": ("regression",),
    "cnn": ("regression",),
}

#: reduction of the plain CNN baseline (four 2x2 max-pools)
CNN_REDUCTION = 16


def _check_pairing(cfg: ModelConfig) -> None:
    allowed = HEAD_CODECS[cfg.head.type]
    if cfg.codec.type not in allowed:
        raise ModelError(f"head '{cfg.head.type}' cannot feed codec '{cfg.codec.type}'", where="model.codec.type",
                         hint=f"with model.head.type '{cfg.head.type}' use codec {' or '.join(allowed)}; "
                              f"or pick a head for '{cfg.codec.type}': "
                              + ", ".join(h for h, cs in HEAD_CODECS.items() if cfg.codec.type in cs))


def _check_input_size(cfg: ModelConfig, multiple: int, backbone: str) -> None:
    w, h = cfg.codec.input_size
    if w % multiple or h % multiple:
        near = [max(multiple, round(v / multiple) * multiple) for v in (w, h)]
        raise ModelError(f"input_size {[w, h]} must be a multiple of {multiple} (the largest stride of '{backbone}')",
                         where="model.codec.input_size", hint=f"use e.g. {near}")


def output_stride(cfg: ModelConfig, reduction: int) -> int:
    """Stride of the heatmaps: the feature's stride, divided by 2 per deconv layer."""
    if cfg.head.type == "deconv":
        stride = reduction / 2 ** cfg.head.deconv_layers
        if stride < 1 or stride != int(stride):
            raise ModelError(f"{cfg.head.deconv_layers} deconv layers upsample a stride-{reduction} feature beyond "
                             f"the input resolution", where="model.head.deconv_layers",
                             hint=f"use at most {reduction.bit_length() - 1} layers")
        return int(stride)
    return reduction


def resolve_heatmap_size(cfg: ModelConfig, reduction: int) -> tuple[int, int]:
    """The heatmap size the network produces; checks ``model.codec.heatmap_size`` against it."""
    stride = output_stride(cfg, reduction)
    w, h = cfg.codec.input_size
    expected = (w // stride, h // stride)
    given = cfg.codec.heatmap_size
    if given is not None and tuple(given) != expected:
        raise ModelError(
            f"heatmap_size {list(given)} does not match the network output {list(expected)} "
            f"(input {w}x{h} / stride {stride} of {cfg.head.type} head on a stride-{reduction} feature)",
            where="model.codec.heatmap_size",
            hint=f"set it to {list(expected)} or leave it empty to derive it"
                 + (", or change model.head.deconv_layers" if cfg.head.type == "deconv" else ""))
    return expected


def build_model(cfg: ModelConfig, spec: KeypointSpec) -> KeypointModel:
    """The model ``cfg`` describes, predicting the keypoints of ``spec``.

    ``model.type: mediapipe`` dispatches to :func:`posetune.models.mediapipe.build_mediapipe_model`.
    For ``topdown``: a timm backbone (``model.backbone``; ignored by head type ``cnn``, which has
    its own small conv stack), the head (``model.head``) and the codec (``model.codec``, with
    ``heatmap_size`` derived from the architecture when empty).
    """
    if cfg.type == "mediapipe":
        from posetune.models.mediapipe import build_mediapipe_model

        return build_mediapipe_model(cfg, spec)
    from posetune.codecs.build import build_codec
    from posetune.models import backbones, heads
    from posetune.models.topdown import TopDownModel

    _check_pairing(cfg)
    k = spec.num_keypoints
    head_type = cfg.head.type
    if head_type == "cnn":
        reduction, multiple, name = CNN_REDUCTION, CNN_REDUCTION, "cnn"
        taps = None
    else:
        taps = backbones.probe_taps(cfg.backbone)
        idx = backbones.choose_out_index(taps, head_type, cfg.backbone.out_index, cfg.backbone.name)
        reduction, multiple, name = taps[idx].reduction, max(t.reduction for t in taps), cfg.backbone.name
    _check_input_size(cfg, multiple, name)
    codec_cfg = cfg.codec
    if head_type in ("deconv", "heatmap"):
        codec_cfg = codec_cfg.model_copy(update={"heatmap_size": resolve_heatmap_size(cfg, reduction)})
    codec = build_codec(codec_cfg)

    if head_type == "cnn":
        backbone = backbones.PlainCNN()
    else:
        backbone = backbones.create_timm_backbone(cfg.backbone, head_type, taps=taps)
    info = backbone.posetune_info
    c = info.channels
    if head_type == "deconv":
        head = heads.DeconvHead(c, k, cfg.head.deconv_layers, cfg.head.deconv_channels, cfg.head.deconv_kernel)
    elif head_type == "heatmap":
        head = heads.HeatmapHead(c, k)
    elif head_type == "simcc":
        w, h = cfg.codec.input_size
        head = heads.SimCCHead(c, k, (w // reduction, h // reduction), codec.bins[0], codec.bins[1],
                               hidden_dim=cfg.head.hidden_dim, dropout=cfg.head.dropout)
    elif head_type == "regression":
        head = heads.RegressionHead(c, k, cfg.head.hidden_dim, cfg.head.dropout)
    else:  # cnn
        head = heads.RegressionHead(c, k, cfg.head.hidden_dim, cfg.head.dropout, pool_size=4)

    config = cfg.model_copy(update={"codec": codec_cfg}).model_dump(mode="json")
    return TopDownModel(backbone, head, spec, codec, config=config, mean=info.mean, std=info.std)


def build_from_description(description: dict[str, Any]) -> KeypointModel:
    """Rebuild the architecture stored by ``model.describe()`` (e.g. in a checkpoint), without
    any pretrained weights: the caller loads the checkpoint's weights into it."""
    from pydantic import ValidationError

    from posetune.data.spec import KeypointSpec as Spec

    try:
        cfg = ModelConfig.model_validate(description["config"])
        spec = Spec.from_dict(description["spec"])
    except (KeyError, TypeError, ValidationError) as e:
        raise ModelError(f"the stored model description is invalid ({str(e).splitlines()[0]})",
                         where="checkpoint 'posetune.model'",
                         hint="the checkpoint was written by an incompatible posetune version") from None
    cfg = cfg.model_copy(update={
        "backbone": cfg.backbone.model_copy(update={"pretrained": False}),
        "load_from": None,
    })
    return build_model(cfg, spec)
