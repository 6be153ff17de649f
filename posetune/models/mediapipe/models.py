"""MediaPipe's landmark networks as posetune keypoint models.

``build_mediapipe_model(cfg, spec)`` loads a converted BlazePose / hand / face landmark network
(:mod:`posetune.models.mediapipe.converter`) and wraps it in :class:`MediaPipeModel`, a
:class:`~posetune.models.base.KeypointModel` that trains and predicts like any other posetune
model.

Outputs. ``model(images)`` (uint8 or [0, 1] float RGB, NCHW, at the network's input size) returns
a Tensor ``(B, K, 3)``: normalised coordinates ``x / W``, ``y / H`` and a score logit, i.e. the
:class:`~posetune.codecs.regression.RegressionCodec` convention, so the regression losses of
:mod:`posetune.engine.losses` (``smooth_l1``, ``l1``, ``wing``, ...) train it directly.
MediaPipe's pixel coordinates are measured from the image's left/top *edge* (``x_mp / W`` is
MediaPipe's normalised landmark), while posetune puts pixel centres at integers: ``x = x_mp - 0.5``
— exactly the regression codec's ``x_norm = (x + 0.5) / W``.

Scores. BlazePose: ``sigmoid`` of each landmark's visibility logit. Hand and face networks have
no per-landmark confidence: every landmark gets the logit of the hand / face presence flag.

Keypoint sets. When the dataset's spec differs from the network's, keypoints whose names (or
known aliases, e.g. OneHand10K's ``forefinger1`` = ``index_finger_mcp``) exist in the native
set are read from the native landmark output; the others (all of them with
``model.mediapipe.new_head: true``) come from a new linear head on the features that feed the
native landmark layer.

Everything else the network computes — BlazePose's 64x64 heatmaps and segmentation mask, world
landmarks, handedness, presence — is returned by :meth:`MediaPipeModel.forward_all`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from posetune.codecs.base import Outputs
from posetune.codecs.regression import RegressionCodec
from posetune.config.schema import ModelConfig
from posetune.data.presets import (HAND21_MMPOSE_NAMES, MEDIAPIPE_FACE468, MEDIAPIPE_HAND21, MEDIAPIPE_POSE33,
                                   MP_HAND21_NAMES)
from posetune.data.spec import KeypointSpec
from posetune.errors import ModelError
from posetune.models.base import KeypointModel
from posetune.models.mediapipe.converter import TFLiteModule, convert_graph, head_input
from posetune.models.mediapipe.fetch import DEFAULT_VERSION, mediapipe_model_path
from posetune.models.mediapipe.tflite_reader import TFLiteGraph, read_tflite


@dataclass(frozen=True)
class Variant:
    """One MediaPipe landmark network and the names of its TFLite outputs."""

    name: str
    model_file: str  # model name in the cache (``<name>.tflite``)
    input_size: tuple[int, int]  # (w, h)
    spec: KeypointSpec
    points: int  # landmarks in the output vector (BlazePose: 33 + 6 auxiliary)
    values: int  # values per landmark (x, y, z[, visibility, presence])
    landmarks: str  # TFLite output with the landmark vector
    presence: str  # TFLite output of the presence flag (probability or logit, see presence_is_logit)
    presence_is_logit: bool
    extras: dict[str, str] = field(default_factory=dict)  # forward_all key -> TFLite output


VARIANTS: dict[str, Variant] = {
    "pose_full": Variant("pose_full", "pose_landmark_full", (256, 256), MEDIAPIPE_POSE33, 39, 5, "Identity",
                         "Identity_1", False,
                         {"segmentation": "Identity_2", "heatmaps": "Identity_3", "world_landmarks": "Identity_4"}),
    "hand_full": Variant("hand_full", "hand_landmark_full", (224, 224), MEDIAPIPE_HAND21, 21, 3, "Identity",
                         "Identity_1", False, {"handedness": "Identity_2", "world_landmarks": "Identity_3"}),
    "hand_lite": Variant("hand_lite", "hand_landmark_lite", (224, 224), MEDIAPIPE_HAND21, 21, 3, "Identity",
                         "Identity_1", False, {"handedness": "Identity_2", "world_landmarks": "Identity_3"}),
    "face": Variant("face", "face_landmark", (192, 192), MEDIAPIPE_FACE468, 468, 3, "conv2d_21", "conv2d_31", True),
}

#: other keypoint names -> the MediaPipe name of the same anatomical point
NAME_ALIASES: dict[str, str] = dict(zip(HAND21_MMPOSE_NAMES, MP_HAND21_NAMES))


# ----------------------------------------------------------------------------- codec
class MediaPipeLandmarkCodec(RegressionCodec):
    """Codec of the MediaPipe models (config type ``mediapipe``).

    Targets (:meth:`encode`): ``keypoints`` (K, 2) input pixels, ``keypoints_norm`` (K, 2) as the
    regression codec (``(x + 0.5) / W``) and ``keypoint_weights`` (K,). Outputs (:meth:`decode`):
    the model's ``(B, K, 3)`` tensor (normalised x, y, score logit); also accepted: a
    :meth:`MediaPipeModel.forward_all` dict, or a raw landmark vector ``(B, P * values)`` in
    MediaPipe pixels (scores: sigmoid of the visibility logit when ``values == 5``, else 1).
    """

    name = "mediapipe"
    output_kind = "regression"

    def __init__(self, input_size: tuple[int, int], values: int = 5, score: str = "visibility"):
        super().__init__(input_size)
        self.values = int(values)
        self.score = score

    def encode(self, keypoints: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
        out = super().encode(keypoints, weights)
        px = np.where(out["keypoint_weights"][:, None] > 0, np.asarray(keypoints, dtype=np.float32)[:, :2], 0.0)
        out["keypoints"] = px.astype(np.float32)
        return out

    def keypoint_tensor(self, outputs: Outputs) -> torch.Tensor:
        """Any accepted output form -> ``(B, K, 3)`` normalised x, y and score logit."""
        if isinstance(outputs, dict):
            outputs = outputs["keypoints"] if "keypoints" in outputs else outputs["landmarks"]
        elif isinstance(outputs, (tuple, list)):
            outputs = outputs[0]
        out = torch.as_tensor(outputs)
        if out.ndim == 2:  # raw MediaPipe landmark vector in pixels
            out = out.reshape(out.shape[0], -1, self.values)
            xy = out[..., :2] / self._size(out)
            score = out[..., 3:4] if self.values == 5 else torch.full_like(out[..., :1], 20.0)
            return torch.cat([xy, score], dim=-1)
        return out

    def decode(self, outputs: Outputs) -> tuple[torch.Tensor, torch.Tensor]:
        return super().decode(self.keypoint_tensor(outputs))

    def flip_back(self, outputs: Outputs, flip_index: np.ndarray | list[int]) -> Outputs:
        return super().flip_back(self.keypoint_tensor(outputs), flip_index)

    def merge_flip(self, outputs: Outputs, flipped_back: Outputs) -> Outputs:
        return (self.keypoint_tensor(outputs) + self.keypoint_tensor(flipped_back)) / 2


# ----------------------------------------------------------------------------- loading
def load_tflite_module(name: str, version: str = DEFAULT_VERSION, **convert_kwargs: Any) -> TFLiteModule:
    """A cached MediaPipe model (e.g. ``pose_detection``, ``palm_detection_full``) converted to a
    :class:`TFLiteModule` (fetching the wheel first if needed); ``convert_kwargs`` go to
    :func:`~posetune.models.mediapipe.converter.convert_graph`."""
    return convert_graph(read_tflite(mediapipe_model_path(name, version)), **convert_kwargs)


def _logit_tensor(graph: TFLiteGraph, output: str, is_logit: bool) -> str:
    """The pre-sigmoid tensor of a probability output (looking through RESHAPE)."""
    if is_logit:
        return output
    producer = graph.producers()
    t = graph.tensor(output).index
    while t in producer and producer[t].op == "RESHAPE":
        t = producer[t].inputs[0]
    if t in producer and producer[t].op == "LOGISTIC":
        return graph.tensors[producer[t].inputs[0]].name
    raise ModelError(f"output '{output}' is not computed by a sigmoid", where=graph.source)


def _check_outputs(graph: TFLiteGraph, variant: Variant) -> None:
    names = {graph.tensors[i].name: graph.tensors[i].shape for i in graph.outputs}
    expected = {variant.landmarks: variant.points * variant.values, variant.presence: 1}
    for name, size in expected.items():
        if name not in names or int(np.prod(names[name])) != size:
            raise ModelError(f"the '{variant.model_file}' graph has no output '{name}' of {size} values "
                             f"(outputs: {names})", where=graph.source,
                             hint=f"use mediapipe version {DEFAULT_VERSION} (model.mediapipe.version)")


def keypoint_sources(native: KeypointSpec, spec: KeypointSpec, new_head: bool) -> list[int | None]:
    """For each keypoint of ``spec``, the index of the same point in ``native`` (names or
    :data:`NAME_ALIASES`), or None when a new head must predict it."""
    if new_head:
        return [None] * spec.num_keypoints
    out: list[int | None] = []
    for name in spec.keypoints:
        key = name if native.has(name) else NAME_ALIASES.get(name, NAME_ALIASES.get(name.lower(), name))
        out.append(native.index(key) if native.has(key) else None)
    return out


# ----------------------------------------------------------------------------- the model
class MediaPipeModel(KeypointModel):
    """A converted MediaPipe landmark network (see the module docstring).

    ``net`` is the :class:`TFLiteModule`; ``new_head`` (or None) predicts the keypoints the native
    output lacks, from ``feature_tensor``. ``config`` is the ModelConfig dict that rebuilds it.
    """

    def __init__(self, variant: Variant, net: TFLiteModule, spec: KeypointSpec, sources: list[int | None],
                 logit_tensor: str, feature_tensor: str | None, config: dict[str, Any] | None = None):
        codec = MediaPipeLandmarkCodec(variant.input_size, variant.values,
                                       "visibility" if variant.values == 5 else "presence")
        super().__init__(spec, codec, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        self.variant = variant
        self.net = net
        self.config = dict(config or {})
        self.logit_tensor = logit_tensor
        self.feature_tensor = feature_tensor
        native_idx = [s for s in sources if s is not None]
        new_count = sum(s is None for s in sources)
        # output order: [native picks..., new-head keypoints...] -> spec order
        order, n_native, n_new = [], 0, 0
        for s in sources:
            if s is None:
                order.append(len(native_idx) + n_new)
                n_new += 1
            else:
                order.append(n_native)
                n_native += 1
        self.sources = list(sources)
        self.register_buffer("native_index", torch.tensor(native_idx, dtype=torch.long), persistent=False)
        self.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)
        self._identity = native_idx == list(range(variant.spec.num_keypoints)) and new_count == 0
        self.new_head: nn.Module | None = None
        if new_count:
            if feature_tensor is None:
                raise ModelError("a new head is needed but the network's feature tensor is unknown")
            features = int(np.prod(net.shape_of(feature_tensor)[1:]))
            linear = nn.Linear(features, new_count * 3)
            nn.init.zeros_(linear.weight)
            with torch.no_grad():  # start in the middle of the crop with a neutral score
                linear.bias.copy_(torch.tensor([0.5, 0.5, 0.0]).repeat(new_count))
            self.new_head = nn.Sequential(nn.Flatten(), linear)
        self._main = [variant.landmarks, logit_tensor] + ([feature_tensor] if self.new_head is not None else [])
        self.register_buffer("_size", torch.tensor(variant.input_size, dtype=torch.float32), persistent=False)

    # --- forward -----------------------------------------------------------------------
    def _keypoints(self, landmarks: torch.Tensor, logit: torch.Tensor,
                   features: torch.Tensor | None) -> torch.Tensor:
        b = landmarks.shape[0]
        lm = landmarks.reshape(b, self.variant.points, self.variant.values)[:, :self.variant.spec.num_keypoints]
        xy = lm[..., :2] / self._size
        if self.variant.values == 5:
            score = lm[..., 3:4]
        else:
            score = logit.reshape(b, 1, 1).expand(b, lm.shape[1], 1)
        native = torch.cat([xy, score], dim=-1)
        if self._identity:
            return native
        parts = [native.index_select(1, self.native_index)]
        if self.new_head is not None:
            assert features is not None
            parts.append(self.new_head(features).reshape(b, -1, 3))
        return torch.cat(parts, dim=1).index_select(1, self.order)

    def _check_input(self, x: torch.Tensor) -> None:
        w, h = self.variant.input_size
        if torch.jit.is_tracing():  # export: shapes are fixed by the example input
            return
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != h or x.shape[3] != w:
            raise ModelError(f"MediaPipe '{self.variant.name}' takes (B, 3, {h}, {w}) RGB images, got "
                             f"{tuple(x.shape)}", where="model input",
                             hint=f"crop/resize the images to {w}x{h} (model.codec.input_size is fixed by the network)")

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """(B, K, 3): normalised x, y and the score logit of each keypoint of ``spec``."""
        self._check_input(x)
        outs = self.net.run(x, outputs=self._main)
        return self._keypoints(outs[0], outs[1], outs[2] if len(outs) > 2 else None)

    def forward_all(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every output of the network, for multi-task training and analysis:

        ``keypoints`` (B, K, 3) as :meth:`forward`; ``landmarks`` (B, P, values) native landmarks in
        MediaPipe pixels (edge-based, see module docstring; BlazePose: P = 39 incl. 6 auxiliary
        points, values x, y, z, visibility logit, presence logit); ``presence`` (B,) probability
        of a body / hand / face in the crop; BlazePose: ``heatmaps`` (B, 39, 64, 64) and
        ``segmentation`` (B, 1, 256, 256) logits, ``world_landmarks`` (B, 39, 3) metres; hands:
        ``world_landmarks`` (B, 21, 3), ``handedness`` (B,) probability of a right hand.
        """
        x = self.normalize(images)
        self._check_input(x)
        extra_keys = list(self.variant.extras)
        outs = self.net.run(x, outputs=self._main + [self.variant.extras[k] for k in extra_keys])
        n = len(self._main)
        b = x.shape[0]
        features = outs[2] if self.new_head is not None else None
        result = {
            "keypoints": self._keypoints(outs[0], outs[1], features),
            "landmarks": outs[0].reshape(b, self.variant.points, self.variant.values),
            "presence": torch.sigmoid(outs[1].reshape(b)),
        }
        for key, value in zip(extra_keys, outs[n:]):
            if key == "world_landmarks":
                value = value.reshape(b, -1, 3)
            elif key == "handedness":
                value = value.reshape(b)
            result[key] = value
        return result

    # --- structure -----------------------------------------------------------------------
    def stages(self) -> list[tuple[str, nn.Module]]:
        """``stage1`` ... ``stage5`` (the layers on the keypoint path, by feature-map stride:
        2, 4, 8, 16, >= 32), ``aux`` (branches only :meth:`forward_all` runs: heatmap and
        segmentation decoders, world landmarks, handedness) and ``head`` (the layers that
        compute the landmark and score outputs, and the new head). Every parameter is in
        exactly one stage."""
        main = self.net.plan(self._main)
        shapes = self.net.layer_shapes
        head_layers = set(self._head_layers())
        in_h = self.variant.input_size[1]
        groups: dict[str, list[nn.Module]] = {f"stage{i}": [] for i in range(1, 6)}
        groups["aux"], groups["head"] = [], []
        main_set = set(main)
        for name in self.net.layers:
            layer = self.net.layers[name]
            if name in head_layers:
                groups["head"].append(layer)
            elif name not in main_set:
                groups["aux"].append(layer)
            else:
                shape = shapes[name]
                stride = in_h / shape[1] if len(shape) == 4 else 2.0 ** 5  # flat: the deepest stage
                idx = min(5, max(1, int(round(np.log2(max(stride, 1.0))))))
                groups[f"stage{idx}"].append(layer)
        if self.new_head is not None:
            groups["head"].append(self.new_head)
        return [(name, nn.ModuleList(mods)) for name, mods in groups.items()]

    def _head_layers(self) -> list[str]:
        """Layers from the last learned layer before each keypoint output to that output."""
        producer = {out: (name, ins) for name, ins, out in self.net.steps}
        names = []
        for tensor in (self.variant.landmarks, self.logit_tensor):
            t = self.net.index_of(tensor)
            while t in producer:
                name, ins = producer[t]
                names.append(name)
                if any(True for _ in self.net.layers[name].parameters(recurse=False)):
                    break  # the learned layer
                t = ins[0]
        return names

    def describe(self) -> dict[str, Any]:
        """``{'type': 'mediapipe', 'config': ModelConfig dict, 'spec': KeypointSpec dict}``; see
        :func:`posetune.models.build.build_from_description`."""
        return {"type": "mediapipe", "config": dict(self.config), "spec": self.spec.to_dict(),
                "variant": self.variant.name, "source": self.net.source}


