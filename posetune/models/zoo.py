"""Load a model by built-in name (``mediapipe-pose``...) or from a posetune checkpoint.

Built-in names are the pretrained networks posetune can get offline from the package index
(MediaPipe's landmark models, see ``posetune weights fetch mediapipe``). Given a ``spec``,
a built-in model predicts that keypoint set: names it knows come from its own outputs
(e.g. COCO-17 from BlazePose-33), others from a new, untrained head.
"""

from __future__ import annotations

import os
from pathlib import Path

from posetune.data.spec import KeypointSpec
from posetune.errors import CheckpointError
from posetune.models.base import KeypointModel

#: built-in name -> MediaPipe variant
BUILTIN_MODELS: dict[str, str] = {
    "mediapipe-pose": "pose_full",
    "mediapipe-hand": "hand_full",
    "mediapipe-hand-lite": "hand_lite",
    "mediapipe-face": "face",
}
ALIASES = {"blazepose": "mediapipe-pose", "mediapipe-pose-full": "mediapipe-pose",
           "mediapipe-hand-full": "mediapipe-hand"}


def builtin_name(name: str) -> str | None:
    key = str(name).strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    return key if key in BUILTIN_MODELS else None


def build_builtin(name: str, spec: KeypointSpec | None = None) -> KeypointModel:
    from posetune.config.schema import CodecConfig, MediaPipeConfig, ModelConfig
    from posetune.models.mediapipe.models import VARIANTS, build_mediapipe_model

    variant = BUILTIN_MODELS[name]
    cfg = ModelConfig(type="mediapipe", mediapipe=MediaPipeConfig(variant=variant),
                      codec=CodecConfig(type="mediapipe", input_size=VARIANTS[variant].input_size))
    return build_mediapipe_model(cfg, spec)


def load_any_model(name_or_path: str | os.PathLike, *, spec: KeypointSpec | None = None,
                   allow_unsafe: bool = False) -> KeypointModel:
    """A built-in pretrained model (optionally mapped to ``spec``) or a posetune checkpoint."""
    name = builtin_name(str(name_or_path))
    if name is not None:
        return build_builtin(name, spec)
    path = Path(name_or_path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint file or built-in model", where=str(name_or_path),
                              hint=f"give a .ckpt from `posetune train` or one of: {', '.join(BUILTIN_MODELS)}")
    from posetune.models.checkpoints import load_model

    model = load_model(path, allow_unsafe=allow_unsafe)
    if spec is not None and tuple(spec.keypoints) != tuple(model.spec.keypoints):
        from posetune.errors import ModelError

        raise ModelError(f"the checkpoint predicts {model.spec.num_keypoints} keypoints "
                         f"({', '.join(model.spec.keypoints[:5])}...) but the data has {spec.num_keypoints} "
                         f"({', '.join(spec.keypoints[:5])}...)", where=str(path),
                         hint="evaluate on labels with the checkpoint's keypoint set")
    return model
