"""YAML config loading: ``_base_`` inheritance, dotted command-line overrides, provenance.

* ``_base_`` is a path or a list of paths relative to the file that names it; bases merge in
  order, then the file itself: later wins, dicts merge key by key, lists and scalars replace.
* Overrides ``a.b.c=value`` parse ``value`` as YAML (ints, floats incl. ``3e-4``, bools,
  ``[1, 2]`` lists, ``null``) and set the key, creating intermediate dicts.
* Every leaf remembers the file (or "command line") that set it, so validation errors can
  say where a bad value came from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from posetune.errors import ConfigError

COMMAND_LINE = "command line"
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (a silent overwrite hides typos)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"key '{key}' appears twice in the same mapping",
                              where=f"{node.start_mark.name}:{key_node.start_mark.line + 1}",
                              hint="remove one of them")
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _fix_floats(obj: Any) -> Any:
    """PyYAML reads ``3e-4`` (no dot) as a string; turn such strings into floats."""
    if isinstance(obj, dict):
        return {k: _fix_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fix_floats(v) for v in obj]
    if isinstance(obj, str) and _FLOAT_RE.match(obj.strip()):
        return float(obj)
    return obj


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", where=path, hint="check the path") from None
    except OSError as e:
        raise ConfigError(f"cannot read config ({e.strerror})", where=path) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except ConfigError as e:
        e.where = str(path) + (e.where[len("<unicode string>"):] if e.where and e.where.startswith("<") else "")
        raise ConfigError(e.what, where=e.where, hint=e.hint) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"invalid YAML: {problem}", where=where, hint="fix the YAML syntax there") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"top level must be a mapping, got {type(data).__name__}", where=path,
                          hint="write the config as 'key: value' lines")
    return _fix_floats(data)


def merge(base: dict[str, Any], over: dict[str, Any], prov: dict[str, str], over_prov: dict[str, str],
          prefix: str = "") -> dict[str, Any]:
    """Merge ``over`` into a copy of ``base`` (dicts merge, everything else replaces)."""
    out = dict(base)
    for key, value in over.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, prov, over_prov, prefix=f"{path}.")
        else:
            out[key] = value
            for p in [p for p in prov if p == path or p.startswith(path + ".")]:
                del prov[p]
            prov.update({p: f for p, f in over_prov.items() if p == path or p.startswith(path + ".")})
    return out


def _provenance(data: Any, source: str, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            path = f"{prefix}{k}"
            out[path] = source
            out.update(_provenance(v, source, prefix=f"{path}."))
    return out


def load_raw(path: str | Path, _stack: tuple[Path, ...] = ()) -> tuple[dict[str, Any], dict[str, str]]:
    """Load a YAML config with its ``_base_`` chain; returns (data, provenance)."""
    path = Path(path).resolve()
    if path in _stack:
        chain = " -> ".join(str(p) for p in (*_stack, path))
        raise ConfigError(f"_base_ files include each other in a loop: {chain}", where=path,
                          hint="remove the circular _base_ reference")
    data = read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError("_base_ must be a path or a list of paths", where=f"{path} (key _base_)",
                          hint="e.g. _base_: [../base.yaml]")
    merged: dict[str, Any] = {}
    prov: dict[str, str] = {}
    for base in bases:
        base_path = (path.parent / base)
        if not base_path.exists():
            raise ConfigError(f"_base_ file '{base}' not found (looked at {base_path})", where=f"{path} (key _base_)",
                              hint="paths in _base_ are relative to the file that names them")
        bdata, bprov = load_raw(base_path, (*_stack, path))
        merged = merge(merged, bdata, prov, bprov)
    merged = merge(merged, data, prov, _provenance(data, str(path)))
    return merged, prov


def parse_value(text: str) -> Any:
    """Parse the value of a command-line override as YAML (``3e-4`` is a float)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return _fix_floats(value)


def apply_overrides(data: dict[str, Any], overrides: Iterable[str], prov: dict[str, str] | None = None) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (in order) to a copy of ``data``."""
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key.path=value", where=COMMAND_LINE,
                              hint="write e.g. train.epochs=20")
        key, _, raw = item.partition("=")
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{item}' has an empty key part", where=COMMAND_LINE,
                              hint="write e.g. train.optimizer.lr=3e-4")
        parts = key.split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"cannot set '{key}': '{'.'.join(parts[:i + 1])}' is a value, not a section",
                                  where=COMMAND_LINE, hint=f"set '{'.'.join(parts[:i + 1])}=...' instead")
            node = child
        node[parts[-1]] = parse_value(raw)
        if prov is not None:
            for p in [p for p in prov if p == key or p.startswith(key + ".")]:
                del prov[p]
            prov[key] = COMMAND_LINE
    return data


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)
