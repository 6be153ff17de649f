"""User-facing errors.

Every error a user can cause with bad input is a :class:`PosetuneError`. Its message says
*what* is wrong, *where* (file, record/line, config key path) and *what to do*. The CLI prints
``str(error)`` on one line and exits with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

from pathlib import Path


class PosetuneError(Exception):
    """Base class of all errors caused by user input (files, configs, arguments)."""

    def __init__(self, what: str, *, where: str | Path | None = None, hint: str | None = None):
        self.what = what
        self.where = str(where) if where is not None else None
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        msg = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            msg = f"{msg} — {self.hint}"
        return msg


class ConfigError(PosetuneError):
    """A config file or command-line override is invalid (unknown key, wrong type, bad _base_)."""


class DataError(PosetuneError):
    """A label file, image or dataset is unreadable or inconsistent."""


class FormatDetectionError(DataError):
    """posetune could not tell which label format a path holds."""


class ModelError(PosetuneError):
    """A model cannot be built or a checkpoint does not fit it."""


class CheckpointError(ModelError):
    """A checkpoint or weight file is missing, corrupt, unsafe or does not match the model."""


class TrainingError(PosetuneError):
    """Training cannot go on (NaN loss, empty validation set, ...)."""


class EvaluationError(PosetuneError):
    """Predictions cannot be evaluated against the ground truth (bad ids, counts, NaN)."""


class InferenceError(PosetuneError):
    """An input to prediction (image, video, camera) cannot be read."""


class NetworkError(PosetuneError):
    """A download was needed but the network (or the hub) is unreachable."""
