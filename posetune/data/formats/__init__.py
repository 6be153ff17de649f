"""Label formats. Each module reads into / writes from the one record type.

Every format module defines:

* ``NAME``: the format's name used by ``--to`` / ``--from`` / ``data.format``;
* ``detect(path: Path) -> bool``: cheap test whether ``path`` (file or folder) holds this format;
* ``read(path: Path, *, image_root: Path | None = None, spec: KeypointSpec | None = None) -> KeypointDataset``;
* ``write(dataset: KeypointDataset, dest: Path) -> list[Path]``: writes labels (atomically) and
  returns the files written. Image files are referenced, never copied or modified.

Plain name -> module table, no registry: follow the imports.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from posetune.data.records import KeypointDataset
from posetune.data.spec import KeypointSpec
from posetune.errors import DataError, FormatDetectionError

#: format name -> module path. Detection tries them in this order.
FORMAT_MODULES: dict[str, str] = {
    "coco": "posetune.data.formats.coco",
    "labelme": "posetune.data.formats.labelme",
    "cvat": "posetune.data.formats.cvat",
    "dlc": "posetune.data.formats.dlc",
    "yolo": "posetune.data.formats.yolo",
    "simple": "posetune.data.formats.simple",
}
FORMAT_NAMES = tuple(FORMAT_MODULES)


def format_module(name: str) -> ModuleType:
    if name not in FORMAT_MODULES:
        raise DataError(f"unknown label format '{name}'", hint=f"use one of: {', '.join(FORMAT_NAMES)}")
    return importlib.import_module(FORMAT_MODULES[name])


def detect_format(path: str | Path) -> str:
    """Name of the label format at ``path`` (a file or a folder)."""
    path = Path(path)
    if not path.exists():
        raise DataError("path not found", where=path, hint="check the path to your labels")
    if path.is_file() and path.suffix.lower() == ".json":
        from posetune.io_utils import read_json

        read_json(path)  # malformed JSON: report file:line:col rather than "unknown format"
    for name in FORMAT_NAMES:
        try:
            if format_module(name).detect(path):
                return name
        except DataError:
            raise
        except Exception:  # a detector must never crash detection of the others
            continue
    raise FormatDetectionError(
        "cannot tell which label format this is", where=path,
        hint=f"pass --from / data.format with one of: {', '.join(FORMAT_NAMES)}",
    )


def read_dataset(path: str | Path, format: str = "auto", *, image_root: str | Path | None = None,
                 spec: KeypointSpec | str | None = None) -> KeypointDataset:
    """Read labels in any supported format (``format='auto'`` detects it)."""
    from posetune.data.spec import get_spec

    path = Path(path)
    if not path.exists():
        raise DataError("path not found", where=path, hint="check the path to your labels")
    name = detect_format(path) if format in (None, "auto") else format
    spec_obj = None if spec in (None, "auto") else get_spec(spec)
    ds = format_module(name).read(path, image_root=Path(image_root) if image_root else None, spec=spec_obj)
    ds.format = name
    return ds


def write_dataset(dataset: KeypointDataset, dest: str | Path, format: str) -> list[Path]:
    """Write ``dataset`` in ``format`` at ``dest`` (a file or folder, as the format needs)."""
    return format_module(format).write(dataset, Path(dest))
