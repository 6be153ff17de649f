"""Regenerate the key reference in docs/configs.md from posetune.config.schema.

Usage: python tools/gen_config_docs.py   (tests check the file is up to date)
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posetune.config.schema import Config  # noqa: E402

BEGIN = "<!-- BEGIN GENERATED KEY REFERENCE -->"
END = "<!-- END GENERATED KEY REFERENCE -->"


def _type_name(ann) -> str:
    text = repr(ann) if not isinstance(ann, type) else ann.__name__
    return (text.replace("typing.", "").replace("NoneType", "None").replace("<class '", "").replace("'>", "")
            .replace("|", " \\| "))


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return "(section)"
        return f"`{value!r}`"
    return f"`{field.default!r}`"


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        key = f"{prefix}{name}"
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            doc = (ann.__doc__ or "").strip().splitlines()[0] if ann.__doc__ else ""
            out.append((key, "section", "", doc))
            out.extend(rows(ann, key + "."))
        else:
            out.append((key, _type_name(ann), _default(field), ""))
    return out


def reference() -> str:
    lines = ["| key | type | default | notes |", "|---|---|---|---|"]
    for key, typ, default, doc in rows(Config):
        lines.append(f"| `{key}` | {typ} | {default} | {doc} |")
    return "\n".join(lines)


def main() -> None:
    path = ROOT / "docs" / "configs.md"
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    path.write_text(text[:start] + "\n" + reference() + "\n" + text[end:], encoding="utf-8")


if __name__ == "__main__":
    main()
