"""Config presets shipped in the package (``posetune/configs/**.yaml``)."""

from __future__ import annotations

from pathlib import Path

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"


def list_presets() -> list[tuple[str, Path]]:
    return sorted((p.relative_to(PRESET_DIR).with_suffix("").as_posix(), p) for p in PRESET_DIR.rglob("*.yaml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config path as given, or a shipped preset by name (``body/coco17_resnet18``)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    candidate = PRESET_DIR / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    return p