def build_mediapipe_model(cfg: ModelConfig, spec: KeypointSpec | None = None) -> MediaPipeModel:
    """The MediaPipe network of ``cfg.mediapipe`` (variant ``pose_full``, ``hand_full``,
    ``hand_lite`` or ``face``; ``version``; ``new_head``) predicting the keypoints of ``spec``
    (default: the network's own set). Fetches the mediapipe wheel on first use."""
    mp = cfg.mediapipe
    if mp.variant not in VARIANTS:
        raise ModelError(f"unknown MediaPipe variant '{mp.variant}'", where="model.mediapipe.variant",
                         hint=f"use one of: {', '.join(VARIANTS)}")
    variant = VARIANTS[mp.variant]
    spec = spec if spec is not None else variant.spec
    path = mediapipe_model_path(variant.model_file, mp.version)
    graph = read_tflite(path)
    _check_outputs(graph, variant)
    logit = _logit_tensor(graph, variant.presence, variant.presence_is_logit)
    sources = keypoint_sources(variant.spec, spec, mp.new_head)
    feature = graph.tensors[head_input(graph, variant.landmarks)].name if None in sources else None
    outputs = [variant.landmarks, variant.presence, *variant.extras.values()]
    extra = [logit] + ([feature] if feature else [])
    net = convert_graph(graph, outputs=outputs, extra_outputs=extra)
    codec_cfg = cfg.codec.model_copy(update={"type": "mediapipe", "input_size": variant.input_size})
    config = cfg.model_copy(update={"type": "mediapipe", "codec": codec_cfg}).model_dump(mode="json")
    if mp.segmentation_weight > 0:  # keypoints + person mask (posetune.models.mediapipe.segmentation)
        from posetune.models.mediapipe.segmentation import MediaPipeMultiTask

        return MediaPipeMultiTask(variant, net, spec, sources, logit, feature, config,
                                  segmentation_weight=mp.segmentation_weight)
    return MediaPipeModel(variant, net, spec, sources, logit, feature, config)
