"""MediaPipe's pretrained pose / hand / face networks as trainable PyTorch models.

``fetch``: the ``mediapipe`` wheel from PyPI (or a local wheel) -> ``.tflite`` files in the cache,
with a SHA-256 manifest. ``tflite_reader``: flatbuffer -> plain graph description.
``converter`` (+ ``ops``): graph -> :class:`TFLiteModule` with trainable parameters.
``models``: posetune wrappers (:class:`MediaPipeModel`, :class:`MediaPipeLandmarkCodec`).
"""

from posetune.models.mediapipe.converter import TFLiteModule, convert_graph, head_input
from posetune.models.mediapipe.fetch import (DEFAULT_VERSION, ensure_mediapipe_models, fetch_mediapipe,
                                             list_cached, mediapipe_model_path, verify_mediapipe_models)
from posetune.models.mediapipe.models import (VARIANTS, MediaPipeLandmarkCodec, MediaPipeModel,
                                              build_mediapipe_model, load_tflite_module)
from posetune.models.mediapipe.tflite_reader import TFLiteGraph, read_tflite

__all__ = [
    "DEFAULT_VERSION", "VARIANTS", "MediaPipeLandmarkCodec", "MediaPipeModel", "TFLiteGraph", "TFLiteModule",
    "build_mediapipe_model", "convert_graph", "ensure_mediapipe_models", "fetch_mediapipe", "head_input",
    "list_cached", "load_tflite_module", "mediapipe_model_path", "read_tflite", "verify_mediapipe_models",
]
