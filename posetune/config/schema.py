"""Typed configuration schema (pydantic). Unknown keys and wrong types are errors.

Sizes are ``[width, height]`` in pixels, like OpenCV and MMPose's ``input_size``.
Every section is documented in docs/configs.md; presets live in ``configs/``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Size = tuple[int, int]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


# ----------------------------------------------------------------------------- data
class AugmentConfig(Section):
    """Keypoint-aware augmentation. Probabilities are per sample; ``strength`` scales magnitudes."""

    enabled: bool = True
    strength: float = Field(1.0, ge=0)
    flip_prob: float = Field(0.5, ge=0, le=1)
    scale: tuple[float, float] = (0.75, 1.25)
    shift: float = Field(0.16, ge=0)
    rotate: float = Field(30.0, ge=0)
    rotate_prob: float = Field(0.6, ge=0, le=1)
    shear: float = Field(0.0, ge=0)
    half_body_prob: float = Field(0.0, ge=0, le=1)
    color_jitter_prob: float = Field(0.5, ge=0, le=1)
    brightness: float = Field(0.2, ge=0)
    contrast: float = Field(0.2, ge=0)
    saturation: float = Field(0.2, ge=0)
    hue: float = Field(0.02, ge=0, le=0.5)
    blur_prob: float = Field(0.0, ge=0, le=1)
    noise_prob: float = Field(0.0, ge=0, le=1)
    occlusion_prob: float = Field(0.0, ge=0, le=1)
    occlusion_max_patches: int = Field(3, ge=1)


class DataConfig(Section):
    """Where the labels are and how samples are made from them."""

    train: str | None = None
    val: str | None = None
    test: str | None = None
    format: Literal["auto", "coco", "labelme", "cvat", "dlc", "yolo", "simple"] = "auto"
    image_root: str | None = None
    spec: str = "auto"
    sigmas: list[float] | None = None
    val_fraction: float = Field(0.2, ge=0, lt=1)
    split_by: Literal["image", "video", "folder"] = "image"
    split_seed: int = 0
    batch_size: int = Field(16, ge=1)
    val_batch_size: int | None = Field(None, ge=1)
    workers: int = Field(2, ge=0)
    bbox_padding: float = Field(1.25, gt=0)
    min_keypoints: int = Field(1, ge=0)
    cache_images: bool = False
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


# ----------------------------------------------------------------------------- model
class BackboneConfig(Section):
    """A timm backbone used with ``features_only``; any timm model name works."""

    name: str = "resnet18"
    pretrained: bool | str = False
    pretrained_sha256: str | None = None
    out_index: int | None = None
    drop_path_rate: float = Field(0.0, ge=0, lt=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class HeadConfig(Section):
    type: Literal["deconv", "heatmap", "simcc", "regression", "cnn"] = "deconv"
    deconv_layers: int = Field(3, ge=0)
    deconv_channels: int = Field(256, ge=1)
    deconv_kernel: Literal[2, 3, 4] = 4
    hidden_dim: int = Field(256, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)


class CodecConfig(Section):
    """Keypoints <-> training target. ``heatmap_size`` defaults to ``input_size / 4``."""

    type: Literal["msra", "udp", "simcc", "regression", "mediapipe"] = "msra"
    input_size: Size = (192, 256)
    heatmap_size: Size | None = None
    sigma: float = Field(2.0, gt=0)
    dark: bool = False
    dark_kernel: int = Field(11, ge=1)
    simcc_split_ratio: float = Field(2.0, gt=0)
    simcc_sigma: tuple[float, float] | None = None
    label_smoothing: float = Field(0.0, ge=0, lt=1)

    @field_validator("input_size", "heatmap_size")
    @classmethod
    def _positive(cls, v: Size | None) -> Size | None:
        if v is not None and (v[0] <= 0 or v[1] <= 0):
            raise ValueError("width and height must be positive")
        return v


class MediaPipeConfig(Section):
    """Settings for imported MediaPipe networks (``model.type: mediapipe``)."""

    variant: Literal["pose_full", "hand_full", "hand_lite", "face"] = "pose_full"
    version: str = "0.10.21"
    new_head: bool = False
    segmentation_weight: float = Field(0.0, ge=0)


class ModelConfig(Section):
    type: Literal["topdown", "mediapipe"] = "topdown"
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    codec: CodecConfig = Field(default_factory=CodecConfig)
    mediapipe: MediaPipeConfig = Field(default_factory=MediaPipeConfig)
    load_from: str | None = None
    load_strict: bool = False
    allow_unsafe_load: bool = False


# ----------------------------------------------------------------------------- loss
class LossConfig(Section):
    """``type`` is ``auto`` (the codec's usual loss) or a weighted sum such as ``0.7*mse + 0.3*l1``.

    Terms: mse, heatmap_mse, ohkm, l1, smooth_l1, wing, adaptive_wing, kl (SimCC), soft_ce.
    """

    type: str = "auto"
    use_target_weight: bool = True
    ohkm_topk: int = Field(8, ge=1)
    keypoint_weights: list[float] | dict[str, float] | None = None
    smooth_l1_beta: float = Field(1.0, gt=0)
    wing_w: float = Field(10.0, gt=0)
    wing_epsilon: float = Field(2.0, gt=0)
    simcc_beta: float = Field(10.0, gt=0)


# ----------------------------------------------------------------------------- training
class OptimizerConfig(Section):
    type: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(5e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = Field(0.9, ge=0)
    nesterov: bool = False
    backbone_lr_mult: float = Field(1.0, ge=0)
    layer_lr_decay: float | None = Field(None, gt=0, le=1)
    no_decay_norm_bias: bool = True


class SchedulerConfig(Section):
    """Per-epoch decay after an optional linear warmup (counted in iterations or epochs)."""

    type: Literal["constant", "step", "multistep", "cosine"] = "cosine"
    warmup: float = Field(0, ge=0)
    warmup_unit: Literal["iters", "epochs"] = "iters"
    warmup_start_factor: float = Field(0.001, gt=0, le=1)
    step_size: int = Field(30, ge=1)
    milestones: list[int] = Field(default_factory=list)
    gamma: float = Field(0.1, gt=0)
    min_lr: float = Field(0.0, ge=0)


class EarlyStopConfig(Section):
    enabled: bool = False
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: int = Field(10, ge=1)
    min_delta: float = Field(0.0, ge=0)


class CheckpointConfig(Section):
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    save_last: bool = True
    keep_k: int = Field(1, ge=0)


class UnfreezeConfig(Section):
    """Gradual unfreezing: every ``every`` epochs the next pattern in ``groups`` becomes trainable."""

    every: int = Field(0, ge=0)
    groups: list[str] = Field(default_factory=list)


class TrainConfig(Section):
    epochs: int = Field(50, ge=1)
    max_steps: int = -1
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    accumulate: int = Field(1, ge=1)
    amp: bool = False
    clip_grad: float | None = Field(None, gt=0)
    early_stop: EarlyStopConfig = Field(default_factory=EarlyStopConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    freeze: list[str] = Field(default_factory=list)
    freeze_bn: bool = False
    unfreeze: UnfreezeConfig = Field(default_factory=UnfreezeConfig)
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int | str = 1
    num_nodes: int = Field(1, ge=1)
    strategy: str = "auto"
    deterministic: bool = False
    validate_every: int = Field(1, ge=0)
    log_every: int = Field(10, ge=1)
    oom_guard: bool = True
    overfit_patience: int = Field(3, ge=1)
    resume: str | None = None
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    progress: bool = True


# ----------------------------------------------------------------------------- evaluation / tuning
class EvalConfig(Section):
    flip_test: bool = False
    pck_thresholds: list[float] = Field(default_factory=lambda: [0.05, 0.1])
    pck_norm: Literal["bbox", "torso", "head"] = "bbox"
    rmse_pcutoff: float = Field(0.6, ge=0, le=1)


class TuneConfig(Section):
    """Optuna study. ``search_space`` maps a config key path to a distribution, e.g.
    ``train.optimizer.lr: {type: loguniform, low: 1e-5, high: 1e-2}``,
    ``model.backbone.name: {type: categorical, choices: [resnet18, mobilenetv3_large_100]}``."""

    n_trials: int = Field(10, ge=1)
    epochs: int | None = Field(None, ge=1)
    metric: str = "val_loss"
    direction: Literal["minimize", "maximize"] = "minimize"
    pruning: bool = True
    timeout_s: float | None = None
    search_space: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Config(Section):
    """The whole run configuration."""

    name: str = "run"
    seed: int = 0
    out: str | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
