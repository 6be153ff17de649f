"""Typed YAML configuration: ``load_config(path, overrides) -> Config``."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from posetune.config.loader import COMMAND_LINE, apply_overrides, dump_yaml, load_raw
from posetune.config.schema import Config
from posetune.errors import ConfigError

__all__ = ["Config", "load_config", "config_from_dict", "dump_yaml", "set_by_path", "get_by_path"]


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the section at ``loc`` (for 'did you mean' suggestions)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return []
    return list(model.model_fields)


def _format_errors(err: ValidationError, prov: dict[str, str], default_source: str) -> str:
    msgs = []
    for e in err.errors():
        loc = tuple(e["loc"])
        path = ".".join(str(p) for p in loc)
        # provenance of the deepest key path we know about
        src = next((prov[".".join(str(p) for p in loc[:i])] for i in range(len(loc), 0, -1)
                    if ".".join(str(p) for p in loc[:i]) in prov), default_source)
        if e["type"] == "extra_forbidden":
            known = _known_keys(Config, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys here: {', '.join(known)}"
            msgs.append(f"unknown key '{path}' (in {src}) — {hint}")
        else:
            value = e.get("input")
            shown = repr(value) if not isinstance(value, dict) else "a mapping"
            msgs.append(f"key '{path}' = {shown} (in {src}): {e['msg']}")
    return "; ".join(msgs)


def config_from_dict(data: dict[str, Any], prov: dict[str, str] | None = None, source: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, prov or {}, source),
                          hint="fix the key or value (see docs/configs.md for every key)") from None


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Load, merge (``_base_``), override (``a.b=c``) and validate a config."""
    if path is None:
        data, prov = {}, {}
    else:
        data, prov = load_raw(path)
    data = apply_overrides(data, list(overrides), prov)
    return config_from_dict(data, prov, source=str(path) if path else COMMAND_LINE)


def get_by_path(cfg: Config, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = getattr(node, part) if isinstance(node, BaseModel) else node[part]
    return node


def set_by_path(cfg: Config, path: str, value: Any) -> Config:
    """A validated copy of ``cfg`` with ``path`` set to ``value``."""
    data = cfg.to_dict()
    data = apply_overrides(data, [f"{path}={dump_yaml(value).strip() if not isinstance(value, str) else value}"])
    return config_from_dict(data, source=f"setting {path}")
