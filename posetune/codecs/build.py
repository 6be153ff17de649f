"""Build a codec from its config section (``model.codec``).

``describe()`` of every codec built here returns :class:`CodecConfig` fields, so
``build_codec(CodecConfig(**codec.describe()))`` rebuilds it (this is how checkpoints store it).
"""

from __future__ import annotations

from posetune.codecs.base import Codec
from posetune.codecs.heatmap import MSRAHeatmap, UDPHeatmap
from posetune.codecs.regression import RegressionCodec
from posetune.codecs.simcc import SimCCCodec
from posetune.config.schema import CodecConfig
from posetune.errors import ConfigError

#: codec type -> class
CODECS: dict[str, type[Codec]] = {
    "msra": MSRAHeatmap,
    "udp": UDPHeatmap,
    "simcc": SimCCCodec,
    "regression": RegressionCodec,
}


def _heatmap_size(cfg: CodecConfig) -> tuple[int, int]:
    if cfg.heatmap_size is not None:
        return (int(cfg.heatmap_size[0]), int(cfg.heatmap_size[1]))
    size = (cfg.input_size[0] // 4, cfg.input_size[1] // 4)
    if min(size) < 1:
        raise ConfigError(f"input_size {list(cfg.input_size)} is too small for the default heatmap (input / 4)",
                          where="model.codec.heatmap_size", hint="set model.codec.heatmap_size explicitly")
    return size


def build_codec(cfg: CodecConfig) -> Codec:
    """The codec named by ``cfg.type`` with its settings (see docs in each codec module)."""
    if cfg.type == "mediapipe":
        raise ConfigError("the 'mediapipe' codec comes with imported MediaPipe networks and cannot be built alone",
                          where="model.codec.type",
                          hint="set model.type: mediapipe (the network brings its codec), or pick a codec: "
                               + ", ".join(CODECS))
    if cfg.type not in CODECS:
        raise ConfigError(f"unknown codec '{cfg.type}'", where="model.codec.type",
                          hint=f"use one of: {', '.join(CODECS)}")
    if cfg.type in ("msra", "udp"):
        if cfg.dark_kernel % 2 == 0:
            raise ConfigError(f"dark_kernel must be odd, got {cfg.dark_kernel}", where="model.codec.dark_kernel",
                              hint="use an odd size such as 11 (the DARK default) or 1 to turn the blur off")
        size = _heatmap_size(cfg)
        if cfg.type == "udp" and (min(size) < 2 or min(cfg.input_size) < 2):
            raise ConfigError(f"UDP needs input and heatmap sizes of at least 2 x 2, got {list(size)}",
                              where="model.codec.heatmap_size", hint="use a larger heatmap_size")
        return CODECS[cfg.type](cfg.input_size, size, cfg.sigma, cfg.dark, cfg.dark_kernel)
    if cfg.type == "simcc":
        if cfg.simcc_sigma is not None and min(cfg.simcc_sigma) <= 0:
            raise ConfigError(f"simcc_sigma must be positive, got {list(cfg.simcc_sigma)}",
                              where="model.codec.simcc_sigma",
                              hint="give two positive numbers (x and y, in bins) or leave it unset for the default")
        return SimCCCodec(cfg.input_size, cfg.simcc_split_ratio, cfg.simcc_sigma, cfg.label_smoothing)
    return RegressionCodec(cfg.input_size)
