"""Helpers the LabelMe, CVAT and DeepLabCut readers share: image paths relative to a root and
image sizes checked with Problems instead of exceptions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from posetune.data.images import image_size
from posetune.data.records import Problem
from posetune.errors import DataError


def relative_to_root(path: str | Path, root: str | Path) -> str:
    """POSIX path of ``path`` relative to ``root``, or the absolute path when it lies outside.

    Symlinks are not resolved (a linked image keeps its linked name).
    """
    abs_path = os.path.abspath(path)
    rel = os.path.relpath(abs_path, os.path.abspath(root))
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        return Path(abs_path).as_posix()
    return Path(rel).as_posix()


def checked_image_size(path: Path, width: Any, height: Any, where: str,
                       problems: list[Problem]) -> tuple[int | None, int | None]:
    """(width, height) of an image, appending a Problem instead of raising.

    A positive size given by the labels is trusted (the file is only checked to exist and be
    non-empty); otherwise the size comes from the image header. A missing image is a warning
    (labels can be converted without their images); an empty or undecodable one an error.
    """
    def positive(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0

    known = positive(width) and positive(height)
    path = Path(path)
    if not path.exists():
        problems.append(Problem("image_missing", f"image not found: {path}", where=where, severity="warning",
                                hint="check the image path or pass image_root"))
        return (int(width), int(height)) if known else (None, None)
    if known:
        if path.stat().st_size == 0:
            problems.append(Problem("image_unreadable", f"image file is empty (0 bytes): {path}", where=where,
                                    hint="replace or remove this image"))
        return int(width), int(height)
    try:
        return image_size(path)
    except DataError as e:
        problems.append(Problem("image_unreadable", f"{e.what}: {path}", where=where, hint=e.hint))
        return None, None


def size_for_writing(path: Path, width: Any, height: Any) -> tuple[int | None, int | None]:
    """The size a writer records for an image: the labels' size, else the header's when the file
    is readable, else (None, None) — writers never fail on an unreadable image."""
    if width and height:
        return width, height
    if Path(path).is_file():
        try:
            return image_size(path)
        except DataError:
            pass
    return None, None
